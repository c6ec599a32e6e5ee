"""`make demo`: a guided tour of etl-doctor on the sandbox, printed as Slack would show it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from bot.render.terminal import render_message
from bot.sandbox.sandbox import Sandbox
from bot.sandbox.slack_requests import SlashResult

RULE = "━" * 72


def _indent(text: str) -> str:
    return "\n".join(f"  │ {line}" if line else "  │" for line in text.splitlines())


def _show(out: Callable[[str], None], title: str, note: str, result: SlashResult) -> None:
    out(f"\n{RULE}\n{title}\n  {note}\n")
    if result.status != 200:
        out(f"  HTTP {result.status}")
    for message in result.messages:
        out(_indent(render_message(message)))
        out("")


def run_tour(*, keep_running: bool = False, out: Callable[[str], None] = print) -> int:
    """Run the tour and return the process exit code (0 when every step behaved as expected).

    Args:
        keep_running: Leave the sandbox up afterwards until Ctrl-C (to try commands by hand).
        out: Where lines go (tests capture them).
    """
    started = time.monotonic()
    problems: list[str] = []
    out("etl-doctor sandbox tour — no AWS or Slack account involved\n")
    with Sandbox() as sandbox:
        out(f"  AWS (moto server)     {sandbox.moto.endpoint_url}   pipelines claims-etl, billing-etl")
        replay_url = sandbox.replay.endpoint_url if sandbox.replay else ""
        out(f"  AWS (recorded replay) {replay_url}   policies-etl's ECS failure")
        out(f"  Slack (Web API emu)   {sandbox.slack.api_url}")
        out(f"  incident store        {sandbox.workdir / 'etl-doctor.db'} (SQLite)")
        out(f"  etl-doctor (HTTP)     {sandbox.events_url}   signed requests, lazy listeners")

        steps = [
            ("/etl help", "On-call types /etl help in #etl-alerts. etl-doctor acks at once and answers lazily:", 1),
            ("/etl pipelines", "Each pipeline's latest execution, read from Step Functions:", 1),
            (
                "/etl why latest policies-etl",
                "03:12, policies-etl failed. etl-doctor follows the execution to the ECS task, its container and the\n"
                "  log lines that explain it (recorded, real-shaped AWS responses; logs and metrics in moto):",
                1,
            ),
            (
                "/etl logs latest policies-etl --grep OutOfMemoryError",
                "The same hops find the log stream; --grep filters it server-side:",
                1,
            ),
            ("/etl frobnicate", "A typo gets usage text straight from the ack, visible only to the sender:", 0),
        ]
        for command, note, responses in steps:
            result = sandbox.requests.slash(command.removeprefix("/etl").strip(), responses=responses)
            _show(out, command, note, result)
            if result.status != 200 or len(result.messages) < max(1, responses):
                problems.append(f"{command}: HTTP {result.status}, {len(result.messages)} message(s)")

        forged_secret = "not-the-signing-secret"  # noqa: S105 - deliberately wrong
        status = sandbox.requests.slash("pipelines", secret=forged_secret, responses=0).status
        out(f"\n{RULE}\nA forged request (wrong signature)\n  Slack signs every request; etl-doctor refuses others:\n")
        out(f"  HTTP {status} {'(rejected)' if status == 401 else '(NOT rejected!)'}")
        if status != 401:
            problems.append(f"forged request answered {status}, expected 401")

        out(f"\n{RULE}")
        if keep_running:
            out(f"Sandbox running. Try: curl {sandbox.base_url}/healthz   (Ctrl-C stops)")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    elapsed = time.monotonic() - started
    if problems:
        out("Tour FAILED:\n" + "\n".join(f"  - {problem}" for problem in problems))
        return 1
    out(f"Tour finished in {elapsed:.1f} s. Next: README.md → 'Run it against your Slack workspace'.")
    return 0


if __name__ == "__main__":
    sys.exit(run_tour())

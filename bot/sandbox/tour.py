"""`make demo`: a guided tour of etl-doctor on the sandbox, printed as Slack would show it."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.commands import ACTION_ACK, ACTION_CONFIRM, ACTION_REDRIVE, ACTION_RETRY
from bot.render.terminal import render_message
from bot.sandbox.alert_events import status_change_event
from bot.sandbox.kpi_world import BROKEN_PARTITION, CHECK_NAME, CONNECTIONS, KPI_NAME
from bot.sandbox.sandbox import Sandbox
from bot.sandbox.slack_requests import SlashResult
from bot.sandbox.world import ALERTS_CHANNEL, DLQ_NAME, ONCALL_LEAD, ONCALL_MEMBER

RULE = "━" * 72
DEMO_OUTPUT = Path("demo-output")  # where `make demo` leaves what it made (the KPI chart); git-ignored


def _indent(text: str) -> str:
    return "\n".join(f"  │ {line}" if line else "  │" for line in text.splitlines())


def _wrapped(text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent="  ")


def _show(out: Callable[[str], None], title: str, note: str, result: SlashResult) -> None:
    out(f"\n{RULE}\n{title}\n  {note}\n")
    if result.status != 200:
        out(f"  HTTP {result.status}")
    for message in result.messages:
        out(_indent(render_message(message)))
        out("")


def _wait(condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return None


def _alert_story(sandbox: Sandbox, out: Callable[[str], None]) -> list[str]:
    """An SNS alert arrives, is enriched, repeats into its thread, and is resolved by a later success."""
    problems: list[str] = []
    describe = next(iter(sandbox.world.get("executions", {}).values()))["describe"]
    channel = ALERTS_CHANNEL

    def alerts() -> list[dict[str, Any]]:
        return [m for m in sandbox.slack.messages(channel) if m["text"].startswith(("policies-etl:", "Resolved:"))]

    def thread(parent: dict[str, Any]) -> list[dict[str, Any]]:
        return sandbox.slack.thread(channel, parent["ts"])[1:]

    out(f"\n{RULE}\nAn alert: EventBridge → SNS → POST /sns\n")
    status, _ = sandbox.publish_alert(status_change_event(describe), subject="policies-etl FAILED")
    out(f"  SNS delivers a signed notification; etl-doctor verifies it, stores it, answers HTTP {status},")
    out("  and posts at once:\n")
    parent = _wait(lambda: next(iter(alerts()), None), 15)
    if parent is None:
        return ["the SNS alert was not posted"]
    out(_indent(render_message(parent)))
    out("\n  Seconds later, the same message, enriched by the `/etl why` diagnosis (chat.update):\n")
    enriched = _wait(lambda: [m for m in alerts() if "Next step" in json.dumps(m["blocks"])], 30)
    if not enriched:
        problems.append("the alert was not enriched with the diagnosis")
    else:
        out(_indent(render_message(enriched[0])))
    out(f"\n{RULE}\nThe same failure again (a retry that failed the same way) → a reply in the thread\n")
    sandbox.publish_alert(status_change_event(describe, name="run-2025-02-18-retry-1"))
    replies = _wait(lambda: thread(parent), 15)
    if not replies or len(alerts()) != 1:
        problems.append("the repeat was not grouped into the first alert's thread")
    else:
        out(_indent(render_message(replies[-1])))
        counted = _wait(lambda: [m for m in alerts() if "×2" in json.dumps(m["blocks"], ensure_ascii=False)], 10)
        out("\n  and the parent now says " + ("“×2, last …”" if counted else "(count not updated!)"))
    problems += _action_story(sandbox, out, parent, alerts, thread)
    out(f"\n{RULE}\nThe redriven run succeeds → EventBridge says so → the alert is resolved (✅, thread note)\n")
    replay = sandbox.replay
    if replay is not None:
        replay.finish_execution(describe["executionArn"], "SUCCEEDED")
    sandbox.publish_alert(status_change_event(describe, status="SUCCEEDED"))
    resolved = _wait(lambda: [m for m in alerts() if m["text"].startswith("Resolved:") and m.get("reactions")], 15)
    if not resolved:
        problems.append("the success did not resolve the alert")
    else:
        sandbox.services.actions.follow() if sandbox.services else None  # what the 20 s poller does
        out(_indent(render_message(resolved[0])))
        for note in thread(resolved[0])[-2:]:
            out("")
            out(_indent(render_message(note)))
    tampered = sandbox.signer.notification(json.dumps(status_change_event(describe)))
    tampered["Message"] = tampered["Message"].replace("FAILED", "SUCCEEDED")
    status, answer = sandbox.publish_alert("", document=tampered)
    out(f"\n{RULE}\nA tampered SNS message (Message changed after signing)\n")
    out(f"  HTTP {status}: {answer.get('error', '')}")
    if status != 403:
        problems.append(f"tampered SNS message answered {status}, expected 403")
    return problems


MALLORY = "U0MALLORY"


def _action_story(
    sandbox: Sandbox,
    out: Callable[[str], None],
    parent: dict[str, Any],
    alerts: Callable[[], list[dict[str, Any]]],
    thread: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> list[str]:
    """A refused click, a redrive confirmed and run, and an ack, on the alert's own buttons."""
    problems: list[str] = []
    current = alerts()[0]
    out(f"\n{RULE}\n@mallory clicks Retry; nobody granted her that (permissions in etl-doctor.yml)\n")
    (refusal,) = sandbox.click(current, ACTION_RETRY, MALLORY)[:1]
    out(_indent(render_message(refusal)))
    if "may not `retry`" not in refusal.get("text", ""):
        problems.append("mallory's retry was not refused")
    out(f"\n{RULE}\n@alice (on-call lead) clicks Redrive: preflight (DescribeExecution), then a confirmation\n")
    (confirmation,) = sandbox.click(current, ACTION_REDRIVE, ONCALL_LEAD)[:1]
    out(_indent(render_message(confirmation)))
    out("\n  She confirms; RedriveExecution runs (client token = the request id) and the thread is told:\n")
    (answer,) = sandbox.click(confirmation, ACTION_CONFIRM, ONCALL_LEAD)[:1]
    note = _wait(lambda: [m for m in thread(parent) if "redrove" in m["text"]], 10)
    if not note or "redrove" not in answer.get("text", ""):
        problems.append("the redrive did not run")
    else:
        out(_indent(render_message(note[-1])))
    out(f"\n{RULE}\n@carol (in the on-call user group) acks it; the alert says who and when\n")
    sandbox.click(alerts()[0], ACTION_ACK, ONCALL_MEMBER)
    acked = _wait(lambda: [m for m in alerts() if "acked by" in json.dumps(m["blocks"])], 10)
    if not acked:
        problems.append("the ack did not update the alert")
    else:
        context = [b for b in acked[0]["blocks"] if b["type"] == "context"]
        out(_indent(render_message({"blocks": context, "text": ""})))
    return problems


def _dlq_story(sandbox: Sandbox, out: Callable[[str], None]) -> list[str]:
    """The dead-letter queue: listed without consuming, replayed by someone allowed, audited."""
    problems: list[str] = []
    steps = (
        ("dlq", "U0ONCALL", "Anyone may look: messages waiting, their age and an excerpt (nothing is consumed):"),
        (f"dlq replay {DLQ_NAME} --all", ONCALL_LEAD, "@alice replays them to the input queue (delete after send):"),
        ("audit policies-etl", "U0ONCALL", "Every request, allowed or refused, is in the audit trail:"),
    )
    for command, user, note in steps:
        result = sandbox.requests.slash(command, user_id=user)
        _show(out, f"/etl {command}", note, result)
        if result.status != 200 or not result.messages:
            problems.append(f"/etl {command}: HTTP {result.status}, {len(result.messages)} message(s)")
    if not any("Replayed 3 of 3" in str(call.args) for call in sandbox.slack.calls("response_url")):
        problems.append("the DLQ replay did not replay the 3 messages")
    return problems


def _kpi_story(sandbox: Sandbox, out: Callable[[str], None], output_dir: Path) -> list[str]:
    """A KPI breach localized to its partition, keys and layer; the chart saved; a data-quality check."""
    world = sandbox.kpi
    if world is None:
        return ["the sandbox has no KPI world"]
    problems: list[str] = []
    gap = world.headline
    files = ", ".join(f"{name} → {file}" for name, file in CONNECTIONS.items())
    out(f"\n{RULE}\nThe KPI world: policies in SQLite stand-ins for Oracle, the S3 raw layer and Redshift\n")
    out(f"  {world.directory}/  ({files})")
    policies = sum(world.source_rows.values())
    out(
        _wrapped(
            f"{len(world.partitions)} daily partitions, {policies:,} policies. The raw layer's files are in S3 and "
            "its table in the Glue Data Catalog (moto). etl-doctor.yml names the lineage of premium_amount: "
            "oracle.policies → s3_raw.policies → ods_policies → fact_policies."
        )
    )

    command = f"kpi {KPI_NAME} {BROKEN_PARTITION}"
    before = len(sandbox.slack.uploaded_files())
    result = sandbox.requests.slash(command, responses=0)
    out(f"\n{RULE}\n/etl {command}")
    out("  Finance says premium_amount in Redshift is short. etl-doctor posts a progress message in the channel,")
    out("  then replaces it with the answer: the partition, the keys and the layer where the gap starts")
    out("  (aggregates and checksums computed inside the databases):\n")
    uploaded = _wait(lambda: [f for f in sandbox.slack.uploaded_files()[before:] if f["completed"]], 60)
    if result.status != 200 or not uploaded:
        return [f"/etl {command}: HTTP {result.status}, no answer with a chart in the channel"]
    chart = uploaded[0]
    answer = next((m for m in sandbox.slack.messages(chart["channel"]) if m.get("ts") == chart["thread_ts"]), None)
    if answer is None:
        return [f"/etl {command}: the chart was not shared in the answer's thread"]
    out(_indent(render_message(answer)))
    text = json.dumps(answer, ensure_ascii=False)
    expected = (
        f"{len(gap.keys)} missing in target",
        f"{gap.upstream} → {gap.downstream}: {len(gap.keys)} rows lost",
        f"dt={BROKEN_PARTITION}",
    )
    problems += [f"/etl {command}: the answer does not say {line!r}" for line in expected if line not in text]
    content = chart["content"] or b""
    if not content.startswith(b"\x89PNG"):
        problems.append(f"/etl {command}: the chart is not a PNG")
    output_dir.mkdir(parents=True, exist_ok=True)
    saved = output_dir / str(chart["filename"])
    saved.write_bytes(content)
    out("\n  The chart (source vs target per partition) is shared in the answer's thread (files_upload_v2);")
    out(f"  chart saved to {saved} ({len(content) / 1024:.0f} KB)")
    others = "; ".join(f"{g.partition}: {g.description}" for g in world.gaps[1:])
    out("")
    out(_wrapped(f"What the sandbox injected: {gap.description}."))
    out(_wrapped(f"Also injected ({others}), each within tolerance on its own; a range lists them all:"))
    out(f"  /etl kpi {KPI_NAME} {world.partitions[0]}..{BROKEN_PARTITION}")

    command = f"check {CHECK_NAME}"
    result = sandbox.requests.slash(command)
    _show(
        out,
        f"/etl {command}",
        "A data-quality check: a query counting the rows that break a rule, and a threshold:",
        result,
    )
    if result.status != 200 or f"{len(world.negative_keys)} violating rows" not in json.dumps(result.messages):
        problems.append(f"/etl {command}: the {len(world.negative_keys)} negative premiums were not reported")
    return problems


def run_tour(*, keep_running: bool = False, out: Callable[[str], None] = print, output_dir: Path = DEMO_OUTPUT) -> int:
    """Run the tour and return the process exit code (0 when every step behaved as expected).

    Args:
        keep_running: Leave the sandbox up afterwards until Ctrl-C (to try commands by hand).
        out: Where lines go (tests capture them).
        output_dir: Where files the tour makes go (the KPI chart).
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

        problems += _alert_story(sandbox, out)
        problems += _dlq_story(sandbox, out)
        problems += _kpi_story(sandbox, out, output_dir)

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

"""Actions under a stampede: 50 concurrent clicks on one Retry, then 50 on its Confirm, while AWS takes 2 s.

Starts moto and the replay endpoint on loopback with the recorded policies-etl failure (``run-2025-02-18``,
bot/sandbox/scenarios/policies_etl_oom.json) loaded, the Slack emulator, and the real bot (`bot.app.serve`
over HTTP, waitress, a fresh SQLite store) with an etl-doctor.yml that grants ``retry`` on policies-etl to
``--clicks`` users (U0USER00…; or, with ``--grant usergroup``, to a user group holding them) and
``alerts.enrich: false``. Posts a signed SNS alert for run-2025-02-18, so the parent message with its Retry
button exists, then makes every AWS call an action can make answer ``--delay`` seconds late
(`AwsReplay.slow_down` of DescribeExecution, StartExecution and DescribeStateMachine; concurrent calls wait
in parallel) and measures:

* phase 1: ``--clicks`` threads (in a child process by default, so they do not take the bot's GIL), each on
  its own open connection, POST a signed ``block_actions`` click of the parent's Retry at once, each as a
  different user. The latency of each POST is the ack latency: what Slack waits for, and must get within
  3 s. Then waits for the ephemeral confirmations (posts to each click's response_url).
* phase 2: ``--clicks`` concurrent clicks on Confirm (the request id is the same in every confirmation):
  by default the requester (the user whose click created the request row; only they may confirm) clicks
  their Confirm ``--clicks`` times at once, which exercises the compare-and-set that lets one caller start
  the execution; ``--confirm-by each`` has every user click the Confirm of their own confirmation instead.

Then it waits until Slack is quiet and counts executions started (replay), StartExecution and
DescribeExecution calls the replay received (and how many of them were in flight at once), audit rows,
action_requests rows, and what the clickers were answered. The same run is repeated in the same process
with the delay at 0 as a baseline, so the reader sees whether the ack latency depends on AWS latency.

Two what-ifs wrap ``bot.app.App`` in this process only (no file is changed): ``--listener-workers N`` gives
the Bolt app a listener executor of N threads (Bolt's default, which the bot uses, is 5, and runs both the
ack functions and the lazy listeners); ``--inline-ack`` sets ``process_before_response=True`` (as the bot
already does on Lambda), so the ack function runs in the request's own thread instead of that executor.

The last line is ``executions_started=… ack_p50_ms=… ack_p99_ms=… audit_rows=…`` (ack figures over all the
clicks of the slow run), followed by more figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import multiprocessing
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

import bot.app  # noqa: E402
from bot.alerts.sns import PinnedCertificate  # noqa: E402
from bot.aws.clients import AwsClients  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.sandbox.aws_replay import AwsReplay  # noqa: E402
from bot.sandbox.moto_server import SANDBOX_CREDENTIALS, MotoSandbox  # noqa: E402
from bot.sandbox.scenarios import load_scenario, read_scenario  # noqa: E402
from bot.sandbox.slack_emulator import SlackEmulator  # noqa: E402
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, block_actions, interactive_body, signed_request  # noqa: E402
from bot.sandbox.world import RECORDED_FAILURE  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.store.models import ActionRequest  # noqa: E402
from tests.support.alerts import MACHINE, sfn_event  # noqa: E402
from tests.support.bot import BotUnderTest, running_bot  # noqa: E402
from tests.support.sns_signing import DEFAULT_TOPIC_ARN, TestSigner  # noqa: E402

CHANNEL = "#etl-alerts"
RUN = "run-2025-02-18"
ARN = MACHINE.replace(":stateMachine:", ":execution:") + f":{RUN}"
SIGNING_SECRET = "actions-bench-signing-secret"  # a fake secret for a loopback bot
USERGROUP = "S0RETRIERS"
SLOW_OPERATIONS = ("DescribeExecution", "StartExecution", "DescribeStateMachine")
ACK_TARGET_MS = 300.0
SLACK_ACK_LIMIT_MS = 3000.0


def _users(count: int) -> list[str]:
    return [f"U0USER{index:02d}" for index in range(count)]


def _project(users: list[str], grant: str) -> str:
    who = f"usergroups: [{USERGROUP}]" if grant == "usergroup" else f"users: [{', '.join(users)}]"
    return (
        f'default_channel: "{CHANNEL}"\n'
        "pipelines:\n"
        "  policies-etl:\n"
        f"    state_machine_arn: {MACHINE}\n"
        'sns_topics: ["arn:aws:sns:us-east-1:123456789012:etl-*"]\n'
        "alerts:\n"
        "  enrich: false\n"
        "permissions:\n"
        "  - actions: [retry]\n"
        "    pipelines: [policies-etl]\n"
        f"    {who}\n"
    )


# ---------------------------------------------------------------- the clicks (run in a child process by default)


@dataclass
class Click:
    latency: float  # seconds from sending the request to reading the whole answer
    status: int  # 0: connection error
    sent_at: float  # time.time() when sent (wall clock: comparable across processes)


def click_all(port: int, requests: list[tuple[str, dict[str, str]]]) -> list[Click]:
    """POST each (body, headers) to /slack/events from its own thread and connection, all released at once."""
    results: list[Click | None] = [None] * len(requests)
    gate = threading.Barrier(len(requests))

    def clicker(index: int) -> None:
        body, headers = requests[index]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.connect()
        gate.wait()
        sent_at, started = time.time(), time.perf_counter()
        try:
            connection.request("POST", "/slack/events", body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
        results[index] = Click(time.perf_counter() - started, status, sent_at)
        connection.close()

    threads = [threading.Thread(target=clicker, args=(n,), name=f"clicker-{n}") for n in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [click for click in results if click is not None]


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[rank]


def _stats(values_ms: list[float]) -> str:
    if not values_ms:
        return "(none)"
    p50, p95, p99 = (_percentile(values_ms, pct) for pct in (50, 95, 99))
    return f"p50 {p50:7.1f}  p95 {p95:7.1f}  p99 {p99:7.1f}  max {max(values_ms):7.1f}"


# ---------------------------------------------------------------- what the bot logs


class _LogTally(logging.Handler):
    """Counts WARNING+ records by logger and message head instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().splitlines()[0]
        if "didn't call ack()" in message:
            message = "<ack function> didn't call ack() within Bolt's 3 s ack_timeout"
        elif message.startswith("Unhandled request"):
            message = "Unhandled request (after the ack timeout)"
        elif message.startswith("Task queue depth"):
            message = "Task queue depth is N (requests waiting for a waitress thread)"
        self.counts[f"{record.name}: {message[:100]}"] += 1


@contextmanager
def _tally_logs() -> Iterator[_LogTally]:
    tally = _LogTally()
    root = logging.getLogger()
    root.addHandler(tally)
    try:
        yield tally
    finally:
        root.removeHandler(tally)


# ---------------------------------------------------------------- what-ifs on the Bolt app (this process only)


@contextmanager
def _bolt_what_if(workers: int | None, inline_ack: bool) -> Iterator[None]:
    """Make `bot.app.build_app` give Bolt a listener executor of ``workers`` threads, and/or run ack functions
    in the request's own thread (``process_before_response=True``); neither given: leave the app alone."""
    if workers is None and not inline_ack:
        yield
        return
    original = bot.app.App

    def app_with_what_ifs(*args: Any, **kwargs: Any) -> Any:
        if workers is not None:
            kwargs["listener_executor"] = ThreadPoolExecutor(max_workers=workers)
        if inline_ack:
            kwargs["process_before_response"] = True
        return original(*args, **kwargs)

    bot.app.App = app_with_what_ifs  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        bot.app.App = original  # type: ignore[misc]


# ---------------------------------------------------------------- one run


@dataclass
class Phase:
    clicks: list[Click]
    answers: dict[str, dict[str, Any]]  # response_url key → what the bot posted there
    answer_after: list[float]  # seconds from the phase's first click to each answer
    keys: list[str]


@dataclass
class RunFigures:
    delay: float
    phase1: Phase
    phase2: Phase
    requester: str
    confirm_ids: set[str]
    executions_started: int
    calls: Counter[str]
    in_flight_peak: dict[str, int]
    audit: Counter[str]
    audit_rows: int
    action_requests: int
    request_status: str
    logs: Counter[str] = field(default_factory=Counter)


def _alert(bot_under_test: BotUnderTest, emulator: SlackEmulator, signer: TestSigner) -> dict[str, Any]:
    envelope = signer.notification(
        json.dumps(sfn_event("FAILED", RUN)), subject="policies-etl failed", topic_arn=DEFAULT_TOPIC_ARN
    )
    request = urllib.request.Request(
        f"{bot_under_test.base_url}/sns",
        data=json.dumps(envelope).encode(),
        method="POST",
        headers={"Content-Type": "text/plain; charset=UTF-8"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"/sns answered {response.status}")
    parent = _wait(lambda: [m for m in emulator.messages(CHANNEL) if m.get("thread_ts", m["ts"]) == m["ts"]], 20)
    return dict(parent[0])


def _wait(condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"condition not met within {timeout:.0f} s")


def _element(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    for block in blocks:
        for item in block.get("elements", []) if block.get("type") == "actions" else []:
            if item.get("action_id") == action_id:
                return dict(item)
    raise RuntimeError(f"no {action_id} button in {json.dumps(blocks)[:300]}")


def _click_requests(
    emulator: SlackEmulator, clicks: list[tuple[str, str, str, str]]
) -> tuple[list[tuple[str, dict[str, str]]], list[str]]:
    """Signed block_actions bodies for (action_id, value, user, message_ts), each with its own response_url."""
    channel_id = emulator.channel_id(CHANNEL)
    requests, keys = [], []
    for action_id, value, user, message_ts in clicks:
        url = emulator.response_url(channel=CHANNEL, user=user, message_ts=message_ts)
        keys.append(url.rsplit("/", 1)[-1])
        payload = block_actions(
            action_id=action_id,
            value=value,
            user_id=user,
            user_name=user.lower(),
            channel_id=channel_id,
            message_ts=message_ts,
            response_url=url,
        )
        requests.append(signed_request(interactive_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE))
    return requests, keys


def _phase(
    emulator: SlackEmulator,
    port: int,
    clicks: list[tuple[str, str, str, str]],
    send: Callable[[int, list[tuple[str, dict[str, str]]]], list[Click]],
    timeout: float,
) -> Phase:
    requests, keys = _click_requests(emulator, clicks)
    wanted = set(keys)
    started = time.monotonic()
    results = send(port, requests)

    def answered() -> dict[str, Any]:
        return {c.key: c for c in emulator.calls("response_url") if c.key in wanted}

    try:
        _wait(lambda: len(answered()) >= len(wanted), timeout)
    except RuntimeError:
        print(f"  only {len(answered())} of {len(wanted)} answers arrived within {timeout:.0f} s")
    calls = answered()
    return Phase(
        results,
        {key: call.args for key, call in calls.items()},
        sorted(call.at - started for call in calls.values()),
        keys,
    )


def _wait_quiet(emulator: SlackEmulator, quiet: float = 1.5, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    seen, last_change = len(emulator.calls()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now_seen = len(emulator.calls())
        if now_seen != seen:
            seen, last_change = now_seen, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            return


def run_once(moto: MotoSandbox, delay: float, args: argparse.Namespace, send: Any) -> RunFigures:
    """Set up a fresh world, click, count."""
    users = _users(args.clicks)
    moto.reset()
    with (
        tempfile.TemporaryDirectory(prefix="etl-doctor-actions-") as tmp,
        AwsReplay(moto.endpoint_url) as replay,
        SlackEmulator() as emulator,
        _tally_logs() as tally,
        _bolt_what_if(args.listener_workers, args.inline_ack),
    ):
        workdir = Path(tmp)
        (workdir / "etl-doctor.yml").write_text(_project(users, args.grant), encoding="utf-8")
        if args.grant == "usergroup":
            emulator.add_usergroup(USERGROUP, users)
        environ = {
            "SLACK_BOT_TOKEN": emulator.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": emulator.api_url,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": replay.endpoint_url,
            "DATABASE_URL": f"sqlite:///{workdir / 'etl-doctor.db'}",
            "ETL_DOCTOR_CONFIG": str(workdir / "etl-doctor.yml"),
            "ETL_DOCTOR_HTTP_HOST": "127.0.0.1",
            "PORT": "0",
            "LOG_LEVEL": "WARNING",
        }
        if args.http_threads:
            environ["ETL_DOCTOR_HTTP_THREADS"] = str(args.http_threads)
        settings = load_settings(environ)
        aws = AwsClients.from_settings(settings, credentials=SANDBOX_CREDENTIALS)
        load_scenario(read_scenario(RECORDED_FAILURE), replay, aws)
        signer = TestSigner.shared()
        services = Services(settings, aws=aws, sns_certificates=PinnedCertificate(signer.pem))
        try:
            with running_bot(settings, services, emulator) as running:
                parent = _alert(running, emulator, signer)
                retry = _element(parent["blocks"], "etl.retry")
                for operation in SLOW_OPERATIONS:
                    replay.slow_down(operation, delay)
                replay.reset_calls()
                port = running.server.port

                phase1 = _phase(
                    emulator,
                    port,
                    [("etl.retry", str(retry["value"]), user, parent["ts"]) for user in users],
                    send,
                    args.wait_timeout,
                )
                with services.store.transaction() as uow:
                    request = uow.action_requests.by_key(f"retry:{ARN}")
                    requester = request.requested_by if request else "?"
                confirm_ids: set[str] = set()
                confirmation_of: dict[str, tuple[str, str]] = {}  # user → (request id, message ts to click on)
                for user, key in zip(users, phase1.keys, strict=True):
                    answer = phase1.answers.get(key)
                    if answer and any(b.get("type") == "actions" for b in answer.get("blocks", [])):
                        value = str(_element(answer["blocks"], "etl.confirm")["value"])
                        confirm_ids.add(value)
                        confirmation_of[user] = (value, parent["ts"])
                if requester not in confirmation_of:
                    raise RuntimeError(f"the requester {requester} got no confirmation; phase 1 answers: {phase1}")
                if args.confirm_by == "requester":
                    value, ts = confirmation_of[requester]
                    confirms = [("etl.confirm", value, requester, ts)] * args.clicks
                else:
                    confirms = [
                        ("etl.confirm", confirmation_of[u][0], u, confirmation_of[u][1])
                        for u in users
                        if u in confirmation_of
                    ]
                phase2 = _phase(emulator, port, confirms, send, args.wait_timeout)
                _wait_quiet(emulator)

                with services.store.transaction() as uow:
                    records = uow.audit.recent(limit=500)
                    rows = int(uow.session.scalar(select(func.count()).select_from(ActionRequest)) or 0)
                    final = uow.action_requests.by_key(f"retry:{ARN}")
                    status = final.status if final else "?"
                figures = RunFigures(
                    delay=delay,
                    phase1=phase1,
                    phase2=phase2,
                    requester=requester,
                    confirm_ids=confirm_ids,
                    executions_started=len(replay.started_executions()),
                    calls=replay.call_counts(),
                    in_flight_peak={op: replay.in_flight_peak(op) for op in SLOW_OPERATIONS},
                    audit=Counter(f"{r.action} {r.outcome}" for r in records),
                    audit_rows=len(records),
                    action_requests=rows,
                    request_status=status,
                )
                for operation in SLOW_OPERATIONS:  # let the follower's polls and the shutdown go quickly
                    replay.slow_down(operation, 0)
        finally:
            services.close()
        figures.logs = tally.counts
    return figures


# ---------------------------------------------------------------- the report


def _kind(answer: dict[str, Any] | None) -> str:
    if answer is None:
        return "no answer"
    text = str(answer.get("text", ""))
    if any(b.get("type") == "actions" for b in answer.get("blocks", [])) and text.startswith("Retry?"):
        return "confirmation"
    if text.startswith(":arrow_forward:"):
        return "started"
    if text.startswith("This request is already"):
        return "already " + text.removeprefix("This request is already ").split(" by ")[0].rstrip(".")
    if text.startswith("Only <@"):
        return "only the requester can confirm"
    return text[:60]


def _report_run(name: str, run: RunFigures) -> None:
    print(f"--- {name}: every action AWS call answered {run.delay:g} s late")
    for label, phase in (("phase 1 (Retry) ", run.phase1), ("phase 2 (Confirm)", run.phase2)):
        ms = [c.latency * 1000 for c in phase.clicks]
        statuses = Counter(c.status for c in phase.clicks)
        spread = max(c.sent_at for c in phase.clicks) - min(c.sent_at for c in phase.clicks)
        over = sum(1 for v in ms if v >= SLACK_ACK_LIMIT_MS)
        print(
            f"{label} ack ms: {_stats(ms)}   HTTP {dict(sorted(statuses.items()))}, {over} at or over Slack's "
            f"3 s; clicks sent within {spread * 1000:.0f} ms"
        )
        kinds = Counter(_kind(phase.answers.get(key)) for key in phase.keys)
        after = phase.answer_after
        when = f"first {after[0]:.1f} s, median {_percentile(after, 50):.1f} s, last {after[-1]:.1f} s" if after else ""
        print(f"{'':17} answers: {dict(kinds.most_common())}  ({when} after the first click)")
    print(
        f"requester {run.requester}; Confirm buttons carried {len(run.confirm_ids)} distinct request id(s); "
        f"action_requests rows {run.action_requests} (status {run.request_status})"
    )
    calls = {k.split(":", 1)[1]: v for k, v in sorted(run.calls.items()) if k.startswith("states:")}
    print(f"executions started {run.executions_started}; Step Functions calls received: {calls}")
    print(f"most calls in flight at once: {run.in_flight_peak}")
    print(f"audit rows {run.audit_rows}: {dict(run.audit.most_common())}")
    if run.logs:
        print("bot warnings: " + "; ".join(f"{count}× {message}" for message, count in run.logs.most_common(6)))


def _all_ms(run: RunFigures) -> list[float]:
    return [c.latency * 1000 for c in run.phase1.clicks + run.phase2.clicks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=50, help="concurrent clicks per phase (<= 100 users)")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds each action AWS call takes")
    parser.add_argument("--confirm-by", choices=("requester", "each"), default="requester")
    parser.add_argument("--grant", choices=("users", "usergroup"), default="users")
    parser.add_argument("--http-threads", type=int, default=None, help="ETL_DOCTOR_HTTP_THREADS (default: setting)")
    parser.add_argument(
        "--listener-workers", type=int, default=None, help="what-if: Bolt listener executor threads (default: Bolt's)"
    )
    parser.add_argument(
        "--inline-ack",
        action="store_true",
        help="what-if: Bolt's process_before_response=True (ack in the request thread)",
    )
    parser.add_argument("--clickers-in", choices=("process", "thread"), default="process")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run with the delay at 0")
    parser.add_argument("--wait-timeout", type=float, default=240.0, help="longest wait for a phase's answers")
    args = parser.parse_args()
    if not 1 <= args.clicks <= 100:
        parser.error("--clicks must be 1..100")

    pool: Executor | None = None
    if args.clickers_in == "process":
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        pool.submit(time.sleep, 0).result()  # the child is up and has imported this module

        def send(port: int, requests: list[tuple[str, dict[str, str]]]) -> list[Click]:
            assert pool is not None
            return pool.submit(click_all, port, requests).result()

    else:
        send = click_all
    default_workers = "ETL_DOCTOR_WORKERS (default 16)"
    workers = f"{args.listener_workers} threads (what-if)" if args.listener_workers else default_workers
    confirmer = f"the requester, {args.clicks} times" if args.confirm_by == "requester" else "each user"
    print(
        f"{args.clicks} users granted retry on policies-etl ({args.grant}); clicks from "
        + ("a child process" if pool else "the bot's process")
        + f"; Confirm clicked by {confirmer}; Bolt listener executor: {workers}"
        + ("; ack functions inline (process_before_response, what-if)" if args.inline_ack else "")
    )
    started = time.monotonic()
    try:
        with MotoSandbox() as moto:
            slow = run_once(moto, args.delay, args, send)
            base = None if args.no_baseline else run_once(moto, 0.0, args, send)
    finally:
        if pool is not None:
            pool.shutdown()
    _report_run("slow AWS", slow)
    if base is not None:
        _report_run("baseline", base)
    slow_ms = _all_ms(slow)
    p50, p99 = _percentile(slow_ms, 50), _percentile(slow_ms, 99)
    print(f"all {len(slow_ms)} clicks, slow AWS: ack ms {_stats(slow_ms)}")
    if base is not None:
        print(f"all {len(_all_ms(base))} clicks, baseline: ack ms {_stats(_all_ms(base))}")
    verdicts = {
        "executions started == 1": slow.executions_started == 1,
        "one action_requests row": slow.action_requests == 1,
        f"ack p99 < {ACK_TARGET_MS:.0f} ms with AWS at {args.delay:g} s": p99 < ACK_TARGET_MS,
        "every ack under Slack's 3 s": max(slow_ms) < SLACK_ACK_LIMIT_MS,
    }
    print("targets: " + "; ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in verdicts.items()))
    print(f"wall time {time.monotonic() - started:.0f} s")
    extra = ""
    if base is not None:
        base_ms = _all_ms(base)
        extra = (
            f" baseline_ack_p50_ms={_percentile(base_ms, 50):.1f} baseline_ack_p99_ms={_percentile(base_ms, 99):.1f}"
        )
    print(
        f"executions_started={slow.executions_started} ack_p50_ms={p50:.1f} ack_p99_ms={p99:.1f} "
        f"audit_rows={slow.audit_rows} ack_max_ms={max(slow_ms):.1f} "
        f"start_execution_calls={slow.calls['states:StartExecution']} action_requests={slow.action_requests} "
        f"acks_over_3s={sum(1 for v in slow_ms if v >= SLACK_ACK_LIMIT_MS)} "
        f"confirmations_last_s={slow.phase1.answer_after[-1] if slow.phase1.answer_after else float('nan'):.1f}" + extra
    )


if __name__ == "__main__":
    main()

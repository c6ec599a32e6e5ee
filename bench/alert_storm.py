"""Alert storm: 1,000 signed SNS notifications of 50 failures from 20 senders while Slack throttles.

Starts the Slack emulator (chat.postMessage limited to ``--rate`` messages per second per channel, 429 with
Retry-After above it) and the real bot (`bot.app.serve`, waitress, ``ETL_DOCTOR_HTTP_THREADS`` default) on
loopback with a fresh store (SQLite file by default, or PostgreSQL), then posts ``--notifications`` signed
SNS Notifications to ``/sns`` from ``--senders`` threads, each on its own keep-alive HTTP connection (in a
child process, so they do not share the bot's GIL; ``--senders-in thread`` runs them in its process). Each
notification carries an EventBridge Step Functions FAILED event (the documented sample) of one of
``--fingerprints`` state machines, each its own pipeline in etl-doctor.yml, round robin, every execution
named ``storm-NNNN``; all pipelines post to the one ``default_channel`` (the worst case for the channel
limit). ``alerts.enrich`` is false: there is no AWS behind this benchmark.

Prints: accepted/s on the sender side (200 answers / wall time of the send phase), ``/sns`` latency
p50/p95/p99/max, non-200 answers, Slack calls by method and how many were 429, parent messages and thread
replies in the channel, the time to drain (first send → no alert ``received`` in the store), alerts lost
(sent - alerts stored as ``posted``), and two completeness checks: in the store (incidents' occurrences sum
to the notifications sent, each incident has a Slack message) and in Slack (parents plus the repeats the
replies announce sum to the notifications sent, and so do the parents' ``×N``). ``--probes`` adds the wall
and CPU time of the /sns handler, of the classification inside it, and of the SQLite write lock (waiting in
``BEGIN IMMEDIATE``, held until ``COMMIT``) by thread. The last line is
``accepted=… lost=… p99_ms=… parents=… slack_calls=… drain_s=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import multiprocessing
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, select  # noqa: E402

import bot.alerts.ingest as ingest_module  # noqa: E402
import bot.alerts.routing as routing_module  # noqa: E402
from bot.alerts.sns import PinnedCertificate  # noqa: E402
from bot.aws.clients import AwsClients  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.sandbox.moto_server import SANDBOX_CREDENTIALS  # noqa: E402
from bot.sandbox.slack_emulator import SlackEmulator  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.store.db import Store  # noqa: E402
from bot.store.models import Incident  # noqa: E402
from tests.support.alerts import sfn_event  # noqa: E402
from tests.support.bot import BotUnderTest, running_bot  # noqa: E402
from tests.support.sns_signing import DEFAULT_TOPIC_ARN, TestSigner  # noqa: E402

CHANNEL = "#etl-alerts"
ACCOUNT = "123456789012"
NO_AWS = "http://127.0.0.1:9"  # enrichment is off; should anything call AWS anyway, it fails here, not on AWS


def _machine(index: int) -> str:
    return f"storm-etl-{index:03d}"


def _project(fingerprints: int) -> str:
    lines = [f'default_channel: "{CHANNEL}"', "alerts:", "  enrich: false", "pipelines:"]
    for index in range(fingerprints):
        lines += [
            f"  {_machine(index)}:",
            f"    state_machine_arn: arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{_machine(index)}",
        ]
    lines += ["sns_topics:", f"  - arn:aws:sns:us-east-1:{ACCOUNT}:etl-*"]
    return "\n".join(lines) + "\n"


def _notifications(count: int, fingerprints: int) -> tuple[list[bytes], TestSigner]:
    """Signed SNS Notification bodies; notification i fails state machine i % fingerprints (round robin)."""
    signer = TestSigner.create()
    bodies = []
    for i in range(count):
        machine = _machine(i % fingerprints)
        event = sfn_event(
            "FAILED", f"storm-{i:04d}", machine=f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{machine}"
        )
        envelope = signer.notification(json.dumps(event), subject=f"{machine} failed", topic_arn=DEFAULT_TOPIC_ARN)
        bodies.append(json.dumps(envelope).encode())
    return bodies, signer


# ---------------------------------------------------------------- the send phase


@dataclass
class SendResults:
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    statuses: Counter[int] = field(default_factory=Counter)  # 0: connection error
    started: float = 0.0  # time.monotonic()
    ended: float = 0.0


def _send_all(port: int, bodies: list[bytes], senders: int) -> SendResults:
    results = SendResults()
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))
    gate = threading.Barrier(senders + 1)

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.connect()
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        gate.wait()
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            body = bodies[index]
            headers = {
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": "Notification",
                "x-amz-sns-topic-arn": DEFAULT_TOPIC_ARN,
            }
            started = time.perf_counter()
            try:
                connection.request("POST", "/sns", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
        connection.close()
        with lock:
            results.latencies += latencies
            results.statuses.update(statuses)

    threads = [threading.Thread(target=sender, name=f"sender-{n}") for n in range(senders)]
    for thread in threads:
        thread.start()
    gate.wait()
    results.started = time.monotonic()
    for thread in threads:
        thread.join()
    results.ended = time.monotonic()
    return results


def _send_from_child(port: int, bodies: list[bytes], senders: int) -> SendResults:
    """`_send_all` in a child process, so the senders do not take the bot's GIL (SNS is not in its process)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(time.sleep, 0).result()  # the child is up and has imported this module before the clock starts
        return pool.submit(_send_all, port, bodies, senders).result()


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[rank]


class _QueueDepth(logging.Handler):
    """Counts waitress's "Task queue depth is N" warnings (requests waiting for a worker thread) and keeps the max."""

    def __init__(self) -> None:
        super().__init__()
        self.warnings = 0
        self.max_depth = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.warnings += 1
        depth = re.search(r"(\d+)", record.getMessage())
        self.max_depth = max(self.max_depth, int(depth.group(1)) if depth else 0)


# ---------------------------------------------------------------- draining and what is left


def _counts(store: Store) -> dict[str, int]:
    with store.transaction() as uow:
        return uow.alerts.counts_by_status()


def _wait_drained(store: Store, timeout: float) -> tuple[float | None, dict[str, int]]:
    """Poll until no alert is ``received``; return when (time.monotonic()) and the last counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = _counts(store)
        now = time.monotonic()
        if counts.get("received", 0) == 0:
            return now, counts
        if now > deadline:
            return None, counts
        time.sleep(0.1)


def _wait_slack_quiet(emulator: SlackEmulator, quiet: float = 2.0, timeout: float = 60.0) -> None:
    """Wait until the emulator saw no call for ``quiet`` seconds (the last parent updates land after the drain)."""
    deadline = time.monotonic() + timeout
    seen = len(emulator.calls())
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now_seen = len(emulator.calls())
        if now_seen != seen:
            seen, last_change = now_seen, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            return


REPEATS = re.compile(r"^:repeat: (\d+) more occurrences? \(×(\d+) in all\)")
COUNT = re.compile(r"\(×(\d+)\)$")
NAME = re.compile(r"storm-\d{4}")
MORE = re.compile(r"…and (\d+) more")


@dataclass
class SlackFigures:
    parents: int
    replies: int
    parent_counts: int  # sum of the parents' ×N (1 when there is none)
    announced: int  # parents + repeats announced by the replies
    named: int  # distinct execution names shown by name
    unnamed: int  # "…and N more"


def _slack_figures(emulator: SlackEmulator) -> SlackFigures:
    messages = emulator.messages(CHANNEL)
    parents = [m for m in messages if m.get("thread_ts", m["ts"]) == m["ts"]]
    replies = [m for m in messages if m.get("thread_ts", m["ts"]) != m["ts"]]
    parent_counts = 0
    for message in parents:
        match = COUNT.search(message["text"])
        parent_counts += int(match.group(1)) if match else 1
    announced = len(parents)
    names: set[str] = set()
    unnamed = 0
    for message in parents:
        names.update(NAME.findall(message["text"]))
    for message in replies:
        match = REPEATS.match(message["text"])
        if match:
            announced += int(match.group(1))
        blocks = json.dumps(message.get("blocks", []), ensure_ascii=False)
        names.update(NAME.findall(blocks))
        unnamed += sum(int(n) for n in MORE.findall(blocks))
    return SlackFigures(len(parents), len(replies), parent_counts, announced, len(names), unnamed)


# ---------------------------------------------------------------- the database


@contextlib.contextmanager
def _database(option: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """A fresh, empty database for ``--database``; yields (URL, description)."""
    if option == "sqlite":
        yield f"sqlite:///{workdir / 'etl-doctor.db'}", "SQLite file (WAL)"
        return
    if option.startswith("sqlite"):
        yield option, "SQLite"
        return
    from tests.support import postgres

    if option == "postgres":  # a throwaway local cluster (fsync off, as the test suite runs it)
        bin_dir = postgres.find_pg_bin()
        if bin_dir is None:
            raise SystemExit("--database postgres needs initdb/pg_ctl (Debian's postgresql package)")
        server = postgres.ThrowawayPostgres(bin_dir).start()
        try:
            with _database(server.url, workdir) as (url, _):
                yield url, "PostgreSQL (throwaway local cluster, fsync=off)"
        finally:
            server.stop()
        return
    url = postgres.create_database(option)  # a new database on that server, dropped afterwards
    try:
        Store(url).upgrade()
        yield url, f"PostgreSQL ({option.split('@')[-1].rsplit('/', 1)[0]}, a fresh database)"
    finally:
        postgres.drop_database(option, url)


def _store_figures(store: Store) -> tuple[dict[str, int], int, int, int]:
    """Alerts by status, incidents, incidents with a Slack message, sum of their occurrences."""
    with store.transaction() as uow:
        counts = uow.alerts.counts_by_status()
        incidents = list(uow.session.scalars(select(Incident)))
    with_message = sum(1 for i in incidents if i.slack_ts)
    return counts, len(incidents), with_message, sum(i.occurrences for i in incidents)


# ---------------------------------------------------------------- --probes: where the time goes in the bot


class Probes:
    """Wall and CPU time of the intake's steps and of store transactions, by thread kind (``--probes``).

    Timing only: wraps `AlertIngest.receive_sns_http` and `bot.alerts.routing._category` (the classification of
    the event's error text), times every store transaction, and on SQLite the ``BEGIN IMMEDIATE`` that waits
    for the write lock. Thread kinds: ``waitress`` (the /sns requests), ``etl`` (the dispatcher).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stats: dict[str, list[float]] = {}  # name → [count, wall, cpu, max wall]
        self._begun: dict[int, tuple[float, float]] = {}

    def record(self, name: str, wall: float, cpu: float) -> None:
        with self._lock:
            entry = self.stats.setdefault(name, [0, 0.0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += wall
            entry[2] += cpu
            entry[3] = max(entry[3], wall)

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.record(name, time.perf_counter() - wall, time.thread_time() - cpu)

        setattr(owner, attribute, timed)

    def install(self, store: Store) -> None:
        self.wrap(ingest_module.AlertIngest, "receive_sns_http", "/sns handler (AlertIngest.receive_sns_http)")
        self.wrap(routing_module, "_category", "classification, inside the handler (routing._category)")

        @event.listens_for(store.engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("BEGIN"):
                self._begun[threading.get_ident()] = (time.perf_counter(), time.thread_time())

        @event.listens_for(store.engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("BEGIN"):
                wall, cpu = self._begun.pop(threading.get_ident())
                self.record(f"BEGIN IMMEDIATE: wait for the SQLite write lock [{_kind()}]", time.perf_counter() - wall,
                            time.thread_time() - cpu)  # fmt: skip
                self._begun[threading.get_ident()] = (time.perf_counter(), time.thread_time())

        commit = store.engine.dialect.do_commit

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                begun = self._begun.pop(threading.get_ident(), None)
                if begun is not None:
                    wall, cpu = begun
                    self.record(f"write lock held, BEGIN → COMMIT [{_kind()}]", time.perf_counter() - wall,
                                time.thread_time() - cpu)  # fmt: skip

        store.engine.dialect.do_commit = do_commit  # type: ignore[method-assign]

    def report(self) -> None:
        print(f"probes ({'count':>5}  {'mean wall':>9}  {'mean CPU':>8}  {'max wall':>9}  {'sum wall':>8})")
        for name, (count, wall, cpu, longest) in sorted(self.stats.items(), key=lambda item: -item[1][1]):
            print(f"  {name:60} {int(count):5d} {wall / count * 1000:8.1f}ms {cpu / count * 1000:7.1f}ms "
                  f"{longest * 1000:8.0f}ms {wall:7.1f}s")  # fmt: skip


def _kind() -> str:
    return threading.current_thread().name.split("-")[0]


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--fingerprints", type=int, default=50)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1.0, help="chat.postMessage per channel per second")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite (a temporary file; default), a sqlite:/// URL, a postgresql:// server URL (a fresh "
        "database is created there and dropped), or postgres (a throwaway local cluster)",
    )
    parser.add_argument("--http-threads", type=int, default=None, help="ETL_DOCTOR_HTTP_THREADS (default: setting)")
    parser.add_argument(
        "--senders-in",
        choices=("process", "thread"),
        default="process",
        help="process: the sender threads run in a child process (default); thread: in the bot's own process",
    )
    parser.add_argument("--probes", action="store_true", help="time the intake's steps and the store's locks")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    args = parser.parse_args()

    prepared = time.perf_counter()
    bodies, signer = _notifications(args.notifications, args.fingerprints)
    print(f"signed {len(bodies):,} notifications of {args.fingerprints} state machines in "
          f"{time.perf_counter() - prepared:.1f} s")  # fmt: skip

    with (
        tempfile.TemporaryDirectory(prefix="etl-doctor-storm-") as tmp,
        _database(args.database, Path(tmp)) as (database_url, database_text),
        SlackEmulator() as emulator,
    ):
        workdir = Path(tmp)
        emulator.enforce_channel_rate(args.rate)
        (workdir / "etl-doctor.yml").write_text(_project(args.fingerprints), encoding="utf-8")
        environ = {
            "SLACK_BOT_TOKEN": emulator.bot_token,
            "SLACK_SIGNING_SECRET": "alert-storm-signing-secret",
            "SLACK_API_URL": emulator.api_url,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": NO_AWS,
            "DATABASE_URL": database_url,
            "ETL_DOCTOR_CONFIG": str(workdir / "etl-doctor.yml"),
            "ETL_DOCTOR_HTTP_HOST": "127.0.0.1",
            "PORT": "0",
            "LOG_LEVEL": "WARNING",
        }
        if args.http_threads:
            environ["ETL_DOCTOR_HTTP_THREADS"] = str(args.http_threads)
        settings = load_settings(environ)
        assert not settings.project.alerts.enrich
        aws = AwsClients.from_settings(settings, credentials=SANDBOX_CREDENTIALS)
        services = Services(settings, aws=aws, sns_certificates=PinnedCertificate(signer.pem))
        probes = Probes() if args.probes else None
        if probes is not None:
            probes.install(services.store)
        print(
            f"bot: waitress {settings.http_threads} threads, store {database_text}, alerts.enrich=false (no AWS "
            f"behind this benchmark); Slack emulator: chat.postMessage {args.rate:g}/s per channel, else 429; "
            f"all alerts to {CHANNEL}; {args.senders} senders in "
            + ("a child process" if args.senders_in == "process" else "the bot's process")
        )
        queue = _QueueDepth()
        waitress_queue = logging.getLogger("waitress.queue")
        waitress_queue.addHandler(queue)
        waitress_queue.propagate = False
        try:
            with running_bot(settings, services, emulator) as bot:
                figures = _run(bot, emulator, bodies, args)
            figures["queue"] = queue
        finally:
            waitress_queue.removeHandler(queue)
            waitress_queue.propagate = True
            services.close()
    if probes is not None:
        probes.report()
    _report(figures, args)


def _run(bot: BotUnderTest, emulator: SlackEmulator, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    store = bot.services.store
    send = _send_from_child if args.senders_in == "process" else _send_all
    sent = send(bot.server.port, bodies, args.senders)
    drained_at, _ = _wait_drained(store, args.drain_timeout)
    _wait_slack_quiet(emulator)
    counts, incidents, with_message, occurrences = _store_figures(store)
    calls = emulator.calls()
    return {
        "sent": sent,
        "drain_s": (drained_at - sent.started) if drained_at is not None else float("nan"),
        "counts": counts,
        "incidents": incidents,
        "with_message": with_message,
        "occurrences": occurrences,
        "calls": Counter(c.method for c in calls),
        "limited": Counter(c.method for c in calls if c.status == 429),
        "limited_during_send": sum(1 for c in calls if c.status == 429 and c.at <= sent.ended),
        "slack": _slack_figures(emulator),
        "rejections": dict(bot.server.alerts.ingest.rejections) if bot.server.alerts else {},
    }


def _report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    sent: SendResults = figures["sent"]
    slack: SlackFigures = figures["slack"]
    wall = sent.ended - sent.started
    ok = sent.statuses.get(200, 0)
    accepted = ok / wall if wall > 0 else float("nan")
    ms = [value * 1000 for value in sent.latencies]
    p50, p95, p99 = (_percentile(ms, pct) for pct in (50, 95, 99))
    non_200 = sum(count for status, count in sent.statuses.items() if status != 200)
    posted = figures["counts"].get("posted", 0)
    lost = args.notifications - posted
    calls: Counter[str] = figures["calls"]
    limited: Counter[str] = figures["limited"]
    slack_calls = sum(calls.values())
    n = args.notifications

    queue: _QueueDepth = figures["queue"]
    print(f"send phase: {n:,} notifications from {args.senders} senders in {wall:.2f} s → {accepted:.1f} accepted/s")
    print(f"/sns latency ms: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {max(ms):.1f}")
    print(
        f"answers: {dict(sorted(sent.statuses.items()))}  non-200: {non_200}"
        + (f"  rejections: {figures['rejections']}" if figures["rejections"] else "")
    )
    print(
        f"waitress: {queue.warnings} 'Task queue depth' warnings, deepest queue {queue.max_depth} requests "
        "waiting for a worker thread"
    )
    print(
        f"Slack calls: {slack_calls} ("
        + ", ".join(
            f"{method} {count} of which 429 {limited.get(method, 0)}" for method, count in sorted(calls.items())
        )
        + f"); 429s while the senders were still sending: {figures['limited_during_send']}"
    )
    print(f"channel {CHANNEL}: {slack.parents} parent messages, {slack.replies} thread replies")
    floor = (slack.parents + slack.replies) / args.rate
    print(
        f"drained (no alert 'received' in the store) {figures['drain_s']:.1f} s after the first send; "
        f"{slack.parents + slack.replies} messages at {args.rate:g}/s take at least {floor:.0f} s"
    )
    print(f"store: alerts by status {figures['counts']}; lost {lost} (sent {n} - posted {posted})")
    print(
        f"store: {figures['incidents']} incidents, {figures['with_message']} with a Slack message, occurrences sum "
        f"{figures['occurrences']} (expected {args.fingerprints} incidents, {n} occurrences)"
    )
    print(
        f"Slack: parents' ×N sum {slack.parent_counts}; parents + repeats announced in replies {slack.announced}; "
        f"execution names shown {slack.named} + '…and N more' {slack.unnamed} = {slack.named + slack.unnamed} "
        f"(expected {n} each)"
    )
    complete = (
        lost == 0
        and figures["incidents"] == args.fingerprints
        and figures["with_message"] == figures["incidents"]
        and figures["occurrences"] == n
        and slack.parent_counts == slack.announced == slack.named + slack.unnamed == n
    )
    print(f"every execution accounted for in the store and in Slack: {complete}")
    verdicts = {
        "p99 /sns < 200 ms while Slack throttles": p99 < 200,
        f"parents <= {args.fingerprints} (one per fingerprint), repeats batched": (
            slack.parents <= args.fingerprints and slack.replies < n - slack.parents
        ),
        "lost 0 and all 200": lost == 0 and non_200 == 0 and complete,
    }
    print("targets: " + "; ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in verdicts.items()))
    print(
        f"accepted={accepted:.1f} lost={lost} p99_ms={p99:.1f} parents={slack.parents} slack_calls={slack_calls} "
        f"drain_s={figures['drain_s']:.1f}"
    )


if __name__ == "__main__":
    main()

"""KPI reconciliation (`/etl kpi`) vs reladiff vs a naive full download, on loopback and on a slow link.

Two PostgreSQL databases (a source and a "warehouse") on a throwaway local cluster, each holding
``policies(policy_id bigint primary key, policy_date date, premium numeric(12,2))`` with ``--rows`` rows
(default 1,000,000) whose dates spread over four years (1,461 daily partitions). In each scenario the target
is altered, then every tool looks for the differences:

- ``scattered``: 80 scattered differences (30 changed premiums, 10 of them compensating pairs in one partition
  so the partition's sum and count stay equal; 25 rows missing from the target; 25 extra rows in it);
- ``changed_1pct``: 1% of the rows get another premium;
- ``partition_missing``: one whole day is missing from the target;
- ``identical``: no differences.

Tools: reladiff (hashdiff with its defaults, comparing ``policy_date`` and ``premium`` as extra columns; installed
into its own virtualenv under ``~/.cache/etl-doctor/reladiff-venv`` and run as a subprocess), a naive baseline
(``SELECT policy_id, policy_date, premium FROM policies`` on both sides, diffed in Python) and etl-doctor
(`KpiEngine.reconcile` over the whole date range: KPI ``sum(premium)`` per day, keys by hash buckets).

Every database connection of every tool goes through a `TcpProxy` (one per database, like two network links),
which counts bytes both ways, request/response turns and statements (Query + Execute messages). Profile
``loopback`` forwards without delay; ``slow`` adds 10 ms per round trip and caps each link at 100 Mbit/s.
A run is correct when it finds exactly the injected differences (sets of keys for reladiff and the naive
download; for etl-doctor's report, counts, sampled keys and the missing partition reported as
``missing_in_target``, whose rows count as found missing keys).

    .venv/bin/python bench/kpi_vs_reladiff.py                     # ~5 min at 1,000,000 rows (2 cores)
    .venv/bin/python bench/kpi_vs_reladiff.py --rows 20000 --profile loopback     # quick check

The PostgreSQL server is a throwaway cluster (initdb/pg_ctl, fsync off, as the tests start it); without
initdb, ``--server URL`` (or ETL_DOCTOR_TEST_POSTGRES_URL) names a server where two databases are created and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bot.sandbox.tcp_proxy import TcpProxy  # noqa: E402
from tests.support import postgres  # noqa: E402

FIRST_DAY = date(2021, 1, 1)
DAYS = 1461  # 2021-01-01 .. 2024-12-31
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
SCENARIOS = ("scattered", "changed_1pct", "partition_missing", "identical")
PROFILES: dict[str, dict[str, Any]] = {
    "loopback": {"latency_ms": 0.0, "bandwidth_bits_per_second": None},
    "slow": {"latency_ms": 10.0, "bandwidth_bits_per_second": 100_000_000},
}
TOOLS = ("naive", "reladiff", "etl-doctor")
RELADIFF_REQUIREMENT = "reladiff[postgresql]==0.6.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "etl-doctor"

# Deterministic rows: the same formulas load both databases and restore altered rows afterwards.
# They are run with parameters, hence %% for SQL's modulo.
DATE_RANDOM = f"DATE '{FIRST_DAY}' + (abs(hashint8extended(g, 11)) %% {DAYS})::int"
DATE_ORDERED = f"DATE '{FIRST_DAY}' + ((g - 1) * {DAYS} / %(rows)s)::int"
PREMIUM = "((abs(hashint8extended(g, 23)) %% 500000) + 1000) / 100.0"

# reladiff runs in its own virtualenv: this script is its whole job (the diff's timing is measured inside it).
RELADIFF_RUNNER = r"""
import json, sys, time
import reladiff
args = json.loads(sys.argv[1])
started = time.perf_counter()
source = reladiff.connect_to_table(args["source"], "policies", "policy_id", extra_columns=("policy_date", "premium"))
target = reladiff.connect_to_table(args["target"], "policies", "policy_id", extra_columns=("policy_date", "premium"))
rows = []
with reladiff.diff_tables(source, target) as diff:
    for sign, row in diff:
        rows.append([sign, str(row[0])])
elapsed = time.perf_counter() - started
source.database.close()
target.database.close()
print(json.dumps({"seconds": elapsed, "rows": rows}))
"""


# ---------------------------------------------------------------- data and scenarios


@dataclass
class Truth:
    """The differences injected into the target."""

    missing: set[int] = field(default_factory=set)
    extra: set[int] = field(default_factory=set)
    changed: set[int] = field(default_factory=set)
    missing_partition: str | None = None

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed)


@dataclass
class Found:
    """What one tool reported: key sets (or counts only), and the missing partition if it names partitions."""

    missing: set[int] | int
    extra: set[int] | int
    changed: set[int] | int
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    samples: dict[str, list[str | None]] = field(default_factory=dict)  # sampled keys by kind (etl-doctor)
    missing_partitions: list[str] | None = None  # partitions reported missing_in_target (etl-doctor)
    differing: list[tuple[str, str]] = field(default_factory=list)  # (partition, status) reported (etl-doctor)


@dataclass
class Run:
    profile: str
    scenario: str
    tool: str
    seconds: float
    statements: int
    round_trips: int
    to_server: int
    to_client: int
    correct: bool
    detail: str

    @property
    def bytes(self) -> int:
        return self.to_server + self.to_client


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def _load(url: str, rows: int, layout: str) -> None:
    day = DATE_RANDOM if layout == "random" else DATE_ORDERED
    with _connect(url) as conn:
        conn.execute(
            "CREATE TABLE policies (policy_id bigint PRIMARY KEY, policy_date date NOT NULL, "
            "premium numeric(12,2) NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO policies SELECT g, {day}, {PREMIUM} FROM generate_series(1, %(rows)s) g",
            {"rows": rows},
        )
        conn.execute("VACUUM ANALYZE policies")


def _restore_rows(conn: psycopg.Connection[Any], keys: list[int], rows: int, layout: str) -> None:
    """Put back the original rows of ``keys`` (deleted or changed), from the loading formulas."""
    if not keys:
        return
    day = DATE_RANDOM if layout == "random" else DATE_ORDERED
    conn.execute("DELETE FROM policies WHERE policy_id = ANY(%(keys)s)", {"keys": keys})
    conn.execute(
        f"INSERT INTO policies SELECT g, {day}, {PREMIUM} FROM unnest(%(keys)s::bigint[]) g",
        {"keys": keys, "rows": rows},
    )


class Target:
    """The target database: applies a scenario's differences and undoes them."""

    def __init__(self, url: str, rows: int, layout: str, seed: int) -> None:
        self.url = url
        self.rows = rows
        self.layout = layout
        self.random = random.Random(seed)

    def apply(self, scenario: str) -> Truth:
        truth = Truth()
        with _connect(self.url) as conn:
            if scenario == "scattered":
                self._scattered(conn, truth)
            elif scenario == "changed_1pct":
                keys = self.random.sample(range(1, self.rows + 1), max(self.rows // 100, 1))
                self._change(conn, keys)
                truth.changed.update(keys)
            elif scenario == "partition_missing":
                day = FIRST_DAY + timedelta(days=self.random.randrange(DAYS // 4, 3 * DAYS // 4))
                deleted = conn.execute(
                    "DELETE FROM policies WHERE policy_date = %(day)s RETURNING policy_id", {"day": day}
                ).fetchall()
                truth.missing.update(int(row[0]) for row in deleted)
                truth.missing_partition = day.isoformat()
            conn.execute("VACUUM ANALYZE policies")
        return truth

    def _scattered(self, conn: psycopg.Connection[Any], truth: Truth) -> None:
        keys = self.random.sample(range(1, self.rows + 1), 45)
        changed, missing = keys[:20], keys[20:45]
        self._change(conn, changed)
        truth.changed.update(changed)
        for _ in range(5):  # compensating pairs: the partition's count and sum stay equal, its rows do not
            first = self.random.randrange(1, self.rows + 1)
            if first in keys or first in truth.changed:
                continue
            day, premium = conn.execute(
                "SELECT policy_date, premium FROM policies WHERE policy_id = %(k)s", {"k": first}
            ).fetchone() or (None, None)
            other = conn.execute(
                "SELECT policy_id FROM policies WHERE policy_date = %(day)s AND policy_id <> ALL(%(taken)s) "
                "ORDER BY policy_id LIMIT 1",
                {"day": day, "taken": [*keys, *truth.changed, first]},
            ).fetchone()
            if other is None or premium is None or premium < Decimal("1.00"):
                continue
            delta = Decimal(self.random.randrange(1, 100)) / 100
            conn.execute(
                "UPDATE policies SET premium = premium - %(d)s WHERE policy_id = %(k)s", {"d": delta, "k": first}
            )
            conn.execute(
                "UPDATE policies SET premium = premium + %(d)s WHERE policy_id = %(k)s", {"d": delta, "k": other[0]}
            )
            truth.changed.update((first, int(other[0])))
        conn.execute("DELETE FROM policies WHERE policy_id = ANY(%(keys)s)", {"keys": missing})
        truth.missing.update(missing)
        extra = list(range(self.rows + 1, self.rows + 1 + (80 - len(truth.changed) - len(missing))))
        conn.execute(
            "INSERT INTO policies SELECT g, %(first)s::date + (g %% %(days)s)::int, (g %% 100000) / 100.0 "
            "FROM unnest(%(keys)s::bigint[]) g",
            {"first": FIRST_DAY, "days": DAYS, "keys": extra},
        )
        truth.extra.update(extra)

    def _change(self, conn: psycopg.Connection[Any], keys: list[int]) -> None:
        conn.execute(
            "UPDATE policies SET premium = premium + ((abs(hashint8extended(policy_id, 31)) %% 9999) + 1) / 100.0 "
            "WHERE policy_id = ANY(%(keys)s)",
            {"keys": keys},
        )

    def undo(self, truth: Truth) -> None:
        with _connect(self.url) as conn:
            if truth.extra:
                conn.execute("DELETE FROM policies WHERE policy_id = ANY(%(keys)s)", {"keys": sorted(truth.extra)})
            _restore_rows(conn, sorted(truth.missing | truth.changed), self.rows, self.layout)
            conn.execute("VACUUM ANALYZE policies")


def _warm(urls: list[str]) -> None:
    """Read both tables once so every tool finds them in the cache."""
    for url in urls:
        with _connect(url) as conn:
            conn.execute("SELECT count(*), sum(premium), max(policy_date) FROM policies").fetchall()


# ---------------------------------------------------------------- the tools


def _naive(source_url: str, target_url: str) -> Found:
    tables: dict[str, dict[int, tuple[Any, ...]]] = {}

    def download(side: str, url: str) -> None:
        with _connect(url) as conn:
            rows = conn.execute("SELECT policy_id, policy_date, premium FROM policies").fetchall()
        tables[side] = {row[0]: row[1:] for row in rows}

    threads = [threading.Thread(target=download, args=item) for item in (("s", source_url), ("t", target_url))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    source, target = tables["s"], tables["t"]
    return Found(
        missing=set(source) - set(target),
        extra=set(target) - set(source),
        changed={key for key, row in source.items() if key in target and target[key] != row},
    )


def _reladiff_python(venv: Path) -> Path:
    """The reladiff virtualenv's Python, creating the virtualenv on first use."""
    python = venv / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import reladiff"], capture_output=True, check=False)
        if check.returncode == 0:
            return python
    print(f"installing {RELADIFF_REQUIREMENT} into {venv} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", RELADIFF_REQUIREMENT], check=True)
    return python


def _reladiff(python: Path, source_url: str, target_url: str) -> tuple[Found, float]:
    result = subprocess.run(
        [str(python), "-c", RELADIFF_RUNNER, json.dumps({"source": source_url, "target": target_url})],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"reladiff failed: {result.stderr.strip()[-2000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    removed = {int(key) for sign, key in answer["rows"] if sign == "-"}
    added = {int(key) for sign, key in answer["rows"] if sign == "+"}
    found = Found(missing=removed - added, extra=added - removed, changed=removed & added)
    return found, float(answer["seconds"])


def _engine_available() -> str | None:
    """None if etl-doctor's KPI engine can run, else why not."""
    try:
        from bot.kpi.engine import KpiEngine  # noqa: F401
    except Exception as exc:  # the engine is optional while it is being written
        return f"bot.kpi.engine does not import: {exc!r}"
    return None


def _project(source_url: str, target_url: str) -> Any:
    from bot.config import ProjectConfig

    def dsn(url: str) -> str:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)

    return ProjectConfig.model_validate(
        {
            "connections": {"source": {"url": dsn(source_url)}, "warehouse": {"url": dsn(target_url)}},
            "kpis": {
                "premium": {
                    "description": "Sum of premiums by policy date",
                    "aggregate": "sum",
                    "column": "premium",
                    "keys": ["policy_id"],
                    "partition": {"column": "policy_date", "grain": "day"},
                    "types": {"policy_id": "integer"},
                    "scale": 2,
                    "layers": [
                        {"name": "source_policies", "connection": "source", "table": "policies"},
                        {"name": "dw_policies", "connection": "warehouse", "table": "policies"},
                    ],
                }
            },
        }
    )


class StatementTrace:
    """Per statement etl-doctor runs through SQLAlchemy: time, rows, and the bytes its proxy carried (``--trace``).

    Each side has its own proxy and runs one statement at a time, so the proxy's counters between
    ``before_cursor_execute`` and ``after_cursor_execute`` are that statement's traffic (psycopg's client-side
    cursor has received every row when ``execute`` returns). Pool pings and session set-up are not traced.
    """

    def __init__(self, proxies: dict[int, TcpProxy]) -> None:
        self.proxies = proxies
        self.lines: list[str] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[StatementTrace]:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        try:
            yield self
        finally:
            event.remove(Engine, "before_cursor_execute", self._before)
            event.remove(Engine, "after_cursor_execute", self._after)

    def _proxy(self, conn: Any) -> TcpProxy | None:
        return self.proxies.get(conn.engine.url.port)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        proxy = self._proxy(conn)
        sent, received = (proxy.bytes_to_server, proxy.bytes_to_client) if proxy else (0, 0)
        conn.info["bench_trace"] = (time.perf_counter(), sent, received)

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        started, sent, received = conn.info.pop("bench_trace", (time.perf_counter(), 0, 0))
        proxy = self._proxy(conn)
        if proxy is not None:
            sent, received = proxy.bytes_to_server - sent, proxy.bytes_to_client - received
        side = conn.engine.url.database
        shown = " ".join(statement.split())
        shown = shown if len(shown) <= 150 else shown[:110] + " … " + shown[-37:]
        self.lines.append(
            f"{time.perf_counter() - started:7.2f} s rows {cursor.rowcount:>8,} →server {sent:>9,} "
            f"→client {received:>11,}  [{side[-4:]}] {shown}"
        )


def _etl_doctor(source_url: str, target_url: str, trace: StatementTrace | None = None) -> Found:
    from bot.kpi.engine import KpiEngine

    engine = KpiEngine(_project(source_url, target_url))
    try:
        with trace.installed() if trace else contextlib.nullcontext():
            report = engine.reconcile("premium", f"{FIRST_DAY}..{LAST_DAY}")
    finally:
        engine.close()
    whole_missing = [row for row in report.partitions if row.status == "missing_in_target"]
    whole_extra = [row for row in report.partitions if row.status == "missing_in_source"]
    keys = report.keys
    found = Found(
        missing=keys.missing.count + sum(row.source_rows for row in whole_missing),
        extra=keys.extra.count + sum(row.target_rows for row in whole_extra),
        changed=keys.changed.count,
        detail=(
            f"queries_run={report.queries_run} bytes_fetched={report.bytes_fetched:,} "
            f"rows_fetched={getattr(report, 'rows_fetched', 0):,} partitions_differing={len(report.partitions)} "
            f"missing_in_target={[row.partition for row in whole_missing][:3]} complete={keys.complete}"
        ),
    )
    if not keys.complete:
        found.problems.append(f"key search incomplete: {keys.note}")
    found.samples = {
        "missing": [s.key.get("policy_id") for s in keys.missing.sample],
        "extra": [s.key.get("policy_id") for s in keys.extra.sample],
        "changed": [s.key.get("policy_id") for s in keys.changed.sample],
    }
    found.missing_partitions = [row.partition for row in whole_missing]
    found.differing = [(row.partition, row.status) for row in report.partitions]
    return found


def _judge(tool: str, found: Found, truth: Truth) -> tuple[bool, str]:
    problems = list(found.problems)
    for kind in ("missing", "extra", "changed"):
        got, want = getattr(found, kind), getattr(truth, kind)
        if isinstance(got, set):
            if got != want:
                problems.append(f"{kind}: {len(got - want)} wrong, {len(want - got)} not found")
        elif got != len(want):
            problems.append(f"{kind}: {got} reported, {len(want)} injected")
    for kind, keys in found.samples.items():
        stray = [k for k in keys if k is None or int(k) not in getattr(truth, kind)]
        if stray:
            problems.append(f"sampled {kind} keys not injected: {stray[:3]}")
    partitions = found.missing_partitions
    if partitions is not None and partitions != ([truth.missing_partition] if truth.missing_partition else []):
        problems.append(f"missing partitions {partitions[:3]} reported, {truth.missing_partition} injected")
    if not truth.total and found.differing:
        problems.append(f"partitions reported differing: {found.differing[:3]}")
    return not problems, "; ".join(problems)


# ---------------------------------------------------------------- running


@contextlib.contextmanager
def _server(option: str | None) -> Iterator[tuple[str, str]]:
    """A PostgreSQL server's maintenance URL and a description: a throwaway cluster, else ``--server``."""
    url = option or os.environ.get("ETL_DOCTOR_TEST_POSTGRES_URL")
    if option is None:
        bin_dir = postgres.find_pg_bin()
        if bin_dir is not None:
            server = postgres.ThrowawayPostgres(bin_dir)
            try:
                server.start()
                yield server.url, f"throwaway cluster from {bin_dir} (fsync=off)"
            finally:
                server.stop()
            return
        if url is None:
            raise SystemExit("no initdb/pg_ctl: install PostgreSQL, or name a server with --server URL")
    assert url is not None
    problem = postgres.check_server(url)
    if problem:
        raise SystemExit(f"PostgreSQL does not answer: {problem}")
    yield url, f"server {url.split('@')[-1]}"


def _proxied(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    return f"postgresql://{user}@127.0.0.1:{proxy.port}{parts.path}"


def _measure(
    profile: str, scenario: str, tool: str, proxies: list[TcpProxy], job: Callable[[], Any], truth: Truth
) -> Run:
    for proxy in proxies:
        proxy.reset_counters()
    started = time.perf_counter()
    outcome = job()
    seconds = time.perf_counter() - started
    if isinstance(outcome, tuple):  # reladiff times itself (without its interpreter's start-up)
        outcome, seconds = outcome
    correct, why = _judge(tool, outcome, truth)
    return Run(
        profile,
        scenario,
        tool,
        seconds,
        sum(p.statements for p in proxies),
        sum(p.round_trips for p in proxies),
        sum(p.bytes_to_server for p in proxies),
        sum(p.bytes_to_client for p in proxies),
        correct,
        "; ".join(part for part in (why, outcome.detail) if part),
    )


def _row(run: Run) -> str:
    return (
        f"{run.profile:8} {run.scenario:17} {run.tool:10} {run.seconds:8.2f} s {run.statements:7,} "
        f"{run.round_trips:7,} {run.to_server:13,} {run.to_client:14,} {run.bytes:14,}  "
        f"{'yes' if run.correct else 'NO'}"
    )


HEADER = (
    f"{'profile':8} {'scenario':17} {'tool':10} {'time':>10} {'stmts':>7} {'turns':>7} {'bytes→server':>13} "
    f"{'bytes→client':>14} {'bytes total':>14}  correct"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--profile", choices=("loopback", "slow", "both"), default="both")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {TOOLS}")
    parser.add_argument(
        "--dates",
        choices=("random", "ordered"),
        default="random",
        help="random: a key's date is unrelated to the key (default); ordered: keys grow with dates",
    )
    parser.add_argument("--server", default=None, help="a PostgreSQL server URL instead of a throwaway cluster")
    parser.add_argument("--reladiff-venv", type=Path, default=CACHE / "reladiff-venv")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--trace", action="store_true", help="print etl-doctor's statements: time, rows, bytes")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    tools = [t for t in args.tools.split(",") if t]
    profiles = ["loopback", "slow"] if args.profile == "both" else [args.profile]
    unknown = (set(scenarios) - set(SCENARIOS)) | (set(tools) - set(TOOLS))
    if unknown:
        raise SystemExit(f"unknown scenario/tool: {', '.join(sorted(unknown))}")

    reladiff_python = _reladiff_python(args.reladiff_venv) if "reladiff" in tools else None
    engine_problem = _engine_available() if "etl-doctor" in tools else None
    if engine_problem:
        print(f"etl-doctor: skipped, {engine_problem}")
        tools.remove("etl-doctor")

    runs: list[Run] = []
    with _server(args.server) as (server_url, server_text):
        databases = [postgres.create_database(server_url) for _ in range(2)]
        try:
            loaded = time.perf_counter()
            threads = [threading.Thread(target=_load, args=(url, args.rows, args.dates)) for url in databases]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(f"PostgreSQL: {server_text}; loaded 2 × {args.rows:,} rows over {DAYS:,} days ({args.dates} "
                  f"dates) in {time.perf_counter() - loaded:.1f} s")  # fmt: skip
            target = Target(databases[1], args.rows, args.dates, args.seed)
            runs = _run_all(databases, target, profiles, scenarios, tools, reladiff_python, args.trace)
        finally:
            for url in databases:
                postgres.drop_database(server_url, url)
    _report(runs, profiles, scenarios, tools, engine_problem)


def _run_all(
    databases: list[str],
    target: Target,
    profiles: list[str],
    scenarios: list[str],
    tools: list[str],
    reladiff_python: Path | None,
    show_trace: bool,
) -> list[Run]:
    runs: list[Run] = []
    trace: StatementTrace | None = None
    print(HEADER, flush=True)
    for scenario in scenarios:
        truth = target.apply(scenario)
        try:
            _warm(databases)
            for profile in profiles:
                shape = PROFILES[profile]
                with _proxy_pair(databases, shape) as (proxies, source_url, target_url):
                    for tool in tools:
                        job: Callable[[], Any]
                        if tool == "naive":
                            job = functools.partial(_naive, source_url, target_url)
                        elif tool == "reladiff":
                            assert reladiff_python is not None
                            job = functools.partial(_reladiff, reladiff_python, source_url, target_url)
                        else:
                            trace = StatementTrace({p.port: p for p in proxies}) if show_trace else None
                            job = functools.partial(_etl_doctor, source_url, target_url, trace)
                        run = _measure(profile, scenario, tool, proxies, job, truth)
                        runs.append(run)
                        print(_row(run), flush=True)
                        if run.detail:
                            print(f"{'':28}{run.detail}", flush=True)
                        for line in trace.lines if tool == "etl-doctor" and trace else ():
                            print(f"{'':28}{line}", flush=True)
        finally:
            target.undo(truth)
    return runs


@contextlib.contextmanager
def _proxy_pair(databases: list[str], shape: dict[str, Any]) -> Iterator[tuple[list[TcpProxy], str, str]]:
    """One proxy per database (two links), with the profile's latency and bandwidth."""
    parts = urlsplit(databases[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    with TcpProxy(host, port, **shape) as first, TcpProxy(host, port, **shape) as second:
        yield [first, second], _proxied(databases[0], first), _proxied(databases[1], second)


def _sum(runs: list[Run], profile: str, tool: str, attribute: str) -> float:
    return sum(getattr(r, attribute) for r in runs if r.profile == profile and r.tool == tool)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _report(
    runs: list[Run], profiles: list[str], scenarios: list[str], tools: list[str], engine_problem: str | None
) -> None:
    print()
    for profile in profiles:
        totals = ", ".join(
            f"{tool} {_sum(runs, profile, tool, 'seconds'):.1f} s / {int(_sum(runs, profile, tool, 'bytes')):,} B / "
            f"{int(_sum(runs, profile, tool, 'statements')):,} statements"
            for tool in tools
        )
        print(f"{profile}: totals over {len(scenarios)} scenarios: {totals}")
        by = {(r.scenario, r.tool): r for r in runs if r.profile == profile}
        for scenario in scenarios:
            ours, theirs, naive = (
                by.get((scenario, "etl-doctor")),
                by.get((scenario, "reladiff")),
                by.get((scenario, "naive")),
            )
            parts = []
            if ours and theirs:
                parts.append(f"reladiff/etl-doctor time {_ratio(theirs.seconds, ours.seconds):.1f}×, "
                             f"bytes {_ratio(theirs.bytes, ours.bytes):.1f}×")  # fmt: skip
            if ours and naive:
                parts.append(f"etl-doctor/naive bytes {_ratio(ours.bytes, naive.bytes):.3f}")
            if theirs and naive:
                parts.append(f"reladiff/naive bytes {_ratio(theirs.bytes, naive.bytes):.2f}")
            print(f"  {scenario:17} " + "; ".join(parts))
    if engine_problem:
        print(f"etl-doctor was not run: {engine_problem}")

    slow = "slow" if "slow" in profiles else profiles[0]
    nan = float("nan")
    both = "reladiff" in tools and "etl-doctor" in tools
    speedup = (
        _ratio(_sum(runs, "slow", "reladiff", "seconds"), _sum(runs, "slow", "etl-doctor", "seconds"))
        if both and "slow" in profiles
        else nan
    )
    bytes_ratio = nan
    if both:
        bytes_ratio = _ratio(_sum(runs, slow, "reladiff", "bytes"), _sum(runs, slow, "etl-doctor", "bytes"))
    ours = {r.scenario: r for r in runs if r.profile == slow and r.tool == "etl-doctor"}
    naive = {r.scenario: r for r in runs if r.profile == slow and r.tool == "naive"}
    vs_naive = [_ratio(ours[s].bytes, naive[s].bytes) for s in ours if s in naive]
    bytes_vs_naive = max(vs_naive) if vs_naive else float("nan")
    all_correct = bool(runs) and all(r.correct for r in runs) and "etl-doctor" in tools
    ours_all = [r for r in runs if r.tool == "etl-doctor"]
    targets = {
        "≥ 8× faster than reladiff on the slow link": speedup >= 8,
        "≥ 10× fewer bytes than reladiff": bytes_ratio >= 10,
        "never more bytes than the naive download": bool(vs_naive) and bytes_vs_naive <= 1,
        "every difference found, missing partition reported": bool(ours_all) and all(r.correct for r in ours_all),
    }
    print("targets: " + "; ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in targets.items()))
    print(
        f"all_correct={'true' if all_correct else 'false'} speedup_vs_reladiff_slow={speedup:.1f} "
        f"bytes_ratio_vs_reladiff={bytes_ratio:.1f} bytes_vs_naive={bytes_vs_naive:.2f}"
    )


if __name__ == "__main__":
    main()

"""KpiEngine behaviours beyond the difference matrix: default partition, chart window, row cap, lineage, hints."""

from __future__ import annotations

import socket
import sqlite3
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import ProjectConfig
from bot.kpi.databases import Databases, QueryStats
from bot.kpi.definitions import ConnectionConfig
from bot.kpi.engine import KpiEngine
from bot.kpi.model import KpiError

DAYS = 40
FIRST = date(2025, 1, 1)


def _database(path: Path, rows: list[tuple[Any, ...]], *, table: str = "policies") -> str:
    connection = sqlite3.connect(path)
    connection.execute(f"CREATE TABLE {table} (policy_id INTEGER, policy_date TEXT, premium REAL, updated_at TEXT)")
    connection.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()
    return f"sqlite:///{path}"


def _rows(per_day: int = 20) -> list[tuple[Any, ...]]:
    rows = []
    for day in range(DAYS):
        for n in range(per_day):
            key = day * per_day + n
            when = FIRST + timedelta(days=day)
            rows.append((key, when.isoformat(), round(10 + key * 0.37, 2), f"{when.isoformat()} 0{n % 10}:00:00"))
    return rows


def _project(urls: dict[str, str], *, layers: list[dict[str, Any]] | None = None, **kpi: Any) -> ProjectConfig:
    connections = {
        name: {"url": url, **({"max_rows": kpi.pop("max_rows")} if "max_rows" in kpi else {})}
        for name, url in urls.items()
    }
    definition = {
        "aggregate": "sum",
        "column": "premium",
        "keys": ["policy_id"],
        "types": {"policy_id": "integer"},
        "scale": 2,
        "partition": {"column": "policy_date"},
        "layers": layers
        or [
            {"name": "source", "connection": "src", "table": "policies"},
            {"name": "target", "connection": "dst", "table": "policies"},
        ],
        **kpi,
    }
    return ProjectConfig.model_validate({"connections": connections, "kpis": {"premium": definition}})


def _engine(project: ProjectConfig, now: datetime = datetime(2025, 2, 20, 9, tzinfo=UTC)) -> KpiEngine:
    return KpiEngine(project, clock=lambda: now)


def test_default_is_the_latest_complete_partition_and_the_chart_shows_the_last_n(tmp_path: Path) -> None:
    rows = _rows()
    target = [r for r in rows if r[0] != 790]  # a key of the last day, 2025-02-09
    urls = {"src": _database(tmp_path / "a.db", rows), "dst": _database(tmp_path / "b.db", target)}
    engine = _engine(_project(urls, chart_partitions=10))

    report = engine.reconcile("premium")

    assert report.range.label == "2025-02-09"  # the clock says 2025-02-20: the source's last complete day
    assert [row.partition for row in report.partitions] == ["2025-02-09"]
    assert report.keys is not None and [s.key for s in report.keys.missing.sample] == [{"policy_id": "790"}]
    assert [row.partition for row in report.series] == [f"2025-01-{d:02d}" for d in range(31, 32)] + [
        f"2025-02-{d:02d}" for d in range(1, 10)
    ]
    assert [row.status for row in report.series].count("differs") == 1
    assert report.partitions_compared == 1  # the verdict is about the asked range only


def test_no_complete_partition_is_a_clear_answer(tmp_path: Path) -> None:
    urls = {"src": _database(tmp_path / "a.db", _rows()), "dst": _database(tmp_path / "b.db", _rows())}
    engine = _engine(_project(urls), now=datetime(2024, 6, 1, tzinfo=UTC))
    with pytest.raises(KpiError, match="source has no complete day partition before 2024-06-01"):
        engine.reconcile("premium")


def test_the_row_cap_stops_the_key_search_and_says_so(tmp_path: Path) -> None:
    rows = _rows(per_day=200)
    target = [(k, d, p + 1, u) for k, d, p, u in rows]  # every row changed
    urls = {"src": _database(tmp_path / "a.db", rows), "dst": _database(tmp_path / "b.db", target)}
    report = _engine(_project(urls, max_rows=500)).reconcile("premium", "2025-01-01..2025-01-10")

    assert report.keys is not None and not report.keys.complete
    assert "max_rows" in (report.keys.note or "")
    assert len(report.partitions) == 10  # the partitions are still all there


def test_lineage_names_the_first_divergent_layer_and_survives_a_broken_one(tmp_path: Path) -> None:
    rows = _rows()
    lost = {r[0] for r in rows if r[1] == "2025-01-15"}
    ods = [r for r in rows if r[0] not in lost or r[0] % 4]  # a quarter of 2025-01-15 lost in the ODS
    urls = {
        "src": _database(tmp_path / "src.db", rows),
        "lake": _database(tmp_path / "lake.db", rows, table="raw_policies"),
        "dw": _database(tmp_path / "dw.db", ods, table="ods_policies"),
    }
    with sqlite3.connect(tmp_path / "dw.db") as connection:
        connection.execute("CREATE TABLE fact_policies AS SELECT * FROM ods_policies")
    layers = [
        {"name": "oracle.policies", "connection": "src", "table": "policies"},
        {"name": "s3_raw.policies", "connection": "lake", "table": "raw_policies"},
        {"name": "staging", "connection": "dw", "table": "no_such_table"},
        {"name": "ods_policies", "connection": "dw", "table": "ods_policies"},
        {"name": "fact_policies", "connection": "dw", "table": "fact_policies"},
    ]
    report = _engine(_project(urls, layers=layers)).reconcile("premium", "2025-01-01..2025-01-31")

    assert [row.partition for row in report.partitions] == ["2025-01-15"]
    assert report.first_divergence is not None
    assert (report.first_divergence.upstream, report.first_divergence.downstream) == ("s3_raw.policies", "ods_policies")
    assert report.first_divergence.rows_lost == 5
    assert report.first_divergence.text == "s3_raw.policies → ods_policies: 5 rows lost"
    assert [layer.rows for layer in report.layers] == [20, 20, 0, 15, 15]
    assert "no such table" in (report.layers[2].error or "")
    assert any("staging" in warning for warning in report.warnings)


def test_cdc_lag_hint_compares_the_latest_change_per_side(tmp_path: Path) -> None:
    rows = _rows()
    behind = [(k, d, p, u) for k, d, p, u in rows if not (d == "2025-01-20" and u.endswith("09:00:00"))]
    urls = {"src": _database(tmp_path / "a.db", rows), "dst": _database(tmp_path / "b.db", behind)}
    report = _engine(
        _project(urls, change_column="updated_at", types={"policy_id": "integer", "updated_at": "timestamp"})
    ).reconcile("premium", "2025-01-20")

    (hint,) = [h for h in report.hints if h.kind == "cdc_lag"]
    assert "(2025-01-20 08:00:00) is 1h00m behind the source's (2025-01-20 09:00:00)" in hint.text


def test_checks_count_violations_against_their_threshold(tmp_path: Path) -> None:
    rows = [*_rows(), (9001, "2025-01-03", -5.0, None), (9002, "2025-01-04", -1.0, None)]
    url = _database(tmp_path / "a.db", rows)
    project = ProjectConfig.model_validate(
        {
            "connections": {"src": {"url": url}},
            "checks": {
                "no_negative_premiums": {"connection": "src", "sql": "SELECT COUNT(*) FROM policies WHERE premium < 0"},
                "few_negative_premiums": {
                    "connection": "src",
                    "sql": "SELECT COUNT(*) FROM policies WHERE premium < 0",
                    "threshold": 2,
                },
            },
        }
    )
    engine = KpiEngine(project)
    failed, passed = engine.check("no_negative_premiums"), engine.check("few_negative_premiums")
    assert (failed.violations, failed.passed) == (2, False)
    assert (passed.violations, passed.passed) == (2, True)
    with pytest.raises(
        KpiError, match="check `nope` is not defined; known: few_negative_premiums, no_negative_premiums"
    ):
        engine.check("nope")


def test_connections_are_read_only(tmp_path: Path) -> None:
    url = _database(tmp_path / "a.db", _rows())
    databases = Databases({"src": ConnectionConfig(url=url)})
    with pytest.raises(KpiError, match="connection `src`: attempt to write a readonly database"):
        databases.fetch("src", "DELETE FROM policies", stats=QueryStats())
    with sqlite3.connect(tmp_path / "a.db") as connection:
        assert connection.execute("SELECT COUNT(*) FROM policies").fetchone() == (DAYS * 20,)


@pytest.mark.postgres
def test_postgresql_sessions_are_read_only_with_a_statement_timeout(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    databases = Databases({"pg": ConnectionConfig(url=url, statement_timeout_seconds=1)})
    with pytest.raises(KpiError, match="cannot execute CREATE TABLE in a read-only transaction"):
        databases.fetch("pg", "CREATE TABLE sneaky (x int)", stats=QueryStats())
    with pytest.raises(KpiError, match="canceling statement due to statement timeout"):
        databases.fetch("pg", "SELECT pg_sleep(5)", stats=QueryStats())
    databases.dispose()


def test_mariadb_sessions_are_read_only_with_a_statement_timeout(mariadb_url: str) -> None:
    databases = Databases({"my": ConnectionConfig(url=mariadb_url, statement_timeout_seconds=1)})
    with pytest.raises(KpiError, match="READ ONLY"):
        databases.fetch("my", "CREATE TABLE sneaky (x int)", stats=QueryStats())
    with pytest.raises(KpiError, match="max_statement_time"):
        databases.fetch("my", "SELECT SLEEP(5) FROM (SELECT 1 UNION SELECT 2) t", stats=QueryStats())
    databases.dispose()


@pytest.mark.parametrize(
    "scheme",
    ["postgresql+psycopg://postgres@", "mysql+pymysql://root@", "redshift+redshift_connector://postgres:x@"],
)
def test_a_database_that_never_answers_fails_the_run_at_the_connect_timeout(scheme: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"{scheme}127.0.0.1:{silent.getsockname()[1]}/db"
        config = ConnectionConfig(url=url, connect_timeout_seconds=1, statement_timeout_seconds=1)
        databases = Databases({"slow": config})
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                databases.fetch("slow", "SELECT 1", stats=QueryStats())
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(30)  # far above the 1 s timeout: a driver that ignored it would still be waiting
        assert not worker.is_alive(), "the connection attempt ignored connect_timeout_seconds"
        assert len(outcome) == 1 and isinstance(outcome[0], KpiError)
        assert str(outcome[0]).startswith("connection `slow`: ")


def test_row_checksums_find_changes_that_keep_the_kpi_and_can_be_turned_off(tmp_path: Path) -> None:
    rows = _rows()
    swapped = {0: rows[1][2], 1: rows[0][2]}  # two premiums of 2025-01-01 swapped: same count, same sum
    target = [(k, d, swapped.get(k, p), u) for k, d, p, u in rows]
    urls = {"src": _database(tmp_path / "a.db", rows), "dst": _database(tmp_path / "b.db", target)}

    checked = _engine(_project(urls)).reconcile("premium", "2025-01-01..2025-01-05")
    assert [(row.partition, row.status) for row in checked.partitions] == [("2025-01-01", "rows_differ")]
    assert checked.within_tolerance and checked.keys is not None
    assert sorted(s.key["policy_id"] for s in checked.keys.changed.sample) == ["0", "1"]

    unchecked = _engine(_project(urls, row_checksums=False)).reconcile("premium", "2025-01-01..2025-01-05")
    assert unchecked.partitions == [] and unchecked.keys is not None and unchecked.keys.total == 0

"""KPI reconciliation on real databases: injected differences with exact expected answers, on every engine pair.

Pairs (source ↔ target): SQLite↔SQLite, SQLite↔PostgreSQL, MariaDB↔PostgreSQL, and PostgreSQL↔Redshift-path,
where the Redshift side is a PostgreSQL database reached through redshift-connector, sqlalchemy-redshift and the
loopback proxy (bot/sandbox/tcp_proxy.py). Each test gets fresh databases; the table and its rows come from one
Python description (tests/support/kpi_databases.py), the target's rows are the source's with the differences
injected, and every expected count, key and value below follows from those injections.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.config import ProjectConfig
from bot.kpi.engine import KpiEngine
from bot.kpi.model import KeySet, KpiError, KpiReport
from tests.support.kpi_databases import (
    Add,
    Column,
    Delete,
    Duplicate,
    Injection,
    KpiDatabase,
    Map,
    Row,
    TableSpec,
    Update,
    inject,
    mariadb_database,
    postgres_database,
    sqlite_database,
)

RANGE = "2025-01-01..2025-01-31"
START = date(2025, 1, 1)
DAYS = 31
PER_DAY = 10
CENT = Decimal("0.01")
SAMPLE_AT_LEAST = 5  # a key sample holds every key when there are at most this many (else a subset of them)

# ---------------------------------------------------------------- engine pairs


@dataclass
class Pair:
    name: str
    source: KpiDatabase
    target: KpiDatabase
    proxy: Any | None = None  # the Redshift path's loopback proxy (counts the statements that went through it)


PAIRS = [
    pytest.param(("sqlite", "sqlite"), id="sqlite-sqlite"),
    pytest.param(("sqlite", "postgresql"), id="sqlite-postgresql", marks=pytest.mark.postgres),
    pytest.param(("mariadb", "postgresql"), id="mariadb-postgresql", marks=pytest.mark.postgres),
    pytest.param(("postgresql", "redshift"), id="postgresql-redshift", marks=pytest.mark.postgres),
]


@pytest.fixture(params=PAIRS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    """Fresh, empty source and target databases of one engine pair."""

    def open_database(kind: str, role: str) -> KpiDatabase:
        if kind == "sqlite":
            return sqlite_database(tmp_path / f"{role}.db")
        if kind == "postgresql":
            return postgres_database(request.getfixturevalue("postgres_url"))
        if kind == "mariadb":
            return mariadb_database(request.getfixturevalue("mariadb_url"))
        database: KpiDatabase = request.getfixturevalue("redshift_database")
        return database

    source_kind, target_kind = request.param
    made = Pair(
        f"{source_kind}-{target_kind}", open_database(source_kind, "source"), open_database(target_kind, "target")
    )
    if target_kind == "redshift":
        made.proxy = request.getfixturevalue("redshift_proxy")
    try:
        yield made
    finally:
        made.source.dispose()
        made.target.dispose()


def kpi_project(
    pair: Pair,
    *,
    keys: Sequence[str] = ("policy_id",),
    types: dict[str, str] | None = None,
    compare: Sequence[str] = (),
    table: str = "policies",
) -> ProjectConfig:
    kpi = {
        "description": "Written premium",
        "aggregate": "sum",
        "column": "premium",
        "keys": list(keys),
        "partition": {"column": "policy_date", "grain": "day"},
        "types": {"policy_id": "integer"} if types is None else types,
        "scale": 2,
        "compare": list(compare),
        "layers": [
            {"name": "source", "connection": "src", "table": table},
            {"name": "target", "connection": "dst", "table": table},
        ],
    }
    return ProjectConfig.model_validate(
        {"connections": {"src": {"url": pair.source.url}, "dst": {"url": pair.target.url}}, "kpis": {"premium": kpi}}
    )


@dataclass
class Loaded:
    """Both sides written; ``reconcile`` runs the engine (closed at teardown) over the January range."""

    pair: Pair
    spec: TableSpec
    source_rows: list[Row]
    target_rows: list[Row]
    engine: KpiEngine

    def reconcile(self, spec: str = RANGE) -> KpiReport:
        before = self.pair.proxy.statements if self.pair.proxy is not None else 0
        report = self.engine.reconcile("premium", spec)
        if self.pair.proxy is not None:  # the target really was read through redshift-connector and the proxy
            assert self.pair.proxy.statements > before
        return report


@pytest.fixture
def load(pair: Pair) -> Iterator[Callable[..., Loaded]]:
    """load(spec, source_rows, injections, target_spec=None, **kpi) -> Loaded (tables created on both sides)."""
    engines: list[KpiEngine] = []

    def build(
        spec: TableSpec,
        source_rows: Sequence[Row],
        injections: Sequence[Injection] = (),
        *,
        target_spec: TableSpec | None = None,
        target_rows: Sequence[Row] | None = None,
        **kpi: Any,
    ) -> Loaded:
        source = [dict(r) for r in source_rows]
        target = inject(spec, source, injections) if target_rows is None else [dict(r) for r in target_rows]
        pair.source.create(spec, source)
        pair.target.create(target_spec or spec, target)
        engine = KpiEngine(kpi_project(pair, keys=spec.keys, **kpi))
        engines.append(engine)
        return Loaded(pair, spec, source, target, engine)

    try:
        yield build
    finally:
        for engine in engines:
            engine.close()


# ---------------------------------------------------------------- data


def day_of(i: int) -> date:
    return START + timedelta(days=(i - 1) // PER_DAY)


def premium_of(i: int) -> Decimal:
    """One decimal place, except ids 7, 107, 207, 307 (two; what the decimal-scale case rounds away)."""
    value = Decimal(100 + (i * 37) % 900) + Decimal((i * 7) % 10) / 10
    if i % 100 == 7:
        value += Decimal("0.03") if i % 200 == 7 else Decimal("0.06")
    return value.quantize(CENT)


def updated_at_of(i: int) -> datetime:
    """Always with microseconds, always below half a second (truncating and rounding agree)."""
    return datetime(2025, 1, 1, 8, 0) + timedelta(
        days=(i - 1) // PER_DAY, minutes=i, microseconds=(i * 1237) % 499_999 + 1
    )


def channel_of(i: int) -> str | None:
    return "" if i % 50 == 10 else None if i % 50 == 20 else "web"


POLICIES = TableSpec(
    "policies",
    (
        Column("policy_id", "integer"),
        Column("policy_date", "date"),
        Column("premium", "decimal"),
        Column("channel", "text"),
        Column("updated_at", "timestamp"),
    ),
    keys=("policy_id",),
)


def policy_rows() -> list[Row]:
    """310 policies, 10 a day through January 2025."""
    return [
        {
            "policy_id": i,
            "policy_date": day_of(i),
            "premium": premium_of(i),
            "channel": channel_of(i),
            "updated_at": updated_at_of(i),
        }
        for i in range(1, DAYS * PER_DAY + 1)
    ]


def by_id(rows: Sequence[Row], policy_id: int) -> Row:
    return next(r for r in rows if r["policy_id"] == policy_id)


# ---------------------------------------------------------------- expected answers


def total(rows: Sequence[Row]) -> Decimal | None:
    values = [Decimal(str(r["premium"])) for r in rows if r["premium"] is not None]
    return sum(values, Decimal(0)) if values else None


def by_day(rows: Sequence[Row]) -> dict[str, list[Row]]:
    days: dict[str, list[Row]] = {}
    for row in rows:
        days.setdefault(row["policy_date"].isoformat(), []).append(row)
    return days


def expected_partitions(source: Sequence[Row], target: Sequence[Row]) -> list[tuple[Any, ...]]:
    """(partition, source, target, source_rows, target_rows, status) for each partition whose KPI or rows differ."""
    src, tgt = by_day(source), by_day(target)
    out = []
    for day in sorted(set(src) | set(tgt)):
        s, t = src.get(day, []), tgt.get(day, [])
        if total(s) == total(t) and len(s) == len(t):
            continue
        status = (
            "missing_in_target"
            if not t
            else "missing_in_source"
            if not s
            else "differs"
            if total(s) != total(t)
            else "rows_differ"
        )
        out.append((day, total(s), total(t), len(s), len(t), status))
    return out


def got_partitions(report: KpiReport) -> list[tuple[Any, ...]]:
    return sorted((p.partition, p.source, p.target, p.source_rows, p.target_rows, p.status) for p in report.partitions)


def sample_keys(keyset: KeySet) -> list[dict[str, Any]]:
    return sorted((dict(s.key) for s in keyset.sample), key=lambda k: sorted(k.items()))


def assert_keys(keyset: KeySet, expected: Sequence[dict[str, str]], what: str) -> None:
    """Exact count; the sample is exactly the keys when there are few, else a subset without repeats."""
    wanted = sorted((dict(k) for k in expected), key=lambda k: sorted(k.items()))
    got = sample_keys(keyset)
    assert keyset.count == len(wanted), f"{what}: count {keyset.count}, expected {len(wanted)} ({wanted}); got {got}"
    if len(wanted) <= SAMPLE_AT_LEAST:
        assert got == wanted, f"{what}: sample {got}, expected {wanted}"
    else:
        assert all(k in wanted for k in got), f"{what}: sample {got} has keys not in {wanted}"
        assert len(got) == len({tuple(sorted(k.items())) for k in got}) >= SAMPLE_AT_LEAST, f"{what}: sample {got}"


def assert_whole_partition_keys(report: KpiReport, category: str, partition: str, keys: list[dict[str, str]]) -> None:
    """A partition one side lacks is reported as a partition, not key by key: the note names it instead."""
    assert report.keys is not None
    keyset: KeySet = getattr(report.keys, category)
    assert keyset.count == 0 and keys, f"{category}: {keyset}"
    status = "missing in target" if category == "missing" else "missing in source"
    assert report.keys.note is not None and f"{partition} ({status})" in report.keys.note, report.keys.note


def assert_totals(report: KpiReport, loaded: Loaded) -> None:
    source, target = total(loaded.source_rows), total(loaded.target_rows)
    assert (report.source_value, report.target_value) == (source, target)
    assert report.diff == target - source  # type: ignore[operator]
    assert report.within_tolerance is (source == target)


def assert_no_other_keys(report: KpiReport, *categories: str) -> None:
    assert report.keys is not None
    for category in categories:
        keyset = getattr(report.keys, category)
        assert keyset.count == 0, f"{category}: expected none, got {keyset.count}: {sample_keys(keyset)}"


def assert_layers(report: KpiReport, loaded: Loaded) -> None:
    """The KPI per layer over the differing partitions, and the first (only) divergent layer pair."""
    days = {p.partition for p in report.partitions}
    source = [r for r in loaded.source_rows if r["policy_date"].isoformat() in days]
    target = [r for r in loaded.target_rows if r["policy_date"].isoformat() in days]
    got = [(layer.name, layer.connection, layer.value, layer.rows, layer.error) for layer in report.layers]
    assert got == [
        ("source", "src", total(source), len(source), None),
        ("target", "dst", total(target), len(target), None),
    ]
    divergence = report.first_divergence
    assert divergence is not None
    assert (divergence.upstream, divergence.downstream) == ("source", "target")
    assert divergence.rows_lost == len(source) - len(target)
    assert divergence.diff == total(target) - total(source)  # type: ignore[operator]


def hint_kinds(report: KpiReport) -> set[str]:
    return {hint.kind for hint in report.hints}


def ids(*policy_ids: int) -> list[dict[str, str]]:
    return [{"policy_id": str(i)} for i in policy_ids]


def premium(row: dict[str, Any] | None) -> Decimal | None:
    assert row is not None, "a changed key's sample carries the row on each side"
    value = row["premium"]
    return None if value is None else Decimal(value)


# ---------------------------------------------------------------- fixtures work on every engine


def test_tables_are_written_and_read_back_through_the_engine_url(pair: Pair) -> None:
    """The plumbing itself: the same table on both sides, readable through the URL the engine gets."""
    rows = policy_rows()
    for side in (pair.source, pair.target):
        side.create(POLICIES, rows)
        assert side.count("policies") == len(rows)
        engine = sa.create_engine(side.url, poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                got = connection.execute(
                    sa.text("SELECT COUNT(*), SUM(premium) FROM policies WHERE policy_id <= :n"), {"n": 10}
                ).one()
        finally:
            engine.dispose()
        assert int(got[0]) == 10
        assert Decimal(str(got[1])).quantize(CENT) == total(rows[:10])


@pytest.mark.postgres
def test_redshift_path_runs_strtol_through_redshift_connector(redshift_database: KpiDatabase) -> None:
    assert redshift_database.url.startswith("redshift+redshift_connector://")
    engine = sa.create_engine(redshift_database.url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            assert engine.dialect.driver == "redshift_connector"
            got = connection.execute(
                sa.text(
                    "SELECT strtol('abcd1234', 16), strtol('0xf', 16), strtol('fffffffffffffff', 16),"
                    " strtol(' -ff', 16), strtol('1234567', 8), strtol('110101', 2), strtol('', 16),"
                    " strtol(NULL, 16), strtol(substring(md5('etl-doctor'), 1, 15), 16)"
                )
            ).one()
    finally:
        engine.dispose()
    md5_prefix = hashlib.md5(b"etl-doctor").hexdigest()[:15]
    assert tuple(got) == (2882343476, 15, 2**60 - 1, -255, 342391, 53, 0, None, int(md5_prefix, 16))


# ---------------------------------------------------------------- the injected-difference matrix


def test_missing_keys(load: Callable[..., Loaded]) -> None:
    loaded = load(POLICIES, policy_rows(), [Delete(keys=((17,), (18,), (240,)))])
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [p.partition for p in report.partitions] == ["2025-01-02", "2025-01-24"]
    assert {(p.source_rows, p.target_rows, p.status) for p in report.partitions} == {
        (10, 8, "differs"),
        (10, 9, "differs"),
    }
    assert report.keys is not None
    assert_keys(report.keys.missing, ids(17, 18, 240), "missing")
    assert_no_other_keys(report, "extra", "changed", "duplicates")
    assert_layers(report, loaded)
    assert report.first_divergence is not None and report.first_divergence.rows_lost == 3


def test_extra_keys(load: Callable[..., Loaded]) -> None:
    extra = [
        {
            "policy_id": 1001,
            "policy_date": date(2025, 1, 10),
            "premium": Decimal("55.50"),
            "channel": "web",
            "updated_at": datetime(2025, 1, 10, 9, 0),
        },
        {
            "policy_id": 1002,
            "policy_date": date(2025, 1, 10),
            "premium": Decimal("0.01"),
            "channel": "agent",
            "updated_at": datetime(2025, 1, 10, 9, 1),
        },
        {
            "policy_id": 1003,
            "policy_date": date(2025, 1, 20),
            "premium": Decimal("999.99"),
            "channel": None,
            "updated_at": datetime(2025, 1, 20, 9, 2),
        },
    ]
    loaded = load(POLICIES, policy_rows(), [Add(tuple(extra))])
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [(p.partition, p.source_rows, p.target_rows) for p in report.partitions] == [
        ("2025-01-10", 10, 12),
        ("2025-01-20", 10, 11),
    ]
    assert report.keys is not None
    assert_keys(report.keys.extra, ids(1001, 1002, 1003), "extra")
    assert_no_other_keys(report, "missing", "changed", "duplicates")
    assert_layers(report, loaded)
    assert report.first_divergence is not None and report.first_divergence.rows_lost == -3


def test_changed_keys(load: Callable[..., Loaded]) -> None:
    loaded = load(
        POLICIES,
        policy_rows(),
        [
            Update(((55,),), {"premium": lambda v: v + 10}),
            Update(((56,),), {"premium": lambda v: v - CENT}),
            Update(((290,),), {"premium": lambda v: v * 2}),
        ],
    )
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [(p.partition, p.status) for p in report.partitions] == [
        ("2025-01-06", "differs"),
        ("2025-01-29", "differs"),
    ]
    assert report.keys is not None
    assert_keys(report.keys.changed, ids(55, 56, 290), "changed")
    for sample in report.keys.changed.sample:
        policy_id = int(sample.key["policy_id"])  # type: ignore[arg-type]
        assert premium(sample.source) == by_id(loaded.source_rows, policy_id)["premium"]
        assert premium(sample.target) == by_id(loaded.target_rows, policy_id)["premium"]
    assert_no_other_keys(report, "missing", "extra", "duplicates")
    assert_layers(report, loaded)
    assert report.first_divergence is not None and report.first_divergence.rows_lost == 0


def test_whole_partition_missing_in_target(load: Callable[..., Loaded]) -> None:
    loaded = load(POLICIES, policy_rows(), [Delete(where=lambda r: r["policy_date"] == date(2025, 1, 15))])
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert not report.within_tolerance
    fifteenth = total([r for r in loaded.source_rows if r["policy_date"] == date(2025, 1, 15)])
    assert got_partitions(report) == [("2025-01-15", fifteenth, None, 10, 0, "missing_in_target")]
    assert_whole_partition_keys(report, "missing", "2025-01-15", ids(*range(141, 151)))
    assert_no_other_keys(report, "extra", "changed", "duplicates")
    assert report.first_divergence is not None and report.first_divergence.rows_lost == 10


def test_whole_partition_missing_in_source(load: Callable[..., Loaded]) -> None:
    rows = policy_rows()
    source = [r for r in rows if r["policy_date"] != date(2025, 1, 20)]
    loaded = load(POLICIES, source, target_rows=rows)
    report = loaded.reconcile()

    assert_totals(report, loaded)
    twentieth = total([r for r in rows if r["policy_date"] == date(2025, 1, 20)])
    assert got_partitions(report) == [("2025-01-20", None, twentieth, 0, 10, "missing_in_source")]
    assert_whole_partition_keys(report, "extra", "2025-01-20", ids(*range(191, 201)))
    assert_no_other_keys(report, "missing", "changed", "duplicates")


def test_nulls_in_the_target_measure(load: Callable[..., Loaded]) -> None:
    loaded = load(POLICIES, policy_rows(), [Update(((33,), (34,)), {"premium": None})])
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [(p.partition, p.source_rows, p.target_rows, p.status) for p in report.partitions] == [
        ("2025-01-04", 10, 10, "differs")
    ]
    assert report.keys is not None
    assert_keys(report.keys.changed, ids(33, 34), "changed")
    for sample in report.keys.changed.sample:
        assert premium(sample.target) is None
        assert premium(sample.source) == premium_of(int(sample.key["policy_id"]))  # type: ignore[arg-type]
    assert_no_other_keys(report, "missing", "extra", "duplicates")
    assert "nulls" in hint_kinds(report), report.hints


def test_decimal_scale_lost_in_the_target(load: Callable[..., Loaded]) -> None:
    def one_place(row: Row) -> Row:
        row["premium"] = row["premium"].quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        return row

    target_spec = POLICIES.with_ddl(
        "premium", sqlite="NUMERIC(12,1)", postgresql="NUMERIC(12,1)", mariadb="DECIMAL(12,1)", redshift="NUMERIC(12,1)"
    )
    loaded = load(POLICIES, policy_rows(), [Map(one_place)], target_spec=target_spec)
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [p.partition for p in report.partitions] == ["2025-01-01", "2025-01-11", "2025-01-21", "2025-01-31"]
    assert report.keys is not None
    assert_keys(report.keys.changed, ids(7, 107, 207, 307), "changed")
    for sample in report.keys.changed.sample:
        source, target = premium(sample.source), premium(sample.target)
        assert source is not None and target is not None
        assert target == source.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) != source
    assert_no_other_keys(report, "missing", "extra", "duplicates")
    assert "decimal_scale" in hint_kinds(report), report.hints


def test_duplicate_keys_on_the_target(load: Callable[..., Loaded]) -> None:
    loaded = load(POLICIES, policy_rows(), [Duplicate(((40,), (41,)))])
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [(p.partition, p.source_rows, p.target_rows) for p in report.partitions] == [
        ("2025-01-04", 10, 11),
        ("2025-01-05", 10, 11),
    ]
    assert report.keys is not None
    assert_keys(report.keys.duplicates, ids(40, 41), "duplicates")
    assert {(s.source_count, s.target_count) for s in report.keys.duplicates.sample} == {(1, 2)}
    assert_no_other_keys(report, "missing", "extra")
    assert "duplicates" in hint_kinds(report), report.hints
    assert report.first_divergence is not None and report.first_divergence.rows_lost == -2


REGIONS = ("north", "east", "south", "west")
COMPOSITE = TableSpec(
    "policies",
    (
        Column("region", "text"),
        Column("policy_no", "text"),
        Column("policy_date", "date"),
        Column("premium", "decimal"),
    ),
    keys=("region", "policy_no"),
)


def test_composite_keys_with_colliding_concatenations(load: Callable[..., Loaded]) -> None:
    """('ab','c') and ('a','bc') concatenate alike (so do 'a|b','c' and 'a','b|c' with a '|' separator)."""
    base = [
        {"region": REGIONS[i % 4], "policy_no": f"P{i:04d}", "policy_date": day_of(i), "premium": premium_of(i)}
        for i in range(1, DAYS * PER_DAY + 1)
    ]
    fifth = date(2025, 1, 5)

    def row(region: str, policy_no: str, value: str) -> Row:
        return {"region": region, "policy_no": policy_no, "policy_date": fifth, "premium": Decimal(value)}

    source = [*base, row("ab", "c", "5.00"), row("a|b", "c", "6.00"), row("x", "yz", "7.00")]
    injections = [
        Delete(keys=(("ab", "c"), ("a|b", "c"), ("north", "P0100"))),
        Add((row("a", "bc", "5.00"), row("a", "b|c", "6.00"))),
        Update((("x", "yz"),), {"premium": Decimal("8.00")}),
    ]
    loaded = load(COMPOSITE, source, injections, types={})
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [(p.partition, p.source_rows, p.target_rows) for p in report.partitions] == [
        ("2025-01-05", 13, 13),
        ("2025-01-10", 10, 9),
    ]
    assert report.keys is not None
    assert_keys(
        report.keys.missing,
        [
            {"region": "ab", "policy_no": "c"},
            {"region": "a|b", "policy_no": "c"},
            {"region": "north", "policy_no": "P0100"},
        ],
        "missing",
    )
    assert_keys(report.keys.extra, [{"region": "a", "policy_no": "bc"}, {"region": "a", "policy_no": "b|c"}], "extra")
    assert_keys(report.keys.changed, [{"region": "x", "policy_no": "yz"}], "changed")
    assert_no_other_keys(report, "duplicates")
    assert_layers(report, loaded)


CODES = TableSpec(
    "policies",
    (Column("code", "text"), Column("policy_date", "date"), Column("premium", "decimal")),
    keys=("code",),
)


def code_rows(codes: Sequence[str]) -> list[Row]:
    return [
        {"code": code, "policy_date": START + timedelta(days=j % 7), "premium": premium_of(j + 1)}
        for j, code in enumerate(codes)
    ]


def folded(code: str) -> str:
    """Roughly what a case- and accent-insensitive collation compares."""
    return "".join(c for c in unicodedata.normalize("NFKD", code) if not unicodedata.combining(c)).casefold()


def code_targets(pair: Pair) -> TableSpec:
    """A PostgreSQL target column collates unlike its source: ICU ('a' < 'B' < 'é') against SQLite's binary
    order, "C" ('B' < 'a' < 'é') against MariaDB's utf8mb4_general_ci ('a' < 'B', 'é' = 'e')."""
    if pair.name == "sqlite-postgresql":
        return CODES.with_ddl("code", postgresql='VARCHAR(100) COLLATE "und-x-icu"')
    if pair.name == "mariadb-postgresql":
        return CODES.with_ddl("code", postgresql='VARCHAR(100) COLLATE "C"')
    return CODES


def ordered_codes(side: KpiDatabase, codes: Sequence[str]) -> list[str]:
    return [row[0] for row in side.execute("SELECT code FROM policies ORDER BY code") if row[0] in codes]


def test_string_keys_whose_order_differs_between_collations(pair: Pair, load: Callable[..., Loaded]) -> None:
    stems = ["a", "B", "é", "Z", "ö", "Ç", "x", "Ω", "日本", "ñ"]
    codes = ["a", "B", "é", "Z"] + [f"{stem}{n}" for stem in stems for n in (1, 2, 3)]
    added = ["bb", "Ça"]
    assert len({folded(c) for c in [*codes, *added]}) == len(codes) + len(added)  # distinct even without case/accents
    extra_rows = tuple({"code": code, "policy_date": date(2025, 1, 6), "premium": Decimal("12.34")} for code in added)
    injections = [
        Delete(keys=(("é",), ("Ω2",))),
        Add(extra_rows),
        Update((("a",), ("B",)), {"premium": lambda v: v + 1}),
    ]
    loaded = load(CODES, code_rows(codes), injections, target_spec=code_targets(pair), types={})
    common = [c for c in codes if c not in ("é", "Ω2")]
    reordered = ordered_codes(pair.source, common) != ordered_codes(pair.target, common)
    assert reordered is (pair.name in ("sqlite-postgresql", "mariadb-postgresql")), "the collation trap is armed"
    report = loaded.reconcile("2025-01-01..2025-01-07")

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert report.keys is not None
    assert_keys(report.keys.missing, [{"code": "é"}, {"code": "Ω2"}], "missing")
    assert_keys(report.keys.extra, [{"code": "bb"}, {"code": "Ça"}], "extra")
    assert_keys(report.keys.changed, [{"code": "a"}, {"code": "B"}], "changed")
    assert_no_other_keys(report, "duplicates")


def test_string_keys_equal_only_under_a_case_insensitive_collation(pair: Pair, load: Callable[..., Loaded]) -> None:
    """'a'/'A' and 'e'/'é'/'É' are different keys, even where the source's collation (MariaDB's
    utf8mb4_general_ci) calls them equal."""
    third = date(2025, 1, 3)
    values = {"a": "1.00", "A": "2.00", "e": "3.00", "é": "4.00", "É": "5.00", "zz": "6.00"}
    source = [{"code": c, "policy_date": third, "premium": Decimal(v)} for c, v in values.items()]
    source += code_rows([f"k{n}" for n in range(20)])
    injections = [
        Delete(keys=(("A",),)),
        Update((("é",),), {"premium": Decimal("40.00")}),
        Add(({"code": "E", "policy_date": third, "premium": Decimal("7.00")},)),
    ]
    loaded = load(CODES, source, injections, target_spec=code_targets(pair), types={})
    if pair.source.dialect == "mariadb":  # the trap is armed: the source's own collation merges these keys
        distinct = pair.source.execute(
            "SELECT COUNT(DISTINCT code) FROM policies WHERE code IN ('a', 'A', 'e', 'é', 'É')"
        )
        assert distinct == [(2,)]
    report = loaded.reconcile("2025-01-01..2025-01-07")

    assert_totals(report, loaded)
    assert got_partitions(report) == expected_partitions(loaded.source_rows, loaded.target_rows)
    assert [(p.partition, p.source_rows, p.target_rows) for p in report.partitions] == [("2025-01-03", 9, 9)]
    assert report.keys is not None
    assert_keys(report.keys.missing, [{"code": "A"}], "missing")
    assert_keys(report.keys.extra, [{"code": "E"}], "extra")
    assert_keys(report.keys.changed, [{"code": "é"}], "changed")
    assert_no_other_keys(report, "duplicates")


def test_null_and_empty_text_are_different_values(load: Callable[..., Loaded]) -> None:
    """Policy 60 has channel '' and 70 has NULL on the source; the target swaps them (and 59, 69 change
    premium, so their partitions differ)."""
    rows = policy_rows()
    assert (by_id(rows, 60)["channel"], by_id(rows, 70)["channel"]) == ("", None)
    injections = [
        Update(((60,),), {"channel": None}),
        Update(((70,),), {"channel": ""}),
        Update(((59,), (69,)), {"premium": lambda v: v + 1}),
    ]
    loaded = load(POLICIES, rows, injections, compare=("channel",))
    report = loaded.reconcile()

    assert_totals(report, loaded)
    assert [p.partition for p in report.partitions] == ["2025-01-06", "2025-01-07"]
    assert report.keys is not None
    assert_keys(report.keys.changed, ids(59, 60, 69, 70), "changed")
    channels = {
        s.key["policy_id"]: (s.source["channel"], s.target["channel"])  # type: ignore[index]
        for s in report.keys.changed.sample
    }
    assert (channels["60"], channels["70"]) == (("", None), (None, ""))
    assert_no_other_keys(report, "missing", "extra", "duplicates")


def test_no_differences(load: Callable[..., Loaded]) -> None:
    loaded = load(
        POLICIES,
        policy_rows(),
        compare=("channel", "updated_at"),
        types={"policy_id": "integer", "updated_at": "timestamp"},
    )
    report = loaded.reconcile()

    assert report.within_tolerance
    assert report.source_value == report.target_value == total(loaded.source_rows)
    assert report.diff == 0
    assert report.partitions == []
    assert (report.keys.total if report.keys is not None else 0) == 0
    assert report.first_divergence is None
    assert report.hints == []


def representation_rows(*, inexact: bool) -> tuple[list[Row], list[Row]]:
    """Source: floats (SQLite REAL, DOUBLE) and timestamps with microseconds; target: NUMERIC(12,2) and
    whole-second timestamps. Policies 3 (10.5), 4 (-0.0 vs 0), 5 (-2.25) and 8 (10 vs 10.00) sit in 2025-01-01;
    the other premiums are quarters (exact in binary). With ``inexact``, 2025-01-01 also holds 0.1, 137.7, 0.2.
    (-0.0 stays negative zero only in PostgreSQL's DOUBLE PRECISION; SQLite and MariaDB store it as 0.)"""
    special = {3: "10.5", 4: "-0.0", 5: "-2.25", 8: "10"}
    if inexact:
        special |= {6: "0.1", 7: "137.7", 9: "0.2"}
    source, target = [], []
    for i in range(1, DAYS * PER_DAY + 1):
        value = Decimal(special.get(i, f"{100 + (i * 37) % 900}.{(i % 4) * 25:02d}"))
        stamp = updated_at_of(i)
        source.append({"policy_id": i, "policy_date": day_of(i), "premium": value, "updated_at": stamp})
        target.append(
            {
                "policy_id": i,
                "policy_date": day_of(i),
                "premium": abs(value).quantize(CENT) if value.is_zero() else value.quantize(CENT),
                "updated_at": stamp.replace(microsecond=0),
            }
        )
    return source, target


REPRESENTED = TableSpec(
    "policies",
    (
        Column("policy_id", "integer"),
        Column("policy_date", "date"),
        Column("premium", "float"),
        Column("updated_at", "timestamp"),
    ),
    keys=("policy_id",),
)
REPRESENTED_TARGET = REPRESENTED.with_ddl("premium", kind="decimal").with_ddl(
    "updated_at", postgresql="TIMESTAMP(0)", mariadb="DATETIME", redshift="TIMESTAMP"
)
TIMESTAMP_TYPES = {"policy_id": "integer", "updated_at": "timestamp"}


def test_equal_values_in_different_representations_are_no_difference(load: Callable[..., Loaded]) -> None:
    source, target = representation_rows(inexact=False)
    loaded = load(
        REPRESENTED,
        source,
        target_spec=REPRESENTED_TARGET,
        target_rows=target,
        compare=("updated_at",),
        types=TIMESTAMP_TYPES,
    )
    report = loaded.reconcile()

    assert report.source_value == report.target_value == total(target)
    assert report.diff == 0
    assert report.within_tolerance
    assert report.partitions == []
    assert (report.keys.total if report.keys is not None else 0) == 0


def test_only_the_really_changed_key_differs_among_other_representations(load: Callable[..., Loaded]) -> None:
    """The partition differs (policy 2 changed), so its rows are hashed: REAL 10.5 vs 10.50, -0.0 vs 0, 0.1 vs
    0.10, 137.7 vs 137.70, 10 vs 10.00 and microseconds vs whole seconds must all hash equal."""
    source, target = representation_rows(inexact=True)
    by_id(target, 2)["premium"] += 1
    loaded = load(
        REPRESENTED,
        source,
        target_spec=REPRESENTED_TARGET,
        target_rows=target,
        compare=("updated_at",),
        types=TIMESTAMP_TYPES,
    )
    report = loaded.reconcile()

    assert not report.within_tolerance
    assert report.diff is not None and abs(report.diff - 1) < Decimal("0.000001")
    assert [(p.partition, p.source_rows, p.target_rows, p.status) for p in report.partitions] == [
        ("2025-01-01", 10, 10, "differs")
    ]
    assert report.keys is not None
    assert_keys(report.keys.changed, ids(2), "changed")
    assert_no_other_keys(report, "missing", "extra", "duplicates")


# ---------------------------------------------------------------- user input is validated, never spliced into SQL


INJECTIONS = [
    ("premium'; DROP TABLE policies;--", RANGE),
    ("premium", "2025-01-01'; DROP TABLE policies;--"),
    ("premium", "2025-01-01..2025-01-02 OR 1=1"),
    ("premium", "2025-01-01' OR '1'='1"),
    ("premium", "2025-01-01..2025-01-02); DELETE FROM policies;--"),
]


def test_injection_strings_are_refused_and_the_tables_stay(pair: Pair, load: Callable[..., Loaded]) -> None:
    loaded = load(POLICIES, policy_rows())
    for name, spec in INJECTIONS:
        with pytest.raises(KpiError) as caught:
            loaded.engine.reconcile(name, spec)
        message = str(caught.value)
        assert message and "\n" not in message, f"{name!r} {spec!r}: {message!r}"
        word = "kpi" if name != "premium" else "partition"
        assert word in message.lower(), f"{name!r} {spec!r}: the message should say what is wrong: {message!r}"
    assert pair.source.count("policies") == DAYS * PER_DAY
    assert pair.target.count("policies") == DAYS * PER_DAY
    report = loaded.reconcile()  # and the engine still answers normally afterwards
    assert report.within_tolerance and report.partitions == []

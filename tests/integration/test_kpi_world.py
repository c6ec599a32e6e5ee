"""The sandbox's KPI world holds exactly the gaps it says it does (checked with plain SQL, Glue and S3)."""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.config import load_project_file
from bot.kpi.engine import KpiEngine
from bot.sandbox import kpi_world
from bot.sandbox.kpi_world import (
    BROKEN_PARTITION,
    DUPLICATE_PARTITION,
    FACT_LAYER,
    NULL_PARTITION,
    ODS_LAYER,
    RAW_LAYER,
    SOURCE_LAYER,
    KpiWorld,
    build_kpi_world,
    seed_kpi_catalog,
)
from bot.sandbox.world import write_project_file

# (layer, connection, table, partition column, measure column)
LAYERS = (
    (SOURCE_LAYER, "oracle", "policies", "policy_date", "premium_amount"),
    (RAW_LAYER, "athena", "raw_policies", "dt", "premium_amt"),
    (ODS_LAYER, "redshift", "ods_policies", "policy_date", "premium_amount"),
    (FACT_LAYER, "redshift", "fact_policies", "policy_date", "premium_amount"),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> KpiWorld:
    return build_kpi_world(tmp_path_factory.mktemp("kpi"))


@pytest.fixture
def db(world: KpiWorld) -> Iterator[Any]:
    connections: dict[str, sqlite3.Connection] = {}

    def query(connection: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
        if connection not in connections:
            connections[connection] = sqlite3.connect(f"file:{world.path(connection)}?mode=ro", uri=True)
        return connections[connection].execute(sql, params).fetchall()

    yield query
    for connection in connections.values():
        connection.close()


def _cents(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 2))).quantize(Decimal("0.01"))


def _layer_totals(db: Any, partition: str) -> dict[str, tuple[int, Decimal | None]]:
    totals = {}
    for layer, connection, table, column, measure in LAYERS:
        ((rows, total),) = db(connection, f"SELECT COUNT(*), SUM({measure}) FROM {table} WHERE {column} = ?", partition)
        totals[layer] = (rows, _cents(total))
    return totals


def test_the_broken_partition_matches_design_md_and_loses_143_policies_between_raw_and_ods(
    world: KpiWorld, db: Any
) -> None:
    totals = _layer_totals(db, BROKEN_PARTITION)
    assert totals == {
        SOURCE_LAYER: (2047, Decimal("1204331.50")),
        RAW_LAYER: (2047, Decimal("1204331.50")),
        ODS_LAYER: (1904, Decimal("1190002.10")),
        FACT_LAYER: (1904, Decimal("1190002.10")),
    }
    relative = (totals[FACT_LAYER][1] - totals[SOURCE_LAYER][1]) / totals[SOURCE_LAYER][1]  # type: ignore[operator]
    assert round(relative * 100, 2) == Decimal("-1.19")
    gap = world.headline
    assert (gap.kind, gap.partition, gap.upstream, gap.downstream) == (
        "late_file",
        BROKEN_PARTITION,
        RAW_LAYER,
        ODS_LAYER,
    )
    assert (gap.rows, gap.amount) == (-143, Decimal("-14329.40"))
    assert world.source_total() == Decimal("1204331.50") and world.target_total() == Decimal("1190002.10")
    assert {layer: (t.rows, t.total) for layer, t in world.totals[BROKEN_PARTITION].items()} == totals


def test_the_143_missing_policies_are_exactly_the_late_file(world: KpiWorld, db: Any) -> None:
    raw = {row[0] for row in db("athena", "SELECT policy_id FROM raw_policies WHERE dt = ?", BROKEN_PARTITION)}
    ods = {
        row[0] for row in db("redshift", "SELECT policy_id FROM ods_policies WHERE policy_date = ?", BROKEN_PARTITION)
    }
    fact = {
        row[0] for row in db("redshift", "SELECT policy_id FROM fact_policies WHERE policy_date = ?", BROKEN_PARTITION)
    }
    source = {row[0] for row in db("oracle", "SELECT policy_id FROM policies WHERE policy_date = ?", BROKEN_PARTITION)}
    assert source == raw and ods == fact and ods <= raw
    assert tuple(sorted(raw - ods)) == world.missing_keys and len(world.missing_keys) == 143
    late = db("athena", "SELECT policy_id FROM raw_policies WHERE source_file = 'part-00001.csv.gz' ORDER BY policy_id")
    assert tuple(row[0] for row in late) == world.missing_keys
    # they changed late in the day: the newest change the target saw is older than the source's (CDC lag)
    ((source_max,),) = db("oracle", "SELECT MAX(updated_at) FROM policies WHERE policy_date = ?", BROKEN_PARTITION)
    ((target_max,),) = db(
        "redshift", "SELECT MAX(updated_at) FROM fact_policies WHERE policy_date = ?", BROKEN_PARTITION
    )
    assert source_max >= f"{BROKEN_PARTITION} 22:00:00" > target_max


def test_the_other_gaps_are_two_null_premiums_and_one_duplicated_policy_in_fact(world: KpiWorld, db: Any) -> None:
    _, nulls, duplicate = world.gaps
    assert (nulls.kind, nulls.partition, nulls.upstream, nulls.downstream) == (
        "null_measure",
        NULL_PARTITION,
        ODS_LAYER,
        FACT_LAYER,
    )
    found = db("redshift", "SELECT policy_id FROM fact_policies WHERE premium_amount IS NULL ORDER BY policy_id")
    assert tuple(row[0] for row in found) == nulls.keys and len(nulls.keys) == 2
    lost = db(
        "redshift",
        f"SELECT SUM(premium_amount) FROM ods_policies WHERE policy_id IN ({','.join('?' * len(nulls.keys))})",
        *nulls.keys,
    )
    assert -_cents(lost[0][0]) == nulls.amount  # type: ignore[operator]
    assert (duplicate.kind, duplicate.partition, duplicate.rows) == ("duplicate_key", DUPLICATE_PARTITION, 1)
    twice = db("redshift", "SELECT policy_id FROM fact_policies GROUP BY policy_id HAVING COUNT(*) > 1")
    assert tuple(row[0] for row in twice) == duplicate.keys and len(duplicate.keys) == 1
    for gap in (nulls, duplicate):
        totals = _layer_totals(db, gap.partition)
        upstream, downstream = totals[gap.upstream], totals[gap.downstream]
        assert downstream[0] - upstream[0] == gap.rows
        assert downstream[1] - upstream[1] == gap.amount  # type: ignore[operator]
        assert totals[SOURCE_LAYER] == totals[RAW_LAYER] == totals[ODS_LAYER]


def test_every_other_partition_is_identical_in_every_layer(world: KpiWorld, db: Any) -> None:
    assert (
        len(world.partitions) == 60 and world.partitions[0] == "2024-12-21" and world.partitions[-1] == BROKEN_PARTITION
    )
    broken = {gap.partition for gap in world.gaps}
    grouped = {}
    for layer, connection, table, column, measure in LAYERS:
        rows = db(connection, f"SELECT {column}, COUNT(*), SUM({measure}) FROM {table} GROUP BY {column}")
        grouped[layer] = {partition: (count, _cents(total)) for partition, count, total in rows}
        assert sorted(grouped[layer]) == list(world.partitions)
    for partition in world.partitions:
        expected = {layer: (t.rows, t.total) for layer, t in world.totals[partition].items()}
        assert {layer: grouped[layer][partition] for layer in grouped} == expected
        if partition not in broken:
            assert len(set(expected.values())) == 1, partition
    assert min(world.source_rows.values()) >= 1_700 and max(world.source_rows.values()) <= 2_300


def test_the_check_finds_three_negative_premiums_in_the_source(world: KpiWorld, db: Any) -> None:
    negative = db("oracle", "SELECT policy_id, status FROM policies WHERE premium_amount < 0 ORDER BY policy_id")
    assert tuple(row[0] for row in negative) == world.negative_keys and len(negative) == 3
    assert {row[1] for row in negative} == {"cancelled"}
    project = load_project_file(write_project_file(world.directory / "etl-doctor.yml", kpi=world), required=True)
    check = project.checks["no_negative_premiums"]
    ((violations,),) = db(check.connection, check.sql)
    assert violations == 3 > check.threshold


def test_the_data_is_the_same_on_every_build(world: KpiWorld, tmp_path: Path) -> None:
    again = build_kpi_world(tmp_path)
    assert again.gaps == world.gaps and again.negative_keys == world.negative_keys
    assert again.totals == world.totals


def test_the_project_file_describes_the_lineage_and_loads(world: KpiWorld) -> None:
    project = load_project_file(write_project_file(world.directory / "etl-doctor.yml", kpi=world), required=True)
    kpi = project.kpis["premium_amount"]
    assert [layer.name for layer in kpi.layers] == [SOURCE_LAYER, RAW_LAYER, ODS_LAYER, FACT_LAYER]
    assert kpi.keys == ("policy_id",) and kpi.partition.column == "policy_date" and kpi.partition.grain == "day"
    assert kpi.tolerance.relative == Decimal("0.001") and kpi.pipeline == "policies-etl"
    raw = kpi.layers[1]
    assert raw.column("premium_amount") == "premium_amt" and raw.column("policy_date") == "dt"
    assert raw.glue is not None and raw.glue.database == kpi_world.GLUE_DATABASE
    for name, connection in project.connections.items():
        assert connection.url.get_secret_value() == f"sqlite:///{world.path(name).resolve()}"
        assert world.path(name).exists()


def test_glue_lacks_exactly_the_broken_partition_while_s3_holds_every_file(world: KpiWorld, aws: AwsClients) -> None:
    glue, s3 = aws.client("glue"), aws.client("s3")
    seed_kpi_catalog(world, glue, s3)
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName="raw", TableName="policies")
    registered = sorted(p["Values"][0] for page in pages for p in page["Partitions"])
    assert world.glue_missing_partitions == (BROKEN_PARTITION,)
    assert registered == [p for p in world.partitions if p != BROKEN_PARTITION]
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_partition(DatabaseName="raw", TableName="policies", PartitionValues=[BROKEN_PARTITION])
    prefix = world.s3_prefix(BROKEN_PARTITION).removeprefix(f"s3://{kpi_world.RAW_BUCKET}/")
    listed = s3.list_objects_v2(Bucket=kpi_world.RAW_BUCKET, Prefix=prefix)["Contents"]
    assert [o["Key"].rsplit("/", 1)[1] for o in listed] == ["part-00000.csv.gz", "part-00001.csv.gz"]
    late = s3.get_object(Bucket=kpi_world.RAW_BUCKET, Key=f"{prefix}part-00001.csv.gz")["Body"].read()
    lines = gzip.decompress(late).decode().splitlines()
    assert lines[0] == "policy_id,premium_amt,policy_status,updated_ts"
    assert tuple(int(line.split(",")[0]) for line in lines[1:]) == world.missing_keys
    assert sum(Decimal(line.split(",")[1]) for line in lines[1:]) == -world.headline.amount
    everything = s3.get_paginator("list_objects_v2").paginate(Bucket=kpi_world.RAW_BUCKET)
    assert sum(len(page.get("Contents", [])) for page in everything) == len(world.partitions) + 1


@pytest.fixture
def engine(world: KpiWorld, aws: AwsClients) -> Iterator[KpiEngine]:
    glue, s3 = aws.client("glue"), aws.client("s3")
    seed_kpi_catalog(world, glue, s3)
    project = load_project_file(write_project_file(world.directory / "etl-doctor.yml", kpi=world), required=True)
    engine = KpiEngine(project, glue=glue, s3=s3)
    yield engine
    engine.close()


def test_the_engine_localizes_the_breach_to_2025_02_18_its_143_keys_and_raw_to_ods(
    world: KpiWorld, engine: KpiEngine
) -> None:
    report = engine.reconcile("premium_amount", BROKEN_PARTITION)
    assert (report.source_value, report.target_value) == (Decimal("1204331.50"), Decimal("1190002.10"))
    assert report.diff == Decimal("-14329.40") and not report.within_tolerance
    assert [(row.partition, row.source_rows, row.target_rows) for row in report.differing] == [
        (BROKEN_PARTITION, 2047, 1904)
    ]
    assert report.keys is not None and report.keys.complete
    assert report.keys.missing.count == 143 and report.keys.total == 143
    assert [int(str(s.key["policy_id"])) for s in report.keys.missing.sample] == list(world.missing_keys[:10])
    assert [(layer.name, layer.rows, layer.value) for layer in report.layers] == [
        (name, t.rows, t.total) for name, t in world.totals[BROKEN_PARTITION].items()
    ]
    divergence = report.first_divergence
    assert divergence is not None and (divergence.upstream, divergence.downstream) == (RAW_LAYER, ODS_LAYER)
    assert divergence.text == "s3_raw.policies → ods_policies: 143 rows lost"
    hints = {hint.kind: hint for hint in report.hints}
    assert "dt=2025-02-18" in hints["glue_partition_missing"].text
    assert "ADD IF NOT EXISTS PARTITION (dt='2025-02-18')" in str(hints["glue_partition_missing"].sql)
    assert "cdc_lag" in hints and "nulls" not in hints and "duplicates" not in hints
    reruns = [item for item in report.backfill if item.kind == "rerun"]
    assert [(item.pipeline, item.input) for item in reruns] == [("policies-etl", '{"date": "2025-02-18"}')]


def test_over_a_range_the_engine_finds_every_injected_gap_and_nothing_else(world: KpiWorld, engine: KpiEngine) -> None:
    report = engine.reconcile("premium_amount", f"{world.partitions[0]}..{BROKEN_PARTITION}")
    assert report.partitions_compared == 60
    assert [row.partition for row in report.differing] == sorted(gap.partition for gap in world.gaps)
    for row in report.differing:
        assert (row.source, row.target) == (world.source_total(row.partition), world.target_total(row.partition))
    keys = report.keys
    assert keys is not None and keys.complete
    late, nulls, duplicate = world.gaps
    assert (keys.missing.count, keys.changed.count, keys.duplicates.count, keys.extra.count) == (143, 2, 1, 0)
    assert [int(str(s.key["policy_id"])) for s in keys.changed.sample] == list(nulls.keys)
    assert [int(str(s.key["policy_id"])) for s in keys.duplicates.sample] == list(duplicate.keys)
    assert report.first_divergence is not None and report.first_divergence.downstream == late.downstream
    # and further down, the NULLs and the duplicate that fact_policies adds to what ods_policies holds
    assert [d.text for d in report.divergences[1:]] == ["ods_policies → fact_policies: 1 row gained"]
    assert {"nulls", "duplicates", "glue_partition_missing", "cdc_lag"} <= {hint.kind for hint in report.hints}


def test_the_check_fails_with_three_violations(engine: KpiEngine) -> None:
    result = engine.check("no_negative_premiums")
    assert (result.violations, result.threshold, result.passed) == (3, 0, False)

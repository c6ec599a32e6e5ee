"""Hints from what the funnel found (NULLs, scale, fan-out, late partitions, CDC lag) and backfill suggestions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from bot.kpi.model import Backfill, Hint, KpiError, KpiReport

if TYPE_CHECKING:
    from bot.config import ProjectConfig
    from bot.kpi.definitions import KpiConfig, LayerConfig
    from bot.kpi.queries import LayerSql

MAX_PARTITIONS_LOOKED_UP = 20
MAX_RERUNS = 5


class _PartitionCounts(Protocol):
    rows: int
    nulls: int


class _Layer(Protocol):
    config: LayerConfig
    sql: LayerSql
    params: dict[str, Any]

    def fetch(self, statement: str, params: dict[str, Any], max_rows: int | None) -> list[tuple[Any, ...]]: ...


def find_hints(
    kpi: KpiConfig,
    layers: Sequence[_Layer],
    source_partitions: Mapping[str, _PartitionCounts],
    target_partitions: Mapping[str, _PartitionCounts],
    report: KpiReport,
    *,
    glue: Any | None = None,
    s3: Any | None = None,
) -> list[Hint]:
    """Likely causes of the difference, each with a way to check or fix it."""
    differing = [row.partition for row in report.differing]
    if not differing:
        return []
    hints = []
    hints += _null_hint(kpi, layers[0], layers[-1], source_partitions, target_partitions, differing)
    hints += _scale_hint(kpi, report)
    hints += _duplicates_hint(kpi, layers[-1], report)
    hints += _glue_hints(layers, differing, glue, s3)
    hints += _cdc_hint(kpi, layers[0], layers[-1], differing)
    return hints


def _null_hint(
    kpi: KpiConfig,
    source: _Layer,
    target: _Layer,
    left: Mapping[str, _PartitionCounts],
    right: Mapping[str, _PartitionCounts],
    differing: list[str],
) -> list[Hint]:
    if kpi.column is None:
        return []
    source_nulls = sum(left[p].nulls for p in differing if p in left)
    target_nulls = sum(right[p].nulls for p in differing if p in right)
    if target_nulls <= source_nulls:
        return []
    column = target.config.column(kpi.column)
    condition = f"{column} IS NULL AND {target.config.column(kpi.partition.column)} IN ({_quoted(differing)})"
    return [
        Hint(
            "nulls",
            f"{_count(target_nulls, 'row')} in {target.config.name} {'has' if target_nulls == 1 else 'have'} "
            f"NULL `{column}` in the differing partitions "
            f"({source_nulls:,} in {source.config.name}); {kpi.aggregate.upper()} skips NULLs. Fix the lookup or "
            f"cast that yields NULL, or load COALESCE({column}, 0) if NULL means zero.",
            f"SELECT * FROM {_relation(target.config)} WHERE {condition}",
        )
    ]


def _decimal(value: str | None) -> Decimal | None:
    try:
        return None if value is None else Decimal(value)
    except InvalidOperation:
        return None


def _scale_hint(kpi: KpiConfig, report: KpiReport) -> list[Hint]:
    if kpi.column is None or report.keys is None or not report.keys.changed.sample:
        return []
    places: set[int] = set()
    example = ""
    for sample in report.keys.changed.sample:
        before = _decimal((sample.source or {}).get(kpi.column))
        after = _decimal((sample.target or {}).get(kpi.column))
        if before is None or after is None or before == after:
            return []
        fitting = [p for p in range(kpi.scale) if before.quantize(Decimal(1).scaleb(-p)) == after]
        if not fitting and abs(after - before) >= Decimal(1).scaleb(-max(kpi.scale - 1, 0)):
            return []
        places.add(fitting[0] if fitting else kpi.scale)
        example = example or f"{before.normalize():f} → {after.normalize():f}"
    place = max(places)
    return [
        Hint(
            "decimal_scale",
            f"Changed values differ only in rounding: the target keeps {place} decimal place"
            f"{'' if place == 1 else 's'} (e.g. {example}). Check the column's type (DECIMAL(p,{place})) or a "
            "CAST/ROUND or float conversion in the load.",
        )
    ]


def _duplicates_hint(kpi: KpiConfig, target: _Layer, report: KpiReport) -> list[Hint]:
    if report.keys is None or not report.keys.duplicates.count:
        return []
    extra_rows = [s for s in report.keys.duplicates.sample if s.target_count > s.source_count]
    if not extra_rows:
        return []
    keys = ", ".join(target.config.column(key) for key in kpi.keys)
    partition = target.config.column(kpi.partition.column)
    differing = [row.partition for row in report.differing]
    return [
        Hint(
            "duplicates",
            f"{_count(report.keys.duplicates.count, 'key')} {'has' if report.keys.duplicates.count == 1 else 'have'} "
            f"more rows in {target.config.name} than in the source "
            "(a join fan-out or a load that ran twice); deduplicate on the key or fix the join.",
            f"SELECT {keys}, COUNT(*) FROM {_relation(target.config)} WHERE {partition} IN ({_quoted(differing)}) "
            f"GROUP BY {keys} HAVING COUNT(*) > 1",
        )
    ]


def _glue_hints(layers: Sequence[_Layer], differing: list[str], glue: Any | None, s3: Any | None) -> list[Hint]:
    hints = []
    for layer in layers:
        location = layer.config.glue
        if location is None or glue is None:
            continue
        absent = []
        for partition in differing[:MAX_PARTITIONS_LOOKED_UP]:
            try:
                glue.get_partition(
                    DatabaseName=location.database, TableName=location.table, PartitionValues=[partition]
                )
            except glue.exceptions.EntityNotFoundException:
                absent.append(partition)
            except Exception as error:
                hints.append(Hint("glue_unavailable", f"Glue lookup for {layer.config.name} failed: {error}"))
                break
        for partition in absent:
            objects = _objects_under(s3, location.s3_prefix, partition)
            where = f"`{location.database}.{location.table}`"
            if objects is None:
                landed = ""
            elif objects:
                landed = f" Objects are under {location.s3_prefix.format(partition=partition)}: late-arriving data"  # type: ignore[union-attr]
                landed += " that was never registered (crawler or ADD PARTITION missed)."
            else:
                landed = (
                    f" Nothing is under {location.s3_prefix.format(partition=partition)} yet: the data has not arrived."  # type: ignore[union-attr]
                )
            hints.append(
                Hint(
                    "glue_partition_missing",
                    f"Partition {location.partition_key}={partition} of {where} ({layer.config.name}) is not in the "
                    f"Glue Data Catalog.{landed}",
                    add_partition_sql(layer.config, partition) if location.s3_prefix else None,
                )
            )
    return hints


def _objects_under(s3: Any | None, prefix: str | None, partition: str) -> bool | None:
    if s3 is None or prefix is None:
        return None
    bucket, _, key_prefix = prefix.format(partition=partition).removeprefix("s3://").partition("/")
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key_prefix, MaxKeys=1)
    except Exception:
        return None
    return bool(listed.get("KeyCount", 0))


def add_partition_sql(layer: LayerConfig, partition: str) -> str:
    """Spectrum/Athena DDL registering one partition of a layer's Glue table."""
    location = layer.glue
    assert location is not None and location.s3_prefix is not None
    return (
        f"ALTER TABLE {location.database}.{location.table} ADD IF NOT EXISTS PARTITION "
        f"({location.partition_key}='{partition}') LOCATION '{location.s3_prefix.format(partition=partition)}';"
    )


def _cdc_hint(kpi: KpiConfig, source: _Layer, target: _Layer, differing: list[str]) -> list[Hint]:
    if kpi.change_column is None:
        return []
    latest = []
    for layer in (source, target):
        try:
            rows = layer.fetch(layer.sql.change_max(), {**layer.params, "parts": differing}, None)
        except KpiError:
            return []
        latest.append(rows[0][0] if rows else None)
    source_latest, target_latest = latest
    if source_latest is None or (target_latest is not None and str(target_latest) >= str(source_latest)):
        return []
    if target_latest is None:
        lag = "has no changes at all"
    else:
        gap = datetime.fromisoformat(str(source_latest)) - datetime.fromisoformat(str(target_latest))
        hours, seconds = divmod(int(gap.total_seconds()), 3600)
        lag = f"is {hours}h{seconds // 60:02d}m behind"
    return [
        Hint(
            "cdc_lag",
            f"The latest `{kpi.change_column}` in {target.config.name} ({target_latest}) {lag} the source's "
            f"({source_latest}): change data capture or replication lag. Wait for it to catch up or re-run the load.",
        )
    ]


def backfill_suggestions(kpi: KpiConfig, project: ProjectConfig, report: KpiReport) -> list[Backfill]:
    """Concrete repairs for the differing partitions: register missing Glue partitions, re-run the pipeline."""
    suggestions = [
        Backfill("sql", "Register the partition in the Glue Data Catalog (Spectrum/Athena):", sql=hint.sql)
        for hint in report.hints
        if hint.kind == "glue_partition_missing" and hint.sql
    ]
    pipeline = project.pipelines.get(kpi.pipeline) if kpi.pipeline else None
    if pipeline is None or kpi.rerun_input is None:
        return suggestions
    for row in report.differing[:MAX_RERUNS]:
        execution_input = kpi.rerun_input.replace("{partition}", json.dumps(row.partition)[1:-1])
        suggestions.append(
            Backfill(
                "rerun",
                f"Re-run {kpi.pipeline} for {row.partition}",
                sql=None,
                pipeline=kpi.pipeline,
                state_machine_arn=pipeline.state_machine_arn,
                input=execution_input,
                partition=row.partition,
            )
        )
    return suggestions


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _relation(layer: LayerConfig) -> str:
    return layer.table if layer.table is not None else f"({layer.sql}) t"


def _quoted(partitions: Sequence[str]) -> str:
    shown = [f"'{p}'" for p in partitions[:MAX_PARTITIONS_LOOKED_UP]]
    return ", ".join(shown) + (" /* … */" if len(partitions) > MAX_PARTITIONS_LOOKED_UP else "")

"""The KPI funnel: value, partitions, keys, lineage, hints and backfill, each computed inside the databases."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from bot.kpi.advice import backfill_suggestions, find_hints
from bot.kpi.databases import Databases, QueryStats
from bot.kpi.keys import KeyFunnel, Side, on_both
from bot.kpi.lineage import divergences
from bot.kpi.model import (
    CheckResult,
    Divergence,
    KeyDiff,
    KpiError,
    KpiReport,
    LayerValue,
    PartitionRange,
    PartitionRow,
    PartitionStatus,
    Progress,
    no_progress,
    unknown_name_message,
)
from bot.kpi.partitions import (
    bound_value,
    bounds,
    current_start,
    label_of,
    parse_label,
    parse_range,
    steps_back,
)
from bot.kpi.queries import LayerSql

if TYPE_CHECKING:
    from bot.config import ProjectConfig
    from bot.kpi.definitions import KpiConfig, LayerConfig

MAX_LINEAGE_PARTITIONS = 500


def to_decimal(value: Any, scale: int) -> Decimal | None:
    """A KPI value as a Decimal at the KPI's scale (floats via their shortest repr); None stays None.

    Raises:
        KpiError: The value is not a number.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise KpiError(f"the KPI's value {value!r} is not a number; aggregate a numeric column") from None
    return rounded if rounded else abs(rounded)


@dataclass(frozen=True)
class _PartitionValue:
    rows: int
    value: Decimal | None
    nulls: int
    checksum: int


@dataclass
class LayerRun:
    """One layer bound to its connection for this run: statement builder and a fetch function."""

    config: LayerConfig
    sql: LayerSql
    connection: str
    fetch: Callable[[str, dict[str, Any], int | None], list[tuple[Any, ...]]]
    params: dict[str, Any]


class KpiEngine:
    """Runs KPI reconciliations and checks defined in the project file.

    Args:
        project: The project configuration (connections, kpis, checks).
        glue: A boto3 Glue client, for the "partition absent from the catalog" hint (optional).
        s3: A boto3 S3 client, for the "no objects under the partition's prefix" hint (optional).
        clock: Current UTC time (decides the latest complete partition).
        sample_size: Keys shown per category (missing, extra, changed, duplicates).
    """

    def __init__(
        self,
        project: ProjectConfig,
        *,
        glue: Any | None = None,
        s3: Any | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sample_size: int = 10,
    ) -> None:
        self.project = project
        self.glue = glue
        self.s3 = s3
        self.clock = clock
        self.sample_size = sample_size
        self.databases = Databases(project.connections)

    def kpi(self, name: str) -> KpiConfig:
        """A KPI's definition.

        Raises:
            KpiError: No KPI of that name (the message lists the known ones).
        """
        config = self.project.kpis.get(name) if isinstance(name, str) else None
        if config is None:
            raise KpiError(unknown_name_message("kpi", name, list(self.project.kpis)))
        return config

    def _layer(self, kpi: KpiConfig, layer: LayerConfig, stats: QueryStats) -> LayerRun:
        connection = layer.connection
        dialect = self.databases.dialect(connection)
        quote = self.databases.engine(connection).dialect.identifier_preparer.quote
        databases = self.databases

        sql = LayerSql(kpi, layer, dialect, quote)

        def fetch(statement: str, params: dict[str, Any], max_rows: int | None) -> list[tuple[Any, ...]]:
            if sql.by_day and "parts" in params:
                days = [parse_label(label, "day") for label in params["parts"]]
                params = {**params, "part_days": [bound_value(day, "date", dialect.name) for day in days]}
            return databases.fetch(connection, statement, params, stats=stats, max_rows=max_rows)

        return LayerRun(layer, sql, connection, fetch, {})

    def reconcile(self, name: str, spec: str | None = None, *, progress: Progress = no_progress) -> KpiReport:
        """Reconcile one KPI between its first layer (source) and its last (target).

        Args:
            name: The KPI.
            spec: `2025-02-18`, `2025-02-01..2025-02-28`, `latest`, or None (the latest complete partition).
            progress: Receives one line per step.

        Raises:
            KpiError: Unknown KPI, bad partition, or a source/target database error (secrets removed).
        """
        started = time.monotonic()
        kpi = self.kpi(name)
        stats = QueryStats()
        layers = [self._layer(kpi, layer, stats) for layer in kpi.layers]
        source, target = layers[0], layers[-1]
        partitions = self._range(kpi, source, spec, progress)
        lo, hi = bounds(partitions)
        for layer in layers:
            dialect = layer.sql.dialect.name
            layer.params = {
                "lo": bound_value(lo, kpi.partition.type, dialect),
                "hi": bound_value(hi, kpi.partition.type, dialect),
            }

        progress(f"{name} {partitions.label}: KPI per partition in {source.config.name} and {target.config.name}")
        checksum = kpi.row_checksums
        grain = kpi.partition.grain
        # The chart shows the last N partitions up to the range's end, even for a one-partition run.
        window_first = min(lo, steps_back(parse_label(partitions.last, grain), grain, kpi.chart_partitions - 1))
        left, right = on_both(
            source,
            target,
            lambda layer: self._breakdown(layer, kpi.scale, checksum=checksum, grain=grain, since=window_first),
        )
        window = _compare_partitions(left, right)
        rows = [row for row in window if row.partition >= partitions.first]
        left = {label: value for label, value in left.items() if label >= partitions.first}
        right = {label: value for label, value in right.items() if label >= partitions.first}
        differing = [row for row in rows if row.status != "match"]
        progress(f"partitions: {len(differing):,} of {len(rows):,} differ")
        source_value, target_value = self._totals(kpi, source, target, left, right)
        diff, relative, within = _verdict(kpi, source_value, target_value)
        report = KpiReport(
            kpi=name,
            description=kpi.description,
            aggregate=kpi.aggregate,
            range=partitions,
            source_layer=source.config.name,
            target_layer=target.config.name,
            source_value=source_value,
            target_value=target_value,
            diff=diff,
            relative_diff=relative,
            within_tolerance=within,
            tolerance={
                "absolute": None if kpi.tolerance.absolute is None else format(kpi.tolerance.absolute, "f"),
                "relative": None if kpi.tolerance.relative is None else format(kpi.tolerance.relative, "f"),
            },
            partitions=differing,
            partitions_compared=len(rows),
            series=window[-kpi.chart_partitions :],
        )
        report.keys = self._keys(kpi, source, target, differing, len(rows), progress)
        report.layers, report.divergences = self._lineage(kpi, layers, left, right, differing, report, progress)
        progress("hints")
        report.hints = find_hints(kpi, layers, left, right, report, glue=self.glue, s3=self.s3)
        report.backfill = backfill_suggestions(kpi, self.project, report)
        report.queries_run, report.bytes_fetched, report.rows_fetched = stats.queries, stats.bytes, stats.rows
        report.elapsed_ms = int((time.monotonic() - started) * 1000)
        return report

    def _range(self, kpi: KpiConfig, source: LayerRun, spec: str | None, progress: Progress) -> PartitionRange:
        grain = kpi.partition.grain
        if spec is not None and spec.strip().lower() not in ("", "latest"):
            return parse_range(spec, grain)
        before = current_start(self.clock(), grain)
        progress(f"finding the latest complete partition in {source.config.name}")
        rows = source.fetch(
            source.sql.latest_before(),
            {"before": bound_value(before, kpi.partition.type, source.sql.dialect.name)},
            None,
        )
        latest = rows[0][0] if rows else None
        if latest is None:
            raise KpiError(
                f"{source.config.name} has no complete {grain} partition before {label_of(before, grain)}; "
                "name one, e.g. `2025-02-18`"
            )
        first = parse_label(str(latest), grain)
        return PartitionRange(label_of(first, grain), label_of(first, grain), grain)

    @staticmethod
    def _breakdown(
        layer: LayerRun, scale: int, *, checksum: bool, grain: str, since: datetime
    ) -> dict[str, _PartitionValue]:
        params = {**layer.params, "lo": bound_value(since, layer.sql.kpi.partition.type, layer.sql.dialect.name)}
        rows = layer.fetch(layer.sql.partition_breakdown(checksum=checksum), params, None)
        values: dict[str, _PartitionValue] = {}
        for label, count, value, nulls, rows_sum in rows:
            if label is None:
                continue
            values[label_of(parse_label(str(label), grain), grain)] = _PartitionValue(
                int(count), to_decimal(value, scale), int(nulls or 0), int(rows_sum or 0)
            )
        return values

    def _totals(
        self,
        kpi: KpiConfig,
        source: LayerRun,
        target: LayerRun,
        left: dict[str, _PartitionValue],
        right: dict[str, _PartitionValue],
    ) -> tuple[Decimal | None, Decimal | None]:
        if source.sql.decomposable:
            return combine(kpi.aggregate, left.values()), combine(kpi.aggregate, right.values())

        def job(layer: LayerRun) -> Decimal | None:
            rows = layer.fetch(layer.sql.total(partitions=False), layer.params, None)
            return to_decimal(rows[0][0], kpi.scale) if rows else None

        result: tuple[Decimal | None, Decimal | None] = on_both(source, target, job)
        return result

    def _keys(
        self,
        kpi: KpiConfig,
        source: LayerRun,
        target: LayerRun,
        differing: list[PartitionRow],
        partitions_compared: int,
        progress: Progress,
    ) -> KeyDiff:
        present = [row for row in differing if row.status in ("differs", "rows_differ")]
        missing = [row for row in differing if row.status not in ("differs", "rows_differ")]
        note = None
        if missing:
            shown = ", ".join(f"{row.partition} ({row.status.replace('_', ' ')})" for row in missing[:5])
            note = f"whole partitions are not listed key by key: {shown}{' …' if len(missing) > 5 else ''}"
        if not present:
            return KeyDiff(note=note)
        progress(f"keys: comparing {len(present):,} partitions by bucket checksums")
        parts = [row.partition for row in present]
        estimate = max(sum(row.source_rows for row in present), sum(row.target_rows for row in present))

        everything = len(present) == partitions_compared  # every partition of the range, on both sides

        def side(layer: LayerRun) -> Side:
            budget = self.databases.config(layer.connection).max_rows
            sql = copy.copy(layer.sql)
            sql.partition_list = not everything
            return Side(sql, layer.fetch, {**layer.params, "parts": parts}, budget)

        funnel = KeyFunnel(side(source), side(target), sample_size=self.sample_size, progress=progress)
        moved = sum(abs(row.source_rows - row.target_rows) for row in present)
        found = funnel.compare(estimate, max(len(present), moved))
        if note and found.note:
            note = f"{found.note}; {note}"
        return dataclasses.replace(found, note=note or found.note)

    def _lineage(
        self,
        kpi: KpiConfig,
        layers: list[LayerRun],
        left: dict[str, _PartitionValue],
        right: dict[str, _PartitionValue],
        differing: list[PartitionRow],
        report: KpiReport,
        progress: Progress,
    ) -> tuple[list[LayerValue], list[Divergence]]:
        source, target = layers[0], layers[-1]
        if not differing:
            return [
                LayerValue(source.config.name, source.connection, report.source_value, _rows(left.values())),
                LayerValue(target.config.name, target.connection, report.target_value, _rows(right.values())),
            ], []
        parts = [row.partition for row in differing[:MAX_LINEAGE_PARTITIONS]]
        progress(f"lineage: the KPI in {len(layers)} layers for {len(parts):,} differing partitions")
        per_layer: list[dict[str, tuple[Decimal | None, int]] | str] = []

        def job(layer: LayerRun) -> dict[str, tuple[Decimal | None, int]] | str:
            if layer is source or layer is target:
                known = left if layer is source else right
                return {p: (known[p].value, known[p].rows) for p in parts if p in known}
            try:
                rows = layer.fetch(layer.sql.by_partition(), {**layer.params, "parts": parts}, None)
            except KpiError as error:
                return str(error)
            return {
                label_of(parse_label(str(p), kpi.partition.grain), kpi.partition.grain): (
                    to_decimal(v, kpi.scale),
                    int(n),
                )
                for p, v, n in rows
                if p is not None
            }

        with ThreadPoolExecutor(max_workers=4) as pool:
            per_layer = list(pool.map(job, layers))
        values = []
        for layer, found in zip(layers, per_layer, strict=True):
            if isinstance(found, str):
                values.append(LayerValue(layer.config.name, layer.connection, None, 0, error=found))
                report.warnings.append(f"layer {layer.config.name}: {found}")
                continue
            total = combine(kpi.aggregate, [_PartitionValue(n, v, 0, 0) for v, n in found.values()])
            if not layers[0].sql.decomposable:
                total = None
            values.append(LayerValue(layer.config.name, layer.connection, total, sum(n for _, n in found.values())))
        diverging = divergences(kpi, values, [p if not isinstance(p, str) else None for p in per_layer], parts)
        return values, diverging

    def check(self, name: str) -> CheckResult:
        """Run one data-quality check.

        Raises:
            KpiError: Unknown check, or the query failed or did not return a number.
        """
        check = self.project.checks.get(name) if isinstance(name, str) else None
        if check is None:
            raise KpiError(unknown_name_message("check", name, list(self.project.checks)))
        started = time.monotonic()
        rows = self.databases.fetch(check.connection, check.sql, {}, stats=QueryStats(), max_rows=1)
        try:
            violations = int(rows[0][0] or 0) if rows else 0
        except (TypeError, ValueError):
            raise KpiError(f"check `{name}`: the query must return a number, got {rows[0][0]!r}") from None
        elapsed = int((time.monotonic() - started) * 1000)
        return CheckResult(name, check.description, check.connection, violations, check.threshold, elapsed)

    def close(self) -> None:
        """Dispose of pooled connections."""
        self.databases.dispose()


def _rows(values: Any) -> int:
    return sum(value.rows for value in values)


def combine(aggregate: str, values: Any) -> Decimal | None:
    """The total of per-partition values for a decomposable aggregate (count, sum, min, max)."""
    numbers: list[Decimal] = [value.value for value in values if value.value is not None]
    if not numbers:
        return Decimal(0) if aggregate == "count" else None
    if aggregate == "min":
        return min(numbers)
    if aggregate == "max":
        return max(numbers)
    return sum(numbers, Decimal(0))


def _compare_partitions(left: dict[str, _PartitionValue], right: dict[str, _PartitionValue]) -> list[PartitionRow]:
    rows = []
    for label in sorted(set(left) | set(right)):
        a, b = left.get(label), right.get(label)
        status: PartitionStatus
        if b is None:
            status = "missing_in_target"
        elif a is None:
            status = "missing_in_source"
        elif a.value != b.value or a.rows != b.rows:
            status = "differs"
        elif a.checksum != b.checksum:
            status = "rows_differ"
        else:
            status = "match"
        rows.append(
            PartitionRow(
                label,
                a.value if a else None,
                b.value if b else None,
                a.rows if a else 0,
                b.rows if b else 0,
                status,
            )
        )
    return rows


def _verdict(kpi: KpiConfig, source: Decimal | None, target: Decimal | None) -> tuple[Any, Any, bool]:
    if source is None or target is None:
        return None, None, source is None and target is None
    diff = target - source
    relative = (diff / abs(source)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP) if source else None
    if diff == 0:
        return diff, relative if relative is not None else Decimal(0), True
    tolerance = kpi.tolerance
    within = (tolerance.absolute is not None and abs(diff) <= tolerance.absolute) or (
        tolerance.relative is not None and relative is not None and abs(relative) <= tolerance.relative
    )
    return diff, relative, bool(within)

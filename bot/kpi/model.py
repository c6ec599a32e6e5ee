"""What a KPI reconciliation or a check found: values, partitions, keys, layers, hints (plain data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from bot.errors import UserFacingError

Progress = Callable[[str], None]
PartitionStatus = Literal["differs", "rows_differ", "missing_in_target", "missing_in_source", "match"]


def no_progress(_message: str) -> None:
    """Progress sink that shows nothing."""


class KpiError(UserFacingError):
    """A KPI or check cannot run as asked; the message says why (unknown name, bad partition, database error)."""


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``KPI `x` is not defined; known: a, b`` (``check `x` …`` for checks); a long name is shortened."""
    what = "KPI" if kind == "kpi" else "check"
    listed = ", ".join(sorted(known)) if known else f"none (add {what}s under `{kind}s:` in etl-doctor.yml)"
    shown = name if len(name) <= 60 else name[:60] + "…"
    return f"{what} `{shown}` is not defined; known: {listed}"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


@dataclass(frozen=True)
class PartitionRange:
    """An inclusive range of partitions by label (`2025-02-18`, `2025-02`, `2025-02-18 03`, `2025`)."""

    first: str
    last: str
    grain: str

    @property
    def label(self) -> str:
        """`2025-02-18` or `2025-02-01..2025-02-28`."""
        return self.first if self.first == self.last else f"{self.first}..{self.last}"


@dataclass(frozen=True)
class PartitionRow:
    """The KPI of one partition on both sides."""

    partition: str
    source: Decimal | None
    target: Decimal | None
    source_rows: int
    target_rows: int
    status: PartitionStatus

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "partition": self.partition,
            "source": _text(self.source),
            "target": _text(self.target),
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "status": self.status,
        }


@dataclass(frozen=True)
class KeySample:
    """One differing key: its column values (normalised text) and, when changed, the row on each side."""

    key: dict[str, str | None]
    source: dict[str, str | None] | None = None
    target: dict[str, str | None] | None = None
    source_count: int = 0
    target_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        data: dict[str, Any] = {"key": self.key}
        if self.source is not None:
            data["source"] = self.source
        if self.target is not None:
            data["target"] = self.target
        if self.source_count > 1 or self.target_count > 1:
            data["source_count"], data["target_count"] = self.source_count, self.target_count
        return data


@dataclass(frozen=True)
class KeySet:
    """How many keys fell in one category, and a sample of them."""

    count: int = 0
    sample: tuple[KeySample, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {"count": self.count, "sample": [item.to_json() for item in self.sample]}


@dataclass(frozen=True)
class KeyDiff:
    """Keys missing from the target, extra in it, changed, and duplicated (in the differing partitions).

    Attributes:
        complete: False when a row cap stopped the search; counts are then lower bounds.
        note: Why the search stopped early, if it did.
        at_least: When it stopped early: how many keys differ at least (one per differing bucket).
    """

    missing: KeySet = KeySet()
    extra: KeySet = KeySet()
    changed: KeySet = KeySet()
    duplicates: KeySet = KeySet()
    complete: bool = True
    note: str | None = None
    at_least: int = 0

    @property
    def total(self) -> int:
        """Missing + extra + changed keys."""
        return self.missing.count + self.extra.count + self.changed.count

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "missing": self.missing.to_json(),
            "extra": self.extra.to_json(),
            "changed": self.changed.to_json(),
            "duplicates": self.duplicates.to_json(),
            "complete": self.complete,
            "at_least": self.at_least,
            "note": self.note,
        }


@dataclass(frozen=True)
class LayerValue:
    """The KPI in one lineage layer, over the differing partitions (or the whole range when none differ)."""

    name: str
    connection: str
    value: Decimal | None
    rows: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "name": self.name,
            "connection": self.connection,
            "value": _text(self.value),
            "rows": self.rows,
            "error": self.error,
        }


@dataclass(frozen=True)
class Divergence:
    """The first pair of adjacent layers whose KPI differs."""

    upstream: str
    downstream: str
    diff: Decimal | None
    rows_lost: int

    @property
    def text(self) -> str:
        """`s3_raw.policies → ods_policies: 143 rows lost` (or gained, or the value difference)."""
        if self.rows_lost:
            count = abs(self.rows_lost)
            change = f"{count:,} row{'' if count == 1 else 's'} {'lost' if self.rows_lost > 0 else 'gained'}"
        else:
            change = f"value differs by {_text(self.diff)}"
        return f"{self.upstream} → {self.downstream}: {change}"

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "from": self.upstream,
            "to": self.downstream,
            "diff": _text(self.diff),
            "rows_lost": self.rows_lost,
            "text": self.text,
        }


@dataclass(frozen=True)
class Hint:
    """A likely cause and how to check or fix it."""

    kind: str
    text: str
    sql: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {"kind": self.kind, "text": self.text, "sql": self.sql}


@dataclass(frozen=True)
class Backfill:
    """A concrete way to repair the differing partitions: SQL to run, or a pipeline re-run."""

    kind: Literal["sql", "rerun"]
    text: str
    sql: str | None = None
    pipeline: str | None = None
    state_machine_arn: str | None = None
    input: str | None = None
    partition: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "kind": self.kind,
            "text": self.text,
            "sql": self.sql,
            "pipeline": self.pipeline,
            "state_machine_arn": self.state_machine_arn,
            "input": self.input,
            "partition": self.partition,
        }


@dataclass
class KpiReport:
    """Everything one reconciliation found; ``to_json`` is the documented, stable `--json` object."""

    kpi: str
    description: str
    aggregate: str
    range: PartitionRange
    source_layer: str
    target_layer: str
    source_value: Decimal | None
    target_value: Decimal | None
    diff: Decimal | None
    relative_diff: Decimal | None
    within_tolerance: bool
    tolerance: dict[str, str | None]
    partitions: list[PartitionRow] = field(default_factory=list)
    partitions_compared: int = 0
    series: list[PartitionRow] = field(default_factory=list)
    keys: KeyDiff | None = None
    layers: list[LayerValue] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    hints: list[Hint] = field(default_factory=list)
    backfill: list[Backfill] = field(default_factory=list)
    queries_run: int = 0
    bytes_fetched: int = 0
    rows_fetched: int = 0
    elapsed_ms: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        """The KPI is outside its tolerance."""
        return not self.within_tolerance

    @property
    def first_divergence(self) -> Divergence | None:
        """The first pair of adjacent layers that disagree (where the gap starts), if any."""
        return self.divergences[0] if self.divergences else None

    @property
    def differing(self) -> list[PartitionRow]:
        """Partitions whose KPI or rows differ, or that one side lacks."""
        return [row for row in self.partitions if row.status != "match"]

    def to_json(self) -> dict[str, Any]:
        """The documented, stable JSON object (decimals as strings, exact)."""
        return {
            "kpi": self.kpi,
            "description": self.description,
            "aggregate": self.aggregate,
            "partition_range": {"from": self.range.first, "to": self.range.last, "grain": self.range.grain},
            "source": {"layer": self.source_layer, "value": _text(self.source_value)},
            "target": {"layer": self.target_layer, "value": _text(self.target_value)},
            "diff": _text(self.diff),
            "relative_diff": _text(self.relative_diff),
            "within_tolerance": self.within_tolerance,
            "tolerance": self.tolerance,
            "partitions_compared": self.partitions_compared,
            "partitions": [row.to_json() for row in self.partitions],
            "series": [row.to_json() for row in self.series],
            "keys": self.keys.to_json() if self.keys is not None else None,
            "layers": [layer.to_json() for layer in self.layers],
            "first_divergent_layer": self.first_divergence.to_json() if self.first_divergence else None,
            "divergent_layers": [item.to_json() for item in self.divergences],
            "hints": [hint.to_json() for hint in self.hints],
            "backfill": [item.to_json() for item in self.backfill],
            "queries_run": self.queries_run,
            "bytes_fetched": self.bytes_fetched,
            "rows_fetched": self.rows_fetched,
            "elapsed_ms": self.elapsed_ms,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class CheckResult:
    """One data-quality check: how many rows violate it and whether that is within its threshold."""

    name: str
    description: str
    connection: str
    violations: int
    threshold: int
    elapsed_ms: int = 0

    @property
    def passed(self) -> bool:
        """Violations are within the threshold."""
        return self.violations <= self.threshold

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return {
            "check": self.name,
            "description": self.description,
            "connection": self.connection,
            "violations": self.violations,
            "threshold": self.threshold,
            "passed": self.passed,
            "elapsed_ms": self.elapsed_ms,
        }

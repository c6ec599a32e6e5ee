"""Find missing, extra and changed keys by bucket checksums computed in each database, refined where they differ."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.kpi.databases import RowCapError
from bot.kpi.model import KeyDiff, KeySample, KeySet, Progress, no_progress
from bot.kpi.queries import LayerSql

BUCKET_ROW_BYTES = 30  # a bucket's (number, rows, checksum) on the wire, roughly
LEAF_ROW_BYTES = 40  # a key's (hash, rows, checksum), roughly
FIRST_LEVEL_ROWS = 256  # rows per bucket in the first pass, at most
MAX_BUCKETS = 1 << 16  # buckets per pass and side, at most
MAX_LEVELS = 6
PASS_BYTES = 50_000  # what one more round trip is worth in bytes (about 4 ms at 100 Mbit/s)
SCAN_BYTES_PER_ROW = 10  # what re-hashing one row in another pass is worth in bytes (about 0.8 µs at 100 Mbit/s)

T = TypeVar("T")
Fetch = Callable[[str, dict[str, Any], int | None], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Side:
    """One side of the comparison: how to build its statements and how to run them.

    Attributes:
        sql: Statement builder for the side's layer.
        fetch: Runs a statement with parameters (and an optional row cap) on the side's connection.
        params: The range and partition parameters every statement takes.
        row_budget: Rows this side may still fetch in this run.
    """

    sql: LayerSql
    fetch: Fetch
    params: dict[str, Any]
    row_budget: int


@dataclass(frozen=True)
class _Leaf:
    rows: int
    checksum: int


def on_both(source: T, target: T, job: Callable[[T], Any]) -> tuple[Any, Any]:
    """Run ``job`` on both sides at once (each side is its own database) and return both results."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        left, right = pool.submit(job, source), pool.submit(job, target)
        return left.result(), right.result()


def _next_size(rows_in_differing: float, size: float, differing_fraction: float, scanned_rows: int) -> float:
    """The bucket size for the next pass (``size`` itself: fetch the keys now) that costs least.

    The cost counts bytes, plus a round trip and a re-scan of the partitions per extra pass, with the
    density of differences estimated from the share of buckets that differed in the last pass.
    """
    density = -math.log(max(1e-9, 1 - differing_fraction)) / size if differing_fraction < 1 else 4 / size
    best, best_cost = size, rows_in_differing * LEAF_ROW_BYTES
    candidate = size / 2
    while candidate >= 1:
        cost = PASS_BYTES + scanned_rows * SCAN_BYTES_PER_ROW + rows_in_differing / candidate * BUCKET_ROW_BYTES
        cost += rows_in_differing * (1 - (1 - min(density, 1.0)) ** candidate) * LEAF_ROW_BYTES
        if cost < best_cost:
            best, best_cost = candidate, cost
        candidate /= 2
    return best


def _leaf_rows(buckets: int, size: float) -> float:
    """Keys expected back when fetching ``buckets`` buckets of ``size`` rows (with room for uneven ones)."""
    return buckets * size * 1.5 + 10


class KeyFunnel:
    """Compares two layers key by key without moving their rows: bucket checksums first, rows last.

    Args:
        source: The source side.
        target: The target side.
        sample_size: Keys shown per category.
        progress: Receives a line per pass.
    """

    def __init__(self, source: Side, target: Side, *, sample_size: int = 10, progress: Progress = no_progress):
        self.source = source
        self.target = target
        self.sample_size = sample_size
        self.progress = progress
        self._budget = {id(source): source.row_budget, id(target): target.row_budget}

    def _run(self, side: Side, statement: str, params: dict[str, Any], expected: float) -> list[tuple[Any, ...]]:
        budget = self._budget[id(side)]
        if expected > budget:
            raise RowCapError(f"the next pass needs about {int(expected):,} rows, over the row cap")
        rows = side.fetch(statement, {**side.params, **params}, budget)
        self._budget[id(side)] = budget - len(rows)
        return rows

    def compare(self, rows_estimate: int, least_differences: int = 1) -> KeyDiff:
        """Find the differing keys among about ``rows_estimate`` rows per side.

        Args:
            rows_estimate: Rows per side in the partitions compared.
            least_differences: A lower bound on differing keys (e.g. one per differing partition); it sizes
                the first pass's buckets (sqrt of rows per difference, scaled by what a bucket and a key cost).
        """
        per_difference = rows_estimate / max(1, least_differences)
        first_size = min(FIRST_LEVEL_ROWS, max(4.0, math.sqrt(per_difference * BUCKET_ROW_BYTES / LEAF_ROW_BYTES)))
        modulus = max(1, min(MAX_BUCKETS, math.ceil(rows_estimate / first_size)))
        size = rows_estimate / modulus
        parents: list[int] | None = None
        parent_modulus: int | None = None
        at_least = 0
        try:
            for level in range(1, MAX_LEVELS + 1):
                differing = self._differing_buckets(modulus, parent_modulus, parents)
                self.progress(f"keys: pass {level}, {len(differing):,} of {modulus:,} buckets differ")
                if not differing:
                    return KeyDiff()
                at_least = len(differing)  # every differing bucket holds at least one differing key
                examined = modulus if parents is None else len(parents) * (modulus // (parent_modulus or 1))
                rows_in_differing = len(differing) * size
                # with an integer key the next pass hashes only the rows of the differing buckets
                rehashed = int(rows_in_differing) if self.source.sql.integer_key else rows_estimate
                next_size = _next_size(rows_in_differing, size, min(len(differing) / examined, 1.0), rehashed)
                budget = min(self._budget.values())
                if next_size >= size and _leaf_rows(len(differing), size) > budget and size > 2:
                    # fetching the keys now would break the row cap: smaller buckets, so that they fit
                    next_size = max(1.0, min(size / 2, budget / (4 * len(differing))))
                if next_size >= size or level == MAX_LEVELS or size <= 2:
                    return self._leaves(modulus, differing, size)
                factor = max(2, int(size / next_size))
                parents, parent_modulus = differing, modulus
                modulus, size = modulus * factor, size / factor
        except RowCapError as capped:
            return KeyDiff(
                complete=False,
                at_least=at_least,
                note=f"stopped early: {capped}; at least {at_least:,} keys differ; raise max_rows or narrow the range",
            )
        return KeyDiff()  # pragma: no cover - the loop always returns

    def _differing_buckets(self, modulus: int, parent_modulus: int | None, parents: list[int] | None) -> list[int]:
        params: dict[str, Any] = {"parents": parents} if parents is not None else {}
        expected = modulus if parents is None else len(parents) * modulus / (parent_modulus or 1)

        def job(side: Side) -> dict[int, tuple[int, int]]:
            statement = side.sql.buckets(modulus, parent_modulus)
            rows = self._run(side, statement, params, expected)
            return {int(b): (int(n), int(s or 0)) for b, n, s in rows}

        left, right = on_both(self.source, self.target, job)
        return sorted(b for b in set(left) | set(right) if left.get(b) != right.get(b))

    def _leaves(self, modulus: int, buckets: list[int], size: float) -> KeyDiff:
        expected = _leaf_rows(len(buckets), size)

        def job(side: Side) -> dict[int, _Leaf]:
            rows = self._run(side, side.sql.leaves(modulus), {"buckets": buckets}, expected)
            return {int(kh): _Leaf(int(n), int(s or 0)) for kh, n, s in rows}

        self.progress(f"keys: fetching the keys of {len(buckets):,} buckets")
        left, right = on_both(self.source, self.target, job)
        missing = sorted(kh for kh in left if kh not in right)
        extra = sorted(kh for kh in right if kh not in left)
        both = sorted(left.keys() & right.keys())
        duplicates = [kh for kh in both if left[kh].rows != right[kh].rows]
        changed = [kh for kh in both if left[kh].rows == right[kh].rows and left[kh].checksum != right[kh].checksum]
        picked = {
            name: keys[: self.sample_size]
            for name, keys in (("missing", missing), ("extra", extra), ("changed", changed), ("duplicates", duplicates))
        }
        wanted = sorted({kh for keys in picked.values() for kh in keys})
        source_values, target_values = on_both(
            self.source, self.target, lambda side: self._values(side, wanted) if wanted else {}
        )

        def sample(name: str, total: int) -> KeySet:
            samples = []
            for kh in picked[name]:
                samples.append(
                    self._sample(
                        kh,
                        left.get(kh),
                        right.get(kh),
                        source_values,
                        target_values,
                        rows=name in ("changed", "duplicates"),
                    )
                )
            return KeySet(total, tuple(sorted(samples, key=self._order)))

        return KeyDiff(
            missing=sample("missing", len(missing)),
            extra=sample("extra", len(extra)),
            changed=sample("changed", len(changed)),
            duplicates=sample("duplicates", len(duplicates)),
        )

    def _values(self, side: Side, keys: list[int]) -> dict[int, tuple[str | None, ...]]:
        rows = self._run(side, side.sql.values(), {"keys": keys}, len(keys))
        return {int(row[0]): tuple(None if v is None else str(v) for v in row[1:]) for row in rows}

    def _sample(
        self,
        kh: int,
        source_leaf: _Leaf | None,
        target_leaf: _Leaf | None,
        source_values: dict[int, tuple[str | None, ...]],
        target_values: dict[int, tuple[str | None, ...]],
        *,
        rows: bool,
    ) -> KeySample:
        kpi = self.source.sql.kpi
        count = len(kpi.keys)
        mine = source_values.get(kh) if source_leaf else None
        theirs = target_values.get(kh) if target_leaf else None
        known = mine or theirs or (str(kh),) * count
        return KeySample(
            key=dict(zip(kpi.keys, known[:count], strict=True)),
            source=dict(zip(kpi.compared_columns, mine[count:], strict=True)) if rows and mine else None,
            target=dict(zip(kpi.compared_columns, theirs[count:], strict=True)) if rows and theirs else None,
            source_count=source_leaf.rows if source_leaf else 0,
            target_count=target_leaf.rows if target_leaf else 0,
        )

    def _order(self, sample: KeySample) -> tuple[Any, ...]:
        kpi = self.source.sql.kpi
        return tuple(
            (0, int(value), "")
            if kpi.column_type(key) == "integer" and value is not None and value.lstrip("-").isdigit()
            else (1, 0, str(value))
            for key, value in sample.key.items()
        )

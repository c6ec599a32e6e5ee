"""The statements the funnel sends to one lineage layer, written in that layer's SQL dialect."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.kpi.definitions import AGGREGATES, KpiConfig, LayerConfig
from bot.kpi.dialects import KEY_HASH_DIGITS, ROW_HASH_DIGITS, SqlDialect

_STRING_LITERAL = re.compile(r"('(?:[^']|'')*')")
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_$]*\b")


def map_identifiers(sql: str, layer: LayerConfig, quote: Callable[[str], str]) -> str:
    """Rewrite logical column names in a config SQL fragment to the layer's names (string literals untouched)."""
    if not layer.columns:
        return sql
    parts = _STRING_LITERAL.split(sql)
    for index in range(0, len(parts), 2):
        parts[index] = _WORD.sub(
            lambda m: quote(layer.columns[m.group(0)]) if m.group(0) in layer.columns else m.group(0), parts[index]
        )
    return "".join(parts)


class LayerSql:
    """Builds the funnel's statements for one layer of a KPI.

    Every statement filters ``:lo <= partition < :hi`` (bound values); statements limited to some
    partitions take them as the expanding parameter ``:parts`` (unless ``partition_list`` is off: every
    partition of the range is wanted, and formatting each row's label to test it would only cost time);
    bucket numbers are internal integers.

    Args:
        kpi: The KPI.
        layer: The layer.
        dialect: The layer's SQL dialect.
        quote: Quotes an identifier for the layer's engine (only when it needs quoting).
    """

    def __init__(self, kpi: KpiConfig, layer: LayerConfig, dialect: SqlDialect, quote: Callable[[str], str]) -> None:
        self.kpi = kpi
        self.layer = layer
        self.dialect = dialect
        self._quote = quote
        self.partition_list = True

    def column(self, logical: str) -> str:
        """The qualified column reference of a logical column."""
        return f"t.{self._quote(self.layer.column(logical))}"

    @property
    def relation(self) -> str:
        """The layer's table or query, aliased ``t``."""
        if self.layer.table is not None:
            return ".".join(self._quote(part) for part in self.layer.table.split(".")) + " t"
        return f"({self.layer.sql}) t"

    @property
    def label(self) -> str:
        """The partition label expression."""
        return self.dialect.partition_label(self.column(self.kpi.partition.column), self.kpi.partition.grain)

    @property
    def by_day(self) -> bool:
        """Partitions are whole days of a DATE column, listed as dates (``:part_days``) rather than labels.

        Not on Oracle, whose DATE carries a time of day.
        """
        return self.kpi.partition.grain == "day" and self.kpi.partition.type == "date" and self.dialect.name != "oracle"

    def _filters(self) -> list[str]:
        return [
            f"({map_identifiers(condition, self.layer, self._quote)})"
            for condition in (self.kpi.filters, self.layer.filters)
            if condition
        ]

    def where(self, *, partitions: bool = False) -> str:
        """The range condition, the KPI's and layer's filters, and optionally the partition list."""
        partition = self.column(self.kpi.partition.column)
        conditions = [f"{partition} >= :lo", f"{partition} < :hi", *self._filters()]
        if partitions and self.partition_list:
            # whole days of a date column: compare the column itself (indexes, Redshift zone maps), not its label
            by_day = self.by_day
            conditions.append(f"{partition} IN :part_days" if by_day else f"{self.label} IN :parts")
        return " AND ".join(conditions)

    @property
    def aggregate(self) -> str:
        """The KPI's aggregate in this layer."""
        measured = self.column(self.kpi.column) if self.kpi.column else "*"
        if self.kpi.aggregate == "count":
            return "COUNT(*)" if self.kpi.column is None else f"COUNT({measured})"
        if self.kpi.aggregate == "count_distinct":
            return f"COUNT(DISTINCT {measured})"
        if self.kpi.aggregate in AGGREGATES:
            return f"{self.kpi.aggregate.upper()}({measured})"
        return map_identifiers(self.kpi.aggregate, self.layer, self._quote)

    @property
    def decomposable(self) -> bool:
        """The total can be computed from per-partition values (count, sum, min, max)."""
        return self.kpi.aggregate in ("count", "sum", "min", "max")

    def normalised(self, logical: str) -> str:
        """The normalised text of a logical column."""
        return self.dialect.normalise(self.column(logical), self.kpi.column_type(logical), self.kpi.scale)

    @property
    def integer_key(self) -> bool:
        """The key is one integer column: it is its own hash, so filtering by bucket needs no md5."""
        return len(self.kpi.keys) == 1 and self.kpi.column_type(self.kpi.keys[0]) == "integer"

    @property
    def key_hash(self) -> str:
        """A bigint that identifies the key: the key itself for a single integer key, else 60 bits of md5."""
        keys = self.kpi.keys
        if self.integer_key:
            return self.dialect.as_bigint(self.column(keys[0]))
        encoded = self.dialect.concat(*(self.dialect.encode(self.normalised(key)) for key in keys))
        return self.dialect.hash_int(encoded, KEY_HASH_DIGITS)

    @property
    def row_hash(self) -> str:
        """32 bits of md5 over the encoded key and compared columns."""
        columns = list(self.kpi.keys) + list(self.kpi.compared_columns)
        encoded = self.dialect.concat(*(self.dialect.encode(self.normalised(column)) for column in columns))
        return self.dialect.hash_int(encoded, ROW_HASH_DIGITS)

    def partition_breakdown(self, *, checksum: bool) -> str:
        """Per partition: label, rows, KPI value, NULLs in the measured column, and a row checksum."""
        measured = self.column(self.kpi.column) if self.kpi.column else None
        nulls = self.dialect.count_if_null(measured) if measured else "0"
        rows_sum = f"SUM({self.row_hash})" if checksum else "0"
        return (
            f"SELECT {self.label} AS p, COUNT(*) AS n, {self.aggregate} AS v, {nulls} AS z, {rows_sum} AS h "
            f"FROM {self.relation} WHERE {self.where()} GROUP BY {self.label}"
        )

    def total(self, *, partitions: bool) -> str:
        """The KPI value and row count over the range (or the listed partitions)."""
        condition = self.where(partitions=partitions)
        return f"SELECT {self.aggregate} AS v, COUNT(*) AS n FROM {self.relation} WHERE {condition}"

    def by_partition(self) -> str:
        """KPI value and rows per listed partition (lineage)."""
        return (
            f"SELECT {self.label} AS p, {self.aggregate} AS v, COUNT(*) AS n FROM {self.relation} "
            f"WHERE {self.where(partitions=True)} GROUP BY {self.label}"
        )

    def latest_before(self) -> str:
        """The label of the latest partition that starts before ``:before``."""
        partition = self.column(self.kpi.partition.column)
        condition = " AND ".join([f"{partition} < :before", *self._filters()])
        return f"SELECT MAX({self.label}) FROM {self.relation} WHERE {condition}"

    def _hashed(self, *, extra: str = "") -> str:
        return (
            f"SELECT {self.key_hash} AS kh, {self.row_hash} AS rh{extra} FROM {self.relation} "
            f"WHERE {self.where(partitions=True)}"
        )

    def buckets(self, modulus: int, parent_modulus: int | None) -> str:
        """Rows and checksum per key bucket (``kh mod modulus``), within parent buckets ``:parents`` if given."""
        bucket = self.dialect.modulo("x.kh", modulus)
        parent = f" WHERE {self.dialect.modulo('x.kh', parent_modulus)} IN :parents" if parent_modulus else ""
        return (
            f"SELECT {bucket} AS b, COUNT(*) AS n, SUM(x.rh) AS s FROM ({self._hashed()}) x{parent} GROUP BY {bucket}"
        )

    def leaves(self, modulus: int) -> str:
        """Per key in the buckets ``:buckets``: its hash, rows and checksum (no values: those come for samples)."""
        bucket = self.dialect.modulo("x.kh", modulus)
        return (
            f"SELECT x.kh, COUNT(*) AS n, SUM(x.rh) AS s FROM ({self._hashed()}) x "
            f"WHERE {bucket} IN :buckets GROUP BY x.kh"
        )

    def values(self) -> str:
        """The normalised key and compared columns of the keys whose hashes are ``:keys``."""
        columns = list(self.kpi.keys) + list(self.kpi.compared_columns)
        extra = "".join(f", {self.normalised(column)} AS c{i}" for i, column in enumerate(columns))
        values = ", ".join(f"MIN(x.c{i})" for i in range(len(columns)))
        return f"SELECT x.kh, {values} FROM ({self._hashed(extra=extra)}) x WHERE x.kh IN :keys GROUP BY x.kh"

    def change_max(self) -> str:
        """The latest change timestamp (normalised) in the listed partitions."""
        assert self.kpi.change_column is not None
        latest = self.dialect.normalise(self.column(self.kpi.change_column), "timestamp", 0)
        return f"SELECT MAX({latest}) FROM {self.relation} WHERE {self.where(partitions=True)}"

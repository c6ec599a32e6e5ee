"""KPI, connection and check definitions as etl-doctor.yml declares them (validated, no database code)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Grain = Literal["hour", "day", "month", "year"]
ColumnType = Literal["text", "integer", "decimal", "date", "timestamp"]
Aggregate = Literal["count", "sum", "count_distinct", "min", "max"]
AGGREGATES: tuple[str, ...] = ("count", "sum", "count_distinct", "min", "max")

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,79}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$")
TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,127}(\.[A-Za-z_][A-Za-z0-9_$]{0,127}){0,2}$")
_URL = re.compile(r"^[a-z][a-z0-9+_]*://")
_CHANNEL = re.compile(r"^(#[a-z0-9_-]{1,80}|[CGD][A-Z0-9]{2,})$")


def _check_identifier(value: str, what: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} must be a plain column name (letters, digits, '_', '$')")
    return value


class ConnectionConfig(BaseModel):
    """A database etl-doctor reads KPIs from (read-only, with a statement timeout and a row cap)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr = Field(
        description="SQLAlchemy URL; `${VAR}` is replaced from the environment (keep passwords there)."
    )
    read_only: bool = Field(True, description="Open read-only sessions where the database supports them.")
    statement_timeout_seconds: int = Field(120, ge=1, le=86400, description="Cancel any one query after this.")
    connect_timeout_seconds: int = Field(
        15, ge=1, le=600, description="Give up on a database that does not answer a connection within this."
    )
    max_rows: int = Field(200_000, ge=100, description="Cap on rows fetched from this database per run.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        if not _URL.match(value.get_secret_value()):
            raise ValueError("must be a SQLAlchemy URL such as postgresql+psycopg://user:${PASSWORD}@host/db")
        return value


class Tolerance(BaseModel):
    """How far target may be from source and still count as equal (either bound passing is enough)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    absolute: Decimal | None = Field(None, ge=0, description="Largest allowed |target - source|.")
    relative: Decimal | None = Field(
        None, ge=0, description="Largest allowed |target - source| / |source| (0.001 = 0.1%)."
    )


class PartitionConfig(BaseModel):
    """The column a KPI is partitioned by, and the grain of a partition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description="Date or timestamp column (logical name).")
    grain: Grain = Field("day", description="hour, day, month or year.")
    type: Literal["date", "timestamp"] = Field("date", description="date or timestamp.")

    _check = field_validator("column")(lambda value: _check_identifier(value, "partition.column"))


class GlueLocation(BaseModel):
    """Where a layer's partitions live in the Glue Data Catalog and S3 (for the late-data hint)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str = Field(description="Glue database.")
    table: str = Field(description="Glue table.")
    s3_prefix: str | None = Field(
        None, description="S3 prefix of one partition, `{partition}` replaced, e.g. s3://raw/policies/dt={partition}/."
    )
    partition_key: str = Field("dt", description="Name of the partition key in the catalog and in ADD PARTITION.")

    @field_validator("s3_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or "{partition}" not in value):
            raise ValueError("must start with s3:// and contain {partition}")
        return value


class LayerConfig(BaseModel):
    """One step of a KPI's lineage: where the data sits and how its columns are named there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Layer name shown in answers, e.g. `ods_policies`.")
    connection: str = Field(description="A name under `connections`.")
    table: str | None = Field(None, description="Table (schema.table) holding the layer; or give `sql`.")
    sql: str | None = Field(None, description="A SELECT whose result is the layer (instead of `table`).")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Logical column name -> this layer's column name, where they differ."
    )
    filters: str | None = Field(None, description="Extra SQL condition for this layer only.")
    glue: GlueLocation | None = Field(None, description="Glue table of an S3 layer (partition presence hint).")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"layer name {value!r} must be 1-80 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str | None) -> str | None:
        if value is not None and not TABLE.match(value):
            raise ValueError(f"table {value!r} must be [catalog.][schema.]table with plain names")
        return value

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: dict[str, str]) -> dict[str, str]:
        for logical, physical in value.items():
            _check_identifier(logical, "columns key")
            _check_identifier(physical, "column")
        return value

    @model_validator(mode="after")
    def _table_or_sql(self) -> LayerConfig:
        if (self.table is None) == (self.sql is None):
            raise ValueError(f"layer {self.name!r}: give exactly one of table or sql")
        return self

    def column(self, logical: str) -> str:
        """This layer's name for a logical column."""
        return self.columns.get(logical, logical)


class KpiConfig(BaseModel):
    """A KPI reconciled between the first layer (source) and the last (target) of its lineage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="What the KPI means, shown in answers.")
    aggregate: str = Field(
        "sum", description="count, sum, count_distinct, min, max, or a SQL aggregate expression over logical columns."
    )
    column: str | None = Field(None, description="Measured column (logical name); not needed for count.")
    keys: tuple[str, ...] = Field(description="Key column(s) identifying a row (logical names).")
    partition: PartitionConfig = Field(description="Partition column and grain.")
    filters: str | None = Field(None, description="SQL condition applied at every layer (logical names).")
    tolerance: Tolerance = Field(default_factory=Tolerance, description="Allowed difference (default: none).")
    types: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Column types for row hashing: text, integer, decimal, date, timestamp "
        "(default: keys text, the measured column decimal).",
    )
    scale: int = Field(6, ge=0, le=18, description="Decimal places decimals are compared at.")
    compare: tuple[str, ...] = Field((), description="More columns compared row by row besides keys and the measure.")
    change_column: str | None = Field(None, description="Change timestamp column for the CDC lag hint.")
    row_checksums: bool = Field(
        True,
        description="Also compare a checksum of every partition's rows, so changes that keep the KPI and the row "
        "count equal are found (one md5 per row); off: only partitions whose KPI or count differ are searched.",
    )
    layers: tuple[LayerConfig, ...] = Field(description="Lineage, source first, target last (at least two).")
    channel: str | None = Field(None, description="Channel for scheduled results (default: default_channel).")
    post: Literal["breach", "always"] = Field("breach", description="Scheduled runs post on breach, or always.")
    pipeline: str | None = Field(None, description="Pipeline that loads the KPI (backfill re-run suggestion).")
    rerun_input: str | None = Field(
        None, description='Execution input for a backfill re-run, `{partition}` replaced, e.g. {"date": "{partition}"}.'
    )
    chart_partitions: int = Field(30, ge=2, le=400, description="Partitions shown in the chart (the last N).")

    @field_validator("keys")
    @classmethod
    def _check_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one key column")
        for key in value:
            _check_identifier(key, "key")
        return value

    @field_validator("column", "change_column")
    @classmethod
    def _check_column(cls, value: str | None) -> str | None:
        return None if value is None else _check_identifier(value, "column")

    @field_validator("compare")
    @classmethod
    def _check_compare(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for column in value:
            _check_identifier(column, "compare column")
        return value

    @field_validator("channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        if value is not None and not _CHANNEL.match(value):
            raise ValueError(f"{value!r} is not a channel (#name or an id like C0123ABC)")
        return value

    @model_validator(mode="after")
    def _check_shape(self) -> KpiConfig:
        if len(self.layers) < 2:
            raise ValueError("layers: name at least the source and the target")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError("layers: layer names must be unique")
        if self.aggregate in AGGREGATES and self.aggregate != "count" and self.column is None:
            raise ValueError(f"aggregate {self.aggregate} needs `column`")
        if self.aggregate not in AGGREGATES and not self.aggregate.strip():
            raise ValueError("aggregate must be count, sum, count_distinct, min, max or an SQL expression")
        return self

    def column_type(self, column: str) -> ColumnType:
        """How a logical column is normalised before hashing."""
        if column in self.types:
            return self.types[column]
        if column == self.column:
            return "decimal"
        if column == self.partition.column:
            return self.partition.type
        return "text"

    @property
    def compared_columns(self) -> tuple[str, ...]:
        """Non-key columns compared row by row (measure first)."""
        columns = [self.column] if self.column and self.column not in self.keys else []
        columns += [c for c in self.compare if c not in columns and c not in self.keys]
        return tuple(columns)


class CheckConfig(BaseModel):
    """A data-quality assertion: a query counting violating rows, and how many are allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="What the check guards against.")
    connection: str = Field(description="A name under `connections`.")
    sql: str = Field(description="SELECT returning one number: the count of violating rows.")
    threshold: int = Field(0, ge=0, description="Violations allowed before the check fails.")
    channel: str | None = Field(None, description="Channel for scheduled results (default: default_channel).")

    @field_validator("sql")
    @classmethod
    def _check_sql(cls, value: str) -> str:
        if not re.match(r"^\s*(select|with)\b", value, re.IGNORECASE):
            raise ValueError("must be a SELECT (or WITH … SELECT) returning the count of violating rows")
        return value

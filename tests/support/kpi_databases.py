"""KPI test databases: one Python description of a table and its rows, written to SQLite, PostgreSQL, MariaDB
or the Redshift path (PostgreSQL behind redshift-connector and the loopback proxy), plus injected differences.

A `TableSpec` names the columns by logical kind (text, integer, decimal, float, date, timestamp); each dialect
gets its own DDL for a kind (overridable per column, e.g. SQLite `REAL` against PostgreSQL `NUMERIC(12,2)`), and
values are converted the way that dialect's applications store them (SQLite: ISO text for dates and timestamps).
Injections (`Delete`, `Add`, `Update`, `Duplicate`) turn the source rows into the target rows in Python, so each
test states its differences once and the expected answers follow from them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

Dialect = Literal["sqlite", "postgresql", "mariadb", "redshift"]
Kind = Literal["text", "integer", "decimal", "float", "date", "timestamp"]
Row = dict[str, Any]

DEFAULT_DDL: dict[str, dict[str, str]] = {
    "text": {"sqlite": "TEXT", "postgresql": "VARCHAR(100)", "mariadb": "VARCHAR(100)", "redshift": "VARCHAR(100)"},
    "integer": {"sqlite": "INTEGER", "postgresql": "INTEGER", "mariadb": "INT", "redshift": "INTEGER"},
    "decimal": {
        "sqlite": "NUMERIC(12,2)",
        "postgresql": "NUMERIC(12,2)",
        "mariadb": "DECIMAL(12,2)",
        "redshift": "NUMERIC(12,2)",
    },
    "float": {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION", "mariadb": "DOUBLE", "redshift": "DOUBLE PRECISION"},
    "date": {"sqlite": "DATE", "postgresql": "DATE", "mariadb": "DATE", "redshift": "DATE"},
    "timestamp": {
        "sqlite": "TIMESTAMP",
        "postgresql": "TIMESTAMP(6)",
        "mariadb": "DATETIME(6)",
        "redshift": "TIMESTAMP",
    },
}

# Redshift's STRTOL(num_string, base) for PostgreSQL: optional leading blanks, one sign, an optional 0x for base
# 16, then digits of the base; '' gives 0, NULL gives NULL, a result outside BIGINT raises (as on Redshift).
# Base 16 with up to 15 hex digits (what the engine sends) takes the fast bit-string path.
STRTOL_SQL = r"""
CREATE FUNCTION strtol(num_string text, base integer) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    s text := ltrim(num_string, E' \t\n\r\f\v');
    negative boolean := false;
    result bigint := 0;
    digit integer;
    i integer;
BEGIN
    IF base < 2 OR base > 36 THEN
        RAISE EXCEPTION 'strtol: base % is not between 2 and 36', base;
    END IF;
    IF left(s, 1) IN ('+', '-') THEN
        negative := left(s, 1) = '-';
        s := substr(s, 2);
    END IF;
    IF base = 16 AND lower(left(s, 2)) = '0x' THEN
        s := substr(s, 3);
    END IF;
    IF s = '' THEN  -- (PostgreSQL text cannot hold the NUL that Redshift also reads as 0)
        RETURN 0;
    END IF;
    IF base = 16 AND length(s) <= 15 AND s ~ '^[0-9A-Fa-f]+$' THEN
        result := ('x' || lpad(s, 16, '0'))::bit(64)::bigint;
    ELSE
        FOR i IN 1..length(s) LOOP
            digit := strpos('0123456789abcdefghijklmnopqrstuvwxyz', lower(substr(s, i, 1))) - 1;
            IF digit < 0 OR digit >= base THEN
                RAISE EXCEPTION 'strtol: % is not a base-% number', quote_literal(num_string), base;
            END IF;
            result := result * base + digit;
        END LOOP;
    END IF;
    RETURN CASE WHEN negative THEN -result ELSE result END;
END
$$
"""


# ---------------------------------------------------------------- table descriptions


@dataclass(frozen=True)
class Column:
    """A column by logical kind; ``ddl`` overrides the SQL type per dialect."""

    name: str
    kind: Kind
    ddl: Mapping[str, str] = field(default_factory=dict)

    def sql_type(self, dialect: Dialect) -> str:
        return self.ddl.get(dialect, DEFAULT_DDL[self.kind][dialect])


@dataclass(frozen=True)
class TableSpec:
    """A table: name, columns and the key columns (used by the injections to find rows)."""

    name: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    def with_ddl(self, name: str, kind: Kind | None = None, **ddl: str) -> TableSpec:
        """The same table with one column's kind and/or per-dialect DDL changed (e.g. for the target only)."""
        columns = tuple(
            replace(c, kind=kind or c.kind, ddl={**c.ddl, **ddl}) if c.name == name else c for c in self.columns
        )
        return replace(self, columns=columns)

    def key_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.keys)


# ---------------------------------------------------------------- injected differences


@dataclass(frozen=True)
class Delete:
    """Remove the rows with these keys (each key a tuple of key-column values), or every row a predicate picks."""

    keys: tuple[tuple[Any, ...], ...] = ()
    where: Callable[[Row], bool] | None = None

    def apply(self, spec: TableSpec, rows: list[Row]) -> list[Row]:
        wanted = set(self.keys)
        return [r for r in rows if spec.key_of(r) not in wanted and not (self.where and self.where(r))]


@dataclass(frozen=True)
class Add:
    """Append rows."""

    rows: tuple[Row, ...]

    def apply(self, spec: TableSpec, rows: list[Row]) -> list[Row]:
        return [*rows, *(dict(r) for r in self.rows)]


@dataclass(frozen=True)
class Update:
    """Change columns of the rows with these keys: ``changes`` maps a column to a value or to f(old value)."""

    keys: tuple[tuple[Any, ...], ...]
    changes: Mapping[str, Any]

    def apply(self, spec: TableSpec, rows: list[Row]) -> list[Row]:
        wanted = set(self.keys)
        found = {spec.key_of(r) for r in rows} & wanted
        if found != wanted:
            raise ValueError(f"Update: keys not in the data: {sorted(wanted - found, key=repr)}")
        out = []
        for row in rows:
            if spec.key_of(row) in wanted:
                row = dict(row)
                for column, change in self.changes.items():
                    row[column] = change(row[column]) if callable(change) else change
            out.append(row)
        return out


@dataclass(frozen=True)
class Map:
    """Change every row with a function (e.g. round every measure to one decimal place)."""

    function: Callable[[Row], Row]

    def apply(self, spec: TableSpec, rows: list[Row]) -> list[Row]:
        return [self.function(dict(r)) for r in rows]


@dataclass(frozen=True)
class Duplicate:
    """Insert a second, identical copy of the rows with these keys."""

    keys: tuple[tuple[Any, ...], ...]

    def apply(self, spec: TableSpec, rows: list[Row]) -> list[Row]:
        wanted = set(self.keys)
        return [*rows, *(dict(r) for r in rows if spec.key_of(r) in wanted)]


Injection = Delete | Add | Update | Map | Duplicate


def inject(spec: TableSpec, rows: Sequence[Row], injections: Iterable[Injection]) -> list[Row]:
    """The target rows: the source rows with each injected difference applied in order."""
    out = [dict(r) for r in rows]
    for injection in injections:
        out = injection.apply(spec, out)
    return out


# ---------------------------------------------------------------- databases


def _sqlite_value(kind: Kind, value: Any) -> Any:
    """How applications store a value in SQLite: ISO text for dates and timestamps, numbers as numbers."""
    if value is None:
        return None
    if kind == "date":
        return value.isoformat()
    if kind == "timestamp":
        return value.isoformat(sep=" ")  # microseconds only when non-zero, as written by most loaders
    if kind == "decimal":
        return str(value)  # NUMERIC affinity turns '10.50' into REAL 10.5 and '10.00' into INTEGER 10
    if kind == "float":
        return float(value)
    return value


def _server_value(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "decimal" and not isinstance(value, Decimal):
        return Decimal(str(value))
    if kind == "date" and isinstance(value, datetime):
        return value.date()
    return value


@dataclass
class KpiDatabase:
    """One empty database a KPI reads: ``url`` is what etl-doctor connects with, ``setup_url`` what tests write
    through (the same database; for the Redshift path the direct PostgreSQL URL instead of the proxy's)."""

    dialect: Dialect
    url: str
    setup_url: str
    _engine: sa.Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.setup_url, poolclass=sa.NullPool)
        return self._engine

    def create(self, spec: TableSpec, rows: Sequence[Row]) -> None:
        """Create ``spec`` and insert ``rows`` in one transaction."""
        columns = ", ".join(f"{c.name} {c.sql_type(self.dialect)}" for c in spec.columns)
        suffix = " ENGINE=InnoDB" if self.dialect == "mariadb" else ""
        convert = _sqlite_value if self.dialect == "sqlite" else _server_value
        names = [c.name for c in spec.columns]
        insert = sa.text(f"INSERT INTO {spec.name} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})")
        values = [{c.name: convert(c.kind, row.get(c.name)) for c in spec.columns} for row in rows]
        with self.engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {spec.name} ({columns}){suffix}"))
            if values:
                connection.execute(insert, values)

    def execute(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run one statement through the setup connection; rows for a SELECT."""
        with self.engine.begin() as connection:
            result = connection.execute(sa.text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []

    def count(self, table: str) -> int | None:
        """Rows in ``table``, or None when it does not exist."""
        if not sa.inspect(self.engine).has_table(table):
            return None
        return int(self.execute(f"SELECT COUNT(*) FROM {table}")[0][0])

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def sqlite_database(path: Any) -> KpiDatabase:
    url = f"sqlite:///{path}"
    return KpiDatabase("sqlite", url, url)


def psycopg_url(url: str) -> str:
    """A libpq-style postgresql:// URL as SQLAlchemy's psycopg (3) URL."""
    return str(make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False))


def postgres_database(url: str) -> KpiDatabase:
    sa_url = psycopg_url(url)
    return KpiDatabase("postgresql", sa_url, sa_url)


# ---------------------------------------------------------------- Redshift path


REDSHIFT_QUERY = "ssl=false"  # what the connection URL needs so redshift-connector skips TLS to the loopback proxy


def redshift_url(database_url: str, proxy_port: int) -> str:
    """The `redshift+redshift_connector://` URL of a PostgreSQL database reached through the loopback proxy."""
    url = make_url(database_url)
    user = url.username or "postgres"
    return f"redshift+redshift_connector://{user}@127.0.0.1:{proxy_port}/{url.database}?{REDSHIFT_QUERY}"


def install_redshift_stand_ins(database_url: str) -> None:
    """Create PostgreSQL stand-ins for the Redshift-only functions the engine uses (STRTOL)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(STRTOL_SQL.encode())  # bytes: no client-side placeholder parsing of the '%' in it


def redshift_database(database_url: str, proxy_port: int) -> KpiDatabase:
    """A fresh PostgreSQL database seen as Redshift: the engine goes through redshift-connector and the proxy,
    the tests write directly."""
    install_redshift_stand_ins(database_url)
    return KpiDatabase("redshift", redshift_url(database_url, proxy_port), psycopg_url(database_url))


# ---------------------------------------------------------------- MariaDB


DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/"
# A case- and accent-insensitive collation, as MySQL/MariaDB sources commonly have: 'a' = 'A' and 'e' = 'é'.
MARIADB_CHARSET = "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"


def check_mariadb(server_url: str) -> str | None:
    """None if the MariaDB/MySQL server answers, else why not."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return "pymysql is not installed (pip install -e '.[dev]')"
    engine = sa.create_engine(server_url, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        url = make_url(server_url)
        return f"{url.host}:{url.port or 3306}: {str(exc.orig).strip().splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def create_mariadb_database(server_url: str) -> str:
    """Create a uniquely named database and return its SQLAlchemy URL."""
    name = f"etl_doctor_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name} {MARIADB_CHARSET}")
    finally:
        engine.dispose()
    url = make_url(server_url).set(database=name)
    url = url.update_query_dict({"charset": "utf8mb4"})
    return url.render_as_string(hide_password=False)


def drop_mariadb_database(server_url: str, database_url: str) -> None:
    """Drop a database made by `create_mariadb_database`, first ending sessions still using it."""
    name = make_url(database_url).database
    engine = sa.create_engine(server_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            sessions = connection.execute(
                sa.text("SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"),
                {"db": name},
            ).scalars()
            for session in list(sessions):
                with contextlib.suppress(sa.exc.DBAPIError):
                    connection.exec_driver_sql(f"KILL {int(session)}")
            connection.exec_driver_sql("SET SESSION lock_wait_timeout = 30")
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        engine.dispose()


def mariadb_database(url: str) -> KpiDatabase:
    return KpiDatabase("mariadb", url, url)

"""Connections KPIs read from: read-only sessions, statement timeouts, SQLite hash functions, counted queries."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import TextClause

from bot.kpi.definitions import ConnectionConfig
from bot.kpi.dialects import SqlDialect, dialect_for
from bot.kpi.model import KpiError
from bot.redact import redact

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


class RowCapError(KpiError):
    """A run would fetch more rows from a connection than its `max_rows` allows."""


@dataclass
class QueryStats:
    """What one run cost: statements sent, rows and (text-form) bytes fetched; shared by threads."""

    queries: int = 0
    rows: int = 0
    bytes: int = 0
    rows_by_connection: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, connection: str, rows: Sequence[Sequence[Any]]) -> None:
        """Count one statement and its result."""
        size = sum(4 + len(str(cell)) for row in rows for cell in row)
        with self._lock:
            self.queries += 1
            self.rows += len(rows)
            self.bytes += size
            self.rows_by_connection[connection] = self.rows_by_connection.get(connection, 0) + len(rows)


def _sqlite_md5(value: object) -> str | None:
    return None if value is None else hashlib.md5(str(value).encode("utf-8"), usedforsecurity=False).hexdigest()


def _sqlite_hash(value: object, digits: int) -> int | None:
    digest = _sqlite_md5(value)
    return None if digest is None else int(digest[: int(digits)], 16)


def _sqlite_decimal(value: object, scale: int) -> str | None:
    if value is None:
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
        rounded = number.quantize(Decimal(1).scaleb(-int(scale)), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return str(value)
    return format(rounded + 0 if rounded else abs(rounded), "f")


def _prepare_sqlite(dbapi_connection: Any, _record: Any, *, read_only: bool) -> None:
    dbapi_connection.create_function("etl_doctor_md5", 1, _sqlite_md5, deterministic=True)
    dbapi_connection.create_function("etl_doctor_hash", 2, _sqlite_hash, deterministic=True)
    dbapi_connection.create_function("etl_doctor_decimal", 2, _sqlite_decimal, deterministic=True)
    if read_only:
        dbapi_connection.execute("PRAGMA query_only = ON")


def _prepare_session(dbapi_connection: Any, _record: Any, *, dialect: str, config: ConnectionConfig) -> None:
    milliseconds = config.statement_timeout_seconds * 1000
    statements: list[str] = []
    if dialect == "mysql":
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT VERSION()")
        mariadb = "mariadb" in str(cursor.fetchone()[0]).lower()
        cursor.close()
        statements.append(
            f"SET SESSION max_statement_time = {config.statement_timeout_seconds}"
            if mariadb
            else f"SET SESSION max_execution_time = {milliseconds}"
        )
        if config.read_only:
            statements.append("SET SESSION TRANSACTION READ ONLY")
    elif dialect == "redshift":
        statements.append(f"SET statement_timeout TO {milliseconds}")
    elif dialect == "oracle":
        dbapi_connection.call_timeout = milliseconds
    if not statements:
        return
    cursor = dbapi_connection.cursor()
    for statement in statements:
        cursor.execute(statement)
    cursor.close()
    if hasattr(dbapi_connection, "commit"):
        dbapi_connection.commit()


def _connect_args(dialect: str, url: str, config: ConnectionConfig) -> dict[str, Any]:
    """Driver arguments: session settings, and a connect timeout so a silent database fails the run fast."""
    driver = url.split("://", 1)[0]
    timeout = config.connect_timeout_seconds
    if dialect == "postgresql" and "+psycopg" in driver:
        options = f"-c statement_timeout={config.statement_timeout_seconds * 1000}"
        if config.read_only:
            options += " -c default_transaction_read_only=on"
        return {"options": options, "connect_timeout": timeout}
    if dialect == "redshift":
        arguments: dict[str, Any] = {"timeout": timeout}
        query = make_url(url).query
        # URL query values are strings; redshift-connector wants a bool for ssl.
        if "ssl" in query:
            arguments["ssl"] = str(query["ssl"]).lower() not in ("false", "0", "no", "off")
        return arguments
    if dialect in ("mysql", "mariadb"):
        # PyMySQL's connect_timeout covers the TCP connect only; the handshake and every read wait read_timeout
        return {"connect_timeout": timeout, "read_timeout": config.statement_timeout_seconds + timeout}
    if dialect == "oracle":
        return {"tcp_connect_timeout": timeout}
    return {}


class Databases:
    """Engines for the project's connections, created on first use and reused.

    Args:
        connections: The project's connections by name.
    """

    def __init__(self, connections: Mapping[str, ConnectionConfig]) -> None:
        self._connections = dict(connections)
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def config(self, name: str) -> ConnectionConfig:
        """A connection's settings."""
        return self._connections[name]

    def engine(self, name: str) -> Engine:
        """The engine of a connection (created once).

        Raises:
            KpiError: The URL's database driver is not installed or the URL is malformed.
        """
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self._create(name)
                self._engines[name] = engine
            return engine

    def _create(self, name: str) -> Engine:
        config = self._connections[name]
        url = config.url.get_secret_value()
        try:
            parsed = make_url(url)
            dialect = parsed.get_backend_name()
            if dialect == "redshift":
                parsed = parsed.difference_update_query(["ssl"])
            # Autocommit: one round trip per statement (no BEGIN/ROLLBACK), read-only still enforced per session.
            engine = create_engine(
                parsed, connect_args=_connect_args(dialect, url, config), isolation_level="AUTOCOMMIT"
            )
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise KpiError(f"connection `{name}`: {_describe(exc)}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", lambda c, r: _prepare_sqlite(c, r, read_only=config.read_only))
        else:
            event.listen(
                engine, "connect", lambda c, r: _prepare_session(c, r, dialect=engine.dialect.name, config=config)
            )
        return engine

    def dialect(self, name: str) -> SqlDialect:
        """The SQL dialect of a connection.

        Raises:
            KpiError: The database is not supported for KPIs.
        """
        try:
            return dialect_for(self.engine(name).dialect.name)
        except ValueError as exc:
            raise KpiError(f"connection `{name}`: {exc}") from None

    def fetch(
        self,
        name: str,
        statement: str | TextClause,
        params: Mapping[str, Any] | None = None,
        *,
        stats: QueryStats,
        max_rows: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one read-only statement and return its rows.

        Args:
            name: The connection.
            statement: SQL text (values bound by name, never formatted in).
            params: Bound values.
            stats: Where the statement and its result are counted.
            max_rows: Fail with RowCapError rather than return more rows than this.

        Raises:
            RowCapError: The result is larger than ``max_rows``.
            KpiError: The database refused or failed (message names the connection, secrets removed).
        """
        clause = text(statement) if isinstance(statement, str) else statement
        named = clause._bindparams
        lists = [key for key, value in (params or {}).items() if isinstance(value, list | tuple) and key in named]
        if lists:
            clause = clause.bindparams(*(bindparam(key, expanding=True) for key in lists))
        try:
            with self.engine(name).connect() as connection:
                result = connection.execute(clause, dict(params or {}))
                if max_rows is None:
                    rows = [tuple(row) for row in result.fetchall()]
                else:
                    rows = [tuple(row) for row in result.fetchmany(max_rows + 1)]
        except SQLAlchemyError as exc:
            stats.add(name, [])
            raise KpiError(f"connection `{name}`: {_describe(exc)}") from None
        stats.add(name, rows)
        if max_rows is not None and len(rows) > max_rows:
            raise RowCapError(f"connection `{name}`: more than {max_rows:,} rows (max_rows)")
        return rows

    def dispose(self) -> None:
        """Close pooled connections."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


def _describe(exc: BaseException) -> str:
    """A database error's first line, with passwords and secrets removed."""
    original = getattr(exc, "orig", None) or exc
    message = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    return redact(_URL_PASSWORD.sub(r"\1***@", message))[:400]

"""The store's engine, transactions and schema management (Alembic)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from bot.errors import UserFacingError
from bot.store.repositories import (
    ActionRequests,
    AlertRepository,
    AuditLog,
    EventReceipts,
    IncidentRepository,
    KpiRunRepository,
    Leases,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class StoreSchemaError(UserFacingError):
    """The database schema is not the one this version of etl-doctor needs."""


@dataclass(frozen=True)
class UnitOfWork:
    """The repositories of one transaction."""

    session: Session
    incidents: IncidentRepository
    alerts: AlertRepository
    audit: AuditLog
    kpi_runs: KpiRunRepository
    event_receipts: EventReceipts
    leases: Leases
    action_requests: ActionRequests


class Store:
    """Owns the engine; hands out transactions with their repositories.

    SQLite runs with WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` transactions so that
    concurrent writers from Bolt's thread pool wait for each other instead of failing.

    Args:
        url: SQLAlchemy URL (``sqlite:///etl-doctor.db``, ``postgresql+psycopg://…``).
    """

    def __init__(self, url: str | URL) -> None:
        self.url = _normalise_url(make_url(url))
        self.engine = _create_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._queue: AbstractContextManager[Any] = threading.RLock() if self.is_sqlite else nullcontext()

    @property
    def display_url(self) -> str:
        """The URL with its password hidden (for logs and messages)."""
        return self.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        """True for a SQLite store."""
        return self.url.get_backend_name() == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """Run a block in one transaction: committed on success, rolled back on error.

        SQLite allows one writer at a time; its busy handler makes waiters sleep and retry, which is unfair
        under load (bench/alert_storm.py measured waits up to 11 s). Threads of this process therefore queue
        on a lock instead, and SQLite's own locking only arbitrates between processes.
        """
        with self._queue, self._sessions() as session, session.begin():
            yield UnitOfWork(
                session=session,
                incidents=IncidentRepository(session),
                alerts=AlertRepository(session),
                audit=AuditLog(session),
                kpi_runs=KpiRunRepository(session),
                event_receipts=EventReceipts(session),
                leases=Leases(session),
                action_requests=ActionRequests(session),
            )

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%"))
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``."""
        from alembic import command

        config = self._alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (``"base"`` empties the schema)."""
        from alembic import command

        config = self._alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)

    def current_revision(self) -> str | None:
        """The revision the database is at (None for an empty database)."""
        from alembic.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest revision this version of etl-doctor ships."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def ensure_schema(self, *, auto_upgrade: bool | None = None) -> None:
        """Make sure the schema is current: upgrade SQLite by itself, ask for `db upgrade` elsewhere.

        Args:
            auto_upgrade: Upgrade when behind; defaults to True for SQLite, False otherwise.

        Raises:
            StoreSchemaError: The schema is behind (and not upgraded) or ahead of this version.
        """
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        if auto_upgrade if auto_upgrade is not None else self.is_sqlite:
            self.upgrade()
            return
        from alembic.script import ScriptDirectory

        known = {script.revision for script in ScriptDirectory.from_config(self._alembic_config()).walk_revisions()}
        if current is not None and current not in known:
            raise StoreSchemaError(
                f"the store at {self.display_url} is at revision {current}, newer than this etl-doctor "
                f"knows (head {head}); upgrade etl-doctor"
            )
        raise StoreSchemaError(
            f"the store at {self.display_url} is at revision {current or '(empty)'}, this etl-doctor needs "
            f"{head}: run `etl-doctor db upgrade`"
        )

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()


def _normalise_url(url: URL) -> URL:
    # Plain postgresql:// means psycopg (v3), the driver etl-doctor ships with; psycopg2 is not a dependency.
    if url.drivername in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql+psycopg")
    return url


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    database = url.database or ""
    in_memory = database in {"", ":memory:"} or database.startswith("file::memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if in_memory:
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine

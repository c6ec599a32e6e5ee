"""SQLAlchemy models: incidents, alerts, audited actions, KPI runs and leases."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.store.types import DecimalString, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A random 32-character hex id (used in button payloads: opaque, unguessable)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (needed by Alembic on SQLite)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Incident(Base):
    """A problem with one fingerprint: a pipeline failing the same way, however many alerts say so."""

    __tablename__ = "incidents"
    __table_args__ = (
        # At most one unresolved incident per fingerprint: concurrent alerts group instead of duplicating.
        Index(
            "uq_incidents_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_incidents_pipeline_last_seen", "pipeline", "last_seen_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    pipeline: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(16), default="error")
    status: Mapped[str] = mapped_column(String(16), default="open")
    error_class: Mapped[str | None] = mapped_column(String(64))
    execution_arn: Mapped[str | None] = mapped_column(String(2048))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    acked_by: Mapped[str | None] = mapped_column(String(32))
    acked_at: Mapped[datetime | None]
    snoozed_by: Mapped[str | None] = mapped_column(String(32))
    snoozed_until: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resolve_key: Mapped[str | None] = mapped_column(String(512), index=True)


class Alert(Base):
    """One received notification (SNS message, EventBridge event…), kept even when not posted."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(256), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(index=True)
    subject: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    channel: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)


class Lease(Base):
    """A named lease one process holds at a time (e.g. the alert dispatcher), expiring if not renewed."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


class ActionRecord(Base):
    """One audited request to act (retry, redrive, ack…) and what came of it. Rows are never changed."""

    __tablename__ = "action_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(2048))
    outcome: Mapped[str] = mapped_column(String(16))
    pipeline: Mapped[str | None] = mapped_column(String(200), index=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    detail: Mapped[str] = mapped_column(Text, default="")
    slack_link: Mapped[str | None] = mapped_column(String(500))


class ActionRequest(Base):
    """A request to act (retry, redrive, dlq replay) from its confirmation to its outcome.

    ``idempotency_key`` is unique: twenty clicks on the same Retry find the same row, and only the one
    that moves it from ``awaiting_confirmation`` (or ``awaiting_approval``) to ``running`` acts.
    """

    __tablename__ = "action_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(512), unique=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(2048))
    pipeline: Mapped[str | None] = mapped_column(String(200))
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"))
    status: Mapped[str] = mapped_column(String(24), index=True)
    requested_by: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime]
    channel: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SlackEventReceipt(Base):
    """An Events API delivery already handled (Slack retries up to 3 times; each event_id runs once)."""

    __tablename__ = "slack_event_receipts"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


class KpiRun(Base):
    """One reconciliation of a KPI between source and warehouse, with its verdict."""

    __tablename__ = "kpi_runs"
    __table_args__ = (Index("ix_kpi_runs_kpi_started", "kpi", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kpi: Mapped[str] = mapped_column(String(200))
    partition_from: Mapped[str | None] = mapped_column(String(64))
    partition_to: Mapped[str | None] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16), default="cli")
    requested_by: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    source_value: Mapped[Decimal | None] = mapped_column(DecimalString())
    target_value: Mapped[Decimal | None] = mapped_column(DecimalString())
    diff: Mapped[Decimal | None] = mapped_column(DecimalString())
    relative_diff: Mapped[Decimal | None] = mapped_column(DecimalString())
    within_tolerance: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)

"""Store an alert before anyone answers 200, and group it into its incident (at once, or by the dispatcher)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.alerts.model import Alert
from bot.alerts.normalize import normalise
from bot.alerts.routing import channel_for, route
from bot.config import ProjectConfig
from bot.store.db import Store, UnitOfWork
from bot.store.models import Alert as AlertRow

logger = logging.getLogger(__name__)

RAW_MAX = 64 * 1024  # characters of the original payload kept with the alert

Outcome = Literal["stored", "duplicate"]


@dataclass(frozen=True)
class IntakeResult:
    """What happened to one delivery.

    Attributes:
        outcome: ``stored`` or ``duplicate`` (a redelivery: nothing changes, nothing is posted).
        alert: The routed alert (None when it was stored raw, to be understood by the dispatcher).
        alert_id: The stored row's id (None for a duplicate).
        incident_id: The incident it opened or joined, if any.
        new_incident: Whether this delivery opened the incident.
        resolved: Incidents this delivery resolved.
        to_post: Whether the dispatcher has something to post for it.
    """

    outcome: Outcome
    alert: Alert | None
    alert_id: int | None = None
    incident_id: str | None = None
    new_incident: bool = False
    resolved: tuple[str, ...] = field(default_factory=tuple)
    to_post: bool = False


def dedupe_key(alert: Alert, raw: str | bytes | dict[str, Any] | None) -> str:
    """The idempotency key: the delivery id (SNS MessageId, EventBridge id), else a hash of the payload.

    Without a payload, the alert itself is hashed.
    """
    if alert.delivery_id:
        return f"delivery:{alert.delivery_id}"[:256]
    if raw is None:
        body = json.dumps(alert.to_json(), sort_keys=True).encode()
    elif isinstance(raw, dict):
        body = json.dumps(raw, sort_keys=True).encode()
    elif isinstance(raw, str):
        body = raw.encode("utf-8", "replace")
    else:
        body = raw
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


class AlertIntake:
    """Turns a normalised alert into stored rows: the alert, its incident, resolutions.

    Args:
        store: The incident store.
        project: etl-doctor.yml (routing, grouping window).
        clock: Returns the current UTC time.
    """

    def __init__(
        self, store: Store, project: ProjectConfig, clock: Callable[[], datetime], *, defer_grouping: bool = False
    ) -> None:
        self._store = store
        self._project = project
        self._clock = clock
        self._defer = defer_grouping

    def accept(self, alert: Alert, raw: str | bytes | dict[str, Any] | None = None) -> IntakeResult:
        """Route and store one alert, and group it (now, or later by :meth:`group` when deferred).

        A second delivery with the same id changes nothing. Deferred grouping keeps the `/sns` answer to
        one INSERT: the dispatcher groups what is pending, in order, before posting it. A fingerprint the
        caller set (``kpi:<name>`` for KPI breaches) is kept, so its repeats group in one thread.
        """
        preset = alert.fingerprint
        alert = route(alert, self._project)
        if preset is not None:
            alert = alert.with_changes(fingerprint=preset)
        now = self._clock()
        channel = channel_for(alert, self._project)
        payload: dict[str, Any] = {"alert": alert.to_json(), "raw": _raw_excerpt(raw), "grouped": not self._defer}
        with self._store.transaction() as uow:
            row = uow.alerts.add(
                dedupe_key=dedupe_key(alert, raw),
                source=alert.source,
                received_at=now,
                subject=alert.subject or alert.title,
                payload=payload,
                channel=channel,
            )
            if row is None:
                return IntakeResult("duplicate", alert)
            if self._defer:
                return IntakeResult("stored", alert, row.id, to_post=True)
            return self._group(uow, row, alert)

    def accept_raw(self, document: dict[str, Any], *, delivery_id: str) -> IntakeResult:
        """Store a verified delivery as it came (one INSERT); the dispatcher understands and groups it later.

        This is what `/sns` does on a long-lived server: its answer waits for nothing but the store.
        """
        if not self._defer:
            return self.accept(normalise(document), document)
        with self._store.transaction() as uow:
            row = uow.alerts.add(
                dedupe_key=f"delivery:{delivery_id}"[:256],
                source="unread",
                received_at=self._clock(),
                subject=str(document.get("Subject") or "")[:500],
                payload={"raw": document, "grouped": False},
            )
        if row is None:
            return IntakeResult("duplicate", None)
        return IntakeResult("stored", None, row.id, to_post=True)

    def group(self, alert_id: int) -> IntakeResult | None:
        """Group a stored alert whose grouping was deferred (None when it was grouped already)."""
        with self._store.transaction() as uow:
            row = uow.alerts.get(alert_id)
            if row is None or row.payload.get("grouped", True):
                return None
            if "alert" in row.payload:
                alert = Alert.from_json(row.payload["alert"])
            else:  # stored raw: understand it now
                alert = route(normalise(row.payload.get("raw") or ""), self._project)
                row.source = alert.source
                row.subject = (alert.subject or alert.title)[:500]
                row.channel = channel_for(alert, self._project)
                row.payload = {**row.payload, "alert": alert.to_json()}
            return self._group(uow, row, alert)

    def _group(self, uow: UnitOfWork, row: AlertRow, alert: Alert) -> IntakeResult:
        at = alert.occurred_at or row.received_at
        window = timedelta(minutes=self._project.alerts.group_window_minutes)
        row.payload = {**row.payload, "grouped": True}
        if alert.status == "failing":
            assert alert.fingerprint is not None  # set by route()
            incident, created = uow.incidents.record_occurrence(
                fingerprint=alert.fingerprint,
                title=alert.title,
                at=at,
                pipeline=alert.pipeline,
                severity=alert.severity,
                execution_arn=alert.resources.get("execution_arn"),
                error_class=alert.category,
                details={"alert": alert.to_json(), "channel": row.channel},
                resolve_key=alert.resolve_key,
                window=window,
            )
            row.incident_id = incident.id
            return IntakeResult("stored", alert, row.id, incident.id, created, to_post=row.channel is not None)
        open_incidents = uow.incidents.open_for_resolve_key(alert.resolve_key) if alert.resolve_key else []
        if alert.status == "resolved":
            by = _resolved_by(alert)
            resolved = tuple(i.id for i in open_incidents if uow.incidents.resolve(i.id, at, by=by))
            row.payload = {**row.payload, "resolves": list(resolved)}
            row.incident_id = resolved[0] if resolved else None
            if not resolved:
                row.status = "recorded"
            return IntakeResult("stored", alert, row.id, row.incident_id, resolved=resolved, to_post=bool(resolved))
        # info: a note in the thread of the incident it concerns, else only recorded
        if open_incidents:
            row.incident_id = open_incidents[0].id
            return IntakeResult("stored", alert, row.id, row.incident_id, to_post=True)
        row.status = "recorded"
        return IntakeResult("stored", alert, row.id)


def _resolved_by(alert: Alert) -> str:
    name = alert.resources.get("execution_name")
    if name:
        return f"execution {name} {alert.details.get('status', 'SUCCEEDED')}"
    if alert.resources.get("alarm_name"):
        return f"alarm {alert.resources['alarm_name']} OK"
    return alert.title


def _raw_excerpt(raw: str | bytes | dict[str, Any] | None) -> Any:
    if raw is None or isinstance(raw, dict):
        return raw
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:RAW_MAX]

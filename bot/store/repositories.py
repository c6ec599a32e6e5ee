"""Repositories: the only code that queries the store's tables."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.models import ActionRecord, ActionRequest, Alert, Incident, KpiRun, Lease, SlackEventReceipt
from bot.store.types import UTCDateTime


class IncidentRepository:
    """Incidents: one open incident per fingerprint, counted occurrences."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, incident_id: str) -> Incident | None:
        """Return the incident with this id, or None."""
        return self._session.get(Incident, incident_id)

    def find_open(self, fingerprint: str) -> Incident | None:
        """Return the unresolved incident with this fingerprint, or None."""
        query = select(Incident).where(Incident.fingerprint == fingerprint, Incident.resolved_at.is_(None))
        return self._session.scalars(query).one_or_none()

    def record_occurrence(
        self,
        *,
        fingerprint: str,
        title: str,
        at: datetime,
        pipeline: str | None = None,
        severity: str = "error",
        execution_arn: str | None = None,
        error_class: str | None = None,
        details: dict[str, Any] | None = None,
        resolve_key: str | None = None,
        window: timedelta | None = None,
    ) -> tuple[Incident, bool]:
        """Open an incident for this fingerprint, or count one more occurrence of the open one.

        Safe under concurrency: a unique partial index allows one open incident per fingerprint, and a
        losing concurrent insert falls back to counting. With ``window``, an open incident last seen
        longer ago than that is closed as ``expired`` and a new one is opened (a failure that comes back
        after a quiet spell gets a new thread).

        Returns:
            The incident and whether it was created by this call.
        """
        existing = self.find_open(fingerprint)
        if existing is not None and window is not None and existing.last_seen_at < at - window:
            self._session.execute(
                update(Incident)
                .where(Incident.id == existing.id, Incident.resolved_at.is_(None))
                .values(resolved_at=at, status="expired")
            )
            existing = None
        if existing is None:
            incident = Incident(
                fingerprint=fingerprint,
                title=title[:500],
                pipeline=pipeline,
                severity=severity,
                execution_arn=execution_arn,
                error_class=error_class,
                first_seen_at=at,
                last_seen_at=at,
                occurrences=1,
                details=details or {},
                resolve_key=resolve_key,
            )
            try:
                with self._session.begin_nested():
                    self._session.add(incident)
            except IntegrityError:
                existing = self.find_open(fingerprint)
                if existing is None:
                    raise
            else:
                return incident, True
        at_value = literal(at, UTCDateTime())
        self._session.execute(
            update(Incident)
            .where(Incident.id == existing.id)
            .values(
                occurrences=Incident.occurrences + 1,
                last_seen_at=case((Incident.last_seen_at < at_value, at_value), else_=Incident.last_seen_at),
            )
        )
        self._session.refresh(existing)
        return existing, False

    def set_slack_thread(self, incident_id: str, channel: str, ts: str) -> None:
        """Remember the Slack message that heads this incident's thread."""
        self._session.execute(
            update(Incident).where(Incident.id == incident_id).values(slack_channel=channel, slack_ts=ts)
        )

    def resolve(self, incident_id: str, at: datetime, *, by: str | None = None) -> bool:
        """Mark an incident resolved (``by``: what resolved it); False if already resolved or unknown."""
        result = self._session.execute(
            update(Incident)
            .where(Incident.id == incident_id, Incident.resolved_at.is_(None))
            .values(resolved_at=at, status="resolved")
        )
        if result.rowcount and by:  # type: ignore[attr-defined]
            self.merge_details(incident_id, {"resolved_by": by})
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_ack(self, incident_id: str, by: str | None, at: datetime | None) -> None:
        """Record who acknowledged the incident (None, None: un-ack)."""
        self._session.execute(update(Incident).where(Incident.id == incident_id).values(acked_by=by, acked_at=at))

    def set_snooze(self, incident_id: str, by: str | None, until: datetime | None) -> None:
        """Snooze the incident's repeats until a time (None, None: un-snooze)."""
        self._session.execute(
            update(Incident).where(Incident.id == incident_id).values(snoozed_by=by, snoozed_until=until)
        )

    def open_for_resolve_key(self, resolve_key: str) -> list[Incident]:
        """Unresolved incidents a resolution with this key closes, oldest first."""
        query = select(Incident).where(Incident.resolve_key == resolve_key, Incident.resolved_at.is_(None))
        return list(self._session.scalars(query.order_by(Incident.first_seen_at)))

    def merge_details(self, incident_id: str, values: dict[str, Any]) -> None:
        """Add or replace keys of an incident's ``details`` (read, merge, write in this transaction)."""
        incident = self._session.get(Incident, incident_id, with_for_update=True)
        if incident is None:
            raise KeyError(incident_id)
        incident.details = {**(incident.details or {}), **values}
        self._session.flush()

    def list_since(self, since: datetime, *, pipeline: str | None = None, limit: int = 100) -> list[Incident]:
        """Incidents seen since a time, most recent first."""
        query = select(Incident).where(Incident.last_seen_at >= since)
        if pipeline is not None:
            query = query.where(Incident.pipeline == pipeline)
        return list(self._session.scalars(query.order_by(Incident.last_seen_at.desc()).limit(limit)))


class AlertRepository:
    """Received alerts, deduplicated by their delivery id (SNS MessageId, EventBridge id)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(
        self,
        *,
        dedupe_key: str,
        source: str,
        received_at: datetime,
        subject: str = "",
        payload: dict[str, Any] | None = None,
        incident_id: str | None = None,
        channel: str | None = None,
        status: str = "received",
    ) -> Alert | None:
        """Store an alert; return None when one with the same dedupe key was already stored.

        ``status`` is ``received`` (to be posted) or ``recorded`` (kept, nothing to post).
        """
        alert = Alert(
            dedupe_key=dedupe_key,
            source=source,
            received_at=received_at,
            subject=subject[:500],
            payload=payload or {},
            incident_id=incident_id,
            channel=channel,
            status=status,
            attempts=0,
        )
        try:
            with self._session.begin_nested():
                self._session.add(alert)
        except IntegrityError:
            return None
        return alert

    def get(self, alert_id: int) -> Alert | None:
        """Return the alert with this id, or None."""
        return self._session.get(Alert, alert_id)

    def mark_posted(self, alert_id: int, slack_ts: str | None) -> None:
        """Record that the alert reached Slack (``slack_ts``: the message that shows it)."""
        self._session.execute(update(Alert).where(Alert.id == alert_id).values(status="posted", slack_ts=slack_ts))

    def mark_many(self, alert_ids: list[int], status: str, *, slack_ts: str | None = None) -> None:
        """Set the status (and message) of several alerts at once."""
        if alert_ids:
            self._session.execute(update(Alert).where(Alert.id.in_(alert_ids)).values(status=status, slack_ts=slack_ts))

    def record_attempt(self, alert_id: int, error: str, *, give_up: bool = False) -> None:
        """Count a failed delivery; ``give_up`` marks the alert ``undeliverable`` (kept, shown in the backlog)."""
        values: dict[str, Any] = {"attempts": Alert.attempts + 1, "last_error": error[:2000]}
        if give_up:
            values["status"] = "undeliverable"
        self._session.execute(update(Alert).where(Alert.id == alert_id).values(**values))

    def pending(self, *, limit: int = 100) -> list[Alert]:
        """Alerts received but not yet posted, oldest first (what a restart must still send)."""
        query = select(Alert).where(Alert.status == "received").order_by(Alert.id).limit(limit)
        return list(self._session.scalars(query))

    def backlog(self, *, limit: int = 100) -> list[Alert]:
        """Alerts still to post or that could not be posted, oldest first."""
        query = select(Alert).where(Alert.status.in_(("received", "undeliverable"))).order_by(Alert.id)
        return list(self._session.scalars(query.limit(limit)))

    def counts_by_status(self) -> dict[str, int]:
        """How many alerts are in each status."""
        rows = self._session.execute(select(Alert.status, func.count()).group_by(Alert.status))
        return {str(status): int(count) for status, count in rows}

    def for_incident(self, incident_id: str, *, limit: int = 1000) -> list[Alert]:
        """An incident's alerts, oldest first."""
        query = select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id).limit(limit)
        return list(self._session.scalars(query))


class AuditLog:
    """Append-only record of every action request and its outcome (there is no update or delete)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def append(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        at: datetime,
        pipeline: str | None = None,
        incident_id: str | None = None,
        parameters: dict[str, Any] | None = None,
        detail: str = "",
        slack_link: str | None = None,
    ) -> ActionRecord:
        """Write one audit row."""
        record = ActionRecord(
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            at=at,
            pipeline=pipeline,
            incident_id=incident_id,
            parameters=parameters or {},
            detail=detail,
            slack_link=slack_link,
        )
        self._session.add(record)
        self._session.flush()
        return record

    def recent(self, *, pipeline: str | None = None, limit: int = 20) -> list[ActionRecord]:
        """The latest rows, newest first, optionally for one pipeline."""
        query = select(ActionRecord)
        if pipeline is not None:
            query = query.where(ActionRecord.pipeline == pipeline)
        return list(self._session.scalars(query.order_by(ActionRecord.id.desc()).limit(limit)))


class KpiRunRepository:
    """KPI reconciliation runs."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def start(
        self,
        *,
        kpi: str,
        started_at: datetime,
        partition_from: str | None = None,
        partition_to: str | None = None,
        trigger: str = "cli",
        requested_by: str | None = None,
    ) -> KpiRun:
        """Record that a run started."""
        run = KpiRun(
            kpi=kpi,
            started_at=started_at,
            partition_from=partition_from,
            partition_to=partition_to,
            trigger=trigger,
            requested_by=requested_by,
            status="running",
        )
        self._session.add(run)
        self._session.flush()
        return run

    def finish(
        self,
        run_id: int,
        *,
        finished_at: datetime,
        status: str,
        source_value: Decimal | None = None,
        target_value: Decimal | None = None,
        diff: Decimal | None = None,
        relative_diff: Decimal | None = None,
        within_tolerance: bool | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> KpiRun:
        """Record a run's outcome.

        Raises:
            KeyError: No run with this id.
        """
        run = self._session.get(KpiRun, run_id)
        if run is None:
            raise KeyError(run_id)
        run.finished_at = finished_at
        run.status = status
        run.source_value = source_value
        run.target_value = target_value
        run.diff = diff
        run.relative_diff = relative_diff
        run.within_tolerance = within_tolerance
        run.result = result or {}
        run.error = error
        self._session.flush()
        return run

    def latest(self, kpi: str, *, limit: int = 10) -> list[KpiRun]:
        """The latest runs of a KPI, newest first."""
        query = select(KpiRun).where(KpiRun.kpi == kpi).order_by(KpiRun.started_at.desc(), KpiRun.id.desc())
        return list(self._session.scalars(query.limit(limit)))


class EventReceipts:
    """Which Events API deliveries were handled, so Slack's retries are answered once."""

    KEEP = timedelta(days=1)  # Slack retries within minutes; a day is ample

    def __init__(self, session: Session) -> None:
        self._session = session

    def first_delivery(self, event_id: str, at: datetime) -> bool:
        """Record ``event_id``; return False if it was recorded before (a retry). Forgets receipts older than a day."""
        self._session.execute(delete(SlackEventReceipt).where(SlackEventReceipt.received_at < at - self.KEEP))
        try:
            with self._session.begin_nested():
                self._session.add(SlackEventReceipt(event_id=event_id, received_at=at))
        except IntegrityError:
            return False
        return True


class Leases:
    """Named leases: at most one holder at a time across processes, expiring unless renewed."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def acquire(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease; return False while another holder's lease has not expired."""
        expires = now + ttl
        try:
            with self._session.begin_nested():
                self._session.add(Lease(name=name, holder=holder, expires_at=expires))
        except IntegrityError:
            now_value = literal(now, UTCDateTime())
            result = self._session.execute(
                update(Lease)
                .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now_value))
                .values(holder=holder, expires_at=expires)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
        return True

    def release(self, name: str, holder: str) -> None:
        """Give the lease up (only if this holder has it)."""
        self._session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


class ActionRequests:
    """Requests to act, one per idempotency key; status changes are compare-and-set."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def open(
        self,
        *,
        idempotency_key: str,
        action: str,
        target: str,
        requested_by: str,
        at: datetime,
        status: str,
        pipeline: str | None = None,
        incident_id: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> tuple[ActionRequest, bool]:
        """Create the request for this key, or return the one that exists (and False)."""
        existing = self.by_key(idempotency_key)
        if existing is not None:
            return existing, False
        request = ActionRequest(
            idempotency_key=idempotency_key,
            action=action,
            target=target,
            pipeline=pipeline,
            incident_id=incident_id,
            status=status,
            requested_by=requested_by,
            requested_at=at,
            updated_at=at,
            channel=channel,
            thread_ts=thread_ts,
            parameters=parameters or {},
            result={},
        )
        try:
            with self._session.begin_nested():
                self._session.add(request)
        except IntegrityError:
            found = self.by_key(idempotency_key)
            if found is None:
                raise
            return found, False
        return request, True

    def get(self, request_id: str) -> ActionRequest | None:
        """The request with this id, or None."""
        return self._session.get(ActionRequest, request_id)

    def by_key(self, idempotency_key: str) -> ActionRequest | None:
        """The request with this idempotency key, or None."""
        query = select(ActionRequest).where(ActionRequest.idempotency_key == idempotency_key)
        return self._session.scalars(query).one_or_none()

    def transition(
        self, request_id: str, from_statuses: tuple[str, ...], to_status: str, *, at: datetime, **values: Any
    ) -> bool:
        """Move a request to ``to_status`` only if it is in one of ``from_statuses`` (True if this call did)."""
        result = self._session.execute(
            update(ActionRequest)
            .where(ActionRequest.id == request_id, ActionRequest.status.in_(from_statuses))
            .values(status=to_status, updated_at=at, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def reopen(self, request_id: str, *, at: datetime, status: str, **values: Any) -> None:
        """Start a finished request over (a new attempt after a refusal or failure), keeping its key."""
        self._session.execute(
            update(ActionRequest)
            .where(ActionRequest.id == request_id)
            .values(status=status, updated_at=at, result={}, decided_by=None, **values)
        )

    def with_status(self, *statuses: str, limit: int = 100) -> list[ActionRequest]:
        """Requests in these statuses, oldest first."""
        query = select(ActionRequest).where(ActionRequest.status.in_(statuses)).order_by(ActionRequest.requested_at)
        return list(self._session.scalars(query.limit(limit)))

"""Post stored alerts to Slack in order: parents, batched repeats, resolutions; wait out 429s, lose nothing."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from bot.alerts.model import SOURCE_STEPFUNCTIONS, Alert, Enrichment, IncidentView
from bot.config import ProjectConfig
from bot.render.alerts import RESOLVED_REACTION, render_alert, render_note, render_repeats, render_resolution
from bot.store.db import Store
from bot.store.models import Alert as AlertRow
from bot.store.models import Incident

logger = logging.getLogger(__name__)

LEASE_NAME = "alert-dispatch"
LEASE_TTL = timedelta(seconds=120)
BATCH = 500
SETTLE, SETTLE_MAX = 0.25, 2.0  # seconds: how long a burst of alerts may keep arriving before it is posted
ENRICH_WITHIN = timedelta(hours=1)  # alerts older than this are not diagnosed after the fact
NO_CHANNEL = "no Slack channel for this alert: set default_channel (or pipelines.<name>.channel) in etl-doctor.yml"
T = TypeVar("T")


class ChatError(Exception):
    """Slack did not take a call."""


class ChatRateLimitedError(ChatError):
    """Slack answered 429; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:g} s")
        self.retry_after = retry_after


class ChatUnavailableError(ChatError):
    """Slack could not be reached or failed on its side (retry later)."""


class ChatRejectedError(ChatError):
    """Slack refused the call for good (``channel_not_found``, ``not_in_channel``, ``invalid_blocks``…)."""


class Chat(Protocol):
    """The three Slack calls alerts need (implemented over slack_sdk by the handlers)."""

    def post(self, channel: str, message: dict[str, Any], *, thread_ts: str | None = None) -> tuple[str, str]:
        """Post a message; return (channel id, ts)."""

    def update(self, channel: str, ts: str, message: dict[str, Any]) -> None:
        """Replace a message."""

    def react(self, channel: str, ts: str, name: str) -> None:
        """Add a reaction (already there is fine)."""


Enricher = Callable[[str], Enrichment]


@dataclass
class DrainReport:
    """What one drain did."""

    parents: int = 0
    replies: int = 0
    updates: int = 0
    rate_limited: int = 0
    unavailable: int = 0
    undeliverable: int = 0
    suppressed: int = 0
    alerts_done: int = 0
    enrich_queued: list[str] = field(default_factory=list)
    complete: bool = True


class _StoppedError(Exception):
    """The drain must end now (stop requested or deadline passed); what is left stays pending."""


def incident_view(incident: Incident, project: ProjectConfig | None = None) -> IncidentView:
    """The parent message's content, from the stored incident (``project``: to offer more memory)."""
    details = incident.details or {}
    enrichment = details.get("enrichment")
    category = (enrichment or {}).get("category") if isinstance(enrichment, dict) else None
    pipeline = project.pipelines.get(incident.pipeline or "") if project else None
    more_memory = bool(pipeline and pipeline.retry_resources) and "out_of_memory" in (category, incident.error_class)
    return IncidentView(
        alert=Alert.from_json(details["alert"]),
        occurrences=incident.occurrences,
        first_seen_at=incident.first_seen_at,
        last_seen_at=incident.last_seen_at,
        status=incident.status,
        resolved_at=incident.resolved_at,
        resolved_by=details.get("resolved_by"),
        enrichment=Enrichment.from_json(enrichment) if isinstance(enrichment, dict) else None,
        incident_id=incident.id,
        acked_by=incident.acked_by,
        acked_at=incident.acked_at,
        snoozed_by=incident.snoozed_by,
        snoozed_until=incident.snoozed_until,
        more_memory=more_memory,
        diagnosing=project.alerts.enrich if project is not None else True,
    )


class AlertDispatcher:
    """Sends what the store holds to Slack, oldest first, one drainer at a time across processes.

    Repeats of an incident that are waiting together become one thread reply and one parent update,
    so a storm of 1,000 alerts costs about one message per incident and per batch, not 1,000. A 429
    pauses for its ``Retry-After``; an unreachable Slack is retried with backoff; a permanent refusal
    marks the alert ``undeliverable`` (kept and listed by ``etl-doctor alerts pending``).

    Args:
        store: The incident store.
        chat: Slack.
        clock: Current UTC time.
        enricher: Diagnoses an execution ARN for the parent message (None: no enrichment).
        max_backoff: Longest wait between attempts while Slack is unreachable, in seconds.
        project: etl-doctor.yml (which pipelines can be retried with more memory).
        grouper: Groups an alert stored with deferred grouping (``AlertIntake.group``).
    """

    def __init__(
        self,
        store: Store,
        chat: Chat,
        *,
        clock: Callable[[], datetime],
        enricher: Enricher | None = None,
        max_backoff: float = 30.0,
        project: ProjectConfig | None = None,
        grouper: Callable[[int], object] | None = None,
    ) -> None:
        self._store = store
        self._chat = chat
        self._clock = clock
        self._enricher = enricher
        self._max_backoff = max_backoff
        self._project = project
        self._grouper = grouper
        self._holder = uuid.uuid4().hex
        self._incident_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._enrich_seen: set[str] = set()

    # ------------------------------------------------------------------ draining

    def drain(self, *, stop: threading.Event | None = None, deadline: float | None = None) -> DrainReport:
        """Post everything pending; return when the backlog is empty, on ``stop`` or at ``deadline``.

        Args:
            stop: Set to end the drain early (what is left stays pending for the next one).
            deadline: A ``time.monotonic()`` value after which the drain ends.
        """
        report = DrainReport()
        stop = stop or threading.Event()
        for _ in range(3):  # an alert stored just before the lease was released is picked up by the next round
            if not self._take_lease():
                report.complete = False
                return report
            try:
                while True:
                    with self._store.transaction() as uow:
                        batch = uow.alerts.pending(limit=BATCH)
                    if not batch:
                        break
                    self._renew_lease()
                    ungrouped = [row.id for row in batch if row.payload.get("grouped") is False]
                    if ungrouped and self._grouper is not None:
                        for alert_id in ungrouped:  # in arrival order, so the first of a storm heads the thread
                            self._grouper(alert_id)
                            time.sleep(0.001)  # let a waiting /sns request have the store between two groupings
                        continue  # read the batch again: grouped rows have their incident (or were only recorded)
                    self._post_batch(batch, report, stop, deadline)
                self._queue_missed_enrichments(report)
            except _StoppedError:
                report.complete = False
                return report
            finally:
                self._release_lease()
            with self._store.transaction() as uow:
                if not uow.alerts.pending(limit=1):
                    break
        return report

    def _queue_missed_enrichments(self, report: DrainReport) -> None:
        """Queue posted Step Functions alerts of the last hour that were never diagnosed (e.g. a restart)."""
        if self._enricher is None:
            return
        with self._store.transaction() as uow:
            recent = uow.incidents.list_since(self._clock() - ENRICH_WITHIN, limit=100)
        for incident in recent:
            details = incident.details or {}
            alert = details.get("alert") or {}
            if (
                incident.slack_ts
                and incident.resolved_at is None
                and "enrichment" not in details
                and alert.get("source") == SOURCE_STEPFUNCTIONS
                and (alert.get("resources") or {}).get("execution_arn")
                and incident.id not in report.enrich_queued
                and incident.id not in self._enrich_seen
            ):
                report.enrich_queued.append(incident.id)
        self._enrich_seen.update(report.enrich_queued)

    def _post_batch(
        self, batch: list[AlertRow], report: DrainReport, stop: threading.Event, deadline: float | None
    ) -> None:
        done: set[int] = set()
        touched: dict[str, None] = {}
        for row in batch:
            if row.id in done:
                continue
            alert = Alert.from_json(row.payload["alert"])
            if row.channel is None:
                self._give_up([row.id], NO_CHANNEL, report)
                done.add(row.id)
                continue
            try:
                if alert.status == "failing" and row.incident_id:
                    group = [
                        r
                        for r in batch
                        if r.incident_id == row.incident_id
                        and r.id not in done
                        and r.payload["alert"].get("status") == "failing"
                    ]
                    done.update(self._post_failure(row, group, report, stop, deadline, touched))
                elif alert.status == "resolved":
                    self._post_resolution(row, alert, report, stop, deadline)
                    done.add(row.id)
                else:
                    self._post_note(row, alert, report, stop, deadline)
                    done.add(row.id)
            except ChatRejectedError as exc:
                self._give_up([row.id], str(exc), report)
                done.add(row.id)
        for incident_id in touched:
            self.refresh_parent(incident_id, report=report, stop=stop, deadline=deadline)

    def _post_failure(
        self,
        row: AlertRow,
        group: list[AlertRow],
        report: DrainReport,
        stop: threading.Event,
        deadline: float | None,
        touched: dict[str, None],
    ) -> list[int]:
        assert row.incident_id is not None
        with self._store.transaction() as uow:
            incident = uow.incidents.get(row.incident_id)
        if incident is None:  # pragma: no cover - foreign key guarantees it
            raise ChatRejectedError(f"incident {row.incident_id} is gone")
        if incident.slack_ts is None:
            channel = row.channel or ""
            with self._incident_lock(incident.id):
                message = render_alert(incident_view(incident, self._project))
                channel_id, ts = self._call(lambda: self._chat.post(channel, message), report, stop, deadline)
                with self._store.transaction() as uow:
                    uow.incidents.set_slack_thread(incident.id, channel_id, ts)
                    uow.alerts.mark_posted(row.id, ts)
            report.parents += 1
            report.alerts_done += 1
            first = Alert.from_json(row.payload["alert"])
            if (
                self._enricher is not None
                and first.source == SOURCE_STEPFUNCTIONS
                and first.resources.get("execution_arn")
            ):
                report.enrich_queued.append(incident.id)
            rest = [r for r in group if r.id != row.id]
            if rest:
                touched[incident.id] = None
                self._post_repeats(incident, rest, report, stop, deadline, channel_id, ts)
            return [r.id for r in group]
        touched[incident.id] = None
        if incident.snoozed_until is not None and incident.snoozed_until > self._clock():
            with self._store.transaction() as uow:  # stored and counted (the parent shows ×N), not posted
                uow.alerts.mark_many([r.id for r in group], "suppressed")
            report.suppressed += len(group)
            report.alerts_done += len(group)
            return [r.id for r in group]
        self._post_repeats(incident, group, report, stop, deadline, incident.slack_channel or "", incident.slack_ts)
        return [r.id for r in group]

    def _post_repeats(
        self,
        incident: Incident,
        group: list[AlertRow],
        report: DrainReport,
        stop: threading.Event,
        deadline: float | None,
        channel: str,
        thread_ts: str,
    ) -> None:
        alerts = [Alert.from_json(r.payload["alert"]) for r in group]
        with self._store.transaction() as uow:
            total = (uow.incidents.get(incident.id) or incident).occurrences
        message = render_repeats(alerts, total=total)
        _, ts = self._call(lambda: self._chat.post(channel, message, thread_ts=thread_ts), report, stop, deadline)
        with self._store.transaction() as uow:
            uow.alerts.mark_many([r.id for r in group], "posted", slack_ts=ts)
        report.replies += 1
        report.alerts_done += len(group)

    def _post_resolution(
        self, row: AlertRow, alert: Alert, report: DrainReport, stop: threading.Event, deadline: float | None
    ) -> None:
        last_ts: str | None = None
        for incident_id in row.payload.get("resolves", []):
            with self._store.transaction() as uow:
                incident = uow.incidents.get(incident_id)
            if incident is None or incident.slack_ts is None or incident.slack_channel is None:
                continue
            channel, parent_ts = incident.slack_channel, incident.slack_ts
            by = (incident.details or {}).get("resolved_by") or alert.title
            message = render_resolution(alert, resolved_by=by)
            _, last_ts = self._call(
                lambda c=channel, m=message, t=parent_ts: self._chat.post(c, m, thread_ts=t),  # type: ignore[misc]
                report,
                stop,
                deadline,
            )
            report.replies += 1
            self.refresh_parent(incident_id, report=report, stop=stop, deadline=deadline)
            try:
                self._call(
                    lambda c=channel, t=parent_ts: self._chat.react(c, t, RESOLVED_REACTION),  # type: ignore[misc]
                    report,
                    stop,
                    deadline,
                )
            except ChatRejectedError as exc:  # e.g. missing reactions:write: the parent update already says it
                logger.warning("could not add the resolved reaction: %s", exc)
        with self._store.transaction() as uow:
            uow.alerts.mark_posted(row.id, last_ts)
        report.alerts_done += 1

    def _post_note(
        self, row: AlertRow, alert: Alert, report: DrainReport, stop: threading.Event, deadline: float | None
    ) -> None:
        with self._store.transaction() as uow:
            incident = uow.incidents.get(row.incident_id) if row.incident_id else None
        ts: str | None = None
        if incident is not None and incident.slack_ts and incident.slack_channel:
            channel, parent_ts = incident.slack_channel, incident.slack_ts
            message = render_note(alert)
            _, ts = self._call(lambda: self._chat.post(channel, message, thread_ts=parent_ts), report, stop, deadline)
            report.replies += 1
        with self._store.transaction() as uow:
            uow.alerts.mark_posted(row.id, ts)
        report.alerts_done += 1

    # ------------------------------------------------------------------ parent updates and enrichment

    def refresh_parent(
        self,
        incident_id: str,
        *,
        report: DrainReport | None = None,
        stop: threading.Event | None = None,
        deadline: float | None = None,
    ) -> bool:
        """Re-render an incident's parent message from the store (count, verdict, resolution)."""
        report = report or DrainReport()
        with self._incident_lock(incident_id):
            with self._store.transaction() as uow:
                incident = uow.incidents.get(incident_id)
            if incident is None or not incident.slack_ts or not incident.slack_channel:
                return False
            channel, ts = incident.slack_channel, incident.slack_ts
            message = render_alert(incident_view(incident, self._project))
            try:
                self._call(lambda: self._chat.update(channel, ts, message), report, stop or threading.Event(), deadline)
            except ChatRejectedError as exc:
                logger.warning("could not update the alert message %s in %s: %s", ts, channel, exc)
                return False
        report.updates += 1
        return True

    def enrich(self, incident_id: str) -> Enrichment | None:
        """Diagnose the incident's execution, store the verdict and update the parent message."""
        if self._enricher is None:
            return None
        with self._store.transaction() as uow:
            incident = uow.incidents.get(incident_id)
        if incident is None:
            return None
        execution = Alert.from_json(incident.details["alert"]).resources.get("execution_arn")
        if not execution:
            return None
        try:
            enrichment = self._enricher(execution)
        except Exception as exc:  # the alert stands without a verdict; the message says why
            logger.warning("diagnosis of %s for the alert failed: %s", execution, exc)
            enrichment = Enrichment(verdict=f"diagnosis failed: {exc}"[:300])
        with self._store.transaction() as uow:
            uow.incidents.merge_details(incident_id, {"enrichment": enrichment.to_json()})
            if enrichment.category:
                incident_row = uow.incidents.get(incident_id)
                if incident_row is not None and incident_row.error_class in (None, "unknown"):
                    incident_row.error_class = enrichment.category
        self.refresh_parent(incident_id, deadline=time.monotonic() + 60)
        return enrichment

    # ------------------------------------------------------------------ plumbing

    def _call(self, call: Callable[[], T], report: DrainReport, stop: threading.Event, deadline: float | None) -> T:
        backoff = 1.0
        while True:
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                raise _StoppedError
            try:
                return call()
            except ChatRateLimitedError as exc:
                report.rate_limited += 1
                wait = max(exc.retry_after, 0.05)
            except ChatUnavailableError as exc:
                report.unavailable += 1
                logger.warning("Slack unavailable (%s); retrying in %.0f s", exc, backoff)
                wait, backoff = backoff, min(backoff * 2, self._max_backoff)
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0))
            if stop.wait(wait):
                raise _StoppedError
            self._renew_lease()

    def _give_up(self, alert_ids: list[int], reason: str, report: DrainReport) -> None:
        logger.error("alert(s) %s cannot be posted: %s", alert_ids, reason)
        with self._store.transaction() as uow:
            for alert_id in alert_ids:
                uow.alerts.record_attempt(alert_id, reason, give_up=True)
        report.undeliverable += len(alert_ids)

    def _incident_lock(self, incident_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._incident_locks.setdefault(incident_id, threading.Lock())

    def _take_lease(self) -> bool:
        with self._store.transaction() as uow:
            return uow.leases.acquire(LEASE_NAME, self._holder, now=self._clock(), ttl=LEASE_TTL)

    def _renew_lease(self) -> None:
        self._take_lease()

    def _release_lease(self) -> None:
        with self._store.transaction() as uow:
            uow.leases.release(LEASE_NAME, self._holder)


class DispatcherThread:
    """Runs the dispatcher in the background of a long-lived server: drains when woken or every ``poll`` s.

    Enrichment (a `/etl why` per new Step Functions alert) runs on a small pool so a slow diagnosis never
    holds up posting.
    """

    def __init__(self, dispatcher: AlertDispatcher, *, poll: float = 5.0, enrich_workers: int = 2) -> None:
        self._dispatcher = dispatcher
        self._poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etl-doctor-alerts", daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=enrich_workers, thread_name_prefix="etl-doctor-enrich")
        self.last_report: DrainReport | None = None

    def start(self) -> None:
        """Start draining (including anything left pending by a previous process)."""
        self._thread.start()

    def wake(self) -> None:
        """Drain now (a new alert was stored)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current Slack call; pending alerts stay in the store."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = self._dispatcher.drain(stop=self._stop)
                self.last_report = report
                for incident_id in report.enrich_queued:
                    self._pool.submit(self._dispatcher.enrich, incident_id)
            except Exception:
                logger.exception("alert dispatch failed; retrying in %.0f s", self._poll)
            if self._wake.wait(self._poll):
                self._settle()

    def _settle(self) -> None:
        """Let a burst finish arriving (quiet for ``SETTLE`` s, at most ``SETTLE_MAX`` s) before draining it.

        During a storm this keeps the store and the interpreter for `/sns` (whose answer SNS waits for) and
        puts more repeats into each thread reply.
        """
        started = time.monotonic()
        while time.monotonic() - started < SETTLE_MAX and not self._stop.is_set():
            self._wake.clear()
            if not self._wake.wait(SETTLE):
                return

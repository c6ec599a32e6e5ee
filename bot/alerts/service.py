"""The alert pipeline of one process: ingest → intake (store) → dispatcher (Slack), wired once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bot.alerts.dispatch import AlertDispatcher, Chat, DispatcherThread, DrainReport
from bot.alerts.enrich import diagnosis_enricher
from bot.alerts.ingest import AlertIngest
from bot.alerts.intake import AlertIntake

if TYPE_CHECKING:
    from bot.services import Services


class AlertService:
    """Everything alerts need, built from the process's services.

    Args:
        services: Settings, store, AWS clients, clock, SNS certificates.
        chat: Slack (None: alerts are stored but not posted, e.g. `etl-doctor alerts pending`).
        defer_grouping: Store only, on the request path, and group in the dispatcher (long-lived servers,
            where the dispatcher runs all the time); False groups at once (Lambda, the CLI).
    """

    def __init__(self, services: Services, chat: Chat | None, *, defer_grouping: bool = False) -> None:
        project = services.settings.project
        self.intake = AlertIntake(services.store, project, services.clock, defer_grouping=defer_grouping)
        enricher = diagnosis_enricher(services) if project.alerts.enrich else None
        self.dispatcher = (
            AlertDispatcher(
                services.store,
                chat,
                clock=services.clock,
                enricher=enricher,
                project=project,
                grouper=self.intake.group,
            )
            if chat
            else None
        )
        self._thread: DispatcherThread | None = None
        self.ingest = AlertIngest(
            self.intake, project, services.sns_certificates, clock=services.clock, on_stored=self._stored
        )

    def start_background(self, *, poll: float = 5.0) -> None:
        """Drain in a background thread (long-lived servers); starts with what a previous run left."""
        if self.dispatcher is not None and self._thread is None:
            self._thread = DispatcherThread(self.dispatcher, poll=poll)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (pending alerts stay stored)."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def drain_now(self, *, seconds: float = 60.0, enrich: bool = True) -> DrainReport:
        """Post what is pending and enrich new Step Functions alerts, within ``seconds`` (Lambda, demo)."""
        if self.dispatcher is None:
            return DrainReport(complete=False)
        deadline = time.monotonic() + seconds
        report = self.dispatcher.drain(deadline=deadline)
        if enrich:
            for incident_id in report.enrich_queued:
                if time.monotonic() < deadline:
                    self.dispatcher.enrich(incident_id)
        return report

    def stats(self) -> dict[str, Any]:
        """Counters for /healthz: deliveries accepted, duplicates, rejections by reason."""
        return {
            "accepted": self.ingest.accepted,
            "duplicates": self.ingest.duplicates,
            "rejected": dict(self.ingest.rejections),
        }

    def _stored(self) -> None:
        if self._thread is not None:
            self._thread.wake()

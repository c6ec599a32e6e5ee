"""Services: the one object that holds clients and stores; built once per process, passed down."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.aws.clients import AwsClients
from bot.aws.compute import ComputeGateway
from bot.aws.logs import LogsGateway
from bot.aws.stepfunctions import StepFunctionsGateway

if TYPE_CHECKING:
    from bot.actions.policy import UsergroupDirectory
    from bot.actions.service import ActionService
    from bot.alerts.dispatch import Chat
    from bot.alerts.sns import CertificateSource
    from bot.config import Settings
    from bot.kpi.engine import KpiEngine
    from bot.kpi.service import KpiService
    from bot.store.db import Store
    from bot.store.models import ActionRequest


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Services:
    """Holds settings, the AWS client factory and the store; creates expensive things on first use.

    Args:
        settings: The settings, read once.
        aws: AWS client factory (default: from settings).
        store: The incident store (default: opened from ``settings.database_url`` on first use, its
            schema checked, and upgraded automatically when it is SQLite).
        clock: Returns the current UTC time (tests pass a fixed clock).
        sns_certificates: Where SNS signing certificates come from (default: fetched from AWS and
            cached; a pinned certificate for `etl-doctor sns verify --cert-file` and tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        aws: AwsClients | None = None,
        store: Store | None = None,
        clock: Callable[[], datetime] = utc_now,
        sns_certificates: CertificateSource | None = None,
    ) -> None:
        self.settings = settings
        self._sns_certificates = sns_certificates
        self._chat: Chat | None = None
        self._usergroups: UsergroupDirectory | None = None
        self._actions: ActionService | None = None
        self.aws = aws or AwsClients.from_settings(settings)
        self.clock = clock
        self._store = store
        self._store_lock = threading.Lock()
        self._kpi: KpiEngine | None = None

    @property
    def store(self) -> Store:
        """The incident store (opened and schema-checked on first use)."""
        with self._store_lock:
            if self._store is None:
                from bot.store.db import Store

                store = Store(self.settings.database_url)
                store.ensure_schema()
                self._store = store
            return self._store

    def close(self) -> None:
        """Release pooled connections (of the store and the KPI databases, when opened)."""
        with self._store_lock:
            if self._store is not None:
                self._store.dispose()
            if self._kpi is not None:
                self._kpi.close()
                self._kpi = None

    @property
    def kpi(self) -> KpiEngine:
        """The KPI engine (built on first use; Glue and S3 clients only when a KPI layer names a Glue table)."""
        with self._store_lock:
            if self._kpi is None:
                from bot.kpi.engine import KpiEngine

                project = self.settings.project
                uses_glue = any(layer.glue is not None for kpi in project.kpis.values() for layer in kpi.layers)
                glue = self.aws.client("glue") if uses_glue else None
                s3 = self.aws.client("s3") if uses_glue else None
                self._kpi = KpiEngine(project, glue=glue, s3=s3, clock=self.clock)
            return self._kpi

    def _recheck_after_backfill(self, request: ActionRequest) -> str | None:
        """After a KPI backfill succeeded: the KPI for that partition again (other actions: nothing)."""
        kpi, partition = request.parameters.get("kpi"), request.parameters.get("partition")
        if request.action != "backfill" or not kpi or not partition:
            return None
        return self.kpi_service.recheck(str(kpi), str(partition), requested_by=request.requested_by)

    @property
    def kpi_service(self) -> KpiService:
        """KPI runs and checks, recorded in the store (no Slack posts or alerts: see `bot.app.build_kpi_service`)."""
        from bot.kpi.service import KpiService

        return KpiService(self.store, self.kpi, self.settings.project, clock=self.clock)

    @property
    def stepfunctions(self) -> StepFunctionsGateway:
        """Step Functions gateway."""
        return StepFunctionsGateway(self.aws.stepfunctions)

    def logs(self) -> LogsGateway:
        """A new CloudWatch Logs gateway (each counts the bytes it reads)."""
        return LogsGateway(self.aws.client("logs"))

    @property
    def compute(self) -> ComputeGateway:
        """ECS, Lambda, Glue, Batch and CloudWatch metrics lookups."""
        return ComputeGateway(self.aws)

    @property
    def sns_certificates(self) -> CertificateSource:
        """SNS signing certificates (fetched once per URL and cached, unless given)."""
        with self._store_lock:
            if self._sns_certificates is None:
                from bot.alerts.sns import FetchedCertificates

                self._sns_certificates = FetchedCertificates()
            return self._sns_certificates

    def attach_slack(self, chat: Chat, usergroups: UsergroupDirectory) -> None:
        """Give actions their way into Slack (thread notes, parent updates, user groups); set by the app."""
        with self._store_lock:
            self._chat, self._usergroups, self._actions = chat, usergroups, None

    @property
    def actions(self) -> ActionService:
        """Retry, redrive, ack and snooze (built on first use, with the Slack attached by the app)."""
        from bot.actions.policy import Policy
        from bot.actions.service import ActionService
        from bot.alerts.dispatch import AlertDispatcher

        store = self.store
        with self._store_lock:
            if self._actions is None:
                project = self.settings.project
                directory = self._usergroups or _NoUsergroups()
                refresh = (
                    AlertDispatcher(store, self._chat, clock=self.clock, project=project).refresh_parent
                    if self._chat is not None
                    else (lambda _incident_id: None)
                )
                self._actions = ActionService(
                    store,
                    self.stepfunctions,
                    project,
                    Policy(project, directory),
                    clock=self.clock,
                    refresh_parent=refresh,
                    chat=self._chat,
                    after_success=self._recheck_after_backfill,
                )
            return self._actions


class _NoUsergroups:
    """No Slack attached: user groups have no known members."""

    def members(self, usergroup_id: str) -> frozenset[str]:
        """Nobody."""
        return frozenset()

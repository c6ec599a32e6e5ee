"""The normalised alert: what every SNS message, EventBridge event or alarm becomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

AlertStatus = Literal["failing", "resolved", "info"]
Severity = Literal["critical", "error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "error", "warning", "info")

# Where an alert came from (``Alert.source``).
SOURCE_STEPFUNCTIONS = "stepfunctions"
SOURCE_ALARM = "cloudwatch_alarm"
SOURCE_ECS = "ecs"
SOURCE_GLUE = "glue"
SOURCE_BATCH = "batch"
SOURCE_GENERIC = "generic"
SOURCES = (SOURCE_STEPFUNCTIONS, SOURCE_ALARM, SOURCE_ECS, SOURCE_GLUE, SOURCE_BATCH, SOURCE_GENERIC)

EXCERPT_MAX = 1500  # characters of an unknown payload kept readable in ``Alert.summary``


@dataclass(frozen=True)
class Alert:
    """One notification, understood.

    Attributes:
        source: One of :data:`SOURCES`.
        kind: A human name of the event, e.g. "Step Functions execution FAILED", "CloudWatch alarm".
        status: ``failing`` (opens or repeats an incident), ``resolved`` (closes the incidents that share
            ``resolve_key``) or ``info`` (recorded and noted, e.g. an alarm in INSUFFICIENT_DATA).
        severity: ``critical``, ``error``, ``warning`` or ``info``.
        title: One line for the message header, e.g. "policies-etl: execution run-42 FAILED".
        summary: The readable error: the Cause's message, the alarm's reason, the stopped reason, or an
            excerpt of an unknown payload (at most :data:`EXCERPT_MAX` characters). May be "".
        occurred_at: When the event happened (UTC-aware), or None when the payload does not say.
        region: AWS region, when known.
        account: AWS account id, when known.
        resource: The failed resource's name for humans (state machine, alarm, job, task definition…).
        resources: Resource ids by kind. Keys used: ``state_machine_arn``, ``execution_arn``,
            ``execution_name``, ``alarm_name``, ``alarm_arn``, ``cluster_arn``, ``task_arn``,
            ``task_definition_arn``, ``container``, ``glue_job``, ``glue_job_run_id``, ``batch_job_id``,
            ``batch_job_name``, ``batch_job_queue``, ``topic_arn``.
        error: The error name (``States.TaskFailed``, ``OutOfMemoryError``, ``exit 137``…), or None.
        cause: The raw cause text (may be a JSON document, may be long), or None.
        exit_code: The failed container's exit code, when the event has one.
        resolve_key: What a later resolution must match, e.g. ``sfn:<state machine ARN>``,
            ``alarm:<alarm ARN or name>``, ``glue:<job name>``, ``batch:<queue>/<job name>``,
            ``ecs:<cluster>/<task definition family>``; None when nothing can resolve it.
        subject: The SNS Subject or the EventBridge ``detail-type`` ("" when absent).
        delivery_id: SNS ``MessageId`` or EventBridge ``id``, when known (the idempotency key).
        pipeline: The pipeline from etl-doctor.yml, set by routing (None until then or when unknown).
        category: The error class (:data:`bot.diagnosis.classify.CATEGORIES`), set by classification.
        fingerprint: Grouping key (pipeline + category + normalised error), set by classification.
        details: Extra facts worth showing (e.g. ``{"stopped_reason": …, "redrive_count": "1"}``).
    """

    source: str
    kind: str
    status: AlertStatus
    severity: Severity
    title: str
    summary: str = ""
    occurred_at: datetime | None = None
    region: str | None = None
    account: str | None = None
    resource: str | None = None
    resources: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None
    exit_code: int | None = None
    resolve_key: str | None = None
    subject: str = ""
    delivery_id: str | None = None
    pipeline: str | None = None
    category: str | None = None
    fingerprint: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> Alert:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601)."""
        document = asdict(self)
        document["occurred_at"] = self.occurred_at.isoformat() if self.occurred_at else None
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_json` output."""
        values = dict(document)
        at = values.get("occurred_at")
        values["occurred_at"] = datetime.fromisoformat(at) if at else None
        values["resources"] = dict(values.get("resources") or {})
        values["details"] = dict(values.get("details") or {})
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})


@dataclass(frozen=True)
class Enrichment:
    """What the `/etl why` diagnosis adds to a Step Functions alert.

    Attributes:
        category: Error class (``out_of_memory``…).
        title: Short human title ("Out of memory (exit 137)").
        failed_state: The state that failed.
        root_exception: The root exception line, when logs had one.
        next_step: The first remediation step.
        verdict: Set instead of the rest when the execution could not be diagnosed (e.g. still running).
    """

    category: str | None = None
    title: str | None = None
    failed_state: str | None = None
    root_exception: str | None = None
    next_step: str | None = None
    verdict: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Enrichment:
        """Rebuild from :meth:`to_json` output (unknown keys ignored)."""
        return cls(**{name: document.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class IncidentView:
    """Everything the parent message of an alert thread shows.

    Attributes:
        alert: The first alert of the incident.
        occurrences: How many alerts the incident has had.
        first_seen_at: When it was first seen.
        last_seen_at: When it was last seen.
        status: ``open``, ``resolved`` or ``expired``.
        resolved_at: When it was resolved.
        resolved_by: What resolved it ("execution run-43 SUCCEEDED").
        enrichment: The diagnosis summary, once known.
        incident_id: The incident's opaque id (what action buttons carry), "" in previews.
        acked_by: Slack user who acknowledged it.
        acked_at: When.
        snoozed_by: Slack user who snoozed its repeats.
        snoozed_until: Until when (year 9999: until resolved).
        more_memory: Offer "Retry with more memory" (out of memory, and the pipeline says where memory is set).
        diagnosing: A diagnosis is on its way (enrichment is on and has not finished).
    """

    alert: Alert
    occurrences: int = 1
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    status: str = "open"
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    enrichment: Enrichment | None = None
    incident_id: str = ""
    acked_by: str | None = None
    acked_at: datetime | None = None
    snoozed_by: str | None = None
    snoozed_until: datetime | None = None
    more_memory: bool = False
    diagnosing: bool = True

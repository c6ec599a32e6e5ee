"""Turn any SNS message, EventBridge event or CloudWatch alarm payload into an :class:`Alert`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.alerts.model import (
    EXCERPT_MAX,
    SOURCE_ALARM,
    SOURCE_BATCH,
    SOURCE_ECS,
    SOURCE_GENERIC,
    SOURCE_GLUE,
    SOURCE_STEPFUNCTIONS,
    Alert,
    AlertStatus,
    Severity,
)

TITLE_MAX = 150  # characters of a title taken from a payload
UNRECOGNISED = "Unrecognised notification"
EMPTY_MESSAGE = "(empty message)"

_MAX_SNS_DEPTH = 3  # an SNS envelope inside an SNS envelope inside ... is unwrapped this many times
_ELLIPSIS = "…"

_KIND_SNS = "sns"
_KIND_ALARM = "cloudwatch_alarm"
_KIND_GENERIC = "generic"
_EVENTBRIDGE_PREFIX = "eventbridge:"

_SFN_FAILING = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
_ECS_FAILURE_MARKERS = ("OutOfMemory", "CannotPullContainerError", "ResourceInitializationError")
_CRITICAL = re.compile(r"\b(?:critical|sev[ _-]?1|p1)\b", re.IGNORECASE)
_UTC_OFFSET_WITHOUT_COLON = re.compile(r"([+-]\d{2})(\d{2})$")
_EPOCH_MILLIS_FLOOR = 100_000_000_000  # numbers above this are epoch milliseconds, below it seconds


# --------------------------------------------------------------------------------------------------- public


def normalise(payload: bytes | str | dict[str, Any], *, subject: str = "", delivery_id: str | None = None) -> Alert:
    """Turn one notification payload into an :class:`Alert`.

    Understands Step Functions, ECS, Glue and Batch EventBridge events, CloudWatch alarms (the SNS message
    and the EventBridge event) and SNS envelopes around any of those. Anything else becomes a ``generic``
    alert carrying a readable excerpt. Never raises.

    Args:
        payload: The raw body (bytes are decoded as UTF-8, undecodable bytes replaced), its text, or the
            already parsed JSON object.
        subject: The SNS Subject, when the caller has it; overrides the payload's own subject.
        delivery_id: The SNS MessageId or EventBridge id, when the caller has it; overrides the payload's.

    Returns:
        The alert. ``pipeline``, ``category`` and ``fingerprint`` are left None for routing and
        classification to fill in.
    """
    try:
        return _normalise(payload, subject, delivery_id, depth=0)
    except Exception:  # never raise: a notification must not be dropped because its shape surprised us
        return _generic_fallback(payload, subject, delivery_id)


def payload_kind(payload: bytes | str | dict[str, Any]) -> str:
    """A short label for the shape of a payload, for previews and logs.

    Args:
        payload: As for :func:`normalise`.

    Returns:
        ``"sns"``, ``"eventbridge:<source>"`` (e.g. ``"eventbridge:aws.states"``), ``"cloudwatch_alarm"`` or
        ``"generic"``. Never raises.
    """
    try:
        document, _unused = _decode(payload)
        return _detect(document) if isinstance(document, Mapping) else _KIND_GENERIC
    except Exception:
        return _KIND_GENERIC


# --------------------------------------------------------------------------------------------- dispatching


def _normalise(payload: Any, subject: str, delivery_id: str | None, *, depth: int) -> Alert:
    document, text = _decode(payload)
    if not isinstance(document, Mapping):
        return _generic(document, text, subject, delivery_id)
    kind = _detect(document)
    if kind == _KIND_SNS and depth < _MAX_SNS_DEPTH:
        return _from_sns(document, subject, delivery_id, depth=depth)
    if kind == _KIND_ALARM:
        return _from_alarm_message(document, subject, delivery_id)
    if kind.startswith(_EVENTBRIDGE_PREFIX):
        detail_type = _text(document, "detail-type") or ""
        handler = _EVENTBRIDGE_HANDLERS.get((kind.removeprefix(_EVENTBRIDGE_PREFIX), detail_type))
        if handler is not None:
            return handler(document, subject or detail_type, delivery_id)
    return _generic(document, text, subject, delivery_id)


def _detect(document: Mapping[str, Any]) -> str:
    if _sns_envelope(document) is not None:
        return _KIND_SNS
    source = document.get("source")
    if isinstance(source, str) and source and "detail-type" in document:
        return _EVENTBRIDGE_PREFIX + source
    if "AlarmName" in document and "NewStateValue" in document:
        return _KIND_ALARM
    return _KIND_GENERIC


def _sns_envelope(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The SNS notification in an HTTP(S) body or in a Lambda ``Records`` event, else None."""
    records = document.get("Records")
    if isinstance(records, list) and len(records) == 1 and isinstance(records[0], Mapping):
        document = _mapping(records[0].get("Sns"))
    if document.get("Type") == "Notification" and "Message" in document:
        return document
    return None


def _decode(payload: Any) -> tuple[Any, str]:
    """The parsed JSON document (None when the payload is not JSON) and the payload's text."""
    if isinstance(payload, Mapping | list):
        return payload, ""
    if isinstance(payload, bytes | bytearray | memoryview):
        text = bytes(payload).decode("utf-8", errors="replace")
    elif isinstance(payload, str):
        text = payload
    elif payload is None:
        text = ""
    else:
        text = str(payload)
    text = text.removeprefix("\ufeff")
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped), text
        except (ValueError, RecursionError):
            pass
    return None, text


# -------------------------------------------------------------------------------------------------- SNS


def _from_sns(document: Mapping[str, Any], subject: str, delivery_id: str | None, *, depth: int) -> Alert:
    envelope = _mapping(_sns_envelope(document))
    inner = _normalise(
        envelope.get("Message"),
        subject or _text(envelope, "Subject") or "",
        delivery_id if delivery_id is not None else _text(envelope, "MessageId"),
        depth=depth + 1,
    )
    topic_arn = _text(envelope, "TopicArn")
    if topic_arn is None:
        return inner
    return inner.with_changes(resources={**inner.resources, "topic_arn": topic_arn})


# ------------------------------------------------------------------------------------------ Step Functions


def _from_step_functions(event: Mapping[str, Any], subject: str, delivery_id: str | None) -> Alert:
    detail = _mapping(event.get("detail"))
    status = (_text(detail, "status") or "UNKNOWN").upper()
    state_machine_arn = _text(detail, "stateMachineArn")
    execution_arn = _text(detail, "executionArn")
    name = _text(detail, "name") or _arn_part(execution_arn, 7) or "?"
    machine = _arn_part(state_machine_arn, 6) or _arn_part(execution_arn, 6) or "state machine"
    cause = _text(detail, "cause")
    summary, exit_code = _readable_cause(cause) if cause else ("", None)

    alert_status: AlertStatus
    severity: Severity
    if status in _SFN_FAILING:
        alert_status, severity = "failing", "error"
    elif status == "SUCCEEDED":
        alert_status, severity = "resolved", "info"
    else:
        alert_status, severity = "info", "info"

    details = {"status": status}
    redrive_count = detail.get("redriveCount")
    if redrive_count is not None:
        details["redrive_count"] = str(redrive_count)
    return Alert(
        source=SOURCE_STEPFUNCTIONS,
        kind=f"Step Functions execution {status}",
        status=alert_status,
        severity=severity,
        title=_clip(f"{machine}: execution {name} {status}", TITLE_MAX),
        summary=summary,
        occurred_at=_parse_time(detail.get("stopDate")) or _parse_time(event.get("time")),
        region=_text(event, "region") or _arn_part(state_machine_arn, 3),
        account=_text(event, "account") or _arn_part(state_machine_arn, 4),
        resource=machine,
        resources=_compact(
            state_machine_arn=state_machine_arn, execution_arn=execution_arn, execution_name=_text(detail, "name")
        ),
        error=_text(detail, "error"),
        cause=cause,
        exit_code=exit_code,
        resolve_key=f"sfn:{state_machine_arn}" if state_machine_arn else None,
        subject=subject,
        delivery_id=_delivery(delivery_id, event),
        details=details,
    )


def _readable_cause(cause: str) -> tuple[str, int | None]:
    """The meaningful message in a Cause (and the failed container's exit code, when it has one)."""
    document: Any = None
    if cause.lstrip().startswith("{"):
        try:
            document = json.loads(cause)
        except (ValueError, RecursionError):
            document = None
    if not isinstance(document, dict):
        return _clip(cause.strip(), EXCERPT_MAX), None
    if "errorMessage" in document:  # Lambda error payload
        return _clip(_lambda_message(document), EXCERPT_MAX), None
    if isinstance(document.get("Containers"), list):  # ECS task (ecs:runTask.sync)
        return _ecs_task_cause(document)
    if "JobRunState" in document or ("ErrorMessage" in document and "JobName" in document):  # Glue JobRun
        message = _text(document, "ErrorMessage") or _text(document, "JobRunState") or cause
        return _clip(message, EXCERPT_MAX), None
    if "StatusReason" in document and isinstance(document.get("Container"), Mapping):  # Batch job
        return _batch_job_cause(document)
    inner_cause = _text(document, "Cause")
    if inner_cause is not None and "Error" in document:  # a child execution's Error/Cause
        return _readable_cause(inner_cause)
    return _clip(cause.strip(), EXCERPT_MAX), None


def _lambda_message(document: Mapping[str, Any]) -> str:
    message = _text(document, "errorMessage") or ""
    error_type = _text(document, "errorType")
    if error_type and not message.startswith(error_type):
        return f"{error_type}: {message}" if message else error_type
    return message


def _ecs_task_cause(task: Mapping[str, Any]) -> tuple[str, int | None]:
    containers = [_mapping(container) for container in task.get("Containers") or []]
    failed = next((c for c in containers if _exit_code(c.get("ExitCode")) not in (None, 0)), None)
    explained = failed or next((c for c in containers if _text(c, "Reason")), None)
    exit_code = _exit_code(failed.get("ExitCode")) if failed else None
    parts = [_text(task, "StoppedReason") or ""]
    if explained is not None:
        parts.append(_container_note(_text(explained, "Name"), _text(explained, "Reason"), exit_code, parts[0]))
    return _clip(_join(parts), EXCERPT_MAX), exit_code


def _batch_job_cause(job: Mapping[str, Any]) -> tuple[str, int | None]:
    container = _mapping(job.get("Container"))
    exit_code = _exit_code(container.get("ExitCode"))
    exit_code = exit_code if exit_code else None
    reason = _text(job, "StatusReason") or ""
    note = _container_note(None, _text(container, "Reason"), exit_code, reason)
    return _clip(_join([reason, note]), EXCERPT_MAX), exit_code


# ------------------------------------------------------------------------------------------------ alarms


def _from_alarm_message(message: Mapping[str, Any], subject: str, delivery_id: str | None) -> Alert:
    trigger = _mapping(message.get("Trigger"))
    alarm_arn = _text(message, "AlarmArn")
    metric, dimensions = _trigger_metric(trigger)
    return _alarm_alert(
        name=_text(message, "AlarmName") or "alarm",
        arn=alarm_arn,
        description=_text(message, "AlarmDescription"),
        state=(_text(message, "NewStateValue") or "").upper(),
        old_state=_text(message, "OldStateValue"),
        reason=_text(message, "NewStateReason") or "",
        metric=metric,
        threshold=trigger.get("Threshold"),
        comparison=_text(trigger, "ComparisonOperator"),
        dimensions=dimensions,
        occurred_at=_parse_time(message.get("StateChangeTime")),
        region=_arn_part(alarm_arn, 3),
        account=_text(message, "AWSAccountId") or _arn_part(alarm_arn, 4),
        subject=subject,
        delivery_id=delivery_id,
        region_name=_text(message, "Region"),
    )


def _from_alarm_event(event: Mapping[str, Any], subject: str, delivery_id: str | None) -> Alert:
    detail = _mapping(event.get("detail"))
    state = _mapping(detail.get("state"))
    configuration = _mapping(detail.get("configuration"))
    alarm_arn = next(
        (arn for arn in event.get("resources") or [] if isinstance(arn, str) and ":cloudwatch:" in arn), None
    )
    metric, dimensions = _event_metric(configuration.get("metrics"))
    return _alarm_alert(
        name=_text(detail, "alarmName") or _arn_part(alarm_arn, 6) or "alarm",
        arn=alarm_arn,
        description=_text(configuration, "description"),
        state=(_text(state, "value") or "").upper(),
        old_state=_text(_mapping(detail.get("previousState")), "value"),
        reason=_text(state, "reason") or "",
        metric=metric,
        threshold=_mapping(_loads(state.get("reasonData"))).get("threshold"),
        comparison=None,
        dimensions=dimensions,
        occurred_at=_parse_time(state.get("timestamp")) or _parse_time(event.get("time")),
        region=_text(event, "region") or _arn_part(alarm_arn, 3),
        account=_text(event, "account") or _arn_part(alarm_arn, 4),
        subject=subject,
        delivery_id=_delivery(delivery_id, event),
        region_name=None,
    )


def _alarm_alert(
    *,
    name: str,
    arn: str | None,
    description: str | None,
    state: str,
    old_state: str | None,
    reason: str,
    metric: str | None,
    threshold: Any,
    comparison: str | None,
    dimensions: Mapping[str, str],
    occurred_at: datetime | None,
    region: str | None,
    account: str | None,
    subject: str,
    delivery_id: str | None,
    region_name: str | None,
) -> Alert:
    alert_status: AlertStatus
    severity: Severity
    if state == "ALARM":
        alert_status = "failing"
        severity = "critical" if _CRITICAL.search(f"{name} {description or ''}") else "error"
    elif state == "OK":
        alert_status, severity = "resolved", "info"
    else:
        alert_status, severity = "info", "info"
    resources = _compact(alarm_name=name, alarm_arn=arn, state_machine_arn=dimensions.get("StateMachineArn"))
    details = _compact(
        metric=metric,
        threshold=_number(threshold),
        comparison=comparison,
        old_state=old_state,
        description=description,
        region_name=region_name,
    )
    shown_state = state or "UNKNOWN"
    return Alert(
        source=SOURCE_ALARM,
        kind="CloudWatch alarm",
        status=alert_status,
        severity=severity,
        title=_clip(f"{name}: {shown_state}" + (f" (was {old_state})" if old_state else ""), TITLE_MAX),
        summary=_clip(reason, EXCERPT_MAX),
        occurred_at=occurred_at,
        region=region,
        account=account,
        resource=name,
        resources=resources,
        resolve_key=f"alarm:{arn or name}",
        subject=subject,
        delivery_id=delivery_id,
        details=details,
    )


def _trigger_metric(trigger: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The metric an SNS alarm message watches (namespace and name, or the math expression) and its dimensions."""
    if _text(trigger, "MetricName"):
        return _metric_label(_text(trigger, "Namespace"), _text(trigger, "MetricName")), _dimension_list(
            trigger.get("Dimensions")
        )
    queries = [_mapping(query) for query in trigger.get("Metrics") or []]
    chosen = next((q for q in queries if q.get("ReturnData") is True), queries[0] if queries else {})
    expression = _text(chosen, "Expression")
    dimensions: dict[str, str] = {}
    for query in queries:
        dimensions.update(_dimension_list(_mapping(_mapping(query.get("MetricStat")).get("Metric")).get("Dimensions")))
    if expression:
        return expression, dimensions
    metric = _mapping(_mapping(chosen.get("MetricStat")).get("Metric"))
    return _metric_label(_text(metric, "Namespace"), _text(metric, "MetricName")), dimensions


def _event_metric(metrics: Any) -> tuple[str | None, dict[str, str]]:
    """The same for the EventBridge event's ``configuration.metrics`` (camelCase, dimensions as a map)."""
    queries = [_mapping(query) for query in metrics or []] if isinstance(metrics, list) else []
    chosen = next((q for q in queries if q.get("returnData") is True), queries[0] if queries else {})
    dimensions: dict[str, str] = {}
    for query in queries:
        raw = _mapping(_mapping(_mapping(query.get("metricStat")).get("metric")).get("dimensions"))
        dimensions.update({str(key): str(value) for key, value in raw.items()})
    expression = _text(chosen, "expression")
    if expression:
        return expression, dimensions
    metric = _mapping(_mapping(chosen.get("metricStat")).get("metric"))
    return _metric_label(_text(metric, "namespace"), _text(metric, "name")), dimensions


def _metric_label(namespace: str | None, name: str | None) -> str | None:
    return " ".join(part for part in (namespace, name) if part) or None


def _dimension_list(dimensions: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for dimension in dimensions if isinstance(dimensions, list) else []:
        item = _mapping(dimension)
        name, value = _text(item, "name") or _text(item, "Name"), _text(item, "value") or _text(item, "Value")
        if name and value:
            found[name] = value
    return found


# ---------------------------------------------------------------------------------------------------- ECS


def _from_ecs_task(event: Mapping[str, Any], subject: str, delivery_id: str | None) -> Alert:
    detail = _mapping(event.get("detail"))
    last_status = (_text(detail, "lastStatus") or "UNKNOWN").upper()
    stop_code = _text(detail, "stopCode")
    stopped_reason = _text(detail, "stoppedReason") or ""
    containers = (
        [_mapping(c) for c in detail.get("containers") or []] if isinstance(detail.get("containers"), list) else []
    )
    failed = next((c for c in containers if _exit_code(c.get("exitCode")) not in (None, 0)), None)
    exit_code = _exit_code(failed.get("exitCode")) if failed else None
    explained = failed or next((c for c in containers if _text(c, "reason")), None)
    reasons = " ".join([stopped_reason, *(_text(c, "reason") or "" for c in containers)])

    stopped = last_status == "STOPPED"
    failing = stopped and (
        failed is not None
        or stop_code == "TaskFailedToStart"
        or any(marker in reasons for marker in _ECS_FAILURE_MARKERS)
    )
    cluster_arn, task_arn = _text(detail, "clusterArn"), _text(detail, "taskArn")
    task_definition_arn = _text(detail, "taskDefinitionArn")
    family = _task_family(task_definition_arn, _text(detail, "group"))
    cluster = cluster_arn.rsplit("/", 1)[-1] if cluster_arn else None
    task_id = task_arn.rsplit("/", 1)[-1] if task_arn else "?"
    container = explained or {}  # the container that failed or explains the stop, if any

    if exit_code:
        error: str | None = f"exit {exit_code}"
    elif failing:
        error = stop_code
    else:
        error = None
    note = _container_note(_text(container, "name"), _text(container, "reason"), exit_code, stopped_reason)
    outcome = f" ({error})" if error else ""
    return Alert(
        source=SOURCE_ECS,
        kind=f"ECS task {last_status}",
        status="failing" if failing else "info",
        severity="error" if failing else "info",
        title=_clip(f"{family or 'ECS task'}: task {task_id} {last_status}{outcome}", TITLE_MAX),
        summary=_clip(_join([stopped_reason, note]), EXCERPT_MAX),
        occurred_at=(
            _parse_time(detail.get("stoppedAt"))
            or _parse_time(detail.get("updatedAt"))
            or _parse_time(event.get("time"))
        ),
        region=_text(event, "region") or _arn_part(task_arn, 3),
        account=_text(event, "account") or _arn_part(task_arn, 4),
        resource=family,
        resources=_compact(
            cluster_arn=cluster_arn,
            task_arn=task_arn,
            task_definition_arn=task_definition_arn,
            container=_text(container, "name"),
        ),
        error=error,
        exit_code=exit_code,
        resolve_key=f"ecs:{cluster}/{family}" if cluster and family else None,
        subject=subject,
        delivery_id=_delivery(delivery_id, event),
        details=_compact(last_status=last_status, stop_code=stop_code, stopped_reason=stopped_reason or None),
    )


def _task_family(task_definition_arn: str | None, group: str | None) -> str | None:
    if task_definition_arn and "/" in task_definition_arn:
        return task_definition_arn.rsplit("/", 1)[-1].split(":", 1)[0] or None
    if group and group.startswith("family:"):
        return group.removeprefix("family:") or None
    return None


# --------------------------------------------------------------------------------------------------- Glue


def _from_glue_job(event: Mapping[str, Any], subject: str, delivery_id: str | None) -> Alert:
    detail = _mapping(event.get("detail"))
    job = _text(detail, "jobName") or "Glue job"
    state = (_text(detail, "state") or "UNKNOWN").upper()
    alert_status: AlertStatus
    severity: Severity
    if state in ("FAILED", "TIMEOUT"):
        alert_status, severity = "failing", "error"
    elif state == "STOPPED":
        alert_status, severity = "failing", "warning"
    elif state == "SUCCEEDED":
        alert_status, severity = "resolved", "info"
    else:
        alert_status, severity = "info", "info"
    return Alert(
        source=SOURCE_GLUE,
        kind=f"Glue job run {state}",
        status=alert_status,
        severity=severity,
        title=_clip(f"{job}: Glue job run {state}", TITLE_MAX),
        summary=_clip(_text(detail, "message") or "", EXCERPT_MAX),
        occurred_at=_parse_time(event.get("time")),
        region=_text(event, "region"),
        account=_text(event, "account"),
        resource=job,
        resources=_compact(glue_job=_text(detail, "jobName"), glue_job_run_id=_text(detail, "jobRunId")),
        resolve_key=f"glue:{job}" if _text(detail, "jobName") else None,
        subject=subject,
        delivery_id=_delivery(delivery_id, event),
        details=_compact(state=state, glue_severity=_text(detail, "severity")),
    )


# -------------------------------------------------------------------------------------------------- Batch


def _from_batch_job(event: Mapping[str, Any], subject: str, delivery_id: str | None) -> Alert:
    detail = _mapping(event.get("detail"))
    job = _text(detail, "jobName") or "Batch job"
    status = (_text(detail, "status") or "UNKNOWN").upper()
    queue = _text(detail, "jobQueue")
    queue_name = queue.rsplit("/", 1)[-1] if queue else None
    container = _mapping(detail.get("container"))
    attempts = [_mapping(a) for a in detail.get("attempts") or []] if isinstance(detail.get("attempts"), list) else []
    last_attempt = _mapping(attempts[-1].get("container")) if attempts else {}
    exit_code = _exit_code(container.get("exitCode"))
    if exit_code is None:
        exit_code = _exit_code(last_attempt.get("exitCode"))
    failed_code = exit_code if exit_code else None

    alert_status: AlertStatus
    severity: Severity
    if status == "FAILED":
        alert_status, severity = "failing", "error"
    elif status == "SUCCEEDED":
        alert_status, severity = "resolved", "info"
    else:
        alert_status, severity = "info", "info"
    reason = _text(detail, "statusReason") or ""
    note = _container_note(None, _text(container, "reason") or _text(last_attempt, "reason"), failed_code, reason)
    return Alert(
        source=SOURCE_BATCH,
        kind=f"Batch job {status}",
        status=alert_status,
        severity=severity,
        title=_clip(f"{job}: Batch job {status}" + (f" (exit {failed_code})" if failed_code else ""), TITLE_MAX),
        summary=_clip(_join([reason, note]), EXCERPT_MAX),
        occurred_at=_parse_time(detail.get("stoppedAt")) or _parse_time(event.get("time")),
        region=_text(event, "region"),
        account=_text(event, "account"),
        resource=job,
        resources=_compact(
            batch_job_id=_text(detail, "jobId"), batch_job_name=_text(detail, "jobName"), batch_job_queue=queue
        ),
        error=f"exit {failed_code}" if failed_code and alert_status == "failing" else None,
        exit_code=failed_code,
        resolve_key=f"batch:{queue_name}/{job}" if queue_name and _text(detail, "jobName") else None,
        subject=subject,
        delivery_id=_delivery(delivery_id, event),
        details=_compact(
            status=status,
            log_stream=_text(container, "logStreamName") or _text(last_attempt, "logStreamName"),
            attempts=str(len(attempts)) if attempts else None,
        ),
    )


_EVENTBRIDGE_HANDLERS = {
    ("aws.states", "Step Functions Execution Status Change"): _from_step_functions,
    ("aws.cloudwatch", "CloudWatch Alarm State Change"): _from_alarm_event,
    ("aws.ecs", "ECS Task State Change"): _from_ecs_task,
    ("aws.glue", "Glue Job State Change"): _from_glue_job,
    ("aws.batch", "Batch Job State Change"): _from_batch_job,
}


# ------------------------------------------------------------------------------------------------ generic


def _generic(document: Any, text: str, subject: str, delivery_id: str | None) -> Alert:
    if isinstance(document, Mapping | list):
        summary = _json_excerpt(document)
        title = subject or (_text(document, "detail-type") if isinstance(document, Mapping) else None) or UNRECOGNISED
        subject = subject or (_text(document, "detail-type") if isinstance(document, Mapping) else None) or ""
        event = document if isinstance(document, Mapping) and "detail-type" in document else {}
        occurred_at = _parse_time(event.get("time"))
        region, account = _text(event, "region"), _text(event, "account")
    else:
        stripped = text.strip()
        summary = _clip(stripped, EXCERPT_MAX) if stripped else EMPTY_MESSAGE
        first_line = next((line.strip() for line in stripped.splitlines() if line.strip()), "")
        title = subject or _clip(first_line, TITLE_MAX) or UNRECOGNISED
        occurred_at, region, account = None, None, None
    return Alert(
        source=SOURCE_GENERIC,
        kind=UNRECOGNISED,
        status="failing",
        severity="warning",
        title=title,
        summary=summary,
        occurred_at=occurred_at,
        region=region,
        account=account,
        subject=subject,
        delivery_id=delivery_id,
    )


def _generic_fallback(payload: Any, subject: str, delivery_id: str | None) -> Alert:
    """The last resort when a handler failed on a malformed payload: an excerpt of whatever there is."""
    try:
        document, text = _decode(payload)
        return _generic(document, text, subject, delivery_id)
    except Exception:
        return Alert(
            source=SOURCE_GENERIC,
            kind=UNRECOGNISED,
            status="failing",
            severity="warning",
            title=subject or UNRECOGNISED,
            summary="(unreadable payload)",
            subject=subject,
            delivery_id=delivery_id,
        )


def _json_excerpt(document: Any) -> str:
    """Pretty-printed JSON, encoded only as far as :data:`EXCERPT_MAX` needs."""
    pieces: list[str] = []
    size = 0
    try:
        for chunk in json.JSONEncoder(indent=2, ensure_ascii=False, default=str).iterencode(document):
            pieces.append(chunk)
            size += len(chunk)
            if size > EXCERPT_MAX:
                break
    except (RecursionError, ValueError, TypeError):
        if not pieces:
            return "(JSON too deeply nested to show)"
        size = EXCERPT_MAX + 1  # what was encoded is only a prefix
    excerpt = "".join(pieces)
    if size > EXCERPT_MAX or len(excerpt) > EXCERPT_MAX:
        return excerpt[: EXCERPT_MAX - 1] + _ELLIPSIS
    return excerpt


# ------------------------------------------------------------------------------------------------ helpers


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(mapping: Mapping[str, Any], key: str) -> str | None:
    """A non-empty string value (numbers are turned into text), else None."""
    value = mapping.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _compact(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value}


def _join(parts: list[str]) -> str:
    return " — ".join(part for part in parts if part)


def _container_note(name: str | None, reason: str | None, exit_code: int | None, already_said: str) -> str:
    """``loader: OutOfMemoryError: ... (exit 137)``; the reason is left out when the stop reason repeats it."""
    said = reason if reason and reason not in already_said else None
    note = ": ".join(part for part in (name, said) if part) if said else ""
    if exit_code:
        note = f"{note} (exit {exit_code})" if note else f"{name + ': ' if name else ''}exit {exit_code}"
    return note


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _exit_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text({"v": value}, "v")
    return f"{value:g}"


def _loads(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


def _arn_part(arn: str | None, index: int) -> str | None:
    """One colon-separated field of an ARN (3 region, 4 account, 6 resource name for Step Functions)."""
    if not arn or not arn.startswith("arn:"):
        return None
    parts = arn.split(":")
    if len(parts) <= index:
        return None
    return parts[index] or None


def _delivery(delivery_id: str | None, event: Mapping[str, Any]) -> str | None:
    return delivery_id if delivery_id is not None else _text(event, "id")


def _parse_time(value: Any) -> datetime | None:
    """A UTC-aware datetime from epoch seconds/milliseconds or an ISO 8601 string, else None."""
    try:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, int | float):
            seconds = value / 1000 if abs(value) >= _EPOCH_MILLIS_FLOOR else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        if not isinstance(value, str) or not value.strip():
            return None
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return _parse_time(float(text))
        text = _UTC_OFFSET_WITHOUT_COLON.sub(r"\1:\2", text.replace("Z", "+00:00").replace("z", "+00:00"))
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None

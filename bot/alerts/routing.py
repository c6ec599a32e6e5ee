"""Give an alert its pipeline, error class, fingerprint and channel (pure, from etl-doctor.yml)."""

from __future__ import annotations

import hashlib

from bot.alerts.model import (
    SOURCE_ALARM,
    SOURCE_BATCH,
    SOURCE_ECS,
    SOURCE_GENERIC,
    SOURCE_GLUE,
    SOURCE_STEPFUNCTIONS,
    Alert,
)
from bot.config import ProjectConfig
from bot.diagnosis.classify import classify_text, normalise

_INTEGRATIONS = {SOURCE_ECS: "ecs", SOURCE_GLUE: "glue", SOURCE_BATCH: "batch", SOURCE_STEPFUNCTIONS: "states"}
_RESOURCE_KEYS = (
    "glue_job",
    "batch_job_queue",
    "batch_job_name",
    "alarm_name",
    "task_definition_arn",
    "container",
)


def route(alert: Alert, project: ProjectConfig) -> Alert:
    """The alert with ``pipeline``, ``category`` and ``fingerprint`` filled in.

    The pipeline comes from the state machine (by ARN or name) or from a pipeline's ``resources``
    patterns; the category from the same rules `/etl why` uses, on the event's own error text; the
    fingerprint from pipeline (or resource) + category + the normalised error, so the same failure
    on another run, task or day groups with the first one and different failures stay apart.
    """
    pipeline = alert.pipeline or _pipeline(alert, project)
    category = alert.category or _category(alert)
    return alert.with_changes(pipeline=pipeline, category=category, fingerprint=_fingerprint(alert, pipeline, category))


def channel_for(alert: Alert, project: ProjectConfig) -> str | None:
    """The channel the alert goes to: alert routes by pipeline/severity, the pipeline's, the default."""
    return project.channel_for(alert.pipeline, alert.severity)


def _pipeline(alert: Alert, project: ProjectConfig) -> str | None:
    found = project.pipeline_for_state_machine(alert.resources.get("state_machine_arn"))
    if found:
        return found
    names = [alert.resource, *(alert.resources.get(key) for key in _RESOURCE_KEYS)]
    family = alert.resources.get("task_definition_arn", "").rsplit("/", 1)[-1].split(":")[0]
    return project.pipeline_for_resource(*names, family or None)


def _category(alert: Alert) -> str | None:
    if alert.source in (SOURCE_ALARM, SOURCE_GENERIC) or alert.status != "failing":
        return None
    # The readable summary already holds what matters of the cause (an ECS task JSON is 2 KB of ids); the
    # rules run on the /sns request path, so they get the short text (27 ms → 1 ms per alert, bench/alert_storm.py).
    text = "\n".join(part for part in (alert.error, alert.summary) if part)
    error_name = alert.error if alert.error and alert.error.startswith(("States.", "Lambda.")) else None
    return classify_text(
        text, error_name=error_name, exit_code=alert.exit_code, integration=_INTEGRATIONS.get(alert.source)
    ).category


def _fingerprint(alert: Alert, pipeline: str | None, category: str | None) -> str:
    owner = pipeline or alert.resource or alert.resolve_key or alert.source
    if alert.source == SOURCE_ALARM:
        what = alert.resolve_key or alert.title
    elif alert.source == SOURCE_GENERIC:
        what = normalise(alert.title or alert.summary[:200])
    else:
        what = normalise("\n".join(part for part in (alert.error, alert.summary) if part)[:2000])
    digest = hashlib.sha256(f"{alert.source}\x1f{owner}\x1f{category or ''}\x1f{what}".encode()).hexdigest()
    return f"{owner[:60]}:{category or alert.source}:{digest[:16]}"

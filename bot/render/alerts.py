"""Alerts as Slack messages: the thread's parent, grouped repeats, resolutions and notes (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.alerts.model import SOURCE_STEPFUNCTIONS, Alert, IncidentView
from bot.aws.console import execution_url, log_group_url
from bot.commands import (
    ACTION_ACK,
    ACTION_ALERT_LOGS,
    ACTION_REDRIVE,
    ACTION_RETRY,
    ACTION_RETRY_MORE,
    ACTION_SNOOZE,
    ACTION_UNACK,
    ACTION_UNSNOOZE,
    ACTION_WHY,
)
from bot.render.blocks import actions, button, code, context, escape, header, link, section
from bot.render.diagnosis import CATEGORY_LABELS
from bot.render.limits import clamp

SUMMARY_MAX = 600
REPEATS_LISTED = 15

_SEVERITY_ICONS = {
    "critical": ":rotating_light:",
    "error": ":red_circle:",
    "warning": ":warning:",
    "info": ":grey_question:",
}
RESOLVED_REACTION = "white_check_mark"


def _when(moment: datetime | None) -> str:
    return f"{moment:%H:%M}" if moment else "?"


def _stamp(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "time unknown"


def _links(alert: Alert) -> list[str]:
    region = alert.region or ""
    found: list[str] = []
    execution = alert.resources.get("execution_arn")
    if execution and region:
        found.append(link(execution_url(execution, region), "execution"))
    glue_job = alert.resources.get("glue_job")
    if glue_job and region:
        found.append(link(log_group_url(region, "/aws-glue/jobs/error"), "Glue error logs"))
    return found


def _buttons(view: IncidentView) -> list[dict[str, Any]]:
    alert = view.alert
    execution = alert.resources.get("execution_arn")
    task = alert.resources.get("task_arn")
    found = []
    if execution:
        found.append(button("Why", ACTION_WHY, value=execution, style="primary"))
    if execution or task:
        found.append(button("Logs", ACTION_ALERT_LOGS, value=execution or task))
    if not view.incident_id:  # a preview: nothing to act on
        return found
    if execution and alert.status == "failing":
        if view.more_memory:
            found.append(button("Retry with more memory", ACTION_RETRY_MORE, value=view.incident_id))
        found.append(button("Retry", ACTION_RETRY, value=view.incident_id))
        found.append(button("Redrive", ACTION_REDRIVE, value=view.incident_id))
    if view.acked_by:
        found.append(button("Un-ack", ACTION_UNACK, value=view.incident_id))
    else:
        found.append(button("Ack", ACTION_ACK, value=view.incident_id))
    if view.snoozed_until:
        found.append(button("Un-snooze", ACTION_UNSNOOZE, value=view.incident_id))
    else:
        found.append(_snooze_select(view.incident_id))
    return found


def _snooze_select(incident_id: str) -> dict[str, Any]:
    choices = (("1h", "1 hour"), ("4h", "4 hours"), ("24h", "24 hours"), ("resolved", "until resolved"))
    return {
        "type": "static_select",
        "action_id": ACTION_SNOOZE,
        "placeholder": {"type": "plain_text", "text": "Snooze…"},
        "options": [
            {"text": {"type": "plain_text", "text": label}, "value": f"{incident_id}:{code}"} for code, label in choices
        ],
    }


def render_alert(view: IncidentView) -> dict[str, Any]:
    """The parent message of an alert thread: what failed, the verdict once known, count, state.

    Args:
        view: The incident as stored (first alert, count, enrichment, resolution).

    Returns:
        ``{"blocks", "text"}``.
    """
    alert, enriched = view.alert, view.enrichment
    resolved = view.status == "resolved"
    icon = ":white_check_mark:" if resolved else _SEVERITY_ICONS.get(alert.severity, ":red_circle:")
    headline = (
        f"{alert.pipeline}: {alert.title}" if alert.pipeline and alert.pipeline not in alert.title else alert.title
    )
    blocks = [header(f"{'Resolved — ' if resolved else ''}{headline}")]
    facts = [f"*Pipeline*\n{escape(alert.pipeline)}"] if alert.pipeline else []
    if enriched and enriched.failed_state:
        facts.append(f"*Failed state*\n`{escape(enriched.failed_state)}`")
    elif alert.resource:
        label = "State machine" if alert.source == SOURCE_STEPFUNCTIONS else "Resource"
        facts.append(f"*{label}*\n`{escape(alert.resource)}`")
    facts.append(f"*When*\n{_stamp(alert.occurred_at)}")
    category = (enriched.category if enriched else None) or alert.category
    if category:
        facts.append(f"*Error class*\n{CATEGORY_LABELS.get(category, category)}")
    elif alert.error:
        facts.append(f"*Error*\n`{escape(alert.error)}`")
    state = f"resolved (was: {alert.kind})" if resolved else alert.kind
    blocks.append(section(f"{icon} *{escape(state)}*", fields=facts))
    if enriched and enriched.verdict:
        blocks.append(section(f":mag: {escape(enriched.verdict)}"))
    elif enriched:
        lines = [f":mag: *{escape(enriched.title or '')}*"] if enriched.title else []
        if enriched.root_exception:
            lines.append(code(enriched.root_exception))
        if enriched.next_step:
            lines.append(f"*Next step:* {enriched.next_step}")
        if lines:
            blocks.append(section("\n".join(lines)))
    elif alert.summary:
        blocks.append(section(code(clamp(alert.summary, SUMMARY_MAX))))
    buttons = _buttons(view) if not resolved else []
    if buttons:
        blocks.append(actions(*buttons))
    notes = []
    if view.occurrences > 1:
        notes.append(f":repeat: ×{view.occurrences}, last {_when(view.last_seen_at)}")
    if resolved:
        notes.append(
            f":white_check_mark: resolved {_when(view.resolved_at)} by {escape(view.resolved_by or 'a later success')}"
        )
    if view.acked_by and not resolved:
        notes.append(f":eyes: acked by <@{view.acked_by}> {_when(view.acked_at)}")
    if view.snoozed_until and not resolved:
        until = "resolved" if view.snoozed_until.year == 9999 else f"{view.snoozed_until:%H:%M}"
        notes.append(f":zzz: snoozed until {until} by <@{view.snoozed_by}>")
    if view.status == "expired":
        notes.append("quiet for longer than the grouping window: repeats now start a new thread")
    if enriched is None and view.diagnosing and alert.source == SOURCE_STEPFUNCTIONS and not resolved:
        notes.append(":hourglass_flowing_sand: diagnosing…")
    notes += _links(alert)
    if notes:
        blocks.append(context(*notes))
    count = f" (×{view.occurrences})" if view.occurrences > 1 else ""
    prefix = "Resolved: " if resolved else ""
    return {"blocks": blocks, "text": clamp(f"{prefix}{headline}{count}", 3000)}


def render_repeats(alerts: list[Alert], *, total: int) -> dict[str, Any]:
    """A thread reply for repeats of the incident's failure (one reply for a whole batch).

    Args:
        alerts: The repeats, oldest first.
        total: The incident's occurrence count after them.
    """
    lines = []
    for alert in alerts[:REPEATS_LISTED]:
        name = alert.resources.get("execution_name") or alert.resource or alert.subject or alert.title
        error = f" `{escape(clamp(alert.error, 80))}`" if alert.error else ""
        lines.append(f"• {_when(alert.occurred_at)} {escape(clamp(name, 80))}{error}")
    if len(alerts) > REPEATS_LISTED:
        lines.append(f"…and {len(alerts) - REPEATS_LISTED} more")
    what = "1 more occurrence" if len(alerts) == 1 else f"{len(alerts)} more occurrences"
    text = f":repeat: {what} (×{total} in all)"
    return {"blocks": [section(text + "\n" + "\n".join(lines))], "text": text}


def render_resolution(alert: Alert, *, resolved_by: str) -> dict[str, Any]:
    """The thread reply that says what resolved the incident."""
    text = f":white_check_mark: Resolved by {escape(resolved_by)} at {_stamp(alert.occurred_at)}"
    extra = _links(alert)
    return {"blocks": [section(text), *([context(*extra)] if extra else [])], "text": text}


def render_note(alert: Alert) -> dict[str, Any]:
    """A thread reply for an informational alert about an open incident (e.g. INSUFFICIENT_DATA)."""
    text = f":information_source: {escape(alert.title)}"
    body = f"{text}\n{escape(clamp(alert.summary, SUMMARY_MAX))}" if alert.summary else text
    return {"blocks": [section(body)], "text": text}

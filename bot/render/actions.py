"""Actions as Slack messages: confirmations, approvals, refusals, outcomes and the audit trail (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.actions.model import LABEL, Outcome
from bot.commands import ACTION_APPROVE, ACTION_CANCEL, ACTION_CONFIRM, ACTION_REJECT, ACTION_RETRY
from bot.render.blocks import actions, button, context, escape, link, section
from bot.render.limits import finish_message, line_chunks

if TYPE_CHECKING:
    from bot.store.models import ActionRecord

AUDIT_ICONS = {"refused": ":no_entry:", "failed": ":x:", "started": ":arrow_forward:", "done": ":white_check_mark:"}


def render_outcome(outcome: Outcome) -> dict[str, Any]:
    """The ephemeral answer to the person who clicked or typed."""
    request = outcome.request
    if outcome.kind == "confirm" and request is not None:
        lines = "\n".join(f"• {line}" for line in outcome.details)
        blocks = [
            section(f":question: *{escape(LABEL.get(request.action, request.action))}?*\n{lines}"),
            actions(
                button("Confirm", ACTION_CONFIRM, value=request.id, style="primary"),
                button("Cancel", ACTION_CANCEL, value=request.id),
            ),
            context("Nothing runs until you confirm. Everything is recorded in `/etl audit`."),
        ]
        return finish_message(blocks, f"{LABEL.get(request.action, request.action)}? " + "; ".join(outcome.details))
    if outcome.kind == "refused":
        blocks = [section(f":no_entry: {outcome.text}")]
        if outcome.offer_retry:
            blocks.append(actions(button("Retry instead", ACTION_RETRY, value=_retry_value(outcome))))
        return finish_message(blocks, outcome.text)
    if outcome.kind == "approval":
        return finish_message([section(f":hourglass_flowing_sand: {outcome.text}")], outcome.text)
    return finish_message([section(outcome.text)], outcome.text)


def _retry_value(outcome: Outcome) -> str:
    return outcome.offer_retry or ""


def render_approval_request(outcome: Outcome) -> dict[str, Any]:
    """The thread message that asks a second person to approve."""
    assert outcome.request is not None and outcome.thread is not None
    lines = "\n".join(f"• {line}" for line in outcome.details)
    blocks = [
        section(f":busts_in_silhouette: {outcome.thread}\n{lines}"),
        actions(
            button("Approve", ACTION_APPROVE, value=outcome.request.id, style="primary"),
            button("Reject", ACTION_REJECT, value=outcome.request.id, style="danger"),
        ),
    ]
    return finish_message(blocks, outcome.thread)


def render_thread_note(text: str) -> dict[str, Any]:
    """A plain note in the alert's thread (started, failed, ended, rejected)."""
    return finish_message([section(text)], text)


def render_audit(records: list[ActionRecord], *, pipeline: str | None) -> dict[str, Any]:
    """`/etl audit`: the latest requests, newest first."""
    title = f"Audit trail{' for ' + pipeline if pipeline else ''} (latest {len(records)})"
    if not records:
        return finish_message([section(f"*{title}*\nNothing recorded yet.")], f"{title}: nothing recorded yet")
    lines = []
    for record in records:
        icon = AUDIT_ICONS.get(record.outcome, ":small_blue_diamond:")
        target = record.target.rsplit(":", 1)[-1]
        detail = f" — {escape(record.detail[:160])}" if record.detail else ""
        if record.slack_link and record.slack_link.startswith("https://"):
            detail += f" ({link(record.slack_link, 'message')})"
        lines.append(
            f"{icon} {record.at:%Y-%m-%d %H:%M} <@{record.actor}> {record.action} `{escape(target)}` "
            f"*{record.outcome}*{detail}"
        )
    blocks = [section(f"*{title}*")] + [section("\n".join(chunk)) for chunk in line_chunks(lines, 2800)]
    return finish_message(blocks, f"{title}: " + "; ".join(f"{r.action} {r.outcome}" for r in records[:10]))

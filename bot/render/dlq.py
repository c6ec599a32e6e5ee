"""`/etl dlq` as Slack messages: what waits in each dead-letter queue, and what a replay did (pure)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.actions.dlq import DlqListing, DlqMessage, ReplayReport, target_label
from bot.render.blocks import context, divider, escape, section
from bot.render.limits import SECTION_TEXT_MAX, finish_message, line_chunks

SHOWN_MESSAGES_MAX = 10
SHORT_ID = 8
LINE_MAX = 450  # one message or failure line, after escaping
FAILURE_SECTIONS_MAX = 12


def render_dlq_listing(listings: list[DlqListing]) -> dict[str, Any]:
    """One section per dead-letter queue: counts, oldest age, the first messages, how to replay them."""
    if not listings:
        text = "No dead-letter queues are configured: add them under `dlq:` in etl-doctor.yml."
        return finish_message([section(text)], "No dead-letter queues are configured")
    blocks: list[dict[str, Any]] = []
    for index, listing in enumerate(listings):
        if index:
            blocks.append(divider())
        blocks += _listing_blocks(listing)
    waiting = sum(listing.approximate_count for listing in listings)
    queues = "1 dead-letter queue" if len(listings) == 1 else f"{len(listings)} dead-letter queues"
    return finish_message(blocks, f"{queues}: {waiting} message{'s' * (waiting != 1)} waiting")


def render_replay_report(report: ReplayReport) -> dict[str, Any]:
    """The replay's summary line, then one line per message that was not cleanly replayed."""
    source, target = f"`{escape(report.name)}`", f"`{escape(report.target)}`" if report.target else "its target"
    total = len(report.outcomes)
    if total == 0:
        summary = f"Nothing to replay: {source} returned no messages."
        return finish_message([section(f":information_source: {summary}")], summary)
    icon = ":white_check_mark:" if report.failed == 0 else ":x:" if report.replayed == 0 else ":warning:"
    summary = f"Replayed {report.replayed} of {total} message{'s' * (total != 1)} from {source} to {target}"
    blocks = [section(f"{icon} {summary}")]
    if total == 1 and report.failed == 0:
        blocks.append(context(_line(report.outcomes[0].message_id, report.outcomes[0].detail, full_id=True)))
    failures = [_line(o.message_id, o.detail, full_id=True) for o in report.outcomes if not o.ok]
    blocks += _pack(failures, FAILURE_SECTIONS_MAX, "more failure(s) not shown")
    if report.note:
        blocks.append(context(escape(report.note)))
    text = summary.replace("`", "")
    if report.failed:
        text += f"; {report.failed} failed"
    return finish_message(blocks, text)


def _listing_blocks(listing: DlqListing) -> list[dict[str, Any]]:
    config = listing.config
    title = f"*{escape(listing.name)}*"
    if config.description:
        title += f" — {escape(config.description)}"
    about = [f"pipeline {escape(config.pipeline)}"] if config.pipeline else []
    if listing.problem:
        return [section(f"{title}\n:warning: could not read it: {escape(listing.problem)}"), *_about(about)]
    if listing.approximate_count == 0 and not listing.messages:
        counts = "empty"
    else:
        counts = f"{listing.approximate_count} waiting"
    if listing.in_flight:
        counts += f", {listing.in_flight} in flight"
    if listing.oldest_age is not None:
        complete = len(listing.messages) >= listing.approximate_count
        counts += f" · oldest {'' if complete else 'of those read '}{_age(listing.oldest_age)}"
    if listing.retention is not None and listing.messages:
        counts += f" · retention {_age(listing.retention)}"
    blocks = [section(f"{title}\n{counts}")]
    shown = listing.messages[:SHOWN_MESSAGES_MAX]
    if shown:
        now_age = listing.oldest_age
        oldest = min((m.sent_at for m in shown if m.sent_at is not None), default=None)
        lines = [_message_line(message, oldest, now_age) for message in shown]
        blocks += _pack(lines, 4, "more message(s) not shown")
        hidden = max(listing.approximate_count, len(listing.messages)) - len(shown)
        if hidden > 0:
            about.append(f"{hidden} more not shown")
        about.append(
            f"`{escape(f'/etl dlq replay {listing.name} <message-id>|--all')}` sends them back to {_target(listing)}"
        )
    return blocks + _about(about)


def _about(parts: list[str]) -> list[dict[str, Any]]:
    return [context(" · ".join(parts))] if parts else []


def _target(listing: DlqListing) -> str:
    target = listing.config.target
    if target.queue_url is not None:
        return f"`{escape(target_label(target))}`"
    return f"`{escape(target_label(target))}` (a new Step Functions execution each)"


def _message_line(message: DlqMessage, oldest: Any, oldest_age: timedelta | None) -> str:
    parts = []
    if message.sent_at is not None and oldest is not None and oldest_age is not None:
        parts.append(f"{_age(oldest_age - (message.sent_at - oldest))} old")
    parts.append(f"received {message.receive_count}×")
    text = message.excerpt or "(empty body)"
    error = message.message_attributes.get("ErrorMessage")
    if error:
        text = f"{text} (error: {error})"
    return _line(message.message_id, text, prefix=", ".join(parts))


def _line(message_id: str, text: str, *, prefix: str = "", full_id: bool = False) -> str:
    shown_id = message_id if full_id else message_id[:SHORT_ID]
    head = f"• `{escape(shown_id)}` " + (f"{prefix} — " if prefix else "— ")
    return head + _escape_within(text, LINE_MAX - len(head))


def _escape_within(text: str, limit: int) -> str:
    """Escape ``text`` for mrkdwn and cut it to ``limit`` characters without splitting an entity."""
    out: list[str] = []
    used = 0
    for char in text.replace("`", "ˋ"):
        piece = escape(char)
        if used + len(piece) > limit - 1:
            out.append("…")
            break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def _pack(lines: list[str], max_sections: int, omitted_label: str) -> list[dict[str, Any]]:
    """Lines into as few sections as fit in Slack's 3,000 characters, at most ``max_sections``."""
    kept = line_chunks(lines, SECTION_TEXT_MAX - 10)[:max_sections]
    blocks = [section("\n".join(chunk)) for chunk in kept]
    omitted = len(lines) - sum(len(chunk) for chunk in kept)
    if omitted:
        blocks.append(context(f"{omitted} {omitted_label}"))
    return blocks


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"

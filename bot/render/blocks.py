"""Block Kit builders: small pure functions, each clamping its text to Slack's limits."""

from __future__ import annotations

from typing import Any

from bot.render.limits import (
    ACTION_ID_MAX,
    ACTIONS_ELEMENTS_MAX,
    BUTTON_TEXT_MAX,
    BUTTON_URL_MAX,
    BUTTON_VALUE_MAX,
    CONTEXT_ELEMENTS_MAX,
    HEADER_TEXT_MAX,
    SECTION_FIELD_TEXT_MAX,
    SECTION_FIELDS_MAX,
    SECTION_TEXT_MAX,
    clamp,
)

Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape user or AWS text for mrkdwn (``&``, ``<``, ``>``), as Slack requires."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """An mrkdwn code block; backtick runs inside it cannot close it early."""
    return "```" + text.replace("```", "ˋˋˋ") + "```"


def link(url: str, label: str) -> str:
    """An mrkdwn link."""
    return f"<{url}|{escape(label).replace('|', '¦')}>"


def header(text: str) -> Block:
    """A header block (plain text, 150 characters)."""
    return {"type": "header", "text": {"type": "plain_text", "text": clamp(text, HEADER_TEXT_MAX), "emoji": True}}


def section(text: str, *, fields: list[str] | None = None) -> Block:
    """A section with mrkdwn text (3,000 characters) and optional fields (10 of 2,000 each)."""
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": clamp(text, SECTION_TEXT_MAX)}}
    if fields:
        block["fields"] = [
            {"type": "mrkdwn", "text": clamp(field, SECTION_FIELD_TEXT_MAX)} for field in fields[:SECTION_FIELDS_MAX]
        ]
    return block


def context(*texts: str) -> Block:
    """A context block of mrkdwn texts (at most 10 elements)."""
    elements = [{"type": "mrkdwn", "text": clamp(text, SECTION_TEXT_MAX)} for text in texts[:CONTEXT_ELEMENTS_MAX]]
    return {"type": "context", "elements": elements}


def divider() -> Block:
    """A divider."""
    return {"type": "divider"}


def button(
    text: str, action_id: str, *, value: str | None = None, url: str | None = None, style: str | None = None
) -> Block:
    """A button (text 75, action_id 255, value 2,000, url 3,000 characters)."""
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clamp(text, BUTTON_TEXT_MAX), "emoji": True},
        "action_id": action_id[:ACTION_ID_MAX],
    }
    if value is not None:
        if len(value) > BUTTON_VALUE_MAX:
            raise ValueError("button value over 2,000 characters; store the data and pass an id")
        element["value"] = value
    if url is not None and len(url) <= BUTTON_URL_MAX:
        element["url"] = url
    if style in {"primary", "danger"}:
        element["style"] = style
    return element


def actions(*elements: Block) -> Block:
    """An actions block (at most 25 elements)."""
    return {"type": "actions", "elements": list(elements[:ACTIONS_ELEMENTS_MAX])}

"""Block Kit limits (slack_sdk's validation constants) and the one place that enforces them."""

from __future__ import annotations

from typing import Any

# https://docs.slack.dev/reference/block-kit/blocks ; slack_sdk/models/blocks/*.py
MESSAGE_BLOCKS_MAX = 50
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BUTTON_URL_MAX = 3000
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
MESSAGE_TEXT_MAX = 40000
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30

ELLIPSIS = "…"


def clamp(text: str, limit: int) -> str:
    """Shorten ``text`` to ``limit`` characters, marking the cut with an ellipsis.

    A cut inside a fenced code block keeps the fence closed so Slack still renders it as code.
    """
    if len(text) <= limit:
        return text
    fence = "\n```"
    cut = text[: limit - len(ELLIPSIS)]
    if cut.count("```") % 2 == 1:
        cut = text[: limit - len(ELLIPSIS) - len(fence)] + ELLIPSIS + fence
        return cut
    return cut + ELLIPSIS


def finish_message(blocks: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """Return ``{"blocks", "text"}`` within the message limits.

    More than 50 blocks are cut to 49 plus a context block saying how many were left out; the
    fallback text (notifications, screen readers) is always present and at most 40,000 characters.
    """
    if len(blocks) > MESSAGE_BLOCKS_MAX:
        omitted = len(blocks) - (MESSAGE_BLOCKS_MAX - 1)
        note = {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{omitted} more block(s) left out (Slack shows at most 50)."}],
        }
        blocks = [*blocks[: MESSAGE_BLOCKS_MAX - 1], note]
    return {"blocks": blocks, "text": clamp(text or " ", MESSAGE_TEXT_MAX)}


def line_chunks(lines: list[str], budget: int) -> list[list[str]]:
    """Consecutive lines grouped so that each group, joined one per line, fits in ``budget`` characters.

    A single line longer than ``budget`` gets a group of its own (clamp it first if that matters).
    """
    chunks: list[list[str]] = []
    chunk: list[str] = []
    for line in lines:
        if chunk and sum(len(kept) + 1 for kept in chunk) + len(line) > budget:
            chunks.append(chunk)
            chunk = []
        chunk.append(line)
    return [*chunks, chunk] if chunk else chunks

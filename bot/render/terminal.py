"""Block Kit to readable terminal text: what Slack would show, for the demo and the CLI (pure)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

WIDTH = 72

_EMOJI = {
    ":red_circle:": "●",
    ":large_green_circle:": "●",
    ":large_blue_circle:": "◐",
    ":black_circle:": "○",
    ":white_circle:": "○",
    ":warning:": "⚠",
    ":x:": "✗",
    ":white_check_mark:": "✓",
    ":hourglass_flowing_sand:": "⌛",
    ":mag:": "⌕",
    ":scroll:": "≡",
    ":bar_chart:": "▮",
    ":information_source:": "i",
    ":repeat:": "↻",
    ":rotating_light:": "‼",
    ":grey_question:": "?",
    ":eyes:": "◉",
    ":zzz:": "z",
    ":no_entry:": "⛔",
    ":question:": "?",
    ":arrow_forward:": "▶",
    ":busts_in_silhouette:": "⚇",
    ":no_entry_sign:": "⊘",
    ":inbox_tray:": "⇩",
    ":small_blue_diamond:": "◆",
    ":round_pushpin:": "⌖",
}
_LINK = re.compile(r"<([^|>]+)\|([^>]+)>|<([^>|]+)>")
_FENCE = re.compile(r"```(.*?)```", re.DOTALL)
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


def mrkdwn_to_text(text: str, *, show_urls: bool = False) -> str:
    """Turn mrkdwn into plain text: links to their labels, emoji codes to symbols, entities unescaped."""

    def replace_link(match: re.Match[str]) -> str:
        url, label, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None:
            return bare
        return f"{label} ({url})" if show_urls else label

    def prose(part: str) -> str:
        part = _BOLD.sub(r"\1", _LINK.sub(replace_link, part))
        for code, symbol in _EMOJI.items():
            part = part.replace(code, symbol)
        return part

    # Code blocks are shown as they are (indented): `COUNT(*) … COUNT(*)` is SQL, not bold text.
    parts = []
    for index, part in enumerate(_FENCE.split(text)):
        if index % 2:
            parts.append("\n" + "\n".join("    " + line for line in part.strip("\n").split("\n")))
        else:
            parts.append(prose(part))
    return html.unescape("".join(parts))


def _text_of(obj: dict[str, Any] | None, show_urls: bool = False) -> str:
    if not obj:
        return ""
    raw = str(obj.get("text", ""))
    return mrkdwn_to_text(raw, show_urls=show_urls) if obj.get("type") == "mrkdwn" else html.unescape(raw)


def render_blocks(blocks: Iterable[dict[str, Any]], *, show_urls: bool = False) -> str:
    """Render Block Kit blocks as terminal text (headers underlined, buttons as ``[ Why ]``).

    Args:
        blocks: The blocks.
        show_urls: Print each link's URL after its label (a terminal cannot click a label).
    """
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text_of(block.get("text"))
            out += [title, "═" * min(WIDTH, max(3, len(title)))]
        elif kind == "section":
            text = _text_of(block.get("text"), show_urls)
            if text:
                out.append(text)
            fields = [_text_of(field) for field in block.get("fields", [])]
            out += [f"  {field}" for field in fields]
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "button":
                out.append(f"  [ {_text_of(accessory.get('text'))} ]")
        elif kind == "context":
            parts = [_text_of(element) for element in block.get("elements", []) if element.get("type") != "image"]
            out.append("  " + "  ·  ".join(parts))
        elif kind == "divider":
            out.append("─" * WIDTH)
        elif kind == "actions":
            buttons = [
                f"[ {_text_of(element.get('text') or element.get('placeholder'))}"
                + (" ▾ ]" if "select" in str(element.get("type", "")) else " ]")
                for element in block.get("elements", [])
            ]
            out.append("  ".join(buttons))
        elif kind == "image":
            out.append(f"[image: {block.get('alt_text', '')}]")
        else:
            out.append(f"[{kind} block]")
    return "\n".join(out)


def render_message(message: dict[str, Any], *, show_urls: bool = False) -> str:
    """Render a message (``blocks`` and/or ``text``) as Slack would show it."""
    blocks = message.get("blocks")
    if blocks:
        return render_blocks(blocks, show_urls=show_urls)
    return mrkdwn_to_text(str(message.get("text", "")), show_urls=show_urls)

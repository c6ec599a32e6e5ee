"""`/etl logs` as a Slack message: the stream, then its lines in code blocks (pure)."""

from __future__ import annotations

from typing import Any

from bot.diagnosis.logs_lookup import LogsResult
from bot.diagnosis.model import PATH_SEPARATOR
from bot.render.blocks import code, context, escape, link, section
from bot.render.limits import SECTION_TEXT_MAX, finish_message

LINE_MAX = 300
MAX_SECTIONS = 12


def render_logs(result: LogsResult) -> dict[str, Any]:
    """Lines of one log stream, oldest first, split over sections within Slack's limits."""
    what = f"matching `{escape(result.grep)}`" if result.grep else "last lines"
    title = f"*{link(result.url, result.group + PATH_SEPARATOR + result.stream)}* — {len(result.lines)} {what}"
    if not result.lines:
        message = f"{title}\nNothing {'matched' if result.grep else 'was written'} in that window."
        return finish_message([section(message)], f"No log lines in {result.group} {result.stream}")
    rendered = []
    for line in result.lines:
        text = line.message if len(line.message) <= LINE_MAX else line.message[: LINE_MAX - 1] + "…"
        rendered.append(f"{line.timestamp:%m-%d %H:%M:%S} {text}")
    blocks = [section(title)]
    chunk: list[str] = []
    budget = SECTION_TEXT_MAX - 10
    omitted = 0
    for text in rendered:
        if chunk and sum(len(t) + 1 for t in chunk) + len(text) > budget:
            if len(blocks) >= MAX_SECTIONS:
                omitted += 1
                continue
            blocks.append(section(code("\n".join(chunk))))
            chunk = []
        chunk.append(text)
    if chunk and len(blocks) < MAX_SECTIONS + 1:
        blocks.append(section(code("\n".join(chunk))))
    notes = [f"found via {escape(result.found_by)}"] if result.found_by else []
    if omitted:
        notes.append(f"{omitted} more lines not shown; open the stream")
    if notes:
        blocks.append(context(*notes))
    return finish_message(blocks, f"{len(result.lines)} log lines from {result.group} {result.stream}")

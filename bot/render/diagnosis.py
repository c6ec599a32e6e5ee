"""A diagnosis as a Slack message: what failed, the hop chain, the root exception, evidence, next steps (pure)."""

from __future__ import annotations

from typing import Any

from bot.commands import ACTION_LOGS, ACTION_REDRIVE, ACTION_RETRY
from bot.diagnosis.model import Diagnosis, EvidenceLine
from bot.render.blocks import actions, button, code, context, divider, escape, header, link, section
from bot.render.limits import SECTION_TEXT_MAX, finish_message, line_chunks

EVIDENCE_MESSAGE_MAX = 220
EVIDENCE_SECTIONS_MAX = 3
LINK_URL_MAX = 1000  # longer console links are left out of titles: the evidence lines need the room
ROOT_MATCH_MAX = 80
CODE_FENCES = 10  # two ``` fences and a margin
RANGE_DASH = "\N{EN DASH}"

CATEGORY_LABELS = {
    "out_of_memory": "out of memory",
    "timeout": "timeout",
    "throttling_or_rate_limit": "throttling / rate limit",
    "permission_denied": "permission denied",
    "missing_resource": "missing resource",
    "network_or_connectivity": "network / connectivity",
    "container_start_failure": "container start failure",
    "schema_or_type_mismatch": "schema / type mismatch",
    "data_quality_assertion": "data quality check",
    "code_bug": "code bug",
    "dependency_or_import": "dependency / import",
    "disk_full": "disk full",
    "spot_or_capacity": "spot / capacity",
    "unknown": "unknown",
}


def render_diagnosis(d: Diagnosis) -> dict[str, Any]:
    """The `/etl why` answer; always within Block Kit limits, whatever the size of the input."""
    name = d.pipeline or d.state_machine_arn.rsplit(":", 1)[-1] or "execution"
    if not d.diagnosable:
        icon = ":white_check_mark:" if d.status == "SUCCEEDED" else ":hourglass_flowing_sand:"
        return finish_message([section(f"{icon} {escape(d.verdict)}")], d.verdict)
    where = f" at {d.failed_state}" if d.failed_state else ""
    label = CATEGORY_LABELS.get(d.category, d.category)
    blocks = [header(f"{name} failed{where}")]
    summary = f"*{escape(d.title or label)}* · `{d.category}` {d.confidence:.0%}"
    summary += " · transient: a retry as is may work" if d.transient else ""
    if d.error or d.cause_summary:
        summary += f"\n`{escape(d.error or '')}` {escape(d.cause_summary or '')}"
    blocks.append(section(summary))
    chain = []
    for index, hop in enumerate(d.hops, 1):
        shown = link(hop.url, hop.label) if hop.url else f"`{escape(hop.label)}`"
        detail = f" — {escape(hop.detail)}" if hop.detail else ""
        mark = "" if hop.followed else " :warning:"
        chain.append(f"{index}. {hop.kind.replace('_', ' ')} {shown}{detail}{mark}")
    if chain:
        blocks.append(section("*Chain*\n" + "\n".join(chain)))
    if d.root_exception:
        frames = "\n".join(f"    {frame.strip()}" for frame in d.app_frames[:5])
        blocks.append(section("*Root exception*\n" + code(d.root_exception + ("\n" + frames if frames else ""))))
    notes = [f":bar_chart: {escape(note)}" for note in d.resource_notes]
    notes += [f":warning: {escape(conflict)}" for conflict in d.conflicts]
    notes += [f":information_source: {escape(note)}" for note in d.notes]
    notes += [f":repeat: {escape(a.note)}" for a in d.retry_audit if a.has_retry]
    if notes:
        blocks.append(section("\n".join(notes)))
    if d.definition_snippet:
        blocks.append(section("*State definition*\n" + code(d.definition_snippet)))
    if d.remediation:
        steps = "\n".join(f"{index}. {escape(step)}" for index, step in enumerate(d.remediation, 1))
        blocks.append(section("*What to do*\n" + steps))
    if d.evidence:
        blocks += _evidence_blocks(d)
    blocks.append(divider())
    blocks.append(actions(*_buttons(d)))
    footer = [f"fingerprint `{d.fingerprint}`"] if d.fingerprint else []
    if d.context.get("aws_calls"):
        footer.append(f"{d.context['aws_calls']} AWS calls")
    blocks.append(context(*footer, link(d.hops[0].url, "execution") if d.hops and d.hops[0].url else d.execution_arn))
    text = f"{name} failed{where}: {d.title or label}"
    return finish_message(blocks, text)


def _buttons(d: Diagnosis) -> list[dict[str, Any]]:
    """Logs; Retry for a live execution; Redrive too for a STANDARD one (Express ARNs say ``:express:``).

    Retry and Redrive carry the execution ARN, as `/etl retry|redrive <ARN>` would: the click goes through the
    same permission check, preflight, confirmation and audit.
    """
    buttons = [button("Logs", ACTION_LOGS, value=d.execution_arn)]
    if d.execution_arn.startswith("arn:"):
        buttons.append(button("Retry", ACTION_RETRY, value=d.execution_arn))
        if ":execution:" in d.execution_arn:
            buttons.append(button("Redrive", ACTION_REDRIVE, value=d.execution_arn))
    return buttons


def _linked(url: str | None, label: str) -> str:
    """A link when there is a URL short enough for a title, else the label alone (escaped)."""
    return link(url, label) if url and len(url) <= LINK_URL_MAX else escape(label)


def _evidence_title(shown: list[EvidenceLine], left_out: int) -> str:
    """``*Evidence* (12 lines, <stream> 03:41:02 to <03:41:20>)``: links to the first and the last line."""
    first, last = shown[0], shown[-1]
    streams = len({(line.log_group, line.log_stream) for line in shown})
    more = f" and {streams - 1} more stream{'s' if streams > 2 else ''}" if streams > 1 else ""
    earlier = f", {left_out} earlier not shown" if left_out else ""
    end = _linked(last.url, f"{last.timestamp:%H:%M:%S}")
    return (
        f"*Evidence* ({len(shown)} lines{earlier}, {_linked(first.url, first.log_stream)}{more} "
        f"{first.timestamp:%H:%M:%S}{RANGE_DASH}{end})\n"
    )


def _root_line(d: Diagnosis) -> EvidenceLine | None:
    """The evidence line where the root exception was logged (by its first line, else by its type)."""
    if not d.root_exception:
        return None
    head = d.root_exception.strip().split("\n", 1)[0][:ROOT_MATCH_MAX]
    kind = head.split(":", 1)[0].strip()
    for wanted in (head, kind):
        found = next((line for line in d.evidence if wanted and wanted in line.message), None)
        if found is not None:
            return found
    return None


def _evidence_blocks(d: Diagnosis) -> list[dict[str, Any]]:
    """The evidence in code blocks (the latest lines when not all fit), and a link to the root exception's line."""
    texts = []
    for line in d.evidence:
        message = (
            line.message
            if len(line.message) <= EVIDENCE_MESSAGE_MAX
            else line.message[: EVIDENCE_MESSAGE_MAX - 1] + "…"
        )
        texts.append(f"{line.timestamp:%H:%M:%S} {message}")
    room = len(_evidence_title(d.evidence, len(d.evidence))) + CODE_FENCES
    chunks = line_chunks(texts, SECTION_TEXT_MAX - room)[-EVIDENCE_SECTIONS_MAX:]
    shown = d.evidence[len(d.evidence) - sum(len(chunk) for chunk in chunks) :]
    title = _evidence_title(shown, len(d.evidence) - len(shown))
    blocks = [section((title if index == 0 else "") + code("\n".join(chunk))) for index, chunk in enumerate(chunks)]
    root = _root_line(d)
    if root is not None and root.url and len(root.url) <= LINK_URL_MAX:
        at = link(root.url, f"{root.timestamp:%H:%M:%S}")
        blocks.append(context(f":round_pushpin: root exception logged at {at} in `{escape(root.log_stream)}`"))
    return blocks

"""A diagnosis as a Slack message: what failed, the hop chain, the root exception, evidence, next steps (pure)."""

from __future__ import annotations

from typing import Any

from bot.commands import ACTION_LOGS
from bot.diagnosis.model import Diagnosis
from bot.render.blocks import actions, button, code, context, divider, escape, header, link, section
from bot.render.limits import SECTION_TEXT_MAX, finish_message

EVIDENCE_MESSAGE_MAX = 220

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
        steps = "\n".join(f"{index}. {step}" for index, step in enumerate(d.remediation, 1))
        blocks.append(section("*What to do*\n" + steps))
    if d.evidence:
        blocks += _evidence_blocks(d)
    blocks.append(divider())
    buttons = [button("Logs", ACTION_LOGS, value=d.execution_arn)]
    blocks.append(actions(*buttons))
    footer = [f"fingerprint `{d.fingerprint}`"] if d.fingerprint else []
    if d.context.get("aws_calls"):
        footer.append(f"{d.context['aws_calls']} AWS calls")
    blocks.append(context(*footer, link(d.hops[0].url, "execution") if d.hops and d.hops[0].url else d.execution_arn))
    text = f"{name} failed{where}: {d.title or label}"
    return finish_message(blocks, text)


def _evidence_blocks(d: Diagnosis) -> list[dict[str, Any]]:
    lines = []
    for line in d.evidence:
        message = (
            line.message
            if len(line.message) <= EVIDENCE_MESSAGE_MAX
            else line.message[: EVIDENCE_MESSAGE_MAX - 1] + "…"
        )
        lines.append(f"{line.timestamp:%H:%M:%S} {message}")
    first = d.evidence[-1]
    stream = link(first.url, first.log_stream) if first.url else escape(first.log_stream)
    title = f"*Evidence* ({len(lines)} lines, {stream})\n"
    blocks: list[dict[str, Any]] = []
    chunk: list[str] = []
    budget = SECTION_TEXT_MAX - len(title) - 10
    for text in lines:
        if sum(len(t) + 1 for t in chunk) + len(text) > budget and chunk:
            blocks.append(section((title if not blocks else "") + code("\n".join(chunk))))
            chunk = []
        chunk.append(text)
    if chunk:
        blocks.append(section((title if not blocks else "") + code("\n".join(chunk))))
    return blocks[:3]

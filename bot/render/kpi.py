"""KPI reconciliations and checks as Slack messages and as terminal tables (pure).

Block Kit builders return ``{"blocks", "text"}`` within Slack's limits (`bot.render.limits`); the
``*_renderable`` functions return rich renderables for the command line (rich is imported when used,
so Slack's ack path never loads it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.commands import ACTION_BACKFILL
from bot.kpi.model import CheckResult, KeyDiff, KeySample, KpiReport, PartitionRow
from bot.render.blocks import actions, button, code, context, divider, escape, header, section
from bot.render.limits import SECTION_TEXT_MAX, clamp, finish_message

if TYPE_CHECKING:
    from rich.console import RenderableType

    from bot.config import ProjectConfig
    from bot.kpi.definitions import KpiConfig
    from bot.kpi.service import RunAllSummary

Message = dict[str, Any]

PARTITIONS_SHOWN = 10  # differing partitions listed before "…and N more"
SAMPLES_SHOWN = 5  # keys shown per category (missing, extra, changed, duplicated)
HINTS_SHOWN = 5
BACKFILL_SHOWN = 5
BACKFILL_BUTTONS = 5  # "Backfill <partition>" buttons (re-run the pipeline; confirmed and permission-checked)
SQL_MAX = 1200  # characters of one SQL text in a message (the full text is in --json)
VALUE_MAX = 60  # characters of one column value in a key sample

STATUS_LABELS = {
    "differs": "value differs",
    "rows_differ": "rows differ",
    "missing_in_target": "missing in target",
    "missing_in_source": "missing in source",
    "match": "match",
}


@dataclass(frozen=True)
class LastRun:
    """The latest recorded run of a KPI or check, for the list (``status``: ok, breach, failed, error, running)."""

    status: str
    started_at: datetime
    relative_diff: Decimal | None = None


# ------------------------------------------------------------------------------------------------ formatting


def fmt_number(value: Decimal | None) -> str:
    """``1204331.500000`` → ``1,204,331.50``: thousands separated, trailing zeros dropped (cents kept); None → —."""
    if value is None:
        return "—"
    text = format(value, "f")
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    fraction = fraction.rstrip("0")
    if fraction and len(fraction) < 2:
        fraction = fraction.ljust(2, "0")
    grouped = f"{int(whole):,}"
    if sign and grouped == "0" and not fraction:
        sign = ""
    return f"{sign}{grouped}{'.' + fraction if fraction else ''}"


def fmt_signed(value: Decimal | None) -> str:
    """A difference with its sign: ``+12.50``, ``-14,329.40``, ``0``."""
    if value is None:
        return "—"
    shown = fmt_number(value)
    return shown if shown.startswith("-") or shown == "0" else "+" + shown


def fmt_percent(fraction: Decimal | None, *, signed: bool = True) -> str:
    """A relative difference (a fraction) as a percentage: ``-0.0119`` → ``-1.19%``; tiny ones keep 2 digits."""
    if fraction is None:
        return "—"
    percent = fraction * 100
    if percent == 0:
        return "0%"
    if abs(percent) >= Decimal("0.01"):
        text = f"{percent:.2f}".rstrip("0").rstrip(".")
    else:
        text = format(percent.normalize(), ".2g") if abs(percent) >= Decimal("1e-6") else format(percent, ".1e")
    return (("+" if percent > 0 and signed else "") + text + "%").replace("+-", "-")


def fmt_tolerance(tolerance: Mapping[str, str | None]) -> str:
    """``{"absolute": "100", "relative": "0.001"}`` → ``±0.1% or ±100``; nothing → ``exact``."""
    parts = []
    relative, absolute = tolerance.get("relative"), tolerance.get("absolute")
    if relative is not None:
        parts.append("±" + fmt_percent(Decimal(relative), signed=False))
    if absolute is not None:
        parts.append("±" + fmt_number(Decimal(absolute)))
    return " or ".join(parts) if parts else "exact"


def fmt_bytes(count: int) -> str:
    """``1536`` → ``1.5 KB``."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


def fmt_elapsed(milliseconds: int) -> str:
    """``840`` → ``0.84 s``; ``125000`` → ``2 min 5 s``."""
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.2f} s"
    seconds = milliseconds // 1000
    return f"{seconds // 60} min {seconds % 60} s"


def _key_text(key: Mapping[str, str | None]) -> str:
    return ", ".join(f"{column}={_value(value)}" for column, value in key.items())


_DECIMAL_TEXT = re.compile(r"^-?\d+\.\d+$")


def _value(value: str | None) -> str:
    """A compared column's value: NULL shown as such, decimals without the comparison scale's zeros."""
    if value is None:
        return "NULL"
    if _DECIMAL_TEXT.match(value) and len(value) <= 40:
        value = fmt_number(Decimal(value)).replace(",", "")
    return value if len(value) <= VALUE_MAX else value[: VALUE_MAX - 1] + "…"


def _changes(sample: KeySample) -> str:
    """``premium 120.50 → 12.05`` for each column whose value differs between the sides."""
    source, target = sample.source or {}, sample.target or {}
    columns = [c for c in source if c not in sample.key] + [
        c for c in target if c not in source and c not in sample.key
    ]
    changed = [c for c in columns if source.get(c) != target.get(c)]
    if not changed:
        return ""
    return "; ".join(f"{c} {_value(source.get(c))} → {_value(target.get(c))}" for c in changed)


def _sample_lines(keys: KeyDiff) -> list[str]:
    lines: list[str] = []
    for label, found in (
        ("missing", keys.missing),
        ("extra", keys.extra),
        ("changed", keys.changed),
        ("duplicate", keys.duplicates),
    ):
        for sample in found.sample[:SAMPLES_SHOWN]:
            line = f"{label:<9} {_key_text(sample.key)}"
            if label == "changed":
                change = _changes(sample)
                line += f": {change}" if change else ""
            elif label == "duplicate" or sample.source_count > 1 or sample.target_count > 1:
                line += f" (source ×{sample.source_count}, target ×{sample.target_count})"
            lines.append(line)
        shown = min(len(found.sample), SAMPLES_SHOWN)
        if found.count > shown and shown:
            lines.append(f"{'':<9} …and {found.count - shown:,} more {label}")
    return lines


def _keys_worth_showing(keys: KeyDiff) -> bool:
    return bool(keys.total or keys.duplicates.count or not keys.complete or keys.note)


def _key_counts(keys: KeyDiff) -> str:
    parts = [
        f"{keys.missing.count:,} missing in target",
        f"{keys.extra.count:,} extra in target",
        f"{keys.changed.count:,} changed",
    ]
    if keys.duplicates.count:
        parts.append(f"{keys.duplicates.count:,} duplicated")
    return " · ".join(parts)


def _verdict(report: KpiReport) -> str:
    tolerance = fmt_tolerance(report.tolerance)
    if report.within_tolerance:
        return f"Within tolerance ({fmt_percent(report.relative_diff)}, tolerance {tolerance})"
    if report.diff is not None and report.diff != 0:
        direction = "below" if report.diff < 0 else "above"
        gap = f"target is {fmt_number(abs(report.diff))} {direction} source"
    else:
        gap = "target differs from source"
    return f"Out of tolerance: {gap} ({fmt_percent(report.relative_diff)}, tolerance {tolerance})"


def _same_scale(texts: list[str], scale: int | None = None) -> list[str]:
    """Pad formatted numbers to the same number of decimals (``41,000`` → ``41,000.00``)."""
    if scale is None:
        scale = _scale(texts)
    if not scale:
        return texts
    padded = []
    for text in texts:
        if text == "—":
            padded.append(text)
            continue
        whole, _, fraction = text.partition(".")
        padded.append(f"{whole}.{fraction.ljust(scale, '0')}")
    return padded


def _scale(texts: list[str]) -> int:
    return max((len(text.partition(".")[2]) for text in texts), default=0)


def _values(report: KpiReport) -> tuple[str, str, str]:
    """Source, target and diff at one number of decimals."""
    texts = [fmt_number(report.source_value), fmt_number(report.target_value), fmt_signed(report.diff)]
    source, target, diff = _same_scale(texts)
    return source, target, diff


def _layer_values(report: KpiReport) -> list[str]:
    return _same_scale([fmt_number(layer.value) for layer in report.layers])


def _partition_table(rows: Sequence[PartitionRow]) -> list[list[str]]:
    diffs = [row.target - row.source if row.source is not None and row.target is not None else None for row in rows]
    source = [fmt_number(row.source) for row in rows]
    target = [fmt_number(row.target) for row in rows]
    diff = [fmt_signed(value) for value in diffs]
    scale = _scale(source + target + diff)
    source, target, diff = _same_scale(source, scale), _same_scale(target, scale), _same_scale(diff, scale)
    table = [["partition", "source", "target", "diff", "rows (src/tgt)", "status"]]
    for index, row in enumerate(rows):
        counts = f"{row.source_rows:,}/{row.target_rows:,}"
        table.append(
            [
                row.partition,
                source[index],
                target[index],
                diff[index],
                counts,
                STATUS_LABELS.get(row.status, row.status),
            ]
        )
    return table


def _aligned(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    numeric = {1, 2, 3}
    lines = []
    for row in table:
        cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _sql(text: str) -> str:
    return code(escape(clamp(text.strip(), SQL_MAX)))


# ------------------------------------------------------------------------------------------------ Block Kit


def render_kpi_report(report: KpiReport) -> Message:
    """The `/etl kpi` answer: values, differing partitions, keys, lineage, hints, backfill, cost.

    Always within Block Kit limits (50 blocks, 3,000 characters a section) whatever the report holds.
    """
    icon = ":x:" if report.breached else ":white_check_mark:"
    blocks: list[dict[str, Any]] = [header(f"KPI {report.kpi} · {report.range.label}")]
    summary = f"{icon} *{escape(_verdict(report))}*"
    if report.description:
        summary += f"\n_{escape(report.description)}_"
    source, target, diff = _values(report)
    fields = [
        f"*Source* `{escape(report.source_layer)}`\n{source}",
        f"*Target* `{escape(report.target_layer)}`\n{target}",
        f"*Diff* (target - source)\n{diff}",
        f"*Relative diff*\n{fmt_percent(report.relative_diff)}",
        f"*Tolerance*\n{fmt_tolerance(report.tolerance)}",
        f"*Verdict*\n{'breach' if report.breached else 'within tolerance'}",
    ]
    blocks.append(section(summary, fields=fields))
    blocks += _partition_blocks(report)
    if report.keys is not None and _keys_worth_showing(report.keys):
        blocks.append(_keys_block(report.keys))
    blocks += _lineage_blocks(report)
    for hint in report.hints[:HINTS_SHOWN]:
        text = f":information_source: *Hint* ({escape(hint.kind)}): {escape(hint.text)}"
        blocks.append(section(text + ("\n" + _sql(hint.sql) if hint.sql else "")))
    if len(report.hints) > HINTS_SHOWN:
        blocks.append(context(f"…and {len(report.hints) - HINTS_SHOWN} more hints (`--json` has them all)"))
    for item in report.backfill[:BACKFILL_SHOWN]:
        blocks.append(section(_backfill_text(item)))
    reruns = [item for item in report.backfill if item.kind == "rerun" and item.partition and item.pipeline]
    if reruns:
        buttons = [
            button(f"Backfill {item.partition}", ACTION_BACKFILL, value=f"{report.kpi}|{item.partition}")
            for item in reruns[:BACKFILL_BUTTONS]
        ]
        blocks.append(actions(*buttons))
    if len(report.backfill) > BACKFILL_SHOWN:
        blocks.append(context(f"…and {len(report.backfill) - BACKFILL_SHOWN} more backfill suggestions"))
    for warning in report.warnings[:5]:
        blocks.append(context(f":warning: {escape(warning)}"))
    blocks.append(divider())
    blocks.append(context(_footer(report)))
    text = f"KPI {report.kpi} {report.range.label}: {_verdict(report)}"
    if report.first_divergence is not None:
        text += f"; first divergence {report.first_divergence.text}"
    return finish_message(blocks, text)


def _partition_blocks(report: KpiReport) -> list[dict[str, Any]]:
    differing = report.differing
    compared = report.partitions_compared or len(report.partitions)
    if not differing:
        if compared:
            plural = "partition matches" if compared == 1 else f"{compared:,} partitions match"
            return [context(f"All {plural} on both sides." if compared > 1 else f"The {plural} on both sides.")]
        return []
    title = f"*Differing partitions*: {len(differing):,} of {compared:,}"
    table = _aligned(_partition_table(differing[:PARTITIONS_SHOWN]))
    more = len(differing) - PARTITIONS_SHOWN
    body = code(escape(table)) + (f"\n…and {more:,} more" if more > 0 else "")
    return [section(f"{title}\n{body}")]


def _keys_block(keys: KeyDiff) -> dict[str, Any]:
    text = f"*Keys*: {escape(_key_counts(keys))}"
    if not keys.complete:
        note = f": {keys.note}" if keys.note else ""
        text += f"\n:warning: the search stopped early{escape(note)}; counts are lower bounds"
    elif keys.note:
        text += f"\n:information_source: {escape(keys.note)}"
    lines = _sample_lines(keys)
    if lines:
        budget = SECTION_TEXT_MAX - len(text) - 20
        text += "\n" + code(escape(clamp("\n".join(lines), budget)))
    return section(text)


def _lineage_blocks(report: KpiReport) -> list[dict[str, Any]]:
    lines = []
    if report.first_divergence is not None:
        lines.append(f":arrow_forward: *First divergence*: {escape(report.first_divergence.text)}")
        lines += [f":arrow_forward: then {escape(later.text)}" for later in report.divergences[1:]]
    for layer, value in zip(report.layers, _layer_values(report), strict=True):
        if layer.error:
            lines.append(f"• `{escape(layer.name)}` :warning: {escape(layer.error)}")
        else:
            lines.append(f"• `{escape(layer.name)}` {value} ({layer.rows:,} rows)")
    if not lines:
        return []
    scope = " (differing partitions)" if report.differing else ""
    return [section(f"*Lineage*{scope}\n" + "\n".join(lines))]


def _backfill_text(item: Any) -> str:
    text = f":repeat: *Backfill*: {escape(item.text)}"
    if item.sql:
        text += "\n" + _sql(item.sql)
    elif item.kind == "rerun":
        detail = [f"pipeline `{escape(item.pipeline)}`"] if item.pipeline else []
        if item.input:
            detail.append(f"input `{escape(clamp(item.input, 300))}`")
        if detail:
            text += "\n" + " · ".join(detail)
    return text


def _footer(report: KpiReport) -> str:
    return (
        f"{report.queries_run:,} queries · {fmt_bytes(report.bytes_fetched)} fetched · "
        f"{report.rows_fetched:,} rows · {fmt_elapsed(report.elapsed_ms)} · aggregate `{escape(report.aggregate)}`"
    )


def render_kpi_progress(name: str, spec: str | None, step: str) -> Message:
    """The message a running reconciliation shows, updated as the engine reports its steps."""
    what = f"`{escape(name)}` {escape(spec)}" if spec else f"`{escape(name)}` (latest complete partition)"
    text = f":hourglass_flowing_sand: Reconciling {what}…"
    return finish_message([section(text), context(escape(clamp(step, 300)))], f"Reconciling {name}: {step}")


def render_kpi_failed(name: str, spec: str | None, reason: str) -> Message:
    """What the progress message becomes when the reconciliation could not run."""
    what = f"`{escape(name)}` {escape(spec)}" if spec else f"`{escape(name)}`"
    text = f":warning: Could not reconcile {what}: {escape(reason)}"
    return finish_message([section(text)], f"Could not reconcile {name}: {reason}")


def render_check_result(result: CheckResult) -> Message:
    """The `/etl check` answer: violations against the threshold."""
    rows = "row" if result.violations == 1 else "rows"
    if result.passed:
        line = f":white_check_mark: *Check `{escape(result.name)}` passed*: {result.violations:,} violating {rows}"
    else:
        line = f":x: *Check `{escape(result.name)}` failed*: {result.violations:,} violating {rows}"
    line += f" (threshold {result.threshold:,})"
    if result.description:
        line += f"\n_{escape(result.description)}_"
    footer = context(f"connection `{escape(result.connection)}` · {fmt_elapsed(result.elapsed_ms)}")
    verdict = "passed" if result.passed else "failed"
    text = f"Check {result.name} {verdict}: {result.violations} violating {rows} (threshold {result.threshold})"
    return finish_message([section(line), footer], text)


def render_kpi_list(project: ProjectConfig, last_runs: Mapping[str, LastRun] | None = None) -> Message:
    """`/etl kpi list`: every KPI with what it measures, its lineage, tolerance and latest run."""
    last_runs = last_runs or {}
    if not project.kpis:
        example = (
            "```kpis:\n  premium_amount:\n    aggregate: sum\n    column: premium\n    keys: [policy_id]\n"
            "    partition: {column: policy_date, grain: day}\n    tolerance: {relative: 0.001}\n"
            "    layers:\n      - {name: oracle.policies, connection: oracle, table: policies}\n"
            "      - {name: fact_policies, connection: redshift, table: dw.fact_policies}```"
        )
        return finish_message(
            [section("No KPIs are defined yet. Add them to `etl-doctor.yml`:\n" + example)], "No KPIs are defined yet."
        )
    blocks = [header(f"KPIs ({len(project.kpis)})")]
    for name in sorted(project.kpis):
        blocks.append(section(_kpi_line(name, project.kpis[name], last_runs.get(name), project.default_channel)))
    checks = len(project.checks)
    tail = f"{checks} check{'s' if checks != 1 else ''}: `/etl check list`" if checks else "no checks defined"
    blocks.append(context(f"`/etl kpi &lt;name&gt; [partition|from..to]` reconciles one · {tail}"))
    return finish_message(blocks, f"{len(project.kpis)} KPIs: " + ", ".join(sorted(project.kpis)))


def _kpi_line(name: str, kpi: KpiConfig, last: LastRun | None, default_channel: str | None) -> str:
    measure = _measure(kpi)
    line = f"*`{escape(name)}`* {escape(kpi.description)}".rstrip()
    lineage = " → ".join(f"`{escape(layer.name)}`" for layer in kpi.layers)
    detail = [f"`{escape(clamp(measure, 80))}` by {kpi.partition.grain}", lineage]
    detail.append(f"tolerance {fmt_tolerance(_tolerance_texts(kpi))}")
    channel = kpi.channel or default_channel
    if channel:
        detail.append(f"scheduled runs post to {escape(channel)} {'always' if kpi.post == 'always' else 'on breach'}")
    text = line + "\n" + " · ".join(detail)
    if last is not None:
        text += "\n" + _last_run_text(last)
    return text


def _measure(kpi: KpiConfig) -> str:
    """``sum(premium)``, ``count``, or the SQL expression as written."""
    plain = kpi.aggregate in ("sum", "count_distinct", "min", "max") and kpi.column is not None
    return f"{kpi.aggregate}({kpi.column})" if plain else kpi.aggregate


def _tolerance_texts(kpi: KpiConfig) -> dict[str, str | None]:
    tolerance = kpi.tolerance
    return {
        "absolute": None if tolerance.absolute is None else str(tolerance.absolute),
        "relative": None if tolerance.relative is None else str(tolerance.relative),
    }


def _last_run_text(last: LastRun) -> str:
    icons = {"ok": ":white_check_mark:", "breach": ":x:", "failed": ":x:", "error": ":warning:"}
    icon = icons.get(last.status, ":hourglass_flowing_sand:")
    rel = f" ({fmt_percent(last.relative_diff)})" if last.relative_diff is not None else ""
    return f"{icon} last run {last.started_at:%Y-%m-%d %H:%M} UTC: {last.status}{rel}"


def render_check_list(project: ProjectConfig, last_runs: Mapping[str, LastRun] | None = None) -> Message:
    """`/etl check list`: every check with its connection, threshold and latest run."""
    last_runs = last_runs or {}
    if not project.checks:
        example = (
            "```checks:\n  no_negative_premiums:\n    connection: oracle\n"
            "    sql: SELECT count(*) FROM policies WHERE premium < 0\n    threshold: 0```"
        )
        blocks = [section("No checks are defined yet. Add them to `etl-doctor.yml`:\n" + escape(example))]
        return finish_message(blocks, "No checks are defined yet.")
    blocks = [header(f"Checks ({len(project.checks)})")]
    for name in sorted(project.checks):
        check = project.checks[name]
        text = f"*`{escape(name)}`* {escape(check.description)}".rstrip()
        text += f"\nconnection `{escape(check.connection)}` · threshold {check.threshold:,}"
        last = last_runs.get(name)
        if last is not None:
            text += "\n" + _last_run_text(last)
        blocks.append(section(text))
    blocks.append(context("`/etl check &lt;name&gt;` runs one"))
    return finish_message(blocks, f"{len(project.checks)} checks: " + ", ".join(sorted(project.checks)))


# ------------------------------------------------------------------------------------------------ terminal


def kpi_report_renderable(report: KpiReport) -> RenderableType:
    """The reconciliation for the terminal: verdict, value table, partitions, keys, lineage, hints, cost."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = []
    style = "bold red" if report.breached else "bold green"
    mark = "✗" if report.breached else "✓"
    parts.append(Text(f"{mark} KPI {report.kpi} · {report.range.label}: {_verdict(report)}", style=style))
    if report.description:
        parts.append(Text(report.description, style="italic"))
    values = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    for column in ("", "layer", "value"):
        values.add_column(column, justify="right" if column == "value" else "left")
    source, target, diff = _values(report)
    values.add_row("source", report.source_layer, source)
    values.add_row("target", report.target_layer, target)
    values.add_row("diff", "target - source", diff)
    values.add_row("relative", "", fmt_percent(report.relative_diff))
    values.add_row("tolerance", "", fmt_tolerance(report.tolerance))
    parts += [Text(""), values]
    differing = report.differing
    compared = report.partitions_compared or len(report.partitions)
    if differing:
        parts += [Text(""), Text(f"Differing partitions: {len(differing):,} of {compared:,}", style="bold")]
        rows = _partition_table(differing[:PARTITIONS_SHOWN])
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
        for index, column in enumerate(rows[0]):
            table.add_column(column, justify="right" if index in (1, 2, 3) else "left")
        for row in rows[1:]:
            table.add_row(*row)
        parts.append(table)
        if len(differing) > PARTITIONS_SHOWN:
            parts.append(Text(f"…and {len(differing) - PARTITIONS_SHOWN:,} more"))
    elif compared:
        parts += [Text(""), Text(f"All {compared:,} partitions match on both sides.")]
    keys = report.keys
    if keys is not None and _keys_worth_showing(keys):
        parts += [Text(""), Text(f"Keys: {_key_counts(keys)}", style="bold")]
        if not keys.complete:
            parts.append(Text(f"! the search stopped early{': ' + keys.note if keys.note else ''}; lower bounds"))
        elif keys.note:
            parts.append(Text(f"  ({keys.note})"))
        parts += [Text("  " + line) for line in _sample_lines(keys)]
    if report.first_divergence is not None or report.layers:
        parts += [Text(""), Text("Lineage", style="bold")]
        if report.first_divergence is not None:
            parts.append(Text(f"▶ first divergence: {report.first_divergence.text}", style="bold yellow"))
            parts += [Text(f"▶ then {later.text}", style="yellow") for later in report.divergences[1:]]
        lineage = Table(show_header=False, box=None, padding=(0, 2, 0, 2))
        lineage.add_column("layer")
        lineage.add_column("value", justify="right")
        lineage.add_column("rows", justify="right")
        for layer, value in zip(report.layers, _layer_values(report), strict=True):
            if layer.error:
                lineage.add_row(layer.name, "error", layer.error)
            else:
                lineage.add_row(layer.name, value, f"{layer.rows:,} rows")
        parts.append(lineage)
    for hint in report.hints:
        parts += [Text(""), Text(f"Hint ({hint.kind}): {hint.text}", style="bold")]
        if hint.sql:
            parts.append(Text(_indented(hint.sql), no_wrap=True, overflow="ignore"))
    for item in report.backfill:
        parts += [Text(""), Text(f"Backfill: {item.text}", style="bold")]
        if item.sql:
            parts.append(Text(_indented(item.sql), no_wrap=True, overflow="ignore"))
        elif item.input:
            parts.append(Text(f"    pipeline {item.pipeline or '-'} · input {item.input}"))
    for warning in report.warnings:
        parts.append(Text(f"! {warning}", style="yellow"))
    footer = (
        f"{report.queries_run:,} queries · {fmt_bytes(report.bytes_fetched)} fetched · "
        f"{report.rows_fetched:,} rows · {fmt_elapsed(report.elapsed_ms)}"
    )
    parts += [Text(""), Text(footer, style="dim")]
    return Group(*parts)


def _indented(sql: str) -> str:
    return "\n".join("    " + line for line in sql.strip().splitlines())


def check_result_renderable(result: CheckResult) -> RenderableType:
    """A check's outcome for the terminal."""
    from rich.console import Group
    from rich.text import Text

    rows = "row" if result.violations == 1 else "rows"
    verdict = "passed" if result.passed else "failed"
    line = Text(
        f"{'✓' if result.passed else '✗'} check {result.name} {verdict}: {result.violations:,} violating {rows} "
        f"(threshold {result.threshold:,})",
        style="bold green" if result.passed else "bold red",
    )
    parts: list[RenderableType] = [line]
    if result.description:
        parts.append(Text(result.description, style="italic"))
    parts.append(Text(f"connection {result.connection} · {fmt_elapsed(result.elapsed_ms)}", style="dim"))
    return Group(*parts)


def kpi_list_renderable(project: ProjectConfig, kind: str = "kpi") -> RenderableType:
    """KPIs (``kind="kpi"``) or checks (``kind="check"``) as a table."""
    from rich.table import Table
    from rich.text import Text

    if kind == "check":
        if not project.checks:
            return Text("No checks are defined in etl-doctor.yml (checks:).")
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
        for column in ("check", "connection", "threshold", "description"):
            table.add_column(column)
        for name in sorted(project.checks):
            check = project.checks[name]
            table.add_row(name, check.connection, f"{check.threshold:,}", check.description)
        return table
    if not project.kpis:
        return Text("No KPIs are defined in etl-doctor.yml (kpis:).")
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    for column in ("kpi", "measure", "grain", "lineage", "tolerance", "description"):
        table.add_column(column)
    for name in sorted(project.kpis):
        kpi = project.kpis[name]
        measure = _measure(kpi)
        lineage = " → ".join(layer.name for layer in kpi.layers)
        table.add_row(
            name, measure, kpi.partition.grain, lineage, fmt_tolerance(_tolerance_texts(kpi)), kpi.description
        )
    return table


def run_all_renderable(summary: RunAllSummary) -> RenderableType:
    """`etl-doctor kpi --all`: one line per KPI and check, then the totals."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    for column in ("", "name", "status", "detail", "posted"):
        table.add_column(column)
    marks = {"ok": "✓", "breach": "✗", "failed": "✗", "error": "!"}
    for outcome in summary.outcomes:
        posted = outcome.posted_to or ("-" if outcome.post_error is None else f"not posted: {outcome.post_error}")
        table.add_row(marks.get(outcome.status, "?"), outcome.label, outcome.status, outcome.detail, posted)
    totals = Text(summary.headline, style="bold red" if summary.exit_code else "bold green")
    return Group(table, Text(""), totals)


def to_text(renderable: RenderableType, *, width: int = 100) -> str:
    """Plain text of a rich renderable (no colours), as a pipe or a golden file sees it."""
    import io

    from rich.console import Console

    console = Console(
        file=io.StringIO(), width=width, color_system=None, record=True, legacy_windows=False, soft_wrap=True
    )
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"

"""A PNG chart of a KPI per partition, source vs target, differing partitions highlighted.

matplotlib is imported inside `render_chart` (never at import time: Slack's ack path on a Lambda cold
start must not pay for it) and draws on its Agg canvas directly, without pyplot's global state, so
charts can be drawn from several threads.
"""

from __future__ import annotations

import io
import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.kpi.model import KpiReport, PartitionRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_TICKS = 12
SOURCE_COLOR = "#1f77b4"
TARGET_COLOR = "#ff7f0e"
DIFFERS_COLOR = "#d62728"


def chart_filename(report: KpiReport) -> str:
    """``premium_amount_2025-02-01_2025-02-28.png`` (safe for any file system)."""
    stem = f"{report.kpi}_{report.range.first}" + (
        f"_{report.range.last}" if report.range.last != report.range.first else ""
    )
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in stem) + ".png"


def chart_rows(report: KpiReport) -> list[PartitionRow]:
    """The partitions the chart shows: the report's series (the last N), else its partitions."""
    return list(report.series or report.partitions)


def render_chart(report: KpiReport, *, width: float = 9.0, height: float = 5.2, dpi: int = 110) -> bytes:
    """Draw source and target per partition, and their difference below, as a PNG.

    Partitions that differ (or that one side lacks) are shaded and circled; a side's missing value is a
    gap in its line, never a zero (the difference bar counts it as nothing loaded, hatched).

    Args:
        report: The reconciliation (its ``series`` are the last N partitions).
        width: Figure width in inches.
        height: Figure height in inches.
        dpi: Resolution.

    Returns:
        The PNG file's bytes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = chart_rows(report)
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    verdict = "out of tolerance" if report.breached else "within tolerance"
    title = f"{report.kpi} · {report.range.label}: {verdict}"
    if not rows:
        axes = figure.add_subplot()
        axes.set_title(title, fontsize=11)
        axes.text(0.5, 0.5, "no partitions in range", ha="center", va="center", transform=axes.transAxes)
        axes.set_xticks([])
        axes.set_yticks([])
        return _png(figure)
    values, gaps = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    values.set_title(title, fontsize=11)
    positions = list(range(len(rows)))
    source = [_float(row.source) for row in rows]
    target = [_float(row.target) for row in rows]
    differing = [i for i, row in enumerate(rows) if row.status != "match"]
    for axes in (values, gaps):
        for index in differing:
            axes.axvspan(index - 0.5, index + 0.5, color=DIFFERS_COLOR, alpha=0.12, linewidth=0)
        axes.grid(axis="y", alpha=0.3)
    values.plot(
        positions, source, marker="o", markersize=3, color=SOURCE_COLOR, label=f"source ({report.source_layer})"
    )
    values.plot(
        positions, target, marker="s", markersize=3, color=TARGET_COLOR, label=f"target ({report.target_layer})"
    )
    if differing:
        marks = [_first_number(target[i], source[i]) for i in differing]
        values.scatter(
            differing, marks, s=70, facecolors="none", edgecolors=DIFFERS_COLOR, linewidths=1.5, zorder=5,
            label=f"differs ({len(differing)})",
        )  # fmt: skip
    values.legend(loc="best", fontsize=8)
    _format_axis(values, [v for v in source + target if not math.isnan(v)])
    diffs = [_zero_if_nan(t) - _zero_if_nan(s) for s, t in zip(source, target, strict=True)]
    colors = [DIFFERS_COLOR if row.status != "match" else "#7f7f7f" for row in rows]
    bars = gaps.bar(positions, diffs, color=colors, width=0.7)
    for bar, row in zip(bars, rows, strict=True):
        if row.status in ("missing_in_target", "missing_in_source"):
            bar.set_hatch("//")
    gaps.axhline(0, color="black", linewidth=0.6)
    gaps.set_ylabel("target - source", fontsize=8)
    _format_axis(gaps, diffs)
    step = max(1, math.ceil(len(rows) / MAX_TICKS))
    ticks = positions[::step]
    gaps.set_xticks(ticks)
    gaps.set_xticklabels([rows[i].partition for i in ticks], rotation=35, ha="right", fontsize=8)
    gaps.set_xlim(-0.5, len(rows) - 0.5)
    gaps.set_xlabel(f"last {len(rows)} partitions ({report.range.grain})", fontsize=8)
    return _png(figure)


def _format_axis(axes: Any, values: list[float]) -> None:
    """Thousands separators; decimals only when every value is small."""
    from matplotlib.ticker import FuncFormatter

    small = all(abs(value) < 100 for value in values)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.2f}" if small else f"{value:,.0f}"))
    axes.tick_params(axis="y", labelsize=8)


def _zero_if_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _float(value: Decimal | None) -> float:
    return float(value) if value is not None else math.nan


def _first_number(*values: float) -> float:
    return next((value for value in values if not math.isnan(value)), 0.0)

"""A PNG chart of a KPI per partition, source vs target, differing partitions highlighted.

matplotlib is imported inside `render_chart` (never at import time: Slack's ack path on a Lambda cold
start must not pay for it) and draws on its Agg canvas directly, without pyplot's global state, so
charts can be drawn from several threads.
"""

from __future__ import annotations

import io
import math
from decimal import Decimal
from typing import TYPE_CHECKING

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


def render_chart(report: KpiReport, *, width: float = 9.0, height: float = 4.2, dpi: int = 110) -> bytes:
    """Draw source and target per partition as a PNG.

    Partitions that differ (or that one side lacks) are shaded and marked; a side's missing value is a
    gap in its line, never a zero.

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
    from matplotlib.ticker import FuncFormatter

    rows = chart_rows(report)
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    span = f"{rows[0].partition} .. {rows[-1].partition}" if rows else report.range.label
    verdict = "out of tolerance" if report.breached else "within tolerance"
    axes.set_title(f"{report.kpi} per {report.range.grain}, {span} ({verdict})", fontsize=11)
    if not rows:
        axes.text(0.5, 0.5, "no partitions in range", ha="center", va="center", transform=axes.transAxes)
        axes.set_xticks([])
        axes.set_yticks([])
        return _png(figure)
    positions = list(range(len(rows)))
    source = [_float(row.source) for row in rows]
    target = [_float(row.target) for row in rows]
    for index, row in enumerate(rows):
        if row.status != "match":
            axes.axvspan(index - 0.5, index + 0.5, color=DIFFERS_COLOR, alpha=0.12, linewidth=0)
    axes.plot(positions, source, marker="o", markersize=3, color=SOURCE_COLOR, label=f"source ({report.source_layer})")
    axes.plot(positions, target, marker="s", markersize=3, color=TARGET_COLOR, label=f"target ({report.target_layer})")
    differing = [i for i, row in enumerate(rows) if row.status != "match"]
    if differing:
        marks = [_first_number(target[i], source[i]) for i in differing]
        axes.scatter(
            differing, marks, s=60, facecolors="none", edgecolors=DIFFERS_COLOR, linewidths=1.5, zorder=5,
            label=f"differs ({len(differing)})",
        )  # fmt: skip
    step = max(1, math.ceil(len(rows) / MAX_TICKS))
    ticks = positions[::step]
    axes.set_xticks(ticks)
    axes.set_xticklabels([rows[i].partition for i in ticks], rotation=35, ha="right", fontsize=8)
    axes.set_xlim(-0.5, len(rows) - 0.5)
    axes.yaxis.set_major_formatter(FuncFormatter(_axis_label))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _axis_label(value: float, _position: int) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _float(value: Decimal | None) -> float:
    return float(value) if value is not None else math.nan


def _first_number(*values: float) -> float:
    return next((value for value in values if not math.isnan(value)), 0.0)

"""Partition labels and ranges: parse what a user typed, strictly, and turn labels into time bounds."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from bot.kpi.model import KpiError, PartitionRange

MAX_PARTITIONS = 5000
_PATTERNS = {
    "hour": (re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}$"), "%Y-%m-%d %H", "2025-02-18 03"),
    "day": (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d", "2025-02-18"),
    "month": (re.compile(r"^\d{4}-\d{2}$"), "%Y-%m", "2025-02"),
    "year": (re.compile(r"^\d{4}$"), "%Y", "2025"),
}


def parse_label(value: str, grain: str) -> datetime:
    """The start of the partition a label names.

    Raises:
        KpiError: The label is not a partition of this grain (the message shows one that is).
    """
    pattern, layout, example = _PATTERNS[grain]
    cleaned = value.strip()
    if pattern.match(cleaned):
        try:
            return datetime.strptime(cleaned.replace("T", " "), layout)
        except ValueError:
            pass
    shown = cleaned if len(cleaned) <= 40 else cleaned[:40] + "…"
    raise KpiError(f"`{shown}` is not a {grain} partition; write it like `{example}` or `{example}..{example}`")


def label_of(start: datetime, grain: str) -> str:
    """The label of the partition starting at ``start``."""
    return start.strftime(_PATTERNS[grain][1])


def next_start(start: datetime, grain: str) -> datetime:
    """The start of the partition after the one starting at ``start``."""
    if grain == "hour":
        return start + timedelta(hours=1)
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def steps_back(start: datetime, grain: str, count: int) -> datetime:
    """The start of the partition ``count`` partitions before the one starting at ``start``."""
    if grain == "hour":
        return start - timedelta(hours=count)
    if grain == "day":
        return start - timedelta(days=count)
    if grain == "month":
        months = start.year * 12 + start.month - 1 - count
        return start.replace(year=months // 12, month=months % 12 + 1)
    return start.replace(year=start.year - count)


def current_start(now: datetime, grain: str) -> datetime:
    """The start of the partition that ``now`` falls in (still filling, so not complete)."""
    naive = now.replace(tzinfo=None)
    if grain == "hour":
        return naive.replace(minute=0, second=0, microsecond=0)
    if grain == "day":
        return naive.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "month":
        return naive.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return naive.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


def parse_range(spec: str, grain: str) -> PartitionRange:
    """Parse `2025-02-18` or `2025-02-01..2025-02-28` (inclusive).

    Raises:
        KpiError: Not a partition or range of this grain, reversed, or longer than 5,000 partitions.
    """
    first_text, separator, last_text = spec.strip().partition("..")
    first = parse_label(first_text, grain)
    last = parse_label(last_text, grain) if separator else first
    if last < first:
        raise KpiError(f"`{spec.strip()}`: the range ends before it starts")
    if count_partitions(first, last, grain) > MAX_PARTITIONS:
        raise KpiError(f"`{spec.strip()}`: more than {MAX_PARTITIONS:,} partitions; ask for a shorter range")
    return PartitionRange(label_of(first, grain), label_of(last, grain), grain)


def count_partitions(first: datetime, last: datetime, grain: str) -> int:
    """How many partitions from ``first`` to ``last`` inclusive."""
    if grain == "hour":
        return int((last - first).total_seconds() // 3600) + 1
    if grain == "day":
        return (last - first).days + 1
    if grain == "month":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return last.year - first.year + 1


def bounds(partitions: PartitionRange) -> tuple[datetime, datetime]:
    """``[start, end)`` of a range: the first partition's start and the start after the last one."""
    first = parse_label(partitions.first, partitions.grain)
    last = parse_label(partitions.last, partitions.grain)
    return first, next_start(last, partitions.grain)


def bound_value(moment: datetime, column_type: str, dialect: str) -> date | datetime | str:
    """A bound as the database compares it: ISO text for SQLite (dates are stored as text there)."""
    if dialect == "sqlite":
        return moment.strftime("%Y-%m-%d") if column_type == "date" else moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.date() if column_type == "date" else moment

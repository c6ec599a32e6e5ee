"""`/etl logs`: find the right log stream (by the same hops as `why`) and show its tail or matches."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.aws.console import log_stream_url
from bot.aws.logs import LogLine, LogsGateway
from bot.errors import UserFacingError

LOGS_USAGE = "<execution | ECS task ARN | log-group:stream> [--grep TEXT] [--since 30m] [--lines N]"
DEFAULT_LINES, MAX_LINES = 50, 500
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class LogsUsageError(UserFacingError):
    """Bad `logs` arguments; the message shows the usage."""


@dataclass(frozen=True)
class LogsQuery:
    """What to show: the target words, an optional term, how far back, how many lines."""

    target: tuple[str, ...]
    grep: str | None = None
    since: timedelta | None = None
    lines: int = DEFAULT_LINES


@dataclass
class LogsResult:
    """Lines of one stream, oldest first."""

    group: str
    stream: str
    lines: list[LogLine] = field(default_factory=list)
    grep: str | None = None
    url: str = ""
    found_by: str = ""


def parse_logs_args(args: Sequence[str]) -> LogsQuery:
    """Parse `logs` arguments.

    Raises:
        LogsUsageError: Unknown option, missing value, bad duration or count.
    """
    target: list[str] = []
    grep: str | None = None
    since: timedelta | None = None
    lines = DEFAULT_LINES
    words = list(args)
    while words:
        word = words.pop(0)
        if word in {"--grep", "--since", "--lines"}:
            if not words:
                raise LogsUsageError(f"`{word}` needs a value: {LOGS_USAGE}")
            value = words.pop(0)
            if word == "--grep":
                grep = value
            elif word == "--since":
                match = _DURATION.match(value)
                if not match:
                    raise LogsUsageError(f"`--since {value}`: use a number and s, m, h or d, e.g. `--since 30m`")
                since = timedelta(**{_UNITS[match[2]]: int(match[1])})
            else:
                if not value.isdigit() or not 1 <= int(value) <= MAX_LINES:
                    raise LogsUsageError(f"`--lines {value}`: give a number from 1 to {MAX_LINES}")
                lines = int(value)
        elif word.startswith("--"):
            raise LogsUsageError(f"unknown option `{word}`: {LOGS_USAGE}")
        else:
            target.append(word)
    if not target:
        raise LogsUsageError(f"name what to read: {LOGS_USAGE}")
    return LogsQuery(target=tuple(target), grep=grep, since=since, lines=lines)


def read_stream(
    logs: LogsGateway,
    group: str,
    stream: str,
    query: LogsQuery,
    *,
    region: str,
    now: datetime,
    around: datetime | None = None,
    found_by: str = "",
) -> LogsResult:
    """The tail (or the ``--grep`` matches) of one stream."""
    end = now if around is None else around + timedelta(minutes=1)
    start = end - (query.since or timedelta(days=14 if query.grep else 1))
    if query.grep:
        lines = logs.search(group, query.grep, start, end, streams=[stream], limit=query.lines)
    else:
        lines = logs.tail(group, stream, end=end, limit=query.lines)
        if query.since:
            lines = [line for line in lines if line.timestamp >= start]
    return LogsResult(
        group=group,
        stream=stream,
        lines=lines,
        grep=query.grep,
        url=log_stream_url(region, group, stream, around or end),
        found_by=found_by,
    )

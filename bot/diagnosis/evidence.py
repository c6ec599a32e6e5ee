"""Log evidence: read the few lines around a failure (never a whole stream) and pick the ones that explain it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.aws.console import log_stream_url
from bot.aws.logs import LogLine, LogsGateway
from bot.diagnosis.model import EvidenceLine
from bot.diagnosis.stacktrace import StackTrace, root_cause

TAIL_LINES = 300
CONTEXT_AFTER = timedelta(seconds=30)
CONTEXT_LINES_BEFORE, CONTEXT_LINES_AFTER = 40, 300
WINDOW_MARGIN = timedelta(seconds=60)
MAX_EVIDENCE = 30
SEARCH_TERMS = ("Exception", "Traceback", "Error", "FATAL", "Killed", "panic")
_ERROR_MARKER = re.compile(
    r"\b(ERROR|FATAL|CRITICAL|SEVERE|Exception|Error|Traceback|Killed|panic|OOM|out of memory)\b", re.IGNORECASE
)


@dataclass
class LogFindings:
    """What the logs said: the explaining stack trace (if any) and the evidence lines, oldest first."""

    trace: StackTrace | None = None
    evidence: list[EvidenceLine] = field(default_factory=list)
    lines_read: int = 0
    searched_terms: list[str] = field(default_factory=list)


def _split(lines: list[LogLine]) -> list[LogLine]:
    """One entry per text line (a single log event may hold a whole multi-line stack trace)."""
    out: list[LogLine] = []
    for line in lines:
        parts = line.message.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        out += [LogLine(line.timestamp, part, line.group, line.stream) for part in parts if part.strip()]
    return out


def read_evidence(
    logs: LogsGateway,
    group: str,
    stream: str,
    start: datetime | None,
    end: datetime,
    *,
    region: str,
) -> LogFindings:
    """Find the lines that explain a failure in one log stream.

    1. The stream's last lines up to the failure (one call, read from the end).
    2. Only when they hold no stack trace: search the failing work's time window server-side for
       error markers, one term at a time, and read a short window around the last match.

    Args:
        logs: The gateway (it counts bytes read).
        group: Log group.
        stream: Log stream.
        start: When the failed work started (None: only the tail is read).
        end: When it failed.
        region: For console links.
    """
    findings = LogFindings()
    tail = _split(logs.tail(group, stream, end=end + WINDOW_MARGIN, limit=TAIL_LINES))
    findings.lines_read += len(tail)
    lines = tail
    trace = root_cause([line.message for line in lines])
    tail_has_errors = any(_ERROR_MARKER.search(line.message) or "timed out" in line.message for line in tail)
    if trace is None and not tail_has_errors and start is not None:
        window_start = start - WINDOW_MARGIN
        for term in SEARCH_TERMS:
            findings.searched_terms.append(term)
            matches = logs.search(group, term, window_start, end + WINDOW_MARGIN, streams=[stream], limit=20)
            if not matches:
                continue
            last = matches[-1].timestamp
            # From the match on (a trace's frames follow it), plus a few lines before: bounded however dense the stream.
            before = logs.tail(group, stream, end=last, limit=CONTEXT_LINES_BEFORE)
            after = logs.window(group, stream, last, last + CONTEXT_AFTER, limit=CONTEXT_LINES_AFTER)
            context = _split(before + after)
            findings.lines_read += len(context)
            candidate = root_cause([line.message for line in context])
            if candidate is not None or context:
                lines, trace = context, candidate
                break
    findings.trace = trace
    findings.evidence = [
        EvidenceLine(
            line.timestamp, line.message, line.group, line.stream, log_stream_url(region, group, stream, line.timestamp)
        )
        for line in select_evidence(lines, trace)
    ]
    return findings


def select_evidence(lines: list[LogLine], trace: StackTrace | None, *, limit: int = MAX_EVIDENCE) -> list[LogLine]:
    """At most ``limit`` lines: the explaining trace's head, other error lines, and the last lines, in order."""
    chosen: set[int] = set()
    if trace is not None:
        chosen.update(range(trace.first_line, min(trace.last_line + 1, trace.first_line + 12)))
        cause_lines = [
            i for i in range(trace.first_line, trace.last_line + 1) if lines[i].message.lstrip().startswith("Caused by")
        ]
        chosen.update(cause_lines[-3:])
    markers = [i for i, line in enumerate(lines) if _ERROR_MARKER.search(line.message)]
    for index in reversed(markers):
        if len(chosen) >= limit - 5:
            break
        chosen.add(index)
    chosen.update(range(max(0, len(lines) - 5), len(lines)))
    picked = sorted(index for index in chosen if 0 <= index < len(lines))
    return [lines[index] for index in picked[-limit:]]

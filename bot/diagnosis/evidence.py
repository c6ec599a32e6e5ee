"""Log evidence: read the few lines around a failure (never a whole stream) and pick the ones that explain it."""

from __future__ import annotations

import json
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
_PLAIN_BRACKET = re.compile(r"^(START|END|REPORT) RequestId: (\S+)")
INVOCATION_SEARCH_LINES = 50


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
    request_id: str | None = None,
) -> LogFindings:
    """Find the lines that explain a failure in one log stream.

    1. The stream's last lines up to the failure (one call, read from the end).
    2. Only when they hold no stack trace: search the failing work's time window server-side for
       error markers, one term at a time, and read a short window around the last match.

    With a Lambda ``request_id`` only the lines of that invocation count (from its ``START`` to its
    ``REPORT`` line, plain-text or JSON log format): a warm function's stream holds other invocations
    before and after it. When the tail does not reach the invocation, it is located by a server-side
    search for its request id.

    Args:
        logs: The gateway (it counts bytes read).
        group: Log group.
        stream: Log stream.
        start: When the failed work started (None: only the tail is read).
        end: When it failed.
        region: For console links.
        request_id: The failed Lambda invocation's request id, when the stream is a Lambda function's.
    """
    findings = LogFindings()
    tail = _split(logs.tail(group, stream, end=end + WINDOW_MARGIN, limit=TAIL_LINES))
    findings.lines_read += len(tail)
    lines = tail
    search_end = end + WINDOW_MARGIN
    located = False
    if request_id is not None:
        lines = _locate_invocation(logs, findings, group, stream, tail, request_id, start, end)
        located = bool(lines)
        search_end = lines[-1].timestamp if lines else search_end
    trace = root_cause([line.message for line in lines])
    tail_has_errors = any(_ERROR_MARKER.search(line.message) or "timed out" in line.message for line in lines)
    whole = request_id is not None and bool(lines) and _bracket(lines[0].message) == ("START", request_id)
    if trace is None and not tail_has_errors and start is not None and not whole:
        window_start = start - WINDOW_MARGIN if request_id is None else start
        for term in SEARCH_TERMS:
            findings.searched_terms.append(term)
            matches = logs.search(group, term, window_start, search_end, streams=[stream], limit=20)
            if not matches:
                continue
            last = matches[-1].timestamp
            # From the match on (a trace's frames follow it), plus a few lines before: bounded however dense the stream.
            before = logs.tail(group, stream, end=last, limit=CONTEXT_LINES_BEFORE)
            after = logs.window(group, stream, last, last + CONTEXT_AFTER, limit=CONTEXT_LINES_AFTER)
            context = _split(before + after)
            findings.lines_read += len(context)
            if request_id is not None:  # only lines of the failed invocation: another one's error would mislead
                bounded = invocation_lines(context, request_id)
                # no START/REPORT around the match: inside the invocation if it was located (the search ended there)
                context = bounded if bounded is not None else (context if located else [])
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


def _bracket(message: str) -> tuple[str, str] | None:
    """(``START``/``END``/``REPORT``, request id) for the lines Lambda writes around each invocation.

    Plain text: ``START RequestId: <id> Version: $LATEST``. JSON log format:
    ``{"time": ..., "type": "platform.start", "record": {"requestId": <id>, ...}}`` (and ``platform.report``).
    """
    text = message.lstrip()
    plain = _PLAIN_BRACKET.match(text)
    if plain:
        return plain[1], plain[2]
    if not text.startswith("{") or '"platform.' not in text:
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("record"), dict):
        return None
    kind = {"platform.start": "START", "platform.report": "REPORT"}.get(str(event.get("type")))
    request_id = event["record"].get("requestId")
    return (kind, str(request_id)) if kind and request_id else None


def invocation_lines(lines: list[LogLine], request_id: str) -> list[LogLine] | None:
    """The lines of one Lambda invocation: from its START to its REPORT line (both kept).

    A stream is one execution environment, which runs one invocation at a time, so every line between the two
    belongs to it. When START is not among ``lines`` the invocation starts before them (or after the last other
    invocation's lines); when REPORT is not, it ends at the next invocation's START or with ``lines``.

    Returns:
        The invocation's lines, or None when neither its START nor its REPORT line is among ``lines``.
    """
    marks = [(index, mark) for index, mark in ((i, _bracket(line.message)) for i, line in enumerate(lines)) if mark]
    starts = [index for index, (kind, rid) in marks if kind == "START" and rid == request_id]
    reports = [index for index, (kind, rid) in marks if kind == "REPORT" and rid == request_id]
    if not starts and not reports:
        return None
    if starts:
        first = starts[-1]
        last = next((index for index in reports if index > first), None)
        if last is None:
            last = next((index - 1 for index, (_, rid) in marks if index > first and rid != request_id), len(lines) - 1)
    else:
        last = reports[-1]
        first = max((index + 1 for index, (_, rid) in marks if index < last and rid != request_id), default=0)
    return lines[first : last + 1]


def _locate_invocation(
    logs: LogsGateway,
    findings: LogFindings,
    group: str,
    stream: str,
    tail: list[LogLine],
    request_id: str,
    start: datetime | None,
    end: datetime,
) -> list[LogLine]:
    """The invocation's lines in ``tail``, or (other invocations filled the tail) read back from its last line."""
    found = invocation_lines(tail, request_id)
    if found is not None:
        return found
    # Its own lines carry the request id (START/END/REPORT, and every JSON-format line): find where it ended.
    marks = logs.search(
        group,
        request_id,
        (start or end) - WINDOW_MARGIN,
        end + WINDOW_MARGIN,
        streams=[stream],
        limit=INVOCATION_SEARCH_LINES,
    )
    findings.searched_terms.append(request_id)
    if not marks:
        return []
    report = next((m for m in reversed(marks) if _bracket(m.message) == ("REPORT", request_id)), marks[-1])
    before = _split(logs.tail(group, stream, end=report.timestamp + timedelta(milliseconds=1), limit=TAIL_LINES))
    findings.lines_read += len(before)
    return invocation_lines(before, request_id) or _split(marks)


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

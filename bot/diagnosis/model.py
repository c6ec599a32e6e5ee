"""What a diagnosis is made of: hops followed, evidence lines, classification and next steps (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PATH_SEPARATOR = " › "  # between nested states (Parent › Child) and between a log group and its stream


@dataclass(frozen=True)
class Hop:
    """One step of the chase: execution → state → task → container → log stream.

    Attributes:
        kind: ``execution``, ``state``, ``ecs_task``, ``container``, ``lambda``, ``glue_job_run``, ``batch_job``,
            ``map_run``, ``iteration``, ``branch``, ``child_execution``, ``log_stream``, ``state_machine_logs``.
        label: What to show (a name, an id).
        detail: One line of what was found there ("exit 137", "FAILED").
        url: Console link, when there is one.
        followed: False when the hop could not be followed (offline, access denied…); ``detail`` says why.
    """

    kind: str
    label: str
    detail: str = ""
    url: str | None = None
    followed: bool = True


@dataclass(frozen=True)
class EvidenceLine:
    """A log line that supports the diagnosis, with where and when it was written."""

    timestamp: datetime
    message: str
    log_group: str
    log_stream: str
    url: str | None = None


@dataclass(frozen=True)
class RetryAdvice:
    """A Retry-policy audit finding for one state."""

    state: str
    errors: tuple[str, ...]
    has_retry: bool
    suggestion: dict[str, Any] | None = None
    note: str = ""


@dataclass
class Diagnosis:
    """The answer to `/etl why`: everything found about one failed execution.

    ``status`` is the execution's status; for RUNNING/SUCCEEDED executions ``verdict`` explains that there
    is nothing to diagnose and the other fields stay empty.
    """

    execution_arn: str
    status: str
    state_machine_arn: str = ""
    execution_name: str = ""
    pipeline: str | None = None
    region: str = ""
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    verdict: str = ""
    failed_state: str | None = None
    integration: str | None = None
    error: str | None = None
    cause_summary: str | None = None
    hops: list[Hop] = field(default_factory=list)
    root_exception: str | None = None
    app_frames: list[str] = field(default_factory=list)
    evidence: list[EvidenceLine] = field(default_factory=list)
    resource_notes: list[str] = field(default_factory=list)
    category: str = "unknown"
    confidence: float = 0.0
    transient: bool = False
    fingerprint: str = ""
    title: str = ""
    reasons: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    remediation: list[str] = field(default_factory=list)
    retry_audit: list[RetryAdvice] = field(default_factory=list)
    definition_snippet: str | None = None
    notes: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def diagnosable(self) -> bool:
        """True for FAILED, TIMED_OUT and ABORTED executions."""
        return self.status in {"FAILED", "TIMED_OUT", "ABORTED"}


def diagnosis_json(d: Diagnosis) -> dict[str, Any]:
    """The documented, stable JSON form of a diagnosis (``etl-doctor why --json``)."""

    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "execution_arn": d.execution_arn,
        "status": d.status,
        "pipeline": d.pipeline,
        "state_machine_arn": d.state_machine_arn,
        "started_at": when(d.started_at),
        "stopped_at": when(d.stopped_at),
        "verdict": d.verdict or None,
        "failed_state": d.failed_state,
        "integration": d.integration,
        "error": d.error,
        "cause_summary": d.cause_summary,
        "hops": [
            {"kind": h.kind, "label": h.label, "detail": h.detail, "url": h.url, "followed": h.followed} for h in d.hops
        ],
        "category": d.category if d.diagnosable else None,
        "confidence": round(d.confidence, 2) if d.diagnosable else None,
        "transient": d.transient if d.diagnosable else None,
        "fingerprint": d.fingerprint or None,
        "title": d.title or None,
        "reasons": d.reasons,
        "conflicts": d.conflicts,
        "root_exception": d.root_exception,
        "app_frames": d.app_frames,
        "resource_notes": d.resource_notes,
        "evidence": [
            {
                "timestamp": when(line.timestamp),
                "message": line.message,
                "log_group": line.log_group,
                "log_stream": line.log_stream,
                "url": line.url,
            }
            for line in d.evidence
        ],
        "remediation": d.remediation,
        "retry_audit": [
            {
                "state": a.state,
                "errors": list(a.errors),
                "has_retry": a.has_retry,
                "suggestion": a.suggestion,
                "note": a.note,
            }
            for a in d.retry_audit
        ],
        "definition_snippet": d.definition_snippet,
        "notes": d.notes,
    }

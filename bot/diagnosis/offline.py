"""Diagnose from saved `aws stepfunctions` output: no AWS calls, hops that need AWS are listed as not followed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.config import ProjectConfig
from bot.diagnosis.chase import Chase
from bot.diagnosis.model import Diagnosis

_TIME_KEYS = {"timestamp", "startDate", "stopDate", "redriveDate"}


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _with_datetimes(document: Any) -> Any:
    if isinstance(document, dict):
        return {
            k: (_to_datetime(v) if k in _TIME_KEYS and v is not None else _with_datetimes(v))
            for k, v in document.items()
        }
    if isinstance(document, list):
        return [_with_datetimes(item) for item in document]
    return document


def load_saved(history: Path, describe: Path | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Read saved CLI output (timestamps as ISO-8601 or epoch seconds, as the AWS CLI may print them).

    Raises:
        ValueError: The history file is not get-execution-history output.
    """
    data = json.loads(history.read_text(encoding="utf-8"))
    events = data.get("events") if isinstance(data, dict) else data
    if not isinstance(events, list) or not all(isinstance(e, dict) and "type" in e and "id" in e for e in events):
        raise ValueError(f"{history} is not `get-execution-history` output (no events with id and type)")
    described = json.loads(describe.read_text(encoding="utf-8")) if describe else None
    return (_with_datetimes(described) if described else None), _with_datetimes(events)


def diagnose_saved(
    describe: dict[str, Any] | None, events: list[dict[str, Any]], project: ProjectConfig, region: str
) -> Diagnosis:
    """The diagnosis that the saved history alone supports."""
    return Chase(None, None, None, project, region).diagnose_offline(describe, events)

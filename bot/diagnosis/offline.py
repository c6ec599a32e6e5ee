"""Diagnose from saved `aws stepfunctions` output: no AWS calls, hops that need AWS are listed as not followed.

A saved file that is not what it should be is refused with one line that names the file and what is wrong
(`SavedFileError`), before the chase sees it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.config import ProjectConfig
from bot.diagnosis.chase import Chase
from bot.diagnosis.model import Diagnosis
from bot.errors import UserFacingError

_TIME_KEYS = {"timestamp", "startDate", "stopDate", "redriveDate"}
_ENDS = {"FAILED": "ExecutionFailed", "TIMED_OUT": "ExecutionTimedOut", "ABORTED": "ExecutionAborted"}
_STATUSES = {"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"}
_DETAIL_TEXT_KEYS = ("error", "cause", "name", "resource", "resourceType", "parameters", "input", "output")
_DESCRIBE_TEXT_KEYS = (
    "executionArn",
    "stateMachineArn",
    "name",
    "status",
    "error",
    "cause",
    "input",
    "mapRunArn",
    "redriveStatus",
    "stateMachineVersionArn",
)
HISTORY_SHAPE = '{"events": [{"id": 1, "type": "ExecutionStarted", "timestamp": "…"}, …]}'
OFFLINE_DEFINITION_NOTE = (
    "state definition not read (offline): no Retry-policy audit and no definition snippet without live AWS"
)


class SavedFileError(UserFacingError, ValueError):
    """A saved file that cannot be read, or is not the AWS CLI output it should be; the message names the file."""


def _to_datetime(value: Any, path: Path, key: str) -> datetime:
    """An ISO-8601 text or epoch seconds (as the AWS CLI may print them) as an aware datetime.

    Raises:
        SavedFileError: Anything else (a bool, a dict, a text that is not a time, a number out of range).
    """
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if not isinstance(value, str):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise SavedFileError(f"{path}: `{key}` is not a time: {json.dumps(value)[:40]}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _with_datetimes(document: Any, path: Path) -> Any:
    if isinstance(document, dict):
        return {
            k: (_to_datetime(v, path, k) if k in _TIME_KEYS and v is not None else _with_datetimes(v, path))
            for k, v in document.items()
        }
    if isinstance(document, list):
        return [_with_datetimes(item, path) for item in document]
    return document


def _read_json(path: Path) -> Any:
    """The JSON in ``path``.

    Raises:
        SavedFileError: The file cannot be read, is not UTF-8 text, or is not JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SavedFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SavedFileError(f"{path} is not a text file (UTF-8 JSON expected)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SavedFileError(f"{path} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def _event_problem(event: Any) -> str | None:
    """What makes ``event`` unlike a history event, or None."""
    if not isinstance(event, dict):
        return "is not an object"
    event_id = event.get("id")
    if isinstance(event_id, bool) or not (
        isinstance(event_id, int) or (isinstance(event_id, str) and event_id.isdigit())
    ):
        return "has no numeric `id`"
    if not isinstance(event.get("type"), str) or not event["type"]:
        return "has no `type`"
    if "timestamp" not in event:
        return "has no `timestamp`"
    previous = event.get("previousEventId")
    if previous is not None and (isinstance(previous, bool) or not str(previous).isdigit()):
        return "has a `previousEventId` that is not a number"
    return _details_problem(event)


def _details_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with an event's ``…EventDetails`` object (not an object, a text field that is not text)."""
    for key, value in event.items():
        if not key.endswith("EventDetails"):
            continue
        if not isinstance(value, dict):
            return f"has a `{key}` that is not an object"
        wrong = next(
            (name for name in _DETAIL_TEXT_KEYS if value.get(name) is not None and not isinstance(value[name], str)),
            None,
        )
        if wrong:
            return f"has a `{key}.{wrong}` that is not a text"
    return None


def _events(data: Any, path: Path) -> list[dict[str, Any]]:
    """The events of saved `get-execution-history` output (or of its bare event list).

    Raises:
        SavedFileError: No event list, an empty one, or an event without ``id``, ``type`` and ``timestamp``.
    """
    events = data.get("events") if isinstance(data, dict) else data
    if not isinstance(events, list) or not events:
        raise SavedFileError(f"{path} is not `get-execution-history` output (no events; expected {HISTORY_SHAPE})")
    for index, event in enumerate(events, 1):
        problem = _event_problem(event)
        if problem:
            raise SavedFileError(f"{path} is not `get-execution-history` output: event #{index} {problem}")
    converted: list[dict[str, Any]] = _with_datetimes(events, path)
    return converted


def _description(data: Any, path: Path) -> dict[str, Any]:
    """Saved `describe-execution` output, its times as datetimes.

    Raises:
        SavedFileError: Not a JSON object, a field of the wrong type, or an unknown status.
    """
    if not isinstance(data, dict):
        raise SavedFileError(f"{path} is not `describe-execution` output (expected a JSON object)")
    wrong = next(
        (key for key in _DESCRIBE_TEXT_KEYS if data.get(key) is not None and not isinstance(data[key], str)), None
    )
    if wrong:
        raise SavedFileError(f"{path} is not `describe-execution` output: `{wrong}` is not a text")
    if data.get("status") is not None and data["status"] not in _STATUSES:
        raise SavedFileError(f"{path}: `status` {data['status'][:40]!r} is not an execution status")
    count = data.get("redriveCount")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise SavedFileError(f"{path} is not `describe-execution` output: `redriveCount` is not a number")
    converted: dict[str, Any] = _with_datetimes(data, path)
    return converted


def load_saved(history: Path, describe: Path | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Read saved CLI output (timestamps as ISO-8601 or epoch seconds, as the AWS CLI may print them).

    Args:
        history: Saved `aws stepfunctions get-execution-history` output (or its ``events`` list alone).
        describe: Saved `aws stepfunctions describe-execution` output, if any.

    Returns:
        The description (or None) and the events, times as datetimes.

    Raises:
        SavedFileError: A file cannot be read or is not the output it should be (the message names it).
    """
    events = _events(_read_json(history), history)
    described = _description(_read_json(describe), describe) if describe is not None else None
    ending = _ENDS.get(str((described or {}).get("status")))
    if ending and not any(event["type"] == ending for event in events):
        raise SavedFileError(
            f"{history} has no {ending} event although {describe} says {(described or {})['status']}: save the "
            "history's newest events (`get-execution-history --reverse-order`)"
        )
    return described, events


def diagnose_saved(
    describe: dict[str, Any] | None, events: list[dict[str, Any]], project: ProjectConfig, region: str
) -> Diagnosis:
    """The diagnosis that the saved history alone supports.

    What needs live AWS is said: the hops are listed as not followed, and a note says the state definition
    was not read (so there is no Retry-policy audit and no definition snippet).
    """
    diagnosis = Chase(None, None, None, project, region).diagnose_offline(describe, events)
    if diagnosis.diagnosable:
        diagnosis.notes.append(OFFLINE_DEFINITION_NOTE)
    return diagnosis

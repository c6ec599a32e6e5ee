"""Alert payloads for tests, built from the documented fixtures in tests/fixtures/alerts/."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"


def fixture(name: str) -> dict[str, Any]:
    """A fixture payload as a dict (a fresh copy)."""
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


def sfn_event(
    status: str = "FAILED",
    execution: str = "run-2025-02-18",
    *,
    machine: str = MACHINE,
    at: datetime | None = None,
    event_id: str | None = None,
    error: str | None = None,
    cause: str | None = None,
) -> dict[str, Any]:
    """An EventBridge Step Functions status change (the documented sample) for another execution/status."""
    event = copy.deepcopy(fixture("sfn_failed.json" if status == "FAILED" else "sfn_succeeded.json"))
    region, account, name = machine.split(":")[3], machine.split(":")[4], machine.rsplit(":", 1)[-1]
    arn = f"arn:aws:states:{region}:{account}:execution:{name}:{execution}"
    moment = at or datetime.now(UTC)
    event["id"] = event_id or str(uuid.uuid4())
    event["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["resources"] = [arn]
    detail = event["detail"]
    detail.update(executionArn=arn, stateMachineArn=machine, name=execution, status=status)
    detail["stopDate"] = int(moment.timestamp() * 1000)
    detail["startDate"] = detail["stopDate"] - 600_000
    if error is not None:
        detail["error"] = error
    if cause is not None:
        detail["cause"] = cause
    return event

"""EventBridge "Step Functions Execution Status Change" events for the sandbox's alerts.

The event's ``detail`` carries the DescribeExecution fields with epoch-millisecond dates (see the
documented samples in tests/fixtures/alerts/, sources in their SOURCES.md).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

_DETAIL_FIELDS = ("executionArn", "stateMachineArn", "name", "status", "input", "error", "cause", "redriveStatus")


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, str) and value:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    return None


def status_change_event(
    describe: dict[str, Any],
    *,
    name: str | None = None,
    status: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The event EventBridge sends when an execution ends, from its DescribeExecution document.

    Args:
        describe: A DescribeExecution response (dates as datetimes or ISO 8601 strings).
        name: Another execution name (a later run of the same state machine).
        status: Another status (``SUCCEEDED`` drops error and cause).
        at: When it stopped (default: now).
    """
    moment = at or datetime.now(UTC)
    detail: dict[str, Any] = {key: describe.get(key) for key in _DETAIL_FIELDS}
    machine = str(describe["stateMachineArn"])
    if name:
        detail["name"] = name
        detail["executionArn"] = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    if status:
        detail["status"] = status
    if detail["status"] == "SUCCEEDED":
        detail.update(error=None, cause=None, redriveStatus="NOT_REDRIVABLE", output=json.dumps({"ok": True}))
    detail["startDate"] = _epoch_ms(describe.get("startDate"))
    detail["stopDate"] = int(moment.timestamp() * 1000)
    detail["redriveCount"] = int(describe.get("redriveCount") or 0)
    region, account = machine.split(":")[3], machine.split(":")[4]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [detail["executionArn"]],
        "detail": detail,
    }

"""Alert payloads for tests, built from the documented fixtures in tests/fixtures/alerts/."""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.sandbox.slack_emulator import SlackEmulator
from tests.support.bot import BotUnderTest
from tests.support.sns_signing import TestSigner

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


# ------------------------------------------------------------------ a running bot's /sns, as SNS posts to it

CHANNEL = "#etl-alerts"
PROJECT = f"""
default_channel: "{CHANNEL}"
pipelines:
  policies-etl:
    state_machine_arn: {MACHINE}
    resources: [policies-loader, policies-etl-*]
sns_topics:
  - arn:aws:sns:us-east-1:123456789012:etl-*
"""
SIGNER = TestSigner.shared()


def send(bot: BotUnderTest, document: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST a body to /sns as SNS does (text/plain, JSON inside); return status and JSON answer."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    request = urllib.request.Request(
        f"{bot.base_url}/sns",
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=UTF-8", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def notify(bot: BotUnderTest, message: dict[str, Any] | str, **kwargs: Any) -> tuple[int, Any]:
    """Sign a Notification carrying ``message`` and post it."""
    text = message if isinstance(message, str) else json.dumps(message)
    return send(bot, SIGNER.notification(text, **kwargs))


def parents(emulator: SlackEmulator) -> list[dict[str, Any]]:
    return [m for m in emulator.messages(CHANNEL) if m.get("thread_ts", m["ts"]) == m["ts"]]


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def blocks_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False)

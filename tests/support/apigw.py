"""API Gateway HTTP API (payload format 2.0) events carrying signed Slack requests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "aws" / "apigw_http_api_v2_event.json"


def apigw_event(body: str, headers: dict[str, str], *, path: str = "/slack/events") -> dict[str, Any]:
    """The documented v2.0 event, re-pointed at ``path`` with Slack's headers and body."""
    event: dict[str, Any] = copy.deepcopy(json.loads(FIXTURE.read_text(encoding="utf-8")))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = ""
    event.pop("queryStringParameters")
    event.pop("cookies")
    event["headers"] = {name.lower(): value for name, value in headers.items()}
    event["body"] = body
    event["isBase64Encoded"] = False
    return event

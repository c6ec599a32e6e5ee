"""`POST /sns`: hand the body and headers to the alert ingest, answer with its verdict."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.alerts.ingest import MAX_BODY, AlertIngest
from bot.errors import new_error_ref

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 413: "Payload Too Large"}


class SnsEndpoint:
    """WSGI handler for SNS HTTP(S) deliveries."""

    def __init__(self, ingest: AlertIngest) -> None:
        self._ingest = ingest

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Verify and store one delivery; 200 only once it is stored (SNS redelivers anything else)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return _reply(start_response, 405, {"error": "POST only"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, MAX_BODY + 1)) if length > 0 else b""
        headers = {
            key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }
        try:
            reply = self._ingest.receive_sns_http(body, headers)
        except Exception:
            ref = new_error_ref()
            logger.exception("/sns failed (ref=%s); SNS will redeliver", ref)
            return _reply(start_response, 500, {"error": f"internal error (ref {ref})"})
        return _reply(start_response, reply.status, reply.body)


def _reply(start_response: StartResponse, status: int, document: dict[str, object]) -> list[bytes]:
    body = json.dumps(document).encode()
    reason = _REASONS.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

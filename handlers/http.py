"""HTTP transport: a WSGI app (/slack/events, /sns, /healthz) served by waitress, a production WSGI server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

SLACK_EVENTS_PATH = "/slack/events"
SNS_PATH = "/sns"
HEALTH_PATH = "/healthz"


class EtlDoctorWsgi:
    """Routes requests: Slack's to Bolt, health checks to a JSON status.

    Args:
        bolt_app: The Bolt app, or None when Slack arrives another way (Socket Mode) and only
            /healthz is served.
        sns: The `/sns` endpoint (alerts), or None.
        health: Returns the health document; ``"status": "ok"`` answers 200, anything else 503.
    """

    def __init__(
        self,
        bolt_app: App | None,
        health: Callable[[], dict[str, Any]],
        sns: Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]] | None = None,
    ) -> None:
        self._slack = SlackRequestHandler(bolt_app, path=SLACK_EVENTS_PATH) if bolt_app is not None else None
        self._health = health
        self._sns = sns

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Handle one request."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == HEALTH_PATH and method in {"GET", "HEAD"}:
            document = self._health()
            status = "200 OK" if document.get("status") == "ok" else "503 Service Unavailable"
            return _json(start_response, status, document)
        if path == SNS_PATH and self._sns is not None:
            return self._sns(environ, start_response)
        if path == SLACK_EVENTS_PATH and self._slack is not None:
            if method != "POST":
                return _json(start_response, "405 Method Not Allowed", {"error": "POST only"}, [("Allow", "POST")])
            return self._slack(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": "not found", "path": path})


def _json(
    start_response: StartResponse, status: str, document: dict[str, Any], extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = json.dumps(document).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(extra or [])]
    start_response(status, headers)
    return [body]


def make_server(wsgi_app: EtlDoctorWsgi, *, host: str, port: int, threads: int) -> Any:
    """Create (not start) a waitress server; ``port=0`` picks a free port (see ``server.effective_port``)."""
    from waitress import create_server

    return create_server(
        wsgi_app, host=host, port=port, threads=threads, ident="etl-doctor", clear_untrusted_proxy_headers=True
    )


def stop_server(server: Any) -> None:
    """Stop a waitress server from any thread: finish in-flight requests, then close its sockets.

    The sockets are closed by a callback on the server's own loop thread (waitress's trigger), so no
    thread closes a descriptor another one is waiting on. If the trigger itself is already closed
    (seen once in CI: its pipe reported EOF), the sockets are closed from the calling thread; the loop
    then finds its map empty and returns within one poll timeout.
    """
    from waitress import wasyncore

    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    trigger = server.trigger
    if not getattr(trigger, "_closed", False):
        try:
            trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            return
        except OSError:
            pass  # the trigger's pipe is already gone (its loop saw EOF): close from here instead
    wasyncore.close_all(server._map)

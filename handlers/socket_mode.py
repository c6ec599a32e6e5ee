"""Socket Mode transport: a WebSocket to Slack, no public endpoint (slack_sdk's built-in client)."""

from __future__ import annotations

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler


def connect_socket_mode(app: App, app_token: str) -> SocketModeHandler:
    """Open the Socket Mode connection (non-blocking) and return the handler.

    The connection URL comes from ``apps.connections.open`` on the app's own Web API base, so
    ``SLACK_API_URL`` (GovSlack, an emulator) applies here too.
    """
    handler = SocketModeHandler(app, app_token=app_token, web_client=app.client)
    handler.connect()
    return handler


def close_socket_mode(handler: SocketModeHandler) -> None:
    """Close the WebSocket (Slack stops sending to this process)."""
    handler.close()  # type: ignore[no-untyped-call]


def is_connected(handler: SocketModeHandler) -> bool:
    """True while the WebSocket is open."""
    return bool(handler.client.is_connected())

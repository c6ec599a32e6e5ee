"""Builders for the requests Slack sends an app, shaped like Slack's documented examples."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode, urlsplit
from urllib.request import Request, urlopen

__all__ = [
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "SOCKET_MODE_KINDS",
    "app_mention",
    "block_actions",
    "event_callback",
    "form_body",
    "interactive_body",
    "json_body",
    "new_trigger_id",
    "post",
    "sign",
    "signed_request",
    "slash_command",
    "socket_mode_envelope",
]

#: The envelope ``type`` values a Socket Mode client receives for app payloads.
SOCKET_MODE_KINDS = frozenset({"slash_commands", "interactive", "events_api"})

_VERIFICATION_TOKEN = "sandbox-verification-token"  # noqa: S105 - the deprecated, unused verification token
#: The content type of slash command and interaction requests.
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
#: The content type of Events API requests.
JSON_CONTENT_TYPE = "application/json"


def new_trigger_id() -> str:
    """A fresh trigger id in Slack's ``"<digits>.<digits>.<hex>"`` shape.

    Returns:
        The trigger id.
    """
    return f"{secrets.randbelow(10**12):012d}.{secrets.randbelow(10**9):09d}.{secrets.token_hex(16)}"


def slash_command(
    text: str,
    *,
    command: str = "/etl",
    user_id: str = "U0ONCALL",
    user_name: str = "oncall",
    channel_id: str = "C0ETLALERTS",
    channel_name: str = "etl-alerts",
    team_id: str = "T0SANDBOX",
    team_domain: str = "sandbox",
    response_url: str,
    trigger_id: str | None = None,
    api_app_id: str = "A0ETLDOCTOR",
    token: str = _VERIFICATION_TOKEN,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
) -> dict[str, str]:
    """The form fields of a slash command invocation, as in Slack's "Payload example".

    The keys and their order follow https://docs.slack.dev/interactivity/implementing-slash-commands
    (``enterprise_id``/``enterprise_name`` only appear for Enterprise organizations, so only when given).

    Args:
        text: What the user typed after the command.
        command: The command, with its slash.
        user_id: Who invoked it.
        user_name: Their (deprecated) user name.
        channel_id: Where it was invoked.
        channel_name: That channel's name.
        team_id: The workspace id.
        team_domain: The workspace domain.
        response_url: Where the app may respond (an emulator's ``response_url()``).
        trigger_id: For opening a modal; a fresh one when omitted.
        api_app_id: The app id.
        token: The deprecated verification token.
        enterprise_id: The Enterprise organization id, if any.
        enterprise_name: Its name.

    Returns:
        The payload, every value a string (send it with :func:`form_body`).
    """
    payload = {"token": token, "team_id": team_id, "team_domain": team_domain}
    if enterprise_id is not None:
        payload["enterprise_id"] = enterprise_id
        payload["enterprise_name"] = enterprise_name or ""
    payload.update(
        channel_id=channel_id,
        channel_name=channel_name,
        user_id=user_id,
        user_name=user_name,
        command=command,
        text=text,
        response_url=response_url,
        trigger_id=trigger_id or new_trigger_id(),
        api_app_id=api_app_id,
    )
    return payload


def block_actions(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0ONCALL",
    user_name: str = "oncall",
    channel_id: str = "C0ETLALERTS",
    channel_name: str = "etl-alerts",
    team_id: str = "T0SANDBOX",
    team_domain: str = "sandbox",
    message_ts: str = "1700000000.000100",
    message_text: str = "",
    message_blocks: list[dict[str, Any]] | None = None,
    message_user: str = "U0ETLDOCTOR",
    message_bot_id: str = "B0ETLDOCTOR",
    response_url: str,
    block_id: str = "b",
    trigger_id: str | None = None,
    api_app_id: str = "A0ETLDOCTOR",
    token: str = _VERIFICATION_TOKEN,
    action_type: str = "button",
    button_text: str | None = None,
    action_ts: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button clicked in a channel message.

    Top-level keys follow the message example of
    https://docs.slack.dev/reference/interaction-payloads/block_actions-payload; the ``container`` is
    the one Slack sends for a Block Kit message (``type: "message"``; the doc's example shows a legacy
    attachment container).

    Args:
        action_id: The element's action_id.
        value: The button's value.
        user_id: Who clicked.
        user_name: Their user name.
        channel_id: The channel of the message.
        channel_name: That channel's name.
        team_id: The workspace id.
        team_domain: The workspace domain.
        message_ts: The ts of the message holding the button.
        message_text: That message's text.
        message_blocks: That message's blocks (added to ``message`` when given).
        message_user: The message's author (the bot user).
        message_bot_id: The message's bot id.
        response_url: Where the app may respond (an emulator's ``response_url()``).
        block_id: The block holding the element.
        trigger_id: For opening a modal; a fresh one when omitted.
        api_app_id: The app id.
        token: The deprecated verification token.
        action_type: The element type.
        button_text: The button's label (defaults to ``action_id``).
        action_ts: When it was clicked; now when omitted.

    Returns:
        The payload (send it with :func:`interactive_body`).
    """
    message: dict[str, Any] = {
        "bot_id": message_bot_id,
        "type": "message",
        "text": message_text,
        "user": message_user,
        "ts": message_ts,
    }
    if message_blocks is not None:
        message["blocks"] = message_blocks
    return {
        "type": "block_actions",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or new_trigger_id(),
        "channel": {"id": channel_id, "name": channel_name},
        "message": message,
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": button_text or action_id, "emoji": True},
                "value": value,
                "type": action_type,
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
    }


def app_mention(
    text: str,
    *,
    user: str = "U0ONCALL",
    channel: str = "C0ETLALERTS",
    ts: str | None = None,
) -> dict[str, Any]:
    """An ``app_mention`` inner event, with the keys of Slack's example event.

    See https://docs.slack.dev/reference/events/app_mention.

    Args:
        text: The message text, including the ``<@BOTID>`` mention.
        user: Who wrote it.
        channel: Where.
        ts: The message ts; now when omitted.

    Returns:
        The event (wrap it with :func:`event_callback`).
    """
    ts = ts or f"{time.time():.6f}"
    return {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel, "event_ts": ts}


def event_callback(
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    team_id: str = "T0SANDBOX",
    api_app_id: str = "A0ETLDOCTOR",
    event_time: int | None = None,
    token: str = _VERIFICATION_TOKEN,
    authorized_user_id: str = "U0ETLDOCTOR",
) -> dict[str, Any]:
    """The Events API ``event_callback`` envelope around an inner event.

    Keys follow "Events dispatched as JSON" on https://docs.slack.dev/apis/events-api/.

    Args:
        event: The inner event (e.g. from :func:`app_mention`).
        event_id: The id to dedupe retries on; a fresh ``"Ev…"`` one when omitted.
        team_id: The workspace id.
        api_app_id: The app id.
        event_time: Epoch seconds; now when omitted.
        token: The deprecated verification token.
        authorized_user_id: The installation's (bot) user the event is visible to.

    Returns:
        The envelope (send it with :func:`json_body`, or in a Socket Mode ``events_api`` envelope).
    """
    context = {"et": event.get("type"), "tid": team_id, "aid": api_app_id, "cid": event.get("channel")}
    encoded = base64.urlsafe_b64encode(json.dumps(context, separators=(",", ":")).encode()).decode().rstrip("=")
    return {
        "type": "event_callback",
        "token": token,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "event_context": f"4-{encoded}",
        "event_id": event_id or "Ev0" + uuid.uuid4().hex[:9].upper(),
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": authorized_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "context_team_id": team_id,
        "context_enterprise_id": None,
    }


def socket_mode_envelope(
    kind: str,
    payload: dict[str, Any],
    *,
    envelope_id: str | None = None,
    accepts_response_payload: bool | None = None,
    retry_attempt: int = 0,
    retry_reason: str = "",
) -> dict[str, Any]:
    """Wrap a payload the way Slack delivers it over Socket Mode.

    Shape from https://docs.slack.dev/apis/events-api/using-socket-mode ("Receive events").
    ``events_api`` envelopes also carry ``retry_attempt``/``retry_reason``, as Slack sends them.

    Args:
        kind: ``"slash_commands"``, ``"interactive"`` or ``"events_api"``.
        payload: A :func:`slash_command`, :func:`block_actions` or :func:`event_callback` payload.
        envelope_id: The id the app must ack; a fresh uuid when omitted.
        accepts_response_payload: Whether the ack may carry a response; by default true except for
            ``events_api``.
        retry_attempt: For ``events_api``: 0 for the first delivery.
        retry_reason: For ``events_api``: e.g. ``"timeout"`` on a retry.

    Returns:
        The envelope (send it with ``SlackEmulator.socket_mode_send``).

    Raises:
        ValueError: An unknown kind.
    """
    if kind not in SOCKET_MODE_KINDS:
        raise ValueError(f"kind must be one of {sorted(SOCKET_MODE_KINDS)}, not {kind!r}")
    if accepts_response_payload is None:
        accepts_response_payload = kind != "events_api"
    envelope: dict[str, Any] = {
        "payload": payload,
        "envelope_id": envelope_id or str(uuid.uuid4()),
        "type": kind,
        "accepts_response_payload": accepts_response_payload,
    }
    if kind == "events_api":
        envelope["retry_attempt"] = retry_attempt
        envelope["retry_reason"] = retry_reason
    return envelope


def form_body(payload: dict[str, str]) -> str:
    """URL-encode a slash command payload the way Slack sends it.

    Args:
        payload: The form fields.

    Returns:
        The ``application/x-www-form-urlencoded`` body.
    """
    return urlencode(payload)


def interactive_body(payload: dict[str, Any]) -> str:
    """Encode an interaction payload as Slack does: one ``payload`` form field holding JSON.

    Args:
        payload: E.g. a :func:`block_actions` payload.

    Returns:
        The ``payload=<url-encoded JSON>`` body.
    """
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def json_body(payload: dict[str, Any]) -> str:
    """Encode an Events API payload as its JSON body.

    Args:
        payload: E.g. an :func:`event_callback` envelope.

    Returns:
        The JSON text.
    """
    return json.dumps(payload, separators=(",", ":"))


def sign(body: str, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for a body (v0 HMAC-SHA256).

    See https://docs.slack.dev/authentication/verifying-requests-from-slack.

    Args:
        body: The exact request body.
        signing_secret: The app's signing secret.
        timestamp: Epoch seconds to sign with; now when omitted (pass an old one to test the
            5-minute replay window).

    Returns:
        ``{"X-Slack-Request-Timestamp": ..., "X-Slack-Signature": "v0=..."}``.
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode("utf-8"), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def signed_request(
    body: str, signing_secret: str, *, content_type: str, timestamp: int | None = None
) -> tuple[str, dict[str, str]]:
    """A body with the headers Slack would send it with: content type and signature.

    Args:
        body: The exact request body (from :func:`form_body`, :func:`interactive_body` or
            :func:`json_body`).
        signing_secret: The app's signing secret.
        content_type: ``"application/x-www-form-urlencoded"`` or ``"application/json"``.
        timestamp: Epoch seconds to sign with; now when omitted.

    Returns:
        ``(body, headers)``.
    """
    headers = {"Content-Type": content_type, **sign(body, signing_secret, timestamp)}
    return body, headers


def post(url: str, body: str, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """POST a body and return the answer even when it is an HTTP error.

    Args:
        url: An ``http://`` or ``https://`` URL (e.g. a Bolt app's ``/slack/events``).
        body: The request body (sent as UTF-8).
        headers: Request headers.
        timeout: Seconds before giving up.

    Returns:
        ``(status, headers with lower-cased names, body)``.

    Raises:
        ValueError: A URL that is not http(s).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"only http(s) URLs can be posted to, not {url!r}")
    request = Request(url, data=body.encode("utf-8"), headers=headers, method="POST")  # noqa: S310 - scheme checked
    try:
        with urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()

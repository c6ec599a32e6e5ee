"""A Slack Web API and Socket Mode emulator on loopback, built on the standard library only."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

__all__ = ["RESPONSE_URL_MAX_USES", "RecordedCall", "SlackEmulator"]

#: Slack lets an app post to one ``response_url`` up to 5 times (within 30 minutes).
RESPONSE_URL_MAX_USES = 5

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ID_RE = re.compile(r"[CGDUW][A-Z0-9]{2,}")
_JSON_FORM_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata", "unfurls"})
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
_RETIRED_METHODS = frozenset({"files.upload"})
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the emulator answered, as the test suite sees it.

    Attributes:
        method: The Web API method (``"chat.postMessage"``), ``"response_url"`` for posts to a
            response URL, ``"upload"`` for raw file bytes, ``"socket_mode.connect"`` for a
            WebSocket handshake.
        path: The request path, without the query string.
        headers: Request headers with lower-cased names.
        args: Query string, form fields and JSON body merged. JSON values stay as parsed, and
            JSON-in-form fields (``blocks``, ``view``, ``files``…) are decoded. Empty for uploads.
        body: The raw request body.
        status: The HTTP status the emulator answered.
        response: The JSON the emulator answered (empty when the answer was not JSON).
        key: The response_url key, or the file id of an upload.
        at: ``time.monotonic()`` when the request was answered.
    """

    method: str
    path: str
    headers: dict[str, str]
    args: dict[str, Any]
    body: bytes
    status: int
    response: dict[str, Any]
    key: str | None = None
    at: float = 0.0


class _ApiError(Exception):
    """A logical Web API error: Slack answers HTTP 200 with ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _RateLimitedError(Exception):
    """A Web API call refused with HTTP 429 and a ``Retry-After`` header."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass
class _Reply:
    """What the HTTP handler writes back."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _ResponseUrlContext:
    """Where a response_url's posts land, when the test registered it."""

    channel: str | None
    user: str | None
    message_ts: str | None


@dataclass
class _File:
    """One file announced by files.getUploadURLExternal."""

    id: str
    filename: str
    length: int
    alt_txt: str | None
    created: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False


class _SocketModeConnection:
    """One accepted Socket Mode WebSocket: unmasked frames out, masked frames in."""

    def __init__(self, conn_id: str, sock: socket.socket, rfile: BinaryIO) -> None:
        self.conn_id = conn_id
        self.sock = sock
        self.rfile = rfile
        self.closed = threading.Event()
        self._send_lock = threading.Lock()

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """Send one unmasked, unfragmented frame.

        Args:
            opcode: The WebSocket opcode.
            payload: The frame payload.

        Raises:
            ConnectionError: The connection is already closed.
        """
        frame = _encode_frame(opcode, payload)
        with self._send_lock:
            if self.closed.is_set():
                raise ConnectionError(f"socket mode connection {self.conn_id} is closed")
            self.sock.sendall(frame)

    def send_json(self, message: dict[str, Any]) -> None:
        """Send a JSON text frame.

        Args:
            message: The JSON object to send.
        """
        self.send_frame(_OP_TEXT, json.dumps(message).encode("utf-8"))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (best effort) and shut the socket down; idempotent.

        Args:
            code: The WebSocket close code.
            reason: The close reason.
        """
        with contextlib.suppress(OSError, ConnectionError):
            self.send_frame(_OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
        self.drop()

    def drop(self) -> None:
        """Shut the socket down without a close frame; idempotent."""
        with self._send_lock:
            if self.closed.is_set():
                return
            self.closed.set()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


class SlackEmulator:
    """A real HTTP server on loopback that answers like Slack's Web API, plus Socket Mode.

    Point ``slack_sdk.WebClient(token=emulator.bot_token, base_url=emulator.api_url)`` (or a Bolt
    ``App(client=...)``) at it, drive it, and assert on what it recorded. Everything is kept in
    memory; :meth:`reset` forgets the traffic.

    Example:
        >>> with SlackEmulator() as slack:  # doctest: +SKIP
        ...     client = WebClient(token=slack.bot_token, base_url=slack.api_url)
        ...     client.chat_postMessage(channel="#etl-alerts", text="hi")
        ...     assert slack.messages("#etl-alerts")[0]["text"] == "hi"

    Args:
        bot_token: The ``xoxb-`` token accepted for Web API methods.
        app_token: The ``xapp-`` token accepted for ``apps.connections.open`` only.
        team_id: The workspace id.
        team_domain: The workspace domain (``auth.test`` answers ``https://<domain>.slack.com/``).
        bot_user_id: The bot's user id; messages the app posts are authored by it.
        bot_id: The bot id.
        app_id: The app id (sent in the Socket Mode ``hello``).
        host: The loopback address to bind.
        port: The port to bind; 0 picks a free one.
        socket_ping_interval: Seconds between server pings to Socket Mode clients; ``None`` for none.

    Attributes:
        views: Opened views (modals, Home tabs) by view id, as last opened or updated.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-sandbox-token",  # noqa: S107 - a fake token for a fake workspace
        app_token: str = "xapp-sandbox-token",  # noqa: S107
        team_id: str = "T0SANDBOX",
        team_domain: str = "sandbox",
        bot_user_id: str = "U0ETLDOCTOR",
        bot_id: str = "B0ETLDOCTOR",
        app_id: str = "A0ETLDOCTOR",
        host: str = "127.0.0.1",
        port: int = 0,
        socket_ping_interval: float | None = 0.2,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.host = host
        self.port = port
        self.socket_ping_interval = socket_ping_interval
        self.views: dict[str, dict[str, Any]] = {}

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._lifecycle = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pinger: threading.Thread | None = None
        self._pinger_stop = threading.Event()

        self._calls: list[RecordedCall] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._files: dict[str, _File] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._queued_429: dict[str, list[int]] = {}
        self._queued_errors: dict[str, list[str]] = {}
        self._channel_rate: float | None = None
        self._channel_next_slot: dict[str, float] = {}
        self._response_urls: dict[str, _ResponseUrlContext] = {}
        self._response_url_uses: dict[str, int] = {}
        self._last_us = 0
        self._view_seq = 0

        self._ws_issued: set[str] = set()
        self._ws_connections: list[_SocketModeConnection] = []
        self._acks: dict[str, dict[str, Any]] = {}
        self._ack_log: list[dict[str, Any]] = []
        self._ws_other: list[Any] = []

        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "usergroups.users.list": self._usergroups_users_list,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackEmulator:
        """Start serving on a daemon thread; a no-op when already started.

        Returns:
            The emulator itself, so ``emulator = SlackEmulator().start()`` reads naturally.
        """
        with self._lifecycle:
            if self._server is not None:
                return self
            server = _Server((self.host, self.port), _Handler, self)
            self.port = int(server.server_address[1])
            self._stopping = False
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-emulator", daemon=True
            )
            self._thread.start()
            if self.socket_ping_interval:
                self._pinger_stop = threading.Event()
                self._pinger = threading.Thread(
                    target=self._ping_loop, args=(self._pinger_stop,), name="slack-emulator-ping", daemon=True
                )
                self._pinger.start()
        return self

    def stop(self) -> None:
        """Close Socket Mode connections and the HTTP server; idempotent.

        Connected Socket Mode clients get a close frame (1001) first and up to 2 seconds to drop
        the socket themselves; WebSocket handshakes are refused from then on. This way a slack_sdk
        client left running afterwards sees a clean close and idles (its reconnect attempts fail)
        instead of spinning on a half-dead socket.
        """
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None:
                return
            self._server, self._thread = None, None
            with self._lock:
                self._stopping = True
                connections = list(self._ws_connections)
            for conn in connections:
                try:
                    conn.send_frame(_OP_CLOSE, struct.pack("!H", 1001) + b"emulator stopping")
                except (OSError, ConnectionError):
                    conn.drop()
            with self._changed:
                self._changed.wait_for(lambda: not self._ws_connections, timeout=2.0)
                leftovers = list(self._ws_connections)
            for conn in leftovers:
                conn.drop()
            self._pinger_stop.set()
            if self._pinger is not None:
                self._pinger.join(timeout=5.0)
                self._pinger = None
            server.shutdown()
            server.server_close()
            if thread is not None:
                thread.join(timeout=5.0)

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The server root, e.g. ``"http://127.0.0.1:PORT"`` (the port is known once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API root with its trailing slash, as slack_sdk's ``base_url`` needs it."""
        return f"{self.base_url}/api/"

    def response_url(
        self,
        key: str | None = None,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
    ) -> str:
        """Mint a response_url pointing at this emulator.

        Posts to it are always recorded (method ``"response_url"``). When ``channel`` is given they
        also change the emulated workspace like Slack does: ``in_channel`` posts a message,
        ``ephemeral`` (the default) adds an ephemeral for ``user``, ``replace_original`` and
        ``delete_original`` act on the message at ``message_ts``.

        Args:
            key: The last path segment; a new uuid hex when omitted.
            channel: The channel (name or id) the interaction came from.
            user: The user who triggered the interaction (receives ephemeral responses).
            message_ts: The message the interaction came from (for replace/delete_original).

        Returns:
            ``f"{base_url}/response_url/{key}"``.
        """
        key = key or uuid.uuid4().hex
        if channel is not None:
            with self._lock:
                self._response_urls[key] = _ResponseUrlContext(self.channel_id(channel), user, message_ts)
        return f"{self.base_url}/response_url/{key}"

    # ------------------------------------------------------------------ inspection

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Recorded requests, oldest first.

        Args:
            method: Only calls of this method (``"chat.postMessage"``, ``"response_url"``, ...).

        Returns:
            A snapshot list of the recorded calls.
        """
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[RecordedCall]:
        """Poll until at least ``count`` calls of ``method`` were recorded.

        Args:
            method: The method to wait for.
            count: How many calls are needed.
            timeout: Seconds to wait at most.

        Returns:
            All recorded calls of ``method`` (at least ``count``).

        Raises:
            AssertionError: Not enough calls arrived in time; the message lists what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._calls if c.method == method]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.05))
            received = "\n".join(f"  - {_describe(c)}" for c in self._calls) or "  (nothing)"
        raise AssertionError(
            f"expected {count} call(s) to {method!r} within {timeout}s, got {len(found)}. Received:\n{received}"
        )

    def channel_id(self, name_or_id: str) -> str:
        """Resolve a channel name to its stable emulated id; ids pass through.

        ``"#etl-alerts"`` and ``"etl-alerts"`` give the same ``"C0…"`` id in every emulator (it is
        derived from the name); ``C…``/``G…``/``D…`` ids are returned as they are, and a user id
        (``U…``/``W…``) maps to that user's direct-message channel ``D…``, as posting to a user does.

        Args:
            name_or_id: ``"#name"``, ``"name"`` or an id.

        Returns:
            The channel id.

        Raises:
            ValueError: The name is blank.
        """
        value = name_or_id.strip()
        if value.startswith("#"):
            value = value[1:]
        elif _ID_RE.fullmatch(value):
            return "D0" + _digest(value) if value[0] in "UW" else value
        if not value:
            raise ValueError("blank channel name")
        return "C0" + _digest(value.lower())

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The current messages of a channel (thread replies included), in posting order.

        Each message has ``type``, ``ts``, ``text``, ``blocks``, ``user``, ``bot_id``, and when they
        apply ``thread_ts``, ``edited``, ``reactions``, ``files``, ``reply_count``. After
        ``chat.update`` the stored message is the updated one; deleted messages are gone.

        Args:
            channel: A channel name or id.

        Returns:
            Deep copies of the stored messages.
        """
        with self._lock:
            return copy.deepcopy(self._messages.get(self.channel_id(channel), []))

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """A thread's parent and replies, in posting order.

        Args:
            channel: A channel name or id.
            thread_ts: The parent message's ts.

        Returns:
            Deep copies of the parent (when it exists) and its replies.
        """
        return [m for m in self.messages(channel) if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def ephemerals(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral and ephemeral response_url posts).

        Args:
            channel: Only those of this channel (name or id).

        Returns:
            Deep copies with ``channel``, ``user``, ``text``, ``blocks``, ``message_ts``, ``thread_ts``.
        """
        cid = self.channel_id(channel) if channel is not None else None
        with self._lock:
            return copy.deepcopy([e for e in self._ephemerals if cid is None or e["channel"] == cid])

    def uploaded_files(self) -> list[dict[str, Any]]:
        """Files announced through files.getUploadURLExternal, oldest first.

        Returns:
            Dicts with ``id``, ``filename``, ``title``, ``length``, ``content`` (the bytes received,
            or ``None``), ``channel``, ``thread_ts``, ``initial_comment``, ``alt_txt``, ``completed``.
        """
        with self._lock:
            return [
                {
                    "id": f.id,
                    "filename": f.filename,
                    "title": f.title,
                    "length": f.length,
                    "content": f.content,
                    "channel": f.channel,
                    "thread_ts": f.thread_ts,
                    "initial_comment": f.initial_comment,
                    "alt_txt": f.alt_txt,
                    "completed": f.completed,
                }
                for f in self._files.values()
            ]

    # ------------------------------------------------------------------ configuration

    def reset(self) -> None:
        """Forget calls, messages, ephemerals, files, views, queued 429s and response_url uses.

        Configuration (user groups, the channel rate setting) and Socket Mode connections stay.
        """
        with self._lock:
            self._calls.clear()
            self._messages.clear()
            self._ephemerals.clear()
            self._files.clear()
            self.views.clear()
            self._queued_429.clear()
            self._queued_errors.clear()
            self._channel_next_slot.clear()
            self._response_urls.clear()
            self._response_url_uses.clear()
            self._acks.clear()
            self._ack_log.clear()
            self._ws_other.clear()

    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429.

        The body is ``{"ok": false, "error": "ratelimited"}`` and the ``Retry-After`` header is
        ``retry_after`` seconds (0 is allowed, to keep retry tests fast).

        Args:
            method: A Web API method, or ``"response_url"``.
            retry_after: The ``Retry-After`` value in whole seconds.
            times: How many consecutive calls to refuse.

        Raises:
            ValueError: A negative ``retry_after`` or ``times``.
        """
        if retry_after < 0 or times < 0:
            raise ValueError("retry_after and times must be >= 0")
        with self._lock:
            self._queued_429.setdefault(method, []).extend([retry_after] * times)

    def fail_next(self, method: str, error: str, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}`` (HTTP 200).

        That is how Slack refuses a call for good (``channel_not_found``, ``not_in_channel``,
        ``is_archived``…); nothing is stored.

        Args:
            method: A Web API method.
            error: The error code to return.
            times: How many consecutive calls to refuse.
        """
        with self._lock:
            self._queued_errors.setdefault(method, []).extend([error] * times)

    def enforce_channel_rate(self, per_second: float | None = 1.0) -> None:
        """Limit chat.postMessage per channel, like Slack's ~1 message/second/channel.

        A post arriving before the channel's next slot gets HTTP 429 with ``Retry-After`` in
        whole seconds (at least 1). Refused posts don't use up a slot. Other channels are
        independent.

        Args:
            per_second: Allowed posts per second per channel; ``None`` turns the limit off.

        Raises:
            ValueError: A rate that is not positive.
        """
        if per_second is not None and per_second <= 0:
            raise ValueError("per_second must be > 0 (or None to disable)")
        with self._lock:
            self._channel_rate = per_second
            self._channel_next_slot.clear()

    def add_usergroup(self, usergroup_id: str, users: list[str]) -> None:
        """Define a user group (``S…``) for usergroups.users.list.

        Args:
            usergroup_id: The user group id.
            users: Its member user ids.
        """
        with self._lock:
            self._usergroups[usergroup_id] = list(users)

    # ------------------------------------------------------------------ Socket Mode

    def wait_for_socket_client(self, timeout: float = 5.0) -> None:
        """Wait until a Socket Mode client has connected (and was sent its ``hello``).

        Args:
            timeout: Seconds to wait at most.

        Raises:
            AssertionError: No client connected in time.
        """
        self._wait_connection(time.monotonic() + timeout, timeout)

    def socket_mode_send(self, envelope: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send an envelope to the newest connected client and wait for its acknowledgement.

        Args:
            envelope: A Socket Mode envelope (see ``slack_payloads.socket_mode_envelope``); it must
                have a string ``envelope_id``.
            timeout: Seconds to wait at most, for a client and then for the ack.

        Returns:
            The parsed ack frame, ``{"envelope_id": ..., "payload": ...?}``.

        Raises:
            ValueError: The envelope has no ``envelope_id``.
            AssertionError: No client, or no ack with that ``envelope_id`` in time.
        """
        envelope_id = envelope.get("envelope_id")
        if not isinstance(envelope_id, str) or not envelope_id:
            raise ValueError("a Socket Mode envelope needs a string envelope_id")
        deadline = time.monotonic() + timeout
        conn = self._wait_connection(deadline, timeout)
        with self._lock:
            self._acks.pop(envelope_id, None)
        conn.send_json(envelope)
        with self._changed:
            if not self._changed.wait_for(
                lambda: envelope_id in self._acks, timeout=max(0.0, deadline - time.monotonic())
            ):
                acked = [a.get("envelope_id") for a in self._ack_log]
                raise AssertionError(
                    f"no ack for envelope {envelope_id!r} ({envelope.get('type')}) within {timeout}s; "
                    f"acks received so far: {acked}"
                )
            return copy.deepcopy(self._acks[envelope_id])

    def socket_mode_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message to every connected client (they should reconnect).

        Args:
            reason: ``"refresh_requested"``, ``"warning"`` or ``"link_disabled"``.
        """
        with self._lock:
            connections = list(self._ws_connections)
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sandbox"}}
        for conn in connections:
            try:
                conn.send_json(message)
            except (OSError, ConnectionError):
                conn.drop()

    def socket_mode_acks(self) -> list[dict[str, Any]]:
        """Every ack frame received from Socket Mode clients, oldest first.

        Returns:
            Deep copies of the parsed acks.
        """
        with self._lock:
            return copy.deepcopy(self._ack_log)

    def socket_mode_connections(self) -> int:
        """How many Socket Mode clients are connected now.

        Returns:
            The number of open WebSocket connections.
        """
        with self._lock:
            return len(self._ws_connections)

    def _ping_loop(self, stop: threading.Event) -> None:
        """Ping every client every ``socket_ping_interval`` seconds (slack_sdk answers with a pong).

        The frames also wake slack_sdk's blocking ``recv`` (3 s socket timeout, holding the lock
        its ``close()`` needs), which would otherwise delay ``close()`` and reconnects by up to 3 s.
        """
        interval = self.socket_ping_interval or 1.0
        while not stop.wait(interval):
            with self._lock:
                connections = list(self._ws_connections)
            for conn in connections:
                try:
                    conn.send_frame(_OP_PING, b"emulator")
                except (OSError, ConnectionError):
                    conn.drop()

    def _wait_connection(self, deadline: float, timeout: float) -> _SocketModeConnection:
        with self._changed:
            if not self._changed.wait_for(
                lambda: bool(self._ws_connections), timeout=max(0.0, deadline - time.monotonic())
            ):
                opened = len([c for c in self._calls if c.method == "apps.connections.open"])
                raise AssertionError(
                    f"no Socket Mode client connected within {timeout}s "
                    f"(apps.connections.open was called {opened} time(s))"
                )
            return self._ws_connections[-1]

    # ------------------------------------------------------------------ HTTP entry points

    def _record(self, call: RecordedCall) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _handle_api(self, method: str, path: str, headers: dict[str, str], body: bytes, query: str) -> _Reply:
        args: dict[str, Any] = {}
        response: dict[str, Any] = {}
        retry_after: int | None = None
        try:
            args = _parse_args(headers, body, query)
            with self._lock:
                retry_after = self._pop_queued_429(method)
                queued_error = self._queued_errors.get(method)
                if retry_after is None and queued_error:
                    response = {"ok": False, "error": queued_error.pop(0)}
                elif retry_after is None:
                    response = self._call_method(method, headers, args)
        except _RateLimitedError as limited:
            retry_after = limited.retry_after
        except _ApiError as err:
            response = {"ok": False, "error": err.error}
        if retry_after is not None:
            response = {"ok": False, "error": "ratelimited"}
            reply = _json_reply(429, response, {"Retry-After": str(retry_after)})
        else:
            reply = _json_reply(200, response)
        self._record(RecordedCall(method, path, headers, args, body, reply.status, response, None, time.monotonic()))
        return reply

    def _handle_response_url(self, key: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        try:
            payload = json.loads(body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            payload = None
        with self._lock:
            retry_after = self._pop_queued_429("response_url")
            uses = self._response_url_uses.get(key, 0)
            if retry_after is not None:
                reply = _text_reply(429, "rate_limited", {"Retry-After": str(retry_after)})
            elif not isinstance(payload, dict):
                reply = _text_reply(400, "invalid_payload")
            elif uses >= RESPONSE_URL_MAX_USES:
                # Slack documents the 5-use limit but not the exact refusal; we answer 404 "used_url".
                reply = _text_reply(404, "used_url")
            else:
                self._response_url_uses[key] = uses + 1
                self._apply_response_url(key, payload)
                reply = _text_reply(200, "ok")
        args = payload if isinstance(payload, dict) else {}
        self._record(RecordedCall("response_url", path, headers, args, body, reply.status, {}, key, time.monotonic()))
        return reply

    def _handle_upload(self, file_id: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        with self._lock:
            f = self._files.get(file_id)
            if f is None:
                reply = _text_reply(404, "file_not_found")
            else:
                f.content = body
                reply = _text_reply(200, f"OK - {len(body)}")
        self._record(RecordedCall("upload", path, headers, {}, body, reply.status, {}, file_id, time.monotonic()))
        return reply

    def _pop_queued_429(self, method: str) -> int | None:
        queue = self._queued_429.get(method)
        return queue.pop(0) if queue else None

    def _call_method(self, method: str, headers: dict[str, str], args: dict[str, Any]) -> dict[str, Any]:
        if method in _RETIRED_METHODS:
            raise _ApiError("method_deprecated")
        handler = self._methods.get(method)
        if handler is None:
            raise _ApiError("unknown_method")
        token = _bearer(headers) or _str_arg(args, "token")
        if not token:
            raise _ApiError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise _ApiError("invalid_auth")
        if (token == self.app_token) != (method in _APP_TOKEN_METHODS):
            raise _ApiError("not_allowed_token_type")
        return handler(args)

    # ------------------------------------------------------------------ Web API methods

    def _api_test(self, args: dict[str, Any]) -> dict[str, Any]:
        echoed = {k: v for k, v in args.items() if k != "token"}
        return {"ok": True, "args": echoed} if echoed else {"ok": True}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": "etl-doctor",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        conn_id = uuid.uuid4().hex
        self._ws_issued.add(conn_id)
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/socket-mode/{conn_id}"}

    def _bot_message(self, text: str, blocks: list[Any]) -> dict[str, Any]:
        """A new message from the bot, with a fresh ts (not yet stored)."""
        return {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": text,
            "blocks": blocks,
            "ts": self._next_ts(),
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        text, blocks = _content(args)
        self._check_channel_rate(channel)
        message = self._bot_message(text, blocks)
        for extra in ("attachments", "metadata", "markdown_text"):
            if extra in args:
                message[extra] = args[extra]
        thread_ts = _str_arg(args, "thread_ts")
        if thread_ts:
            message["thread_ts"] = thread_ts
            if _truthy(args.get("reply_broadcast")):
                message["reply_broadcast"] = True
            self._note_reply(channel, thread_ts, message["ts"])
        self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": copy.deepcopy(message)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        ts = _str_arg(args, "ts")
        if not ts:
            raise _ApiError("message_not_found")
        message = self._find_message(channel, ts)
        has_blocks = "blocks" in args and args["blocks"] not in (None, "")
        if "text" not in args and not has_blocks:
            raise _ApiError("no_text")
        if "text" in args:
            message["text"] = str(args["text"] or "")
        if has_blocks:
            message["blocks"] = _blocks_arg(args)
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        ts = _str_arg(args, "ts")
        message = self._find_message(channel, ts)
        self._messages[channel].remove(message)
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_arg, user = _str_arg(args, "channel"), _str_arg(args, "user")
        if not channel_arg or not user:
            raise _ApiError("invalid_arguments")
        text, blocks = _content(args)
        message_ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": self.channel_id(channel_arg),
                "user": user,
                "text": text,
                "blocks": blocks,
                "message_ts": message_ts,
                "thread_ts": _str_arg(args, "thread_ts") or None,
            }
        )
        return {"ok": True, "message_ts": message_ts}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        ts = _str_arg(args, "message_ts")
        self._find_message(channel, ts)
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        top = [m for m in self._messages.get(channel, []) if m.get("thread_ts") in (None, m["ts"])]
        return {"ok": True, "messages": copy.deepcopy(list(reversed(top))), "has_more": False}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        ts = _str_arg(args, "ts")
        self._find_message(channel, ts)
        found = [m for m in self._messages.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        return {"ok": True, "messages": copy.deepcopy(found), "has_more": False}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_arg, ts = _str_arg(args, "channel"), _str_arg(args, "timestamp")
        if not channel_arg or not ts:
            raise _ApiError("no_item_specified")
        name = _str_arg(args, "name").strip(":")
        if not name:
            raise _ApiError("invalid_name")
        message = self._find_message(self.channel_id(channel_arg), ts)
        reactions: list[dict[str, Any]] = message.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["name"] == name:
                if self.bot_user_id in reaction["users"]:
                    raise _ApiError("already_reacted")
                reaction["users"].append(self.bot_user_id)
                reaction["count"] += 1
                break
        else:
            reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {"ok": True}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _str_arg(args, "trigger_id"):
            raise _ApiError("invalid_arguments")
        view = self._store_view(self._view_arg(args), None)
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _str_arg(args, "user_id"):
            raise _ApiError("invalid_arguments")
        view = self._store_view(self._view_arg(args), None)
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = _str_arg(args, "view_id"), _str_arg(args, "external_id")
        if not view_id and not external_id:
            raise _ApiError("invalid_arguments")
        new_view = self._view_arg(args)
        current = self.views.get(view_id) if view_id else None
        if current is None and external_id:
            current = next((v for v in self.views.values() if v.get("external_id") == external_id), None)
        if current is None:
            raise _ApiError("not_found")
        expected_hash = _str_arg(args, "hash")
        if expected_hash and expected_hash != current["hash"]:
            raise _ApiError("hash_conflict")
        view = self._store_view(new_view, current)
        return {"ok": True, "view": copy.deepcopy(view)}

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = _str_arg(args, "filename")
        try:
            length = int(str(args.get("length", "")))
        except ValueError:
            length = -1
        if not filename or length < 0:
            raise _ApiError("invalid_arguments")
        file_id = "F0" + uuid.uuid4().hex[:9].upper()
        self._files[file_id] = _File(file_id, filename, length, _str_arg(args, "alt_txt") or None, int(time.time()))
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = args.get("files")
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        files: list[_File] = []
        for entry in entries:
            f = self._files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if f is None:
                raise _ApiError("file_not_found")
            f.title = str(entry.get("title") or f.filename)
            files.append(f)
        channels = [c for c in _str_arg(args, "channels").split(",") if c.strip()]
        if _str_arg(args, "channel_id"):
            channels.insert(0, _str_arg(args, "channel_id"))
        channel_ids = [self.channel_id(c) for c in channels]
        thread_ts = _str_arg(args, "thread_ts") or None
        comment = _str_arg(args, "initial_comment") or None
        for f in files:
            f.completed = True
            f.channel = channel_ids[0] if channel_ids else None
            f.thread_ts, f.initial_comment = thread_ts, comment
        for cid in channel_ids:
            self._share_files(cid, files, thread_ts, comment)
        return {"ok": True, "files": [self._file_object(f, channel_ids) for f in files]}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        usergroup = _str_arg(args, "usergroup")
        if usergroup not in self._usergroups:
            raise _ApiError("no_such_subteam")
        return {"ok": True, "users": list(self._usergroups[usergroup])}

    # ------------------------------------------------------------------ state helpers

    def _next_ts(self) -> str:
        """A Slack-style ts ("1712345678.000100"): microseconds since the epoch, strictly increasing."""
        now_us = time.time_ns() // 1000
        self._last_us = max(now_us, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def _channel_arg(self, args: dict[str, Any]) -> str:
        value = _str_arg(args, "channel")
        if not value.strip():
            raise _ApiError("channel_not_found")
        return self.channel_id(value)

    def _find_message(self, channel: str, ts: str) -> dict[str, Any]:
        for message in self._messages.get(channel, []):
            if message["ts"] == ts:
                return message
        raise _ApiError("message_not_found")

    def _note_reply(self, channel: str, thread_ts: str, reply_ts: str) -> None:
        for message in self._messages.get(channel, []):
            if message["ts"] == thread_ts:
                message["thread_ts"] = thread_ts
                message["reply_count"] = int(message.get("reply_count", 0)) + 1
                message["latest_reply"] = reply_ts
                return

    def _check_channel_rate(self, channel: str) -> None:
        if self._channel_rate is None:
            return
        now = time.monotonic()
        next_slot = self._channel_next_slot.get(channel, now)
        if now < next_slot:
            raise _RateLimitedError(max(1, math.ceil(next_slot - now)))
        self._channel_next_slot[channel] = max(now, next_slot) + 1.0 / self._channel_rate

    def _view_arg(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError as exc:
                raise _ApiError("invalid_arguments") from exc
        if not isinstance(view, dict) or "type" not in view:
            raise _ApiError("invalid_arguments")
        return view

    def _store_view(self, view: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None:
            self._view_seq += 1
            view_id = f"V0{self._view_seq:09d}"
        else:
            view_id = str(current["id"])
        stored: dict[str, Any] = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view["type"],
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id") or (current or {}).get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{uuid.uuid4().hex[:8]}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": current["root_view_id"] if current else view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.views[view_id] = stored
        return stored

    def _file_object(self, f: _File, channel_ids: list[str]) -> dict[str, Any]:
        return {
            "id": f.id,
            "created": f.created,
            "timestamp": f.created,
            "name": f.filename,
            "title": f.title,
            "mimetype": _mimetype(f.filename),
            "filetype": f.filename.rsplit(".", 1)[-1].lower() if "." in f.filename else "binary",
            "user": self.bot_user_id,
            "size": len(f.content) if f.content is not None else f.length,
            "channels": [c for c in channel_ids if c.startswith("C")],
            "groups": [c for c in channel_ids if c.startswith("G")],
            "ims": [c for c in channel_ids if c.startswith("D")],
            "url_private": f"{self.base_url}/files/{f.id}/{f.filename}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{f.id}/{f.filename}",
        }

    def _share_files(self, channel: str, files: list[_File], thread_ts: str | None, comment: str | None) -> None:
        message = self._bot_message(comment or "", [])
        message["files"] = [self._file_object(f, [channel]) for f in files]
        message["upload"] = True
        if thread_ts:
            message["thread_ts"] = thread_ts
            self._note_reply(channel, thread_ts, message["ts"])
        self._messages.setdefault(channel, []).append(message)

    def _apply_response_url(self, key: str, payload: dict[str, Any]) -> None:
        context = self._response_urls.get(key)
        if context is None or context.channel is None:
            return
        channel = context.channel
        text = str(payload.get("text") or "")
        raw_blocks = payload.get("blocks")
        blocks: list[Any] = raw_blocks if isinstance(raw_blocks, list) else []
        if _truthy(payload.get("delete_original")):
            self._messages[channel] = [m for m in self._messages.get(channel, []) if m["ts"] != context.message_ts]
            return
        if _truthy(payload.get("replace_original")) and context.message_ts:
            for message in self._messages.get(channel, []):
                if message["ts"] == context.message_ts:
                    message.update(text=text, blocks=blocks)
                    message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
                    return
        if payload.get("response_type") == "in_channel":
            posted = self._bot_message(text, blocks)
            if isinstance(payload.get("thread_ts"), str):
                posted["thread_ts"] = payload["thread_ts"]
                self._note_reply(channel, payload["thread_ts"], posted["ts"])
            self._messages.setdefault(channel, []).append(posted)
            return
        self._ephemerals.append(
            {
                "channel": channel,
                "user": context.user,
                "text": text,
                "blocks": blocks,
                "message_ts": self._next_ts(),
                "thread_ts": payload.get("thread_ts"),
            }
        )

    # ------------------------------------------------------------------ Socket Mode server side

    def _accept_socket(self, conn_id: str) -> bool:
        with self._lock:
            return conn_id in self._ws_issued and not self._stopping

    def _register_socket(self, conn: _SocketModeConnection) -> None:
        with self._changed:
            self._ws_connections.append(conn)
            hello = {
                "type": "hello",
                "num_connections": len(self._ws_connections),
                "debug_info": {
                    "host": "applink-sandbox",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
            conn.send_json(hello)
            self._changed.notify_all()

    def _unregister_socket(self, conn: _SocketModeConnection) -> None:
        conn.drop()
        with self._changed:
            if conn in self._ws_connections:
                self._ws_connections.remove(conn)
            self._changed.notify_all()

    def _socket_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = text
        with self._changed:
            if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
                self._acks[message["envelope_id"]] = message
                self._ack_log.append(message)
            else:
                self._ws_other.append(message)
            self._changed.notify_all()

    def _serve_socket(self, conn: _SocketModeConnection) -> None:
        """Read client frames until close or EOF: acks, pings, close."""
        fragments: list[bytes] = []
        try:
            self._register_socket(conn)
            while True:
                frame = _read_frame(conn.rfile)
                if frame is None:
                    return
                fin, opcode, payload, masked = frame
                if not masked:
                    conn.close(1002, "client frames must be masked")
                    return
                if opcode == _OP_PING:
                    conn.send_frame(_OP_PONG, payload)
                elif opcode == _OP_CLOSE:
                    conn.close(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000)
                    return
                elif opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
                    fragments.append(payload)
                    if fin:
                        data, fragments = b"".join(fragments), []
                        if opcode != _OP_BINARY:
                            self._socket_text(data.decode("utf-8", errors="replace"))
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            self._unregister_socket(conn)


class _Server(ThreadingHTTPServer):
    """The HTTP server; handler threads are daemons so they never block interpreter exit."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: SlackEmulator
    ) -> None:
        self.emulator = emulator
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """Routes /api/<method>, /response_url/<key>, /upload/<file_id> and /socket-mode/<id>."""

    server_version = "SlackEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the emulator records calls instead of logging them."""

    def do_GET(self) -> None:
        """Serve Socket Mode handshakes and query-string Web API calls."""
        if urlsplit(self.path).path.startswith("/socket-mode/"):
            self._socket_mode()
        else:
            self._dispatch()

    def do_POST(self) -> None:
        """Serve Web API calls, response_url posts and file uploads."""
        self._dispatch()

    @property
    def _emulator(self) -> SlackEmulator:
        return cast(_Server, self.server).emulator

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path, headers = parts.path, self._headers()
        body = self._body() if self.command == "POST" else b""
        emulator = self._emulator
        if path.startswith("/api/"):
            reply = emulator._handle_api(path[len("/api/") :], path, headers, body, parts.query)
        elif path.startswith("/response_url/") and self.command == "POST":
            reply = emulator._handle_response_url(path[len("/response_url/") :], path, headers, body)
        elif path.startswith("/upload/") and self.command == "POST":
            reply = emulator._handle_upload(path[len("/upload/") :], path, headers, body)
        else:
            reply = _text_reply(404, "not_found")
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _socket_mode(self) -> None:
        emulator = self._emulator
        path = urlsplit(self.path).path
        conn_id = path[len("/socket-mode/") :].strip("/")
        headers = self._headers()
        key = headers.get("sec-websocket-key", "")
        upgrade_ok = headers.get("upgrade", "").lower() == "websocket" and bool(key)
        if not upgrade_ok:
            reply = _text_reply(400, "expected a WebSocket upgrade")
        elif not emulator._accept_socket(conn_id):
            reply = _text_reply(503 if emulator._stopping else 404, "unknown or expired socket mode url")
        else:
            reply = _Reply(101, b"", "")
        emulator._record(
            RecordedCall("socket_mode.connect", path, headers, {}, b"", reply.status, {}, conn_id, time.monotonic())
        )
        if reply.status != 101:
            self.close_connection = True
            self._send(reply)
            return
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode(), usedforsecurity=False).digest()).decode()
        self.connection.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode("ascii")
        )
        self.close_connection = True
        emulator._serve_socket(_SocketModeConnection(conn_id, self.connection, cast(BinaryIO, self.rfile)))


# ---------------------------------------------------------------------- pure helpers


def _digest(value: str) -> str:
    return hashlib.sha1(value.encode("utf-8"), usedforsecurity=False).hexdigest()[:9].upper()


def _encode_frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n <= 125:
        head += bytes([n])
    elif n <= 0xFFFF:
        head += struct.pack("!BH", 126, n)
    else:
        head += struct.pack("!BQ", 127, n)
    return head + payload


def _read_exact(rfile: BinaryIO, n: int) -> bytes | None:
    data = rfile.read(n) if n else b""
    return data if data is not None and len(data) == n else None


def _read_frame(rfile: BinaryIO) -> tuple[bool, int, bytes, bool] | None:
    """Read one frame: ``(fin, opcode, unmasked payload, was_masked)``, or ``None`` at EOF."""
    head = _read_exact(rfile, 2)
    if head is None:
        return None
    fin, opcode, masked, length = bool(head[0] & 0x80), head[0] & 0x0F, bool(head[1] & 0x80), head[1] & 0x7F
    if length in (126, 127):
        size = 2 if length == 126 else 8
        raw = _read_exact(rfile, size)
        if raw is None:
            return None
        length = struct.unpack("!H" if size == 2 else "!Q", raw)[0]
    mask = _read_exact(rfile, 4) if masked else b""
    payload = _read_exact(rfile, length)
    if mask is None or payload is None:
        return None
    if masked and length:
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return fin, opcode, payload, masked


def _parse_args(headers: dict[str, str], body: bytes, query: str) -> dict[str, Any]:
    args: dict[str, Any] = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if not body:
        return args
    if content_type == "application/json":
        try:
            parsed = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _ApiError("invalid_json") from exc
        if not isinstance(parsed, dict):
            raise _ApiError("invalid_json")
        args.update(parsed)
    elif content_type in ("application/x-www-form-urlencoded", ""):
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise _ApiError("invalid_form_data") from exc
        for name, values in form.items():
            value: Any = values[0]
            if name in _JSON_FORM_FIELDS and value[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            args[name] = value
    else:
        raise _ApiError("invalid_form_data")
    return args


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else ""


def _str_arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    return "" if value is None else str(value)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1")) or value == 1


def _blocks_arg(args: dict[str, Any]) -> list[Any]:
    blocks = args.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks) if blocks.strip() else []
        except ValueError as exc:
            raise _ApiError("invalid_blocks_format") from exc
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        raise _ApiError("invalid_blocks_format")
    return blocks


def _content(args: dict[str, Any]) -> tuple[str, list[Any]]:
    text = _str_arg(args, "text")
    blocks = _blocks_arg(args)
    if not text and not blocks and not args.get("attachments") and not args.get("markdown_text"):
        raise _ApiError("no_text")
    return text, blocks


def _mimetype(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "gif": "image/gif",
        "txt": "text/plain",
        "csv": "text/csv",
        "json": "application/json",
        "log": "text/plain",
    }.get(ext, "application/octet-stream")


def _json_reply(status: int, response: dict[str, Any], headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(response).encode("utf-8"), headers=headers or {})


def _text_reply(status: int, text: str, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, text.encode("utf-8"), "text/plain; charset=utf-8", headers or {})


def _describe(call: RecordedCall) -> str:
    outcome = call.response.get("error") if call.response.get("ok") is False else "ok"
    shown = {k: v for k, v in call.args.items() if k != "token"}
    text = json.dumps(shown, default=str)
    if len(text) > 160:
        text = text[:157] + "..."
    key = f" key={call.key}" if call.key else ""
    return f"{call.method}{key} -> {call.status} {outcome} {text}"

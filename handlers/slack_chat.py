"""Slack for the alert dispatcher: chat.postMessage / chat.update / reactions.add, errors made explicit."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.alerts.dispatch import ChatRateLimitedError, ChatRejectedError, ChatUnavailableError

logger = logging.getLogger(__name__)
_TRANSIENT = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}


class SlackChat:
    """The dispatcher's `Chat` over a slack_sdk client that does not retry 429s itself.

    A 429 becomes `ChatRateLimitedError` with Slack's ``Retry-After``; network failures and Slack-side
    errors `ChatUnavailableError`; anything else (``channel_not_found``, ``not_in_channel``…)
    `ChatRejectedError`.
    """

    def __init__(self, client: WebClient) -> None:
        self._client = client

    def post(self, channel: str, message: dict[str, Any], *, thread_ts: str | None = None) -> tuple[str, str]:
        """Post a message; return (channel id, ts)."""
        response = self._call(
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=message.get("text", " "),
                blocks=message.get("blocks"),
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        return str(response["channel"]), str(response["ts"])

    def update(self, channel: str, ts: str, message: dict[str, Any]) -> None:
        """Replace a message."""
        self._call(
            lambda: self._client.chat_update(
                channel=channel, ts=ts, text=message.get("text", " "), blocks=message.get("blocks")
            )
        )

    def upload(self, channel: str, content: bytes, *, filename: str, title: str, thread_ts: str | None = None) -> None:
        """Share ``content`` as a file in ``channel`` (in the thread of ``thread_ts`` when given): files_upload_v2."""
        self._call(
            lambda: self._client.files_upload_v2(
                channel=channel, content=content, filename=filename, title=title, alt_txt=title, thread_ts=thread_ts
            )
        )

    def react(self, channel: str, ts: str, name: str) -> None:
        """Add a reaction; one already there is fine."""
        try:
            self._call(lambda: self._client.reactions_add(channel=channel, timestamp=ts, name=name))
        except ChatRejectedError as exc:
            if "already_reacted" not in str(exc):
                raise

    @staticmethod
    def _call(call: Any) -> Any:
        try:
            return call()
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
            if status == 429:
                retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or 1
                raise ChatRateLimitedError(float(retry_after)) from None
            if status >= 500 or error in _TRANSIENT:
                raise ChatUnavailableError(f"Slack answered {status} {error}".strip()) from None
            raise ChatRejectedError(error or f"HTTP {status}") from None
        except (SlackClientError, OSError) as exc:
            raise ChatUnavailableError(str(exc) or type(exc).__name__) from None


class SlackUsergroups:
    """User group members from ``usergroups.users.list``, cached for ``ttl`` seconds (scope usergroups:read)."""

    def __init__(self, client: WebClient, *, ttl: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, usergroup_id: str) -> frozenset[str]:
        """The group's user ids; an unknown group or a Slack error counts as no members (and is logged)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(usergroup_id)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        try:
            response = self._client.usergroups_users_list(usergroup=usergroup_id)
            users = frozenset(str(user) for user in response.get("users", []))
        except (SlackApiError, SlackClientError, OSError) as exc:
            logger.warning("could not list the members of user group %s: %s", usergroup_id, exc)
            return cached[1] if cached is not None else frozenset()
        with self._lock:
            self._cache[usergroup_id] = (now, users)
        return users

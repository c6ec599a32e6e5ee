"""Events API: `@etl-doctor <subcommand>` answered in the thread; Slack's retries deduplicated by event_id."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot.actions.policy import Actor
from bot.answers import answer
from bot.commands import UsageError, parse, strip_mention
from bot.render.messages import render_usage_error
from bot.services import Services
from handlers.errors import reporting_errors


class AppMention:
    """Listeners for app mentions and the dedupe middleware, bound to the process's services."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def drop_retried_events(
        self, body: dict[str, Any], request: BoltRequest, next_: Callable[[], BoltResponse], logger: logging.Logger
    ) -> BoltResponse | None:
        """Global middleware: an event_id seen before (a Slack retry) is acked and not run again.

        Bolt's own lazy re-dispatch on Lambda carries the same event_id; it is the answer, not a retry.
        """
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not request.lazy_only:
            with self._services.store.transaction() as uow:
                first = uow.event_receipts.first_delivery(str(event_id), self._services.clock())
            if not first:
                logger.info("ignoring a retried delivery of %s", event_id, extra={"event_id": event_id})
                return BoltResponse(status=200, body="")
        return next_()

    def ack_mention(self, ack: Ack) -> None:
        """Events are acked at once (Slack retries anything slower than 3 s)."""
        ack()

    def run_mention(self, event: dict[str, Any], client: WebClient, logger: logging.Logger) -> None:
        """Answer `@etl-doctor <subcommand>` in the mention's thread."""
        channel, thread_ts = event["channel"], event.get("thread_ts") or event["ts"]

        def reply(**message: Any) -> None:
            message.pop("response_type", None)
            message.pop("replace_original", None)
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)

        with reporting_errors(reply, logger, "app mention"):
            try:
                invocation = parse(strip_mention(event.get("text", "")))
            except UsageError as error:
                reply(**render_usage_error(error))
                return
            actor = Actor(user_id=str(event.get("user", "")), channel_id=channel)
            reply(**answer(replace(invocation, actor=actor), self._services))

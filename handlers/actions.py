"""Buttons on etl-doctor's messages: ack at once, work lazily (Logs on a diagnosis; Why and Logs on an alert)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.answers import answer
from bot.commands import Invocation, find
from bot.services import Services
from handlers.errors import reporting_errors

if TYPE_CHECKING:
    pass


class DiagnosisButtons:
    """Listeners for the buttons of `/etl why` answers."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def ack_logs_button(self, ack: Ack) -> None:
        """Ack the click at once."""
        ack()

    def run_logs_button(self, action: dict[str, Any], respond: Respond, logger: logging.Logger) -> None:
        """Show the failed work's logs to the clicker (the button's value is the execution ARN)."""
        logs = find("logs")
        assert logs is not None
        with reporting_errors(respond, logger, "Logs button"):
            message = answer(Invocation(logs, (str(action.get("value", "")),)), self._services)
            respond(response_type="ephemeral", replace_original=False, **message)


class AlertButtons:
    """Listeners for the Why and Logs buttons of an alert: the answer goes into the alert's thread."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def ack_alert_button(self, ack: Ack) -> None:
        """Ack the click at once."""
        ack()

    def run_why_button(
        self, action: dict[str, Any], body: dict[str, Any], client: WebClient, respond: Respond, logger: logging.Logger
    ) -> None:
        """Post the full diagnosis of the alert's execution in its thread."""
        self._answer_in_thread("why", action, body, client, respond, logger)

    def run_logs_button(
        self, action: dict[str, Any], body: dict[str, Any], client: WebClient, respond: Respond, logger: logging.Logger
    ) -> None:
        """Post the evidence log lines of the alert's execution (or ECS task) in its thread."""
        self._answer_in_thread("logs", action, body, client, respond, logger)

    def _answer_in_thread(
        self,
        name: str,
        action: dict[str, Any],
        body: dict[str, Any],
        client: WebClient,
        respond: Respond,
        logger: logging.Logger,
    ) -> None:
        subcommand = find(name)
        assert subcommand is not None
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        thread_ts = message.get("thread_ts") or message.get("ts")
        with reporting_errors(respond, logger, f"{name.title()} button"):
            answer_message = answer(Invocation(subcommand, (str(action.get("value", "")),)), self._services)
            if channel and thread_ts:
                client.chat_postMessage(channel=channel, thread_ts=thread_ts, **answer_message)
            else:
                respond(response_type="ephemeral", replace_original=False, **answer_message)

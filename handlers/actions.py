"""Buttons on etl-doctor's messages: ack at once, work lazily (the Logs button on a diagnosis)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, Respond

from bot.answers import answer
from bot.commands import Invocation, find
from bot.services import Services
from handlers.errors import reporting_errors


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

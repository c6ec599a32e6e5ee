"""The `/etl` slash command: validate and ack at once (ack_etl), answer in a lazy listener (run_etl)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.actions.policy import Actor
from bot.answers import answer, precheck
from bot.commands import UsageError, parse
from bot.render.messages import render_usage_error
from bot.services import Services
from handlers.errors import reporting_errors


class EtlCommand:
    """Listeners for `/etl`, bound to the process's services."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def ack_etl(self, ack: Ack, command: dict[str, Any]) -> None:
        """Ack within 3 s: usage errors are answered right here, ephemeral; valid commands run lazily."""
        try:
            invocation = parse(command.get("text", ""))
        except UsageError as error:
            ack(response_type="ephemeral", **render_usage_error(error))
            return
        problem = precheck(invocation, self._services)  # e.g. an unknown KPI: answered now, not after a wait
        if problem is not None:
            ack(response_type="ephemeral", **problem)
            return
        if invocation.subcommand.progress:
            ack(response_type="ephemeral", text=invocation.subcommand.progress.format(args=" ".join(invocation.args)))
            return
        ack()

    def run_etl(self, command: dict[str, Any], respond: Respond, client: WebClient, logger: logging.Logger) -> None:
        """Do the work and answer through the command's response_url (KPI runs: in the channel, with progress)."""
        try:
            invocation = parse(command.get("text", ""))
        except UsageError:
            return  # already answered by ack_etl
        if precheck(invocation, self._services) is not None:
            return  # already answered by ack_etl
        if invocation.subcommand.name == "kpi" and invocation.args[0].lower() != "list":
            from handlers.kpi import reconcile_in_channel

            with reporting_errors(respond, logger, "/etl kpi"):
                reconcile_in_channel(self._services, invocation, command, respond, client)
            return
        visibility = "in_channel" if invocation.subcommand.in_channel else "ephemeral"
        with reporting_errors(respond, logger, f"/etl {invocation.subcommand.name}"):
            actor = Actor(
                user_id=str(command.get("user_id", "")),
                channel_id=command.get("channel_id"),
                channel_name=command.get("channel_name"),
            )
            message = answer(replace(invocation, actor=actor), self._services)
            respond(response_type=visibility, replace_original=False, **message)

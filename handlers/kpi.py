"""`/etl kpi <name> [partition]` in a channel: a progress message kept up to date, the result, the chart."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.commands import Invocation, parse_kpi_args
from bot.services import Services


def reconcile_in_channel(
    services: Services, invocation: Invocation, command: dict[str, Any], respond: Respond, client: WebClient
) -> None:
    """Answer `/etl kpi <name> [spec]` in the command's channel (not `kpi list`: that is a plain answer).

    The run is recorded with trigger ``slack`` and the user's id. When the bot cannot post in the
    channel, the result comes back through the command's response_url instead (without the chart).
    """
    from bot.render.kpi import render_kpi_report  # with the KPI model: off the cold import path (the ack's)
    from handlers.slack_chat import SlackChat  # with the alert dispatcher's errors: off the cold import path

    name, spec = parse_kpi_args(invocation.args)
    if name is None:
        raise ValueError("`kpi list` is answered by bot.answers")
    run = services.kpi_service.run_in_chat(
        SlackChat(client), str(command.get("channel_id", "")), name, spec, requested_by=command.get("user_id")
    )
    if not run.delivered and run.report is not None:
        respond(response_type="in_channel", replace_original=False, **render_kpi_report(run.report))


class KpiButtons:
    """**Backfill <partition>** on a KPI answer: ask to re-run the KPI's pipeline for that partition.

    The button carries ``<kpi>|<partition>``; the action service re-reads the KPI's pipeline and
    ``rerun_input`` from etl-doctor.yml, checks the clicker's permission (the retry grant) and asks
    for a confirmation (Confirm · Cancel, handled like any action's).
    """

    def __init__(self, services: Services) -> None:
        self._services = services

    def ack_backfill(self, ack: Ack) -> None:
        """Ack the click at once."""
        ack()

    def run_backfill(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """Ask to confirm the backfill (or say why it may not run), only to whoever clicked."""
        from bot.render.actions import render_outcome
        from handlers.action_buttons import actor_of
        from handlers.errors import reporting_errors

        kpi, _, partition = str(action.get("value", "")).partition("|")
        message = body.get("message") or {}
        with reporting_errors(respond, logger, "Backfill button"):
            outcome = self._services.actions.request_backfill(
                kpi, partition, actor_of(body), thread_ts=message.get("thread_ts") or message.get("ts")
            )
            respond(response_type="ephemeral", replace_original=False, **render_outcome(outcome))

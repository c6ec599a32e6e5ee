"""`/etl kpi <name> [partition]` in a channel: a progress message kept up to date, the result, the chart."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.commands import Invocation, parse_kpi_args
from bot.render.kpi import render_kpi_report
from bot.services import Services


class SlackKpiChat:
    """`SlackChat` plus file sharing (`files_upload_v2`: upload URL, upload, complete in the channel).

    slack_sdk's chat wrapper (and the store behind the alert dispatcher) is imported when a KPI runs,
    not when the Lambda handler is imported.
    """

    def __init__(self, client: WebClient) -> None:
        from handlers.slack_chat import SlackChat

        self._client = client
        self._chat = SlackChat(client)

    def post(self, channel: str, message: dict[str, Any], *, thread_ts: str | None = None) -> tuple[str, str]:
        """Post a message; return (channel id, ts)."""
        return self._chat.post(channel, message, thread_ts=thread_ts)

    def update(self, channel: str, ts: str, message: dict[str, Any]) -> None:
        """Replace a message."""
        self._chat.update(channel, ts, message)

    def upload(self, channel: str, content: bytes, *, filename: str, title: str, thread_ts: str | None = None) -> None:
        """Share ``content`` as a file in ``channel`` (in the thread of ``thread_ts`` when given)."""
        self._chat._call(
            lambda: self._client.files_upload_v2(
                channel=channel, content=content, filename=filename, title=title, alt_txt=title, thread_ts=thread_ts
            )
        )


def reconcile_in_channel(
    services: Services, invocation: Invocation, command: dict[str, Any], respond: Respond, client: WebClient
) -> None:
    """Answer `/etl kpi <name> [spec]` in the command's channel (not `kpi list`: that is a plain answer).

    The run is recorded with trigger ``slack`` and the user's id. When the bot cannot post in the
    channel, the result comes back through the command's response_url instead (without the chart).
    """
    name, spec = parse_kpi_args(invocation.args)
    if name is None:
        raise ValueError("`kpi list` is answered by bot.answers")
    run = services.kpi_service.run_in_chat(
        SlackKpiChat(client), str(command.get("channel_id", "")), name, spec, requested_by=command.get("user_id")
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

"""Buttons that act: Retry · Redrive · Ack · Snooze on an alert; Confirm · Cancel · Approve · Reject on a request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond

from bot.actions.model import LABEL, Outcome
from bot.actions.policy import Actor
from bot.render.actions import render_outcome
from bot.services import Services
from handlers.errors import reporting_errors

if TYPE_CHECKING:
    from bot.actions.service import ActionService


def actor_of(body: dict[str, Any]) -> Actor:
    """Who clicked, and in which channel (from a block_actions payload)."""
    channel = body.get("channel") or {}
    return Actor(
        user_id=str((body.get("user") or {}).get("id", "")),
        channel_id=channel.get("id") or (body.get("container") or {}).get("channel_id"),
        channel_name=channel.get("name"),
        message_ts=(body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts"),
    )


class ActionButtons:
    """Retry · Redrive · Ack · Snooze on an alert, and Confirm · Cancel · Approve · Reject on a request.

    Every click is acked at once; the permission check, preflight and AWS calls run lazily. Buttons carry
    an incident or request id (the service re-reads it and re-checks permission at click time), or, for
    Retry and Redrive on a `/etl why` answer, the execution ARN: the click then is `/etl retry|redrive <ARN>`.
    """

    def __init__(self, services: Services) -> None:
        self._services = services

    def ack_action(self, ack: Ack) -> None:
        """Ack the click at once."""
        ack()

    def run_retry(self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger) -> None:
        """Ask to confirm a retry of the alert's (or the diagnosis's) execution."""
        self._request("retry", action, body, respond, logger)

    def run_retry_more(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """Ask to confirm a retry with more memory."""
        self._request("retry_more", action, body, respond, logger)

    def run_redrive(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """Preflight a redrive and ask to confirm it (or say why not and offer a retry)."""
        self._request("redrive", action, body, respond, logger)

    def run_confirm(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """The requester confirmed."""
        self._step(lambda s, a: s.confirm(str(action.get("value", "")), a), body, respond, logger, "Confirm")

    def run_cancel(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """The requester cancelled."""
        self._step(lambda s, a: s.cancel(str(action.get("value", "")), a), body, respond, logger, "Cancel")

    def run_approve(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """A second person approved."""
        self._step(lambda s, a: s.approve(str(action.get("value", "")), a), body, respond, logger, "Approve")

    def run_reject(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """Someone rejected the request."""
        self._step(lambda s, a: s.reject(str(action.get("value", "")), a), body, respond, logger, "Reject")

    def run_ack(self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger) -> None:
        """Ack the alert."""
        self._step(lambda s, a: s.acknowledge(str(action.get("value", "")), a), body, respond, logger, "Ack")

    def run_unack(self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger) -> None:
        """Un-ack the alert."""
        self._step(
            lambda s, a: s.acknowledge(str(action.get("value", "")), a, undo=True), body, respond, logger, "Un-ack"
        )

    def run_snooze(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """Snooze the alert's repeats for the chosen time."""
        chosen = str((action.get("selected_option") or {}).get("value", ""))
        incident_id, _, duration = chosen.partition(":")
        self._step(lambda s, a: s.snooze(incident_id, a, duration), body, respond, logger, "Snooze")

    def run_unsnooze(
        self, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        """Post the alert's repeats again."""
        self._step(lambda s, a: s.snooze(str(action.get("value", "")), a, None), body, respond, logger, "Un-snooze")

    def _request(
        self, kind: str, action: dict[str, Any], body: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        value = str(action.get("value", ""))
        thread_ts = (body.get("message") or {}).get("thread_ts") or (body.get("message") or {}).get("ts")

        def request(service: ActionService, actor: Actor) -> Outcome:
            if value.startswith("arn:"):
                return service.request(kind, actor, execution_arn=value, thread_ts=thread_ts)  # type: ignore[arg-type]
            return service.request(kind, actor, incident_id=value, thread_ts=thread_ts)  # type: ignore[arg-type]

        self._step(request, body, respond, logger, LABEL.get(kind, kind))

    def _step(
        self,
        step: Callable[[ActionService, Actor], Outcome],
        body: dict[str, Any],
        respond: Respond,
        logger: logging.Logger,
        what: str,
    ) -> None:
        with reporting_errors(respond, logger, f"{what} button"):
            outcome = step(self._services.actions, actor_of(body))
            respond(response_type="ephemeral", replace_original=False, **render_outcome(outcome))

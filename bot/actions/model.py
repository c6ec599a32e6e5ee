"""Action requests' vocabulary: kinds, labels, what a step answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.store.models import ActionRequest

ActionKind = Literal["retry", "retry_more", "redrive", "backfill"]
# A KPI backfill re-runs the pipeline with a partition's input: the same grant as a retry.
PERMISSION = {"retry": "retry", "retry_more": "retry", "redrive": "redrive", "backfill": "retry"}
LABEL = {"retry": "Retry", "retry_more": "Retry with more memory", "redrive": "Redrive", "backfill": "Backfill"}
UNTIL_RESOLVED = datetime(9999, 12, 31, tzinfo=UTC)
SNOOZES = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(hours=24), "resolved": None}
ACTIVE = ("running", "started")
DONE = ("succeeded",)
REOPENABLE = ("failed", "rejected", "cancelled", "refused")
WAITING = ("awaiting_confirmation", "awaiting_approval")


class ActionError(UserFacingError):
    """The request cannot go on; the message says why (shown only to the person who asked)."""


@dataclass(frozen=True)
class Outcome:
    """What to show after a step.

    Attributes:
        kind: ``confirm`` (ask the requester), ``refused``, ``info`` (ephemeral note), ``approval``
            (post ``thread`` for a second person), ``started``, ``failed``, ``done``.
        request: The request, when there is one.
        text: A one-line summary.
        details: Lines that say exactly what will happen or happened.
        thread: A message to post in the alert's thread (visible to everyone), if any.
        offer_retry: For a redrive that cannot run: the incident id (or execution ARN) to offer a Retry for.
    """

    kind: str
    text: str
    request: ActionRequest | None = None
    details: tuple[str, ...] = ()
    thread: str | None = None
    offer_retry: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

"""Receive alerts: verify SNS HTTP deliveries, accept Lambda-native SNS and EventBridge events, store them."""

from __future__ import annotations

import logging
import threading
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.alerts.intake import AlertIntake, IntakeResult
from bot.alerts.model import SOURCE_GENERIC, Alert
from bot.alerts.normalize import normalise
from bot.alerts.sns import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    UNSUBSCRIBE_CONFIRMATION,
    CertificateSource,
    SnsEnvelope,
    SnsFormatError,
    SnsVerificationError,
    check_cert_url,
    parse_envelope,
    topic_allowed,
    verify,
)
from bot.config import ProjectConfig

logger = logging.getLogger(__name__)

MAX_BODY = 512 * 1024  # SNS messages are at most 256 KiB; the envelope adds a little


@dataclass(frozen=True)
class Reply:
    """The HTTP answer to one delivery."""

    status: int
    body: dict[str, Any]


def _fetch(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - https, host checked first
        response.read(65536)


class AlertIngest:
    """The front door for alerts, shared by the HTTP server and the Lambda handler.

    Args:
        intake: Stores and groups accepted alerts.
        project: etl-doctor.yml (allowed topics, message age limit).
        certificates: Where SNS signing certificates come from (fetched and cached; pinned in tests).
        clock: Current UTC time.
        confirm: Visits a SubscribeURL (replaceable in tests).
        on_stored: Called after an alert was stored (wakes the dispatcher).
    """

    def __init__(
        self,
        intake: AlertIntake,
        project: ProjectConfig,
        certificates: CertificateSource,
        *,
        clock: Callable[[], datetime],
        confirm: Callable[[str], None] = _fetch,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self._intake = intake
        self._project = project
        self._certificates = certificates
        self._clock = clock
        self._confirm = confirm
        self._on_stored = on_stored
        self._lock = threading.Lock()
        self.rejections: Counter[str] = Counter()
        self.accepted = 0
        self.duplicates = 0

    # ------------------------------------------------------------------ SNS over HTTP(S)

    def receive_sns_http(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Handle one POST to ``/sns``: verify, confirm or store, and say what happened.

        Args:
            body: The request body.
            headers: Request headers, lower-cased names.

        Returns:
            200 once stored (or a duplicate), 403 for anything unverified or not allowed, 400 for a body
            that is not an SNS message, 413 for an oversized one.
        """
        if len(body) > MAX_BODY:
            return self._reject(413, "body_too_large", f"body of {len(body)} bytes is over {MAX_BODY}")
        if headers.get("x-amz-sns-rawdelivery", "").lower() == "true":
            return self._raw_delivery(body, headers)
        try:
            envelope = parse_envelope(body)
        except SnsFormatError as exc:
            return self._reject(400, "not_sns", f"not an SNS message: {exc}")
        try:
            verify(envelope, self._certificates)
        except SnsVerificationError as exc:
            return self._reject(403, "bad_signature", f"{envelope.message_id} from {envelope.topic_arn}: {exc.reason}")
        age_limit = self._project.alerts.max_message_age_seconds
        age = (self._clock() - envelope.timestamp).total_seconds()
        if age_limit and age > age_limit:
            return self._reject(
                403, "too_old", f"{envelope.message_id} is {age:.0f} s old (alerts.max_message_age_seconds={age_limit})"
            )
        if envelope.type == SUBSCRIPTION_CONFIRMATION:
            return self._subscription(envelope)
        allowed = [topic.arn for topic in self._project.sns_topics]
        if allowed and not topic_allowed(envelope.topic_arn, allowed):
            return self._reject(403, "topic_not_allowed", f"topic {envelope.topic_arn} is not in sns_topics")
        if envelope.type == UNSUBSCRIBE_CONFIRMATION:
            return self._store(_unsubscribed(envelope), envelope.raw)
        if envelope.type != NOTIFICATION:  # pragma: no cover - parse_envelope accepts only the three types
            return self._reject(400, "not_sns", f"unknown SNS message type {envelope.type}")
        return self._store_raw(envelope)

    def _subscription(self, envelope: SnsEnvelope) -> Reply:
        allowed = [topic.arn for topic in self._project.sns_topics]
        if not topic_allowed(envelope.topic_arn, allowed):
            return self._reject(
                403,
                "subscription_not_allowed",
                f"subscription to {envelope.topic_arn} not confirmed: add it to sns_topics in etl-doctor.yml",
            )
        url = envelope.subscribe_url or ""
        try:
            _check_sns_url(url)
            self._confirm(url)
        except SnsVerificationError as exc:
            return self._reject(403, "bad_subscribe_url", f"SubscribeURL {url!r}: {exc.reason}")
        except OSError as exc:
            logger.error("could not confirm the subscription to %s: %s", envelope.topic_arn, exc)
            return Reply(502, {"error": "could not confirm the subscription; SNS will resend the confirmation"})
        logger.info("confirmed the SNS subscription to %s", envelope.topic_arn)
        return Reply(200, {"confirmed": envelope.topic_arn})

    def _raw_delivery(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        topic = headers.get("x-amz-sns-topic-arn", "")
        raw_topics = [t.arn for t in self._project.sns_topics if t.raw_message_delivery]
        if not topic or not topic_allowed(topic, raw_topics):
            return self._reject(
                403,
                "raw_delivery_not_allowed",
                f"raw message delivery from {topic or 'an unnamed topic'} carries no signature; "
                "enable it with sns_topics[].raw_message_delivery",
            )
        message_id = headers.get("x-amz-sns-message-id") or None
        alert = normalise(body, subject=headers.get("x-amz-sns-subject", ""), delivery_id=message_id)
        alert = alert.with_changes(resources={**alert.resources, "topic_arn": topic})
        return self._store(alert, body)

    # ------------------------------------------------------------------ Lambda-native events

    def receive_event(self, event: Mapping[str, Any]) -> list[IntakeResult]:
        """Store what an SNS subscription or an EventBridge rule delivered to the function directly.

        AWS itself invokes the function, so there is no signature to check.
        """
        records = event.get("Records")
        if isinstance(records, list):
            results = []
            for record in records:
                sns = record.get("Sns") if isinstance(record, dict) else None
                if isinstance(sns, dict):
                    results.append(self._accept(normalise(sns), sns))
            return results
        document = dict(event)
        return [self._accept(normalise(document), document)]

    # ------------------------------------------------------------------ plumbing

    def _store(self, alert: Alert, raw: bytes | dict[str, Any]) -> Reply:
        return _stored_reply(self._accept(alert, raw))

    def _store_raw(self, envelope: SnsEnvelope) -> Reply:
        return _stored_reply(self._count(self._intake.accept_raw(envelope.raw, delivery_id=envelope.message_id)))

    def _count(self, result: IntakeResult) -> IntakeResult:
        with self._lock:
            if result.outcome == "duplicate":
                self.duplicates += 1
            else:
                self.accepted += 1
        if result.outcome == "stored":
            self._on_stored()
        return result

    def _accept(self, alert: Alert, raw: bytes | dict[str, Any]) -> IntakeResult:
        return self._count(self._intake.accept(alert, raw))

    def _reject(self, status: int, kind: str, reason: str) -> Reply:
        with self._lock:
            self.rejections[kind] += 1
        logger.warning("/sns rejected (%s): %s", kind, reason)
        return Reply(status, {"error": reason})


def _stored_reply(result: IntakeResult) -> Reply:
    if result.outcome == "duplicate":
        return Reply(200, {"duplicate": True})
    return Reply(200, {"stored": result.alert_id, "incident": result.incident_id})


def _check_sns_url(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    check_cert_url(urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, "/x.pem", "", "")))


def _unsubscribed(envelope: SnsEnvelope) -> Alert:
    topic = envelope.topic_arn
    return Alert(
        source=SOURCE_GENERIC,
        kind="SNS subscription removed",
        status="failing",
        severity="warning",
        title=f"etl-doctor was unsubscribed from {topic.rsplit(':', 1)[-1]}",
        summary=f"{envelope.message}\nAlerts from {topic} will no longer arrive. Resubscribe with the SubscribeURL "
        "in this message or `aws sns subscribe` to keep receiving them.",
        occurred_at=envelope.timestamp,
        resource=topic,
        resources={"topic_arn": topic},
        resolve_key=f"sns:{topic}",
        subject="UnsubscribeConfirmation",
        delivery_id=envelope.message_id,
    )

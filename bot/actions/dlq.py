"""`/etl dlq`: list what waits in the dead-letter queues, and replay it to where it should have gone."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.aws.errors import describe_aws_error
from bot.aws.sqs import SqsGateway, queue_name
from bot.config import DlqConfig, DlqTarget
from bot.errors import UserFacingError
from bot.redact import redact

USAGE = "usage: /etl dlq [queue] | /etl dlq replay <queue> <message-id>|--all"
EXCERPT_MAX = 300
REPLAY_CAP = 1000  # most messages one `--all` replays
FAILURES_IN_A_ROW_MAX = 10  # `--all` stops when the target keeps refusing
STALE_BATCHES_MAX = 3  # `--all` stops when receives keep returning messages it already tried
EXECUTION_NAME_MAX = 80
_EXCERPT_SCAN = 4000  # characters of the compacted body that are redacted before the excerpt is cut
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class DlqUsageError(UserFacingError):
    """`/etl dlq` was asked for something that does not exist or cannot be done; the message says why."""


@dataclass(frozen=True)
class DlqMessage:
    """One message read from a dead-letter queue (not consumed).

    Attributes:
        message_id: SQS message id.
        receipt_handle: The handle of the read that returned it.
        body: The body, as sent.
        sent_at: When it was first sent (``SentTimestamp``; a standard queue keeps it through the move to
            the dead-letter queue), UTC.
        receive_count: ``ApproximateReceiveCount`` (every read counts, `/etl dlq`'s own included).
        attributes: The system attributes (``SentTimestamp``, ``MessageGroupId``…).
        excerpt: One readable line of the body: JSON compacted, whitespace folded, secrets redacted, at most
            300 characters.
        message_attributes: Message attributes as text (Lambda's asynchronous DLQ puts ``ErrorMessage`` here).
    """

    message_id: str
    receipt_handle: str
    body: str
    sent_at: datetime | None
    receive_count: int
    attributes: dict[str, str]
    excerpt: str
    message_attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> DlqMessage:
        """Build from one message of a ReceiveMessage response."""
        attributes = {str(key): str(value) for key, value in (item.get("Attributes") or {}).items()}
        body = str(item.get("Body", ""))
        return cls(
            message_id=str(item["MessageId"]),
            receipt_handle=str(item.get("ReceiptHandle", "")),
            body=body,
            sent_at=_millis(attributes.get("SentTimestamp")),
            receive_count=_int(attributes.get("ApproximateReceiveCount")),
            attributes=attributes,
            excerpt=excerpt(body),
            message_attributes={
                str(name): _attribute_text(value) for name, value in (item.get("MessageAttributes") or {}).items()
            },
        )


@dataclass(frozen=True)
class DlqListing:
    """What waits in one dead-letter queue.

    Attributes:
        name: The configured short name.
        config: Its configuration.
        approximate_count: ``ApproximateNumberOfMessages`` (visible, waiting).
        in_flight: ``ApproximateNumberOfMessagesNotVisible`` (received by someone, not yet deleted).
        oldest_age: Age of the oldest message read (exact when all were read), or None.
        messages: Up to ``limit`` messages, oldest first.
        retention: The queue's ``MessageRetentionPeriod``: older messages are dropped by SQS.
        problem: Why the queue could not be read (the other fields are then empty).
    """

    name: str
    config: DlqConfig
    approximate_count: int
    in_flight: int
    oldest_age: timedelta | None
    messages: list[DlqMessage]
    retention: timedelta | None = None
    problem: str | None = None


@dataclass(frozen=True)
class ReplayOutcome:
    """What happened to one message.

    Attributes:
        message_id: The message's id in the dead-letter queue.
        ok: Sent to the target and deleted from the dead-letter queue.
        detail: e.g. "sent to policies-etl-input as 1b2c…, deleted" or "send failed: …; left in the queue".
    """

    message_id: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ReplayReport:
    """The result of one `/etl dlq replay`.

    Attributes:
        name: The dead-letter queue's configured name.
        outcomes: One per message tried.
        target: The target's short name (queue or state machine).
        note: Why an `--all` replay stopped before the queue was empty, if it did.
    """

    name: str
    outcomes: list[ReplayOutcome]
    target: str = ""
    note: str | None = None

    @property
    def replayed(self) -> int:
        """Messages sent and deleted."""
        return sum(outcome.ok for outcome in self.outcomes)

    @property
    def failed(self) -> int:
        """Messages not (cleanly) replayed."""
        return len(self.outcomes) - self.replayed


def target_label(target: DlqTarget) -> str:
    """A target's short name: the queue name, or the state machine name."""
    if target.queue_url is not None:
        return queue_name(target.queue_url)
    return str(target.state_machine_arn).rsplit(":", 1)[-1]


def excerpt(body: str, *, limit: int = EXCERPT_MAX) -> str:
    """One readable line of a message body: JSON compacted, whitespace folded, secrets redacted.

    Args:
        body: The message body.
        limit: Most characters; a longer text ends in "…".
    """
    text: str | None = None
    stripped = body.strip()
    if stripped[:1] in {"{", "["}:
        try:
            text = json.dumps(json.loads(stripped), ensure_ascii=False, separators=(", ", ": "))
        except ValueError:
            text = None
    if text is None:
        text = " ".join(body[: _EXCERPT_SCAN * 2].split())
    text = redact(text[:_EXCERPT_SCAN])
    text = "".join(char if char.isprintable() else "�" for char in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_dlq_args(args: Sequence[str]) -> tuple[str, str | None, str | None, bool]:
    """Parse the words after `/etl dlq`.

    Returns:
        ``("list", queue or None, None, False)`` or ``("replay", queue, message id or None, all)``.

    Raises:
        DlqUsageError: Anything else (the message is the usage line and what was wrong).
    """
    words = list(args)
    if not words:
        return ("list", None, None, False)
    if words[0] != "replay":
        if len(words) > 1 or words[0].startswith("-"):
            raise DlqUsageError(f"list one queue at a time. {USAGE}")
        return ("list", words[0], None, False)
    rest = words[1:]
    if not rest or rest[0].startswith("-"):
        raise DlqUsageError(f"say which queue to replay. {USAGE}")
    queue, choice = rest[0], rest[1:]
    if len(choice) != 1:
        raise DlqUsageError(f"give one message id, or --all. {USAGE}")
    if choice[0] == "--all":
        return ("replay", queue, None, True)
    if choice[0].startswith("-"):
        raise DlqUsageError(f"unknown option {choice[0]}. {USAGE}")
    return ("replay", queue, choice[0], False)


def dlq_config(name: str, queues: Mapping[str, DlqConfig]) -> DlqConfig:
    """The configuration of the queue called ``name``.

    Raises:
        DlqUsageError: No such queue (the message lists the known ones).
    """
    if not queues:
        raise DlqUsageError("no dead-letter queues are configured: add them under `dlq:` in etl-doctor.yml")
    config = queues.get(name)
    if config is None:
        raise DlqUsageError(f"DLQ `{name}` is not configured; known: {', '.join(sorted(queues))}")
    return config


def list_dlq(
    name: str, queues: Mapping[str, DlqConfig], sqs: SqsGateway, *, now: datetime, limit: int = 10
) -> DlqListing:
    """Count and read (without consuming) the messages of one dead-letter queue.

    Reading a message this way increases its ``ApproximateReceiveCount`` (see `SqsGateway.peek`). At most
    as many messages as ``ApproximateNumberOfMessages`` says are read: when SQS's count lags behind, a message
    that has just arrived may be left out.

    Args:
        name: The configured short name.
        queues: The configured queues.
        sqs: The SQS gateway.
        now: The current time (UTC), for ages.
        limit: Most messages to read.

    Raises:
        DlqUsageError: ``name`` is not configured.
    """
    config = dlq_config(name, queues)
    attributes = sqs.queue_attributes(config.queue_url)
    waiting = _int(attributes.get("ApproximateNumberOfMessages"))
    # Asking for no more than the queue holds saves the final receive that would find nothing new (and
    # count as one more receive of every message); an empty queue is not read at all.
    wanted = min(limit, waiting)
    read = sqs.peek(config.queue_url, limit=wanted) if wanted > 0 else []
    messages = sorted(
        (DlqMessage.from_api(item) for item in read),
        key=lambda message: message.sent_at or datetime.max.replace(tzinfo=UTC),
    )
    sent = [message.sent_at for message in messages if message.sent_at is not None]
    retention = _int(attributes.get("MessageRetentionPeriod"))
    return DlqListing(
        name=name,
        config=config,
        approximate_count=waiting,
        in_flight=_int(attributes.get("ApproximateNumberOfMessagesNotVisible")),
        oldest_age=max(timedelta(0), now - min(sent)) if sent else None,
        messages=messages,
        retention=timedelta(seconds=retention) if retention else None,
    )


def list_dlqs(
    name: str | None, queues: Mapping[str, DlqConfig], sqs: SqsGateway, *, now: datetime, limit: int = 10
) -> list[DlqListing]:
    """`list_dlq` for one queue, or for every configured one (sorted by name).

    An AWS failure on one queue becomes that listing's ``problem`` instead of failing the others.

    Raises:
        DlqUsageError: ``name`` is not configured, or no queue is.
    """
    names = [name] if name is not None else sorted(queues)
    if name is not None or not queues:
        dlq_config(name or "", queues)
    listings = []
    for each in names:
        try:
            listings.append(list_dlq(each, queues, sqs, now=now, limit=limit))
        except Exception as exc:
            problem = describe_aws_error(exc)
            if problem is None:
                raise
            listings.append(DlqListing(each, queues[each], 0, 0, None, [], problem=problem))
    return listings


def replay(
    name: str,
    queues: Mapping[str, DlqConfig],
    sqs: SqsGateway,
    stepfunctions_client: Any,
    *,
    message_id: str | None,
    all_messages: bool,
    execution_name_prefix: str = "dlq-replay",
) -> ReplayReport:
    """Send messages from a dead-letter queue to its target, deleting each only after its send succeeded.

    A message whose send fails is made visible again where it was; one sent but not deleted is reported as
    such (it may be replayed twice), never as a success. ``--all`` works in batches of 10 until the queue
    returns nothing, `REPLAY_CAP` messages were tried, or `FAILURES_IN_A_ROW_MAX` failed one after the other;
    messages that failed stay hidden until the run ends (so they are not tried again), then are released. On
    a FIFO queue, once a message of a group fails the later ones of that group are not sent (order is kept).

    Args:
        name: The configured short name of the dead-letter queue.
        queues: The configured queues.
        sqs: The SQS gateway.
        stepfunctions_client: A ``stepfunctions`` client, for state machine targets.
        message_id: The message to replay (full id, or a prefix of at least 8 characters).
        all_messages: Replay everything visible instead.
        execution_name_prefix: Execution names are ``<prefix>-<message id>``, so a message replayed twice
            meets ``ExecutionAlreadyExists``.

    Raises:
        DlqUsageError: Unknown queue, unknown message, or neither/both of ``message_id`` and ``all_messages``.
    """
    config = dlq_config(name, queues)
    if (message_id is None) == (not all_messages):
        raise DlqUsageError(f"give one message id, or --all. {USAGE}")
    mover = _Mover(config, sqs, stepfunctions_client, execution_name_prefix)
    if message_id is not None:
        found = sqs.find(config.queue_url, message_id)
        if found is None:
            raise DlqUsageError(
                f"message {message_id} is not in {queue_name(config.queue_url)} (it may have been replayed or expired)"
            )
        outcome, release = mover.move(found)
        if release:
            outcome = mover.release_now(found, outcome)
        return ReplayReport(name, [outcome], target=target_label(config.target))
    return mover.move_all(name)


class _Mover:
    """Replays messages of one dead-letter queue to its target."""

    def __init__(self, config: DlqConfig, sqs: SqsGateway, stepfunctions_client: Any, prefix: str) -> None:
        self._config = config
        self._sqs = sqs
        self._sfn = stepfunctions_client
        self._prefix = prefix

    def move(self, message: dict[str, Any]) -> tuple[ReplayOutcome, bool]:
        """Send one message on, then delete it; returns the outcome and whether it should be released."""
        message_id = str(message["MessageId"])
        try:
            sent = self._send(message)
        except Exception as exc:
            reason = _failure(exc)
            if reason is None:
                self._sqs.release_all(self._config.queue_url, [str(message["ReceiptHandle"])])
                raise
            return ReplayOutcome(message_id, False, f"send failed: {reason}; left in the queue"), True
        try:
            self._sqs.delete(self._config.queue_url, str(message["ReceiptHandle"]))
        except Exception as exc:
            reason = describe_aws_error(exc)
            if reason is None:
                raise
            detail = f"{sent}, but could not delete: {reason} — it may be replayed twice"
            return ReplayOutcome(message_id, False, detail), False
        return ReplayOutcome(message_id, True, f"{sent}, deleted"), False

    def release_now(self, message: dict[str, Any], outcome: ReplayOutcome) -> ReplayOutcome:
        """Make a message that failed visible again at once; say so when that fails."""
        try:
            self._sqs.release(self._config.queue_url, str(message["ReceiptHandle"]))
        except Exception as exc:
            if describe_aws_error(exc) is None:
                raise
            return ReplayOutcome(
                outcome.message_id, False, outcome.detail + " (visible again when its visibility timeout ends)"
            )
        return outcome

    def move_all(self, name: str) -> ReplayReport:
        """Replay everything visible (see `replay`)."""
        url = self._config.queue_url
        outcomes: list[ReplayOutcome] = []
        tried: set[str] = set()
        to_release: dict[str, str] = {}  # message id → latest receipt handle
        failed_groups: set[str] = set()
        failures_in_a_row = 0
        stale_batches = 0
        note: str | None = None
        try:
            while True:
                if len(tried) >= REPLAY_CAP:
                    note = (
                        f"stopped after {REPLAY_CAP:,} messages, the most one replay sends; run it again for the rest"
                    )
                    break
                if failures_in_a_row >= FAILURES_IN_A_ROW_MAX:
                    note = f"stopped after {failures_in_a_row} failures in a row; the rest were not tried"
                    break
                batch = self._sqs.receive_for_replay(url, max_messages=REPLAY_CAP - len(tried))
                if not batch:
                    break
                fresh = []
                for message in batch:
                    if message["MessageId"] in tried:
                        to_release[message["MessageId"]] = message["ReceiptHandle"]
                    else:
                        fresh.append(message)
                if not fresh:
                    stale_batches += 1
                    if stale_batches >= STALE_BATCHES_MAX:
                        break
                    continue
                stale_batches = 0
                for message in fresh:
                    message_id = str(message["MessageId"])
                    tried.add(message_id)
                    group = (message.get("Attributes") or {}).get("MessageGroupId")
                    if group is not None and group in failed_groups:
                        detail = (
                            f"not sent: an earlier message of group {group} failed; left in the queue to keep the order"
                        )
                        outcome, release = ReplayOutcome(message_id, False, detail), True
                    else:
                        outcome, release = self.move(message)
                        if release and group is not None:
                            failed_groups.add(group)
                    if release:
                        to_release[message_id] = message["ReceiptHandle"]
                    failures_in_a_row = 0 if outcome.ok else failures_in_a_row + 1
                    outcomes.append(outcome)
        finally:
            self._sqs.release_all(url, list(to_release.values()))
        return ReplayReport(name, outcomes, target=target_label(self._config.target), note=note)

    def _send(self, message: dict[str, Any]) -> str:
        target = self._config.target
        body = str(message.get("Body", ""))
        message_id = str(message["MessageId"])
        if target.queue_url is not None:
            new_id = self._sqs.send(
                target.queue_url,
                body,
                attributes=message.get("MessageAttributes") or {},
                group_id=(message.get("Attributes") or {}).get("MessageGroupId"),
                deduplication_id=message_id,
            )
            return f"sent to {target_label(target)} as {new_id}"
        name = execution_name(self._prefix, message_id)
        started = self._sfn.start_execution(
            stateMachineArn=target.state_machine_arn, name=name, input=execution_input(body)
        )
        return f"started execution {started['executionArn']}"


def execution_name(prefix: str, message_id: str) -> str:
    """``<prefix>-<message id>``, limited to the 80 characters of ``[A-Za-z0-9-_]`` Step Functions allows."""
    return _NAME_UNSAFE.sub("-", f"{prefix}-{message_id}")[:EXECUTION_NAME_MAX]


def execution_input(body: str) -> str:
    """The body when it is JSON, else ``{"message": body}``."""
    try:
        json.loads(body)
    except ValueError:
        return json.dumps({"message": body})
    return body


def _failure(exc: BaseException) -> str | None:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
        message = exc.response.get("Error", {}).get("Message", "")
        return f"ExecutionAlreadyExists: this message was replayed before ({message})"
    return describe_aws_error(exc)


def _millis(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value or "") / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _attribute_text(value: Mapping[str, Any]) -> str:
    if "StringValue" in value:
        return str(value["StringValue"])
    binary = value.get("BinaryValue")
    return f"<binary, {len(binary)} bytes>" if isinstance(binary, bytes | bytearray) else ""

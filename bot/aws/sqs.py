"""SQS gateway: read dead-letter queues without consuming them, and move single messages on."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

RECEIVE_MAX = 10  # ReceiveMessage's MaxNumberOfMessages ceiling
FIND_VISIBILITY_SECONDS = 30  # long enough to send the found message on and delete it
REPLAY_VISIBILITY_SECONDS = 60
FIFO_FALLBACK_GROUP = "etl-doctor-dlq-replay"  # a FIFO target needs a group; FIFO originals always have one
MESSAGE_ID_PREFIX_MIN = 8  # `/etl dlq` shows ids shortened to 8 characters


def queue_name(url: str) -> str:
    """The queue name at the end of a queue URL (``…/123456789012/policies-dlq`` → ``policies-dlq``)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def message_id_matches(candidate: str, wanted: str) -> bool:
    """Whether ``candidate`` is the message ``wanted`` names: the full id, or a prefix of at least 8 characters."""
    return candidate == wanted or (len(wanted) >= MESSAGE_ID_PREFIX_MIN and candidate.startswith(wanted))


class SqsGateway:
    """The SQS calls `/etl dlq` makes, through one boto3 client.

    Messages are plain dicts as ReceiveMessage returns them (``MessageId``, ``ReceiptHandle``, ``Body``,
    ``Attributes``, ``MessageAttributes``).

    Args:
        client: An ``sqs`` client (from `AwsClients`).
    """

    def __init__(self, client: SQSClient) -> None:
        self._client = client

    def queue_attributes(self, url: str) -> dict[str, str]:
        """GetQueueAttributes, all of them (``ApproximateNumberOfMessages``, ``MessageRetentionPeriod``, …)."""
        response = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        return {str(key): str(value) for key, value in response.get("Attributes", {}).items()}

    def peek(self, url: str, *, limit: int) -> list[dict[str, Any]]:
        """Read up to ``limit`` messages without consuming them.

        Each ReceiveMessage asks for ``VisibilityTimeout=0``: the message is not deleted and stays visible to
        every other consumer, but the read still counts as a receive, so its ``ApproximateReceiveCount``
        goes up by one (and a dead-letter queue that itself has a redrive policy could move it on). Calls
        repeat until ``limit`` distinct messages are read, or a call returns nothing new; SQS samples its
        servers on a short poll, so a large queue may show a different subset each time.

        Args:
            url: The queue URL.
            limit: Most messages to return.

        Returns:
            Distinct messages (by ``MessageId``), in the order they were read.
        """
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < limit:
            batch = self._receive(url, count=RECEIVE_MAX, visibility_timeout=0)
            fresh = [message for message in batch if message["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.setdefault(message["MessageId"], message)
        return list(seen.values())[:limit]

    def find(self, url: str, message_id: str, *, max_scans: int = 10) -> dict[str, Any] | None:
        """Receive messages until ``message_id`` turns up, holding it for `FIND_VISIBILITY_SECONDS`.

        The found message stays invisible for 30 s so its receipt handle is valid for the delete that
        follows a successful send. The others read on the way are held only while the scan runs (so each
        call reads new messages instead of the same first ten again) and are made visible again with
        ``ChangeMessageVisibility(VisibilityTimeout=0)`` as soon as it ends, found or not. On a FIFO queue a
        held message blocks the rest of its message group, so a message deep inside a busy group may not
        be found.

        Args:
            url: The queue URL.
            message_id: The full message id, or a prefix of at least 8 characters.
            max_scans: Most ReceiveMessage calls (of 10 messages each).

        Returns:
            The message (with a fresh receipt handle), or None when it was not seen.
        """
        held: list[str] = []
        try:
            for _ in range(max_scans):
                batch = self._receive(url, count=RECEIVE_MAX, visibility_timeout=FIND_VISIBILITY_SECONDS)
                if not batch:
                    return None
                found: dict[str, Any] | None = None
                for message in batch:
                    if found is None and message_id_matches(message["MessageId"], message_id):
                        found = message
                    else:
                        held.append(message["ReceiptHandle"])
                if found is not None:
                    return found
            return None
        finally:
            self.release_all(url, held)

    def receive_for_replay(self, url: str, *, max_messages: int) -> list[dict[str, Any]]:
        """Receive up to ``max_messages`` (at most 10) messages, hidden from others for 60 s."""
        count = max(1, min(RECEIVE_MAX, max_messages))
        return self._receive(url, count=count, visibility_timeout=REPLAY_VISIBILITY_SECONDS)

    def send(
        self,
        url: str,
        body: str,
        *,
        attributes: Mapping[str, Any],
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """SendMessage with the original's message attributes; returns the new message id.

        Args:
            url: The target queue URL.
            body: The message body, unchanged.
            attributes: ``MessageAttributes`` as ReceiveMessage returned them (passed on as they are).
            group_id: For a FIFO target (URL ending in ``.fifo``): the original's ``MessageGroupId``.
            deduplication_id: For a FIFO target: the original's message id, so a replay sent twice
                within SQS's five-minute deduplication window arrives once.
        """
        request: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        copied = {name: _message_attribute(value) for name, value in attributes.items()}
        if copied:
            request["MessageAttributes"] = copied
        if url.rstrip("/").endswith(".fifo"):
            request["MessageGroupId"] = group_id or FIFO_FALLBACK_GROUP
            if deduplication_id:
                request["MessageDeduplicationId"] = deduplication_id
        return str(self._client.send_message(**request)["MessageId"])

    def delete(self, url: str, receipt_handle: str) -> None:
        """DeleteMessage."""
        self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt_handle)

    def release(self, url: str, receipt_handle: str) -> None:
        """Make a received message visible again at once (``ChangeMessageVisibility(VisibilityTimeout=0)``)."""
        self._client.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)

    def release_all(self, url: str, receipt_handles: list[str]) -> None:
        """Release many messages (batches of 10); a failure is logged, not raised.

        A message that could not be released becomes visible anyway when its visibility timeout ends.
        """
        for start in range(0, len(receipt_handles), RECEIVE_MAX):
            chunk = receipt_handles[start : start + RECEIVE_MAX]
            entries: list[Any] = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for index, handle in enumerate(chunk)
            ]
            try:
                response = self._client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            except Exception as exc:
                if not type(exc).__module__.startswith("botocore"):
                    raise
                logger.warning("could not release %d message(s) in %s: %s", len(chunk), queue_name(url), exc)
                continue
            for failure in response.get("Failed", []):
                logger.warning("could not release a message in %s: %s", queue_name(url), failure.get("Message"))

    def _receive(self, url: str, *, count: int, visibility_timeout: int) -> list[dict[str, Any]]:
        response = self._client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=count,
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [dict(message) for message in response.get("Messages", [])]


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # The list values are reserved by SQS ("not implemented"); send only what a message can carry.
    return {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}

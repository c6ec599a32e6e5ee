"""CloudWatch Logs gateway: tail, time window and server-side term search, counting the bytes read."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.errors import UserFacingError

GET_EVENTS_MAX = 10_000


class LogGroupNotFoundError(UserFacingError):
    """The log group or stream does not exist."""


@dataclass(frozen=True)
class LogLine:
    """One log event's message, where and when it was written."""

    timestamp: datetime
    message: str
    group: str
    stream: str


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class LogsGateway:
    """Reads only what a diagnosis needs from CloudWatch Logs; ``bytes_read`` counts message bytes received.

    Args:
        client: A ``logs`` client.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.bytes_read = 0

    def _lines(self, events: list[dict[str, Any]], group: str, stream: str | None) -> list[LogLine]:
        lines = [
            LogLine(
                timestamp=datetime.fromtimestamp(event["timestamp"] / 1000, UTC),
                message=event["message"].rstrip("\n"),
                group=group,
                stream=stream or event.get("logStreamName", ""),
            )
            for event in events
        ]
        with self._lock:
            self.bytes_read += sum(len(event["message"].encode()) for event in events)
        return lines

    def _call(self, operation: str, group: str, stream: str | None = None, **request: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**request)
        except self._client.exceptions.ResourceNotFoundException:
            where = f"{group}:{stream}" if stream else group
            raise LogGroupNotFoundError(f"log stream {where} not found") from None
        return response

    def tail(self, group: str, stream: str, *, end: datetime | None = None, limit: int = 300) -> list[LogLine]:
        """The last ``limit`` events of a stream before ``end`` (exclusive; one call, read backwards from there)."""
        request: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": False,
            "limit": min(limit, GET_EVENTS_MAX),
        }
        if end is not None:
            request["endTime"] = _ms(end)
        response = self._call("get_log_events", group, stream, **request)
        return self._lines(response.get("events", [])[-limit:], group, stream)

    def window(self, group: str, stream: str, start: datetime, end: datetime, *, limit: int = 500) -> list[LogLine]:
        """Events of a stream between two times, oldest first, at most ``limit``."""
        return self._forward(group, stream, limit, startTime=_ms(start), endTime=_ms(end))

    def _forward(self, group: str, stream: str, limit: int | None, **bounds: Any) -> list[LogLine]:
        """Page a stream from the head (within ``bounds``) until ``limit`` events or its end."""
        lines: list[LogLine] = []
        token: str | None = None
        while limit is None or len(lines) < limit:
            request: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True, **bounds}
            if limit is not None:
                request["limit"] = min(limit - len(lines), GET_EVENTS_MAX)
            if token:
                request["nextToken"] = token
            response = self._call("get_log_events", group, stream, **request)
            events = response.get("events", [])
            lines += self._lines(events, group, stream)
            following = response.get("nextForwardToken")
            if not events or following == token:
                break
            token = following
        return lines if limit is None else lines[:limit]

    def search(
        self,
        group: str,
        term: str,
        start: datetime,
        end: datetime,
        *,
        streams: list[str] | None = None,
        limit: int = 50,
        max_pages: int = 20,
    ) -> list[LogLine]:
        """Events containing ``term`` (filtered server-side: only matches cross the wire), oldest first.

        One quoted term per call: CloudWatch's ``?A ?B`` alternation is not understood by every
        emulator, and a term per call keeps the bytes read to the matches alone on both.
        """
        lines: list[LogLine] = []
        token: str | None = None
        for _ in range(max_pages):
            request: dict[str, Any] = {
                "logGroupName": group,
                "filterPattern": f'"{term}"',
                "startTime": _ms(start),
                "endTime": _ms(end),
                "limit": min(limit - len(lines), GET_EVENTS_MAX),
            }
            if streams:
                request["logStreamNames"] = streams
            if token:
                request["nextToken"] = token
            response = self._call("filter_log_events", group, **request)
            lines += self._lines(response.get("events", []), group, None)
            token = response.get("nextToken")
            if not token or len(lines) >= limit:
                break
        return lines[:limit]

    def streams_with_prefix(self, group: str, prefix: str, *, limit: int = 5) -> list[str]:
        """Names of streams in ``group`` starting with ``prefix``."""
        response = self._call(
            "describe_log_streams", group, logGroupName=group, logStreamNamePrefix=prefix, limit=limit
        )
        return [stream["logStreamName"] for stream in response.get("logStreams", [])]

    def read_all(self, group: str, stream: str) -> list[LogLine]:
        """Every event of a stream from the head (the naive approach the benchmark compares against)."""
        return self._forward(group, stream, None)

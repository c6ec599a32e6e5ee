"""Process-wide logging: text for terminals, one JSON object per line for Lambda and log pipelines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from bot.redact import redact


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with time, level, logger, message and extra ``ref``/ids."""

    EXTRA_KEYS = ("ref", "team_id", "user_id", "command", "subcommand", "event_id", "trigger_id")

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON (secrets redacted)."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in self.EXTRA_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class RedactingFormatter(logging.Formatter):
    """The standard text format, with secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as text (secrets redacted)."""
        return redact(super().format(record))


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Replace the root logger's handlers with one that writes to stderr in the chosen format.

    Args:
        level: Log level name.
        fmt: ``"text"`` or ``"json"``.
    """
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)

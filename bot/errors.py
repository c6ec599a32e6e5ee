"""Errors that are answers: a one-line, secret-free description of any failure for the user."""

from __future__ import annotations

import secrets

from bot.aws.errors import describe_aws_error
from bot.redact import redact

SUMMARY_MAX = 300


class UserFacingError(Exception):
    """An expected failure whose message is written for the user (no traceback needed)."""


def new_error_ref() -> str:
    """A short random reference that ties a user-visible error to its log line."""
    return secrets.token_hex(3)


def describe_exception(exc: BaseException) -> str:
    """Describe ``exc`` in one line a user can act on, with secrets redacted.

    Our own expected failures (`UserFacingError`: configuration, store schema…) are shown as written,
    AWS and store errors get their own wording, anything else is shown as ``Type: message``.
    """
    if isinstance(exc, UserFacingError):
        text = str(exc)
    else:
        described = describe_aws_error(exc)
        if described is not None:
            text = described
        elif type(exc).__module__.startswith("sqlalchemy"):
            text = f"the incident store failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = redact(" ".join(text.split()))
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"

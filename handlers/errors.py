"""Failures become answers: report errors in lazy work to the user with a reference that is also logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from slack_bolt import BoltResponse

from bot.errors import UserFacingError, describe_exception, new_error_ref
from bot.render.messages import render_error, render_warning


@contextmanager
def reporting_errors(respond: Callable[..., Any], logger: logging.Logger, what: str) -> Iterator[None]:
    """Run a block; if it raises, log it with a reference and tell the user the same reference.

    Bolt only logs exceptions raised in lazy listeners, so without this the user would see nothing.

    Args:
        respond: Sends a message to the user (Bolt's ``respond``, or a thread reply for mentions).
        logger: Where the failure is logged, with ``ref``.
        what: What was being done, for the log line.
    """
    try:
        yield
    except UserFacingError as exc:
        logger.info("%s: %s", what, exc)
        respond(response_type="ephemeral", replace_original=False, **render_warning(str(exc)))
    except Exception as exc:
        ref = new_error_ref()
        logger.exception("%s failed (ref=%s)", what, ref, extra={"ref": ref})
        try:
            respond(response_type="ephemeral", replace_original=False, **render_error(describe_exception(exc), ref))
        except Exception:
            logger.exception("could not tell the user about ref=%s", ref, extra={"ref": ref})


def handle_listener_error(error: Exception, body: dict[str, Any], logger: logging.Logger) -> BoltResponse:
    """Global error handler: an exception in an ack function still gets the user an answer (HTTP 200)."""
    ref = new_error_ref()
    logger.error("listener failed (ref=%s)", ref, exc_info=error, extra={"ref": ref})
    message = render_error(describe_exception(error), ref)
    if body.get("command"):
        payload = {"response_type": "ephemeral", **message}
        return BoltResponse(status=200, body=json.dumps(payload), headers={"content-type": "application/json"})
    return BoltResponse(status=500, body="")

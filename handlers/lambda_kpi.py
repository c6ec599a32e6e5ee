"""Scheduled reconciliation on AWS Lambda: an EventBridge schedule runs every KPI and check (serverless.yml `kpi`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from bot.app import build_kpi_service
from bot.config import Settings, load_settings
from bot.logging_setup import configure_logging
from bot.services import Services

logger = logging.getLogger("etl_doctor.kpi")

_state: tuple[Settings, Services] | None = None
_lock = threading.Lock()


def run_schedule(settings: Settings, services: Services, event: dict[str, Any]) -> dict[str, Any]:
    """Run every KPI and check, posting and alerting when Slack is configured; return a short summary.

    ``{"post": false}`` in the schedule's input records the runs without posting.
    """
    post = bool(event.get("post", True)) and settings.slack_bot_token is not None
    if not post:
        logger.warning("KPI schedule without posting (SLACK_BOT_TOKEN unset or post=false): runs are only recorded")
    summary = build_kpi_service(settings, services, post=post).run_all(
        post=post, progress=lambda step: logger.info("kpi schedule: %s", step)
    )
    logger.info("kpi schedule: %s", summary.headline)
    outcomes = [
        {key: value for key, value in outcome.to_json().items() if key != "result"} for outcome in summary.outcomes
    ]
    return {"headline": summary.headline, "exit_code": summary.exit_code, "outcomes": outcomes}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler named in serverless.yml (settings and services kept while the function is warm)."""
    global _state
    with _lock:
        if _state is None:
            settings = load_settings()
            configure_logging(settings.log_level, settings.log_format)
            _state = (settings, Services(settings))
        settings, services = _state
    return run_schedule(settings, services, event if isinstance(event, dict) else {})

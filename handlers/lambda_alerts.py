"""Alerts on Lambda: `/sns` through API Gateway, and SNS or EventBridge invoking the function directly."""

from __future__ import annotations

import logging
from typing import Any

from bot.config import Settings
from bot.services import Services


class LambdaAlerts:
    """The alert side of the function: `/sns` through API Gateway, direct SNS and EventBridge invocations.

    ``POST /sns`` is verified and stored, then the function invokes itself asynchronously
    (``{"etl_doctor": "drain_alerts"}``) to post and enrich, so SNS gets its 200 at once. Direct SNS
    and EventBridge invocations are asynchronous already: they store, post and enrich in place.
    """

    DRAIN_EVENT = {"etl_doctor": "drain_alerts"}
    SAFETY_MS = 5000  # stop posting this long before the function's timeout (the rest stays pending)

    def __init__(self, settings: Settings, services: Services, lambda_client: Any) -> None:
        self._settings = settings
        self._services = services
        self._lambda_client = lambda_client
        self._service: Any = None

    @property
    def service(self) -> Any:
        """The alert service (built on first use: Slack-only invocations never pay for it)."""
        if self._service is None:
            from bot.app import build_alert_service

            self._service = build_alert_service(self._settings, self._services)
        return self._service

    def route(self, event: dict[str, Any], context: Any) -> dict[str, Any] | None:
        """Handle an alert event and return the function's result, or None when the event is Slack's."""
        if event.get("etl_doctor") == "drain_alerts":
            report = self.service.drain_now(seconds=self._seconds_left(context))
            self._follow_actions()
            return {"posted": report.alerts_done, "complete": report.complete}
        if _is_sns_records(event) or ("detail-type" in event and "source" in event):
            results = self.service.ingest.receive_event(event)
            report = self.service.drain_now(seconds=self._seconds_left(context))
            self._follow_actions()
            stored = sum(1 for r in results if r.outcome == "stored")
            return {"stored": stored, "duplicates": len(results) - stored, "posted": report.alerts_done}
        path = event.get("rawPath") or event.get("path") or ""
        if isinstance(path, str) and path.rstrip("/").endswith("/sns"):
            return self._sns_http(event, context)
        return None

    def _sns_http(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        import base64
        import json

        raw = event.get("body") or ""
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode("utf-8")
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        reply = self.service.ingest.receive_sns_http(body, headers)
        if reply.status == 200 and "stored" in reply.body:
            self._drain_later(context)
        return {
            "statusCode": reply.status,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(reply.body),
        }

    def _drain_later(self, context: Any) -> None:
        import json

        try:
            client = self._lambda_client
            if client is None:
                client = self._lambda_client = self._services.aws.client("lambda")
            client.invoke(
                FunctionName=context.invoked_function_arn,  # this version or alias, as Bolt's lazy runner does
                InvocationType="Event",
                Payload=json.dumps(self.DRAIN_EVENT),
            )
        except Exception:
            logging.getLogger(__name__).exception("could not invoke myself to post alerts; posting now")
            self.service.drain_now(seconds=min(self._seconds_left(context), 20.0))

    def _follow_actions(self) -> None:
        """Runs that Retry/Redrive started are checked whenever alerts are handled (no poller on Lambda)."""
        try:
            self._services.actions.follow()
        except Exception:
            logging.getLogger(__name__).exception("following started runs failed")

    def _seconds_left(self, context: Any) -> float:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            return max((float(remaining()) - self.SAFETY_MS) / 1000.0, 1.0)
        return 60.0


def _is_sns_records(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("EventSource") == "aws:sns" for r in records)
    )

"""AWS Lambda entry point: Slack through API Gateway (Bolt, lazy self-invocation), SNS and EventBridge alerts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltRequest
from slack_bolt.adapter.aws_lambda import SlackRequestHandler
from slack_bolt.adapter.aws_lambda.lazy_listener_runner import LambdaLazyListenerRunner
from slack_sdk.webhook import WebhookClient

from bot.app import build_app
from bot.config import Settings, load_settings
from bot.errors import describe_exception, new_error_ref
from bot.logging_setup import configure_logging
from bot.render.messages import render_error
from bot.services import Services
from handlers.lambda_alerts import LambdaAlerts

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class ReportingLambdaLazyListenerRunner(LambdaLazyListenerRunner):
    """Bolt's self-invoking runner that reports a failed self-invocation to the user.

    Bolt only logs it (say, the role lacks lambda:InvokeFunction); this also answers through the
    command's response_url, so the user is not left waiting for an answer that will never come.
    Without an injected client it takes one from etl-doctor's AWS client factory on first use (adaptive
    retries, the settings' region and endpoint), not Bolt's bare ``boto3.client("lambda")``.

    Args:
        logger: Bolt's logger.
        lambda_client: The client to self-invoke with, or None.
        client_factory: Makes the client on first use when none was given.
    """

    def __init__(self, logger: Any, lambda_client: Any, client_factory: Callable[[], Any]) -> None:
        super().__init__(logger, lambda_client)
        self._client_factory = client_factory

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        """Invoke this function asynchronously for ``function``; on failure tell the user why."""
        try:
            if self.lambda_client is None:
                self.lambda_client = self._client_factory()
            super().start(function, request)
        except Exception as exc:
            ref = new_error_ref()
            self.logger.exception("lazy self-invocation failed (ref=%s)", ref, extra={"ref": ref})
            response_url = request.body.get("response_url") if isinstance(request.body, dict) else None
            if response_url:
                summary = f"could not start the background work: {describe_exception(exc)}"
                WebhookClient(response_url).send_dict({"response_type": "ephemeral", **render_error(summary, ref)})


def build_handler(
    settings: Settings | None = None, *, services: Services | None = None, lambda_client: Any = None
) -> LambdaHandler:
    """Build the function that serves API Gateway events.

    Args:
        settings: Defaults to the environment.
        services: Defaults to new services over ``settings``.
        lambda_client: Client the self-invocations (lazy listeners, alert drains) use (default: one from
            ``services.aws``, created on the first self-invocation).

    Returns:
        ``handler(event, context) -> API Gateway response``.
    """
    settings = settings or load_settings()
    services = services or Services(settings)
    app = build_app(settings, services, transport="lambda")
    slack_handler = SlackRequestHandler(app)
    aws = services.aws
    runner = ReportingLambdaLazyListenerRunner(slack_handler.logger, lambda_client, lambda: aws.client("lambda"))
    app.listener_runner.lazy_listener_runner = runner
    alerts = LambdaAlerts(settings, services, lambda_client)

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        routed = alerts.route(event, context)
        return routed if routed is not None else slack_handler.handle(event, context)

    return handle


_handler: LambdaHandler | None = None
_lock = threading.Lock()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler named in serverless.yml (built on the first invocation, reused while warm)."""
    global _handler
    with _lock:
        if _handler is None:
            settings = load_settings()
            configure_logging(settings.log_level, settings.log_format)  # replaces the runtime's root handler
            _handler = build_handler(settings)
    return _handler(event, context)

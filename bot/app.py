"""Composition root: build the Bolt app (the only place listeners are registered) and run a transport."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot import __version__
from bot.commands import (
    ACTION_ACK,
    ACTION_ALERT_LOGS,
    ACTION_APPROVE,
    ACTION_BACKFILL,
    ACTION_CANCEL,
    ACTION_CONFIRM,
    ACTION_LOGS,
    ACTION_REDRIVE,
    ACTION_REJECT,
    ACTION_RETRY,
    ACTION_RETRY_MORE,
    ACTION_SNOOZE,
    ACTION_UNACK,
    ACTION_UNSNOOZE,
    ACTION_WHY,
    COMMAND,
)
from bot.config import ConfigError, Settings
from bot.services import Services
from handlers.action_buttons import ActionButtons
from handlers.actions import AlertButtons, DiagnosisButtons
from handlers.commands import EtlCommand
from handlers.errors import handle_listener_error
from handlers.events import AppMention
from handlers.kpi import KpiButtons

if TYPE_CHECKING:
    from bot.alerts.service import AlertService
    from bot.kpi.service import KpiService

Transport = Literal["http", "socket", "lambda"]


@dataclass(frozen=True)
class RunningServer:
    """A started `serve`: the HTTP port it listens on and how to stop it from another thread."""

    port: int
    stop: Callable[[], None]
    alerts: AlertService | None = None


logger = logging.getLogger("etl_doctor")


def build_slack_client(settings: Settings, *, retry_rate_limits: bool = True) -> WebClient:
    """A Web API client on ``SLACK_API_URL`` that retries connection errors and 429s (after Retry-After).

    ``retry_rate_limits=False`` leaves 429s to the caller (the alert dispatcher waits them out itself,
    so a stop request is not stuck behind a sleep).
    """
    handlers: list[Any] = [ConnectionErrorRetryHandler()]
    if retry_rate_limits:
        handlers.append(RateLimitErrorRetryHandler(max_retry_count=settings.slack_rate_limit_retries))
    return WebClient(token=settings.secret("slack_bot_token"), base_url=settings.slack_api_url, retry_handlers=handlers)


def _attach_slack(services: Services, client: WebClient) -> None:
    from handlers.slack_chat import SlackChat, SlackUsergroups

    services.attach_slack(SlackChat(client), SlackUsergroups(client))


def build_alert_service(settings: Settings, services: Services, *, defer_grouping: bool = False) -> AlertService:
    """The alert pipeline posting through this settings' Slack (token and API URL)."""
    from bot.alerts.service import AlertService
    from handlers.slack_chat import SlackChat

    chat = SlackChat(build_slack_client(settings, retry_rate_limits=False)) if settings.slack_bot_token else None
    return AlertService(services, chat, defer_grouping=defer_grouping)


def build_kpi_service(settings: Settings, services: Services, *, post: bool) -> KpiService:
    """KPI runs for the schedule and `etl-doctor kpi --all`, posting to Slack and raising alerts with ``post``.

    Without ``post`` the runs are only recorded; with it, results go to this settings' Slack and breaches
    become alerts.

    Raises:
        ConfigError: ``post`` without SLACK_BOT_TOKEN.
    """
    from bot.kpi.service import KpiService
    from handlers.slack_chat import SlackChat

    if not post:
        return services.kpi_service
    if settings.slack_bot_token is None:
        raise ConfigError(
            "environment variable SLACK_BOT_TOKEN is required to post KPI results (the bot token, xoxb-…)"
        )
    chat = SlackChat(build_slack_client(settings))
    alerts = build_alert_service(settings, services)
    return KpiService(services.store, services.kpi, settings.project, chat=chat, alerts=alerts, clock=services.clock)


def check_transport_settings(settings: Settings, transport: Transport, *, client_given: bool = False) -> None:
    """Fail with a clear message when a setting the transport needs is missing.

    Raises:
        ConfigError: Names the missing variable and where to find its value.
    """
    if settings.slack_bot_token is None and not client_given:
        raise ConfigError("environment variable SLACK_BOT_TOKEN is required (the bot token, xoxb-…)")
    if transport != "socket" and not settings.secret("slack_signing_secret"):
        raise ConfigError(
            "environment variable SLACK_SIGNING_SECRET is required for the HTTP server and Lambda "
            "(Slack app → Basic Information → Signing Secret); or set SLACK_APP_TOKEN for Socket Mode"
        )


def build_app(
    settings: Settings,
    services: Services,
    *,
    transport: Transport = "http",
    client: WebClient | None = None,
    token_verification: bool = False,
) -> App:
    """Build the Bolt app and register every listener.

    Args:
        settings: The settings.
        services: Clients and stores the listeners use.
        transport: ``http`` and ``lambda`` verify request signatures (the signing secret is required);
            ``socket`` needs no signing secret. On every transport the ack runs before the response
            (``process_before_response``) and slow work in lazy listeners on ``ETL_DOCTOR_WORKERS`` threads.
        client: Slack Web API client (default: `build_slack_client`).
        token_verification: Call ``auth.test`` now (fail fast at start-up) rather than on the first request.

    Raises:
        ConfigError: A setting the transport needs is missing.
    """
    check_transport_settings(settings, transport, client_given=client is not None)
    signing_secret = settings.secret("slack_signing_secret")
    app = App(
        name="etl-doctor",
        client=client or build_slack_client(settings),
        signing_secret=signing_secret or "socket-mode-requests-are-not-signed",
        request_verification_enabled=transport != "socket",
        # Acks run in the request's own thread on every transport: they only parse and ack, so Slack gets its
        # answer at once even while every worker is busy with slow lazy work (measured in bench/actions.py).
        process_before_response=True,
        token_verification_enabled=token_verification,
        listener_executor=ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="etl-doctor-lazy"),
    )
    mention = AppMention(services)
    app.middleware(mention.drop_retried_events)
    etl = EtlCommand(services)
    app.command(COMMAND)(ack=etl.ack_etl, lazy=[etl.run_etl])
    app.event("app_mention")(ack=mention.ack_mention, lazy=[mention.run_mention])
    buttons = DiagnosisButtons(services)
    app.action(ACTION_LOGS)(ack=buttons.ack_logs_button, lazy=[buttons.run_logs_button])
    alert_buttons = AlertButtons(services)
    app.action(ACTION_WHY)(ack=alert_buttons.ack_alert_button, lazy=[alert_buttons.run_why_button])
    app.action(ACTION_ALERT_LOGS)(ack=alert_buttons.ack_alert_button, lazy=[alert_buttons.run_logs_button])
    acting = ActionButtons(services)
    for action_id, run in (
        (ACTION_RETRY, acting.run_retry),
        (ACTION_RETRY_MORE, acting.run_retry_more),
        (ACTION_REDRIVE, acting.run_redrive),
        (ACTION_CONFIRM, acting.run_confirm),
        (ACTION_CANCEL, acting.run_cancel),
        (ACTION_APPROVE, acting.run_approve),
        (ACTION_REJECT, acting.run_reject),
        (ACTION_ACK, acting.run_ack),
        (ACTION_UNACK, acting.run_unack),
        (ACTION_SNOOZE, acting.run_snooze),
        (ACTION_UNSNOOZE, acting.run_unsnooze),
    ):
        app.action(action_id)(ack=acting.ack_action, lazy=[run])
    kpi_buttons = KpiButtons(services)
    app.action(ACTION_BACKFILL)(ack=kpi_buttons.ack_backfill, lazy=[kpi_buttons.run_backfill])
    _attach_slack(services, app.client)
    app.error(handle_listener_error)
    return app


def serve(
    settings: Settings, services: Services | None = None, *, on_ready: Callable[[RunningServer], None] | None = None
) -> None:
    """Run etl-doctor until SIGTERM/SIGINT: Socket Mode when SLACK_APP_TOKEN is set, else the HTTP server.

    Both transports serve ``GET /healthz`` and ``POST /sns`` (alerts) on ``PORT``; the HTTP transport
    also serves ``POST /slack/events``. Alerts are posted by a background dispatcher that first sends
    whatever a previous run left pending.

    Args:
        settings: The settings.
        services: Defaults to new services over ``settings``.
        on_ready: Called once the HTTP server listens (the sandbox and tests learn the port and a way to stop).
    """
    from handlers.http import EtlDoctorWsgi, make_server, stop_server
    from handlers.sns import SnsEndpoint

    app_token = settings.secret("slack_app_token")
    transport: Transport = "socket" if app_token else "http"
    check_transport_settings(settings, transport)
    services = services or Services(settings)
    services.store  # noqa: B018 - open and schema-check the store now: fail at start, not on the first alert
    app = build_app(settings, services, transport=transport, token_verification=True)
    alerts = build_alert_service(settings, services, defer_grouping=True)  # /sns answers after one INSERT
    sns = SnsEndpoint(alerts.ingest)
    socket_handler = None
    if app_token:
        from handlers.socket_mode import close_socket_mode, connect_socket_mode, is_connected

        socket_handler = connect_socket_mode(app, app_token)

        def health() -> dict[str, Any]:
            connected = socket_handler is not None and is_connected(socket_handler)
            return _health("socket_mode", ok=connected, connected=connected, alerts=alerts.stats())

        wsgi = EtlDoctorWsgi(None, health, sns)
    else:
        wsgi = EtlDoctorWsgi(app, lambda: _health("http", ok=True, alerts=alerts.stats()), sns)
    server = make_server(wsgi, host=settings.http_host, port=settings.port, threads=settings.http_threads)

    def shutdown(signum: int, _frame: Any) -> None:
        logger.info("received signal %s, shutting down", signum)
        stop_server(server)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
    where = f"http://{settings.http_host}:{server.effective_port}"
    if socket_handler is not None:
        logger.info("etl-doctor %s connected over Socket Mode; health on %s/healthz", __version__, where)
    else:
        logger.info("etl-doctor %s listening on %s (POST /slack/events, POST /sns, GET /healthz)", __version__, where)
    alerts.start_background()
    follower = ActionFollower(services)
    follower.start()
    if on_ready is not None:
        on_ready(RunningServer(port=server.effective_port, stop=lambda: stop_server(server), alerts=alerts))
    try:
        server.run()
    finally:
        follower.stop()
        alerts.stop()
        if socket_handler is not None:
            close_socket_mode(socket_handler)
        logger.info("etl-doctor stopped")


class ActionFollower:
    """Polls the runs that actions started and reports their end in the alert's thread (when no event comes)."""

    def __init__(self, services: Services, *, every: float = 20.0) -> None:
        self._services = services
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etl-doctor-follow", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._services.actions.follow()
            except Exception:
                logger.exception("following started runs failed; trying again in %.0f s", self._every)


def _health(transport: str, *, ok: bool, **extra: Any) -> dict[str, Any]:
    return {"status": "ok" if ok else "degraded", "transport": transport, "version": __version__, **extra}

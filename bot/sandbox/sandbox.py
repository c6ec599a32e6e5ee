"""The embedded sandbox: moto, the Slack emulator, a SQLite store and the real bot over HTTP, on loopback."""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.alerts.sns import PinnedCertificate
from bot.app import RunningServer, serve
from bot.aws.clients import AwsClients
from bot.config import Settings, load_settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.kpi_world import KpiWorld, build_kpi_world
from bot.sandbox.moto_server import SANDBOX_CREDENTIALS, SANDBOX_REGION, MotoSandbox
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, block_actions, interactive_body, post, signed_request
from bot.sandbox.slack_requests import SlackRequests
from bot.sandbox.sns_signing import SnsSigner
from bot.sandbox.world import ALERTS_CHANNEL, ONCALL_GROUP, ONCALL_MEMBER, seed_world, write_project_file
from bot.services import Services

if TYPE_CHECKING:
    from bot.alerts.service import AlertService


class Sandbox:
    """Starts the demo world; use as a context manager.

    Args:
        workdir: Where the SQLite store, etl-doctor.yml and the KPI world's databases (``kpi/``) go
            (default: a new temporary directory).
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="etl-doctor-sandbox-") if workdir is None else None
        self.workdir = workdir or Path(self._tmp.name if self._tmp else ".")
        self.signing_secret = secrets.token_hex(16)
        self.signer = SnsSigner.create()  # signs the demo's SNS alerts; the bot verifies them with its certificate
        self.moto = MotoSandbox()
        self.replay: AwsReplay | None = None
        self.slack = SlackEmulator()
        self.settings: Settings | None = None
        self.services: Services | None = None
        self._server: RunningServer | None = None
        self._thread: threading.Thread | None = None
        self.world: dict[str, Any] = {}
        self.kpi: KpiWorld | None = None

    @property
    def base_url(self) -> str:
        """The bot's HTTP base URL."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def events_url(self) -> str:
        """The bot's Slack endpoint."""
        return f"{self.base_url}/slack/events"

    def start(self) -> Sandbox:
        """Start moto and the Slack emulator, seed the pipelines and the KPI world, and run the bot's HTTP server."""
        self.kpi = build_kpi_world(self.workdir / "kpi")
        self.moto.start()
        self.moto.reset()  # moto's state is per process: start from an empty world even if another server ran here
        self.replay = AwsReplay(self.moto.endpoint_url).start()
        self.slack.start()
        self.slack.add_usergroup(ONCALL_GROUP, [ONCALL_MEMBER])
        environ = {
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": self.signing_secret,
            "SLACK_API_URL": self.slack.api_url,
            "AWS_REGION": SANDBOX_REGION,
            "AWS_ENDPOINT_URL": self.replay.endpoint_url,
            "DATABASE_URL": f"sqlite:///{self.workdir / 'etl-doctor.db'}",
            "ETL_DOCTOR_CONFIG": str(write_project_file(self.workdir / "etl-doctor.yml", kpi=self.kpi)),
            "ETL_DOCTOR_HTTP_HOST": "127.0.0.1",
            "PORT": "0",
            "ETL_DOCTOR_HTTP_THREADS": "4",
            "LOG_LEVEL": "WARNING",
        }
        self.settings = load_settings(environ)
        aws = AwsClients.from_settings(self.settings, credentials=SANDBOX_CREDENTIALS)
        self.services = Services(self.settings, aws=aws, sns_certificates=PinnedCertificate(self.signer.pem))
        self.world = seed_world(self.replay, aws, kpi=self.kpi)
        ready = threading.Event()

        def on_ready(server: RunningServer) -> None:
            self._server = server
            ready.set()

        self._thread = threading.Thread(
            target=serve, args=(self.settings, self.services), kwargs={"on_ready": on_ready}, daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("the bot's HTTP server did not start within 30 s")
        return self

    @property
    def alerts(self) -> AlertService:
        """The running bot's alert pipeline."""
        if self._server is None or self._server.alerts is None:
            raise RuntimeError("the sandbox is not started")
        return self._server.alerts

    def publish_alert(
        self, message: dict[str, Any] | str, *, subject: str | None = None, document: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST a signed SNS notification carrying ``message`` to the bot's ``/sns``, as SNS would.

        Args:
            message: The notification's Message (an EventBridge event, an alarm, text).
            subject: The SNS Subject.
            document: Send this envelope instead (e.g. a tampered one).

        Returns:
            HTTP status and the JSON answer.
        """
        text = message if isinstance(message, str) else json.dumps(message)
        envelope = document or self.signer.notification(text, subject=subject)
        request = urllib.request.Request(  # noqa: S310 - the sandbox's own loopback server
            f"{self.base_url}/sns",
            data=json.dumps(envelope).encode(),
            method="POST",
            headers={"Content-Type": "text/plain; charset=UTF-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read() or b"{}")

    def click(
        self, message: dict[str, Any], action_id: str, user_id: str, *, option: str | None = None
    ) -> list[dict[str, Any]]:
        """Click a button (or pick a select option) of a message as ``user_id``, as Slack would send it.

        Returns:
            The ephemeral answers the click got (response_url posts), once at least one arrived.
        """
        element = next(
            dict(item)
            for block in message.get("blocks", [])
            if block.get("type") == "actions"
            for item in block.get("elements", [])
            if item.get("action_id") == action_id
        )
        payload = block_actions(
            action_id=action_id,
            value=str(element.get("value", "")),
            user_id=user_id,
            channel_id=self.slack.channel_id(ALERTS_CHANNEL),
            message_ts=str(message.get("ts", "1700000000.000100")),
            response_url=self.slack.response_url(),
            action_type=str(element.get("type", "button")),
        )
        if option is not None:
            chosen = next(o for o in element["options"] if str(o["value"]).endswith(f":{option}"))
            payload["actions"][0].pop("value", None)
            payload["actions"][0]["selected_option"] = chosen
        before = len(self.slack.calls("response_url"))
        body, headers = signed_request(interactive_body(payload), self.signing_secret, content_type=FORM_CONTENT_TYPE)
        post(self.events_url, body, headers)
        calls = self.slack.wait_for("response_url", before + 1, timeout=30)
        return [dict(call.args) for call in calls[before:]]

    @property
    def requests(self) -> SlackRequests:
        """Sends slash commands to the running bot as Slack would."""
        if self.settings is None:
            raise RuntimeError("the sandbox is not started")
        return SlackRequests(self.events_url, self.signing_secret, self.slack)

    def stop(self) -> None:
        """Stop everything (idempotent)."""
        if self._server is not None:
            self._server.stop()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._server = None
        if self.services is not None:
            self.services.close()
        self.slack.stop()
        if self.replay is not None:
            self.replay.stop()
        self.moto.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Sandbox:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

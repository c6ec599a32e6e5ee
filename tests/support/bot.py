"""Run the real bot (`bot.app.serve`) on loopback for a test, and talk to it as Slack would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from bot.alerts.sns import CertificateSource
from bot.app import RunningServer, serve
from bot.aws.clients import AwsClients
from bot.config import Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_requests import SlackRequests
from bot.services import Services


@dataclass
class BotUnderTest:
    server: RunningServer
    requests: SlackRequests
    services: Services

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@contextmanager
def running_bot(settings: Settings, services: Services, emulator: SlackEmulator) -> Iterator[BotUnderTest]:
    """Start `serve` in a thread (HTTP or Socket Mode, as the settings say) and stop it afterwards."""
    ready = threading.Event()
    holder: list[RunningServer] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            serve(settings, services, on_ready=lambda server: (holder.append(server), ready.set()))
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "bot did not start"
    if failure:
        raise failure[0]
    server = holder[0]
    secret = settings.secret("slack_signing_secret") or ""
    try:
        yield BotUnderTest(
            server, SlackRequests(f"http://127.0.0.1:{server.port}/slack/events", secret, emulator), services
        )
    finally:
        server.stop()
        thread.join(10)


class BotStarter:
    """Starts bots that talk to the AWS replay endpoint and the Slack emulator; stops them all at the end.

    Args:
        make_settings: The ``make_settings`` fixture.
        emulator: The Slack emulator.
        replay: The AWS replay endpoint.
        aws: AWS clients pointed at it.
        project: The default etl-doctor.yml text.
        sns_certificates: The SNS certificate source the bots verify with (the tests' signer).
    """

    def __init__(
        self,
        make_settings: Callable[..., Settings],
        emulator: SlackEmulator,
        replay: AwsReplay,
        aws: AwsClients,
        project: str,
        sns_certificates: CertificateSource,
    ) -> None:
        self._make_settings = make_settings
        self._emulator = emulator
        self._replay = replay
        self._aws = aws
        self._project = project
        self._certificates = sns_certificates
        self._running: list[AbstractContextManager[BotUnderTest]] = []

    def start(self, project: str | None = None, **environ: Any) -> BotUnderTest:
        """Start one more bot (``SLACK_API_URL`` and other variables may be overridden)."""
        settings = self._make_settings(
            project if project is not None else self._project,
            SLACK_API_URL=environ.pop("SLACK_API_URL", self._emulator.api_url),
            AWS_ENDPOINT_URL=self._replay.endpoint_url,
            ETL_DOCTOR_HTTP_HOST="127.0.0.1",
            PORT=0,
            **environ,
        )
        services = Services(settings, aws=self._aws, sns_certificates=self._certificates)
        context = running_bot(settings, services, self._emulator)
        self._running.append(context)
        return context.__enter__()

    def __enter__(self) -> BotStarter:
        return self

    def __exit__(self, *exc: object) -> None:
        for context in reversed(self._running):
            context.__exit__(None, None, None)

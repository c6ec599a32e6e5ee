"""Run the real bot (`bot.app.serve`) on loopback for a test, and talk to it as Slack would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bot.app import RunningServer, serve
from bot.config import Settings
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

"""Socket Mode end to end: `serve` with SLACK_APP_TOKEN opens a WebSocket to the emulator and answers there."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from bot.config import Settings
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import slash_command, socket_mode_envelope
from bot.services import Services
from tests.support.bot import BotUnderTest, running_bot
from tests.support.golden import HELP_TEXT


@pytest.fixture
def bot_socket(make_settings: Callable[..., Settings], slack_emulator: SlackEmulator) -> Iterator[BotUnderTest]:
    settings = make_settings(
        SLACK_API_URL=slack_emulator.api_url,
        SLACK_APP_TOKEN=slack_emulator.app_token,
        SLACK_SIGNING_SECRET="",  # Socket Mode needs none
        ETL_DOCTOR_HTTP_HOST="127.0.0.1",
        PORT=0,
    )
    with running_bot(settings, Services(settings), slack_emulator) as running:
        slack_emulator.wait_for_socket_client(timeout=10)
        yield running


def test_help_over_socket_mode(bot_socket: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    payload = slash_command("help", response_url=slack_emulator.response_url("socket-help"))
    ack = slack_emulator.socket_mode_send(socket_mode_envelope("slash_commands", payload), timeout=10)
    assert "payload" not in ack or not ack["payload"]  # empty ack; the answer follows via response_url
    (posted,) = slack_emulator.wait_for("response_url", timeout=10)
    assert posted.key == "socket-help"
    assert posted.args["text"] == HELP_TEXT
    assert len(slack_emulator.calls("apps.connections.open")) == 1


def test_usage_error_travels_in_the_ack(bot_socket: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    payload = slash_command("frobnicate now", response_url=slack_emulator.response_url("socket-bad"))
    ack = slack_emulator.socket_mode_send(socket_mode_envelope("slash_commands", payload), timeout=10)
    assert ack["payload"]["response_type"] == "ephemeral"
    assert ack["payload"]["text"].startswith("`frobnicate` is not an etl-doctor subcommand")


def test_health_reports_the_websocket(bot_socket: BotUnderTest) -> None:
    with urllib.request.urlopen(bot_socket.base_url + "/healthz", timeout=5) as response:
        document = json.load(response)
    assert document == {
        "status": "ok",
        "transport": "socket_mode",
        "version": document["version"],
        "connected": True,
        "alerts": {"accepted": 0, "duplicates": 0, "rejected": {}},  # /sns is served in Socket Mode too
    }


def test_no_slack_endpoint_over_http_in_socket_mode(bot_socket: BotUnderTest) -> None:
    request = urllib.request.Request(bot_socket.base_url + "/slack/events", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 404

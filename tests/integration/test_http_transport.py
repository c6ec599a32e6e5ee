"""The HTTP transport end to end: waitress + Bolt, signed requests, lazy answers via response_url."""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

import bot.answers
from bot.aws.clients import AwsClients
from bot.config import ConfigError, Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.moto_server import SANDBOX_CREDENTIALS
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import (
    FORM_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    app_mention,
    event_callback,
    form_body,
    json_body,
    post,
    signed_request,
    slash_command,
)
from bot.sandbox.world import PIPELINES, seed_world
from bot.services import Services
from tests.conftest import SIGNING_SECRET
from tests.support.bot import BotUnderTest, running_bot
from tests.support.golden import HELP_TEXT

PROJECT = "default_channel: '#etl-alerts'\npipelines:\n" + "".join(
    f"  {p.name}:\n    state_machine_arn: {p.state_machine_arn}\n" for p in PIPELINES
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], slack_emulator: SlackEmulator, replay: AwsReplay) -> Settings:
    return make_settings(
        PROJECT,
        SLACK_API_URL=slack_emulator.api_url,
        AWS_ENDPOINT_URL=replay.endpoint_url,
        ETL_DOCTOR_HTTP_HOST="127.0.0.1",
        PORT=0,
    )


@pytest.fixture
def bot_http(settings: Settings, slack_emulator: SlackEmulator) -> Iterator[BotUnderTest]:
    services = Services(settings, aws=AwsClients.from_settings(settings, credentials=SANDBOX_CREDENTIALS))
    with running_bot(settings, services, slack_emulator) as running:
        yield running


def test_healthz(bot_http: BotUnderTest) -> None:
    with urllib.request.urlopen(bot_http.base_url + "/healthz", timeout=5) as response:
        document = json.load(response)
    assert response.status == 200
    assert document["status"] == "ok" and document["transport"] == "http"


def test_start_up_checked_the_bot_token(bot_http: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    assert len(slack_emulator.calls("auth.test")) == 1


def test_help_is_acked_then_answered_lazily(bot_http: BotUnderTest) -> None:
    result = bot_http.requests.slash("help")
    assert result.status == 200
    assert result.ack is None  # empty ack: the answer comes through response_url
    (response,) = result.responses
    assert response["response_type"] == "ephemeral"
    assert response["text"] == HELP_TEXT
    assert response["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "etl-doctor", "emoji": True},
    }


def test_help_for_one_subcommand(bot_http: BotUnderTest) -> None:
    (response,) = bot_http.requests.slash("help pipelines").responses
    assert response["text"].startswith("/etl pipelines: Configured pipelines")


def test_bad_command_gets_usage_in_the_ack(bot_http: BotUnderTest) -> None:
    result = bot_http.requests.slash("pipelnes", responses=0)
    assert result.status == 200
    assert result.ack is not None
    assert result.ack["response_type"] == "ephemeral"
    assert result.ack["text"].startswith("`pipelnes` is not an etl-doctor subcommand — did you mean `pipelines`?")


def test_pipelines_reads_step_functions(bot_http: BotUnderTest, replay: AwsReplay) -> None:
    seed_world(replay, bot_http.services.aws)
    (response,) = bot_http.requests.slash("pipelines").responses
    assert response["text"] == "3 pipelines, 1 failing"
    policies = next(block for block in response["blocks"] if "policies-etl" in json.dumps(block))
    assert "FAILED" in policies["text"]["text"]
    assert "run-2025-02-18" in policies["text"]["text"]


def test_wrong_signature_is_rejected(bot_http: BotUnderTest) -> None:
    result = bot_http.requests.slash("help", secret="not-the-secret", responses=0)
    assert result.status == 401


def test_stale_timestamp_is_rejected(bot_http: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    payload = slash_command("help", response_url=slack_emulator.response_url())
    stale = int(time.time()) - 6 * 60  # Slack's replay window is 5 minutes
    body, headers = signed_request(form_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE, timestamp=stale)
    status, _, _ = post(bot_http.requests.events_url, body, headers)
    assert status == 401


def test_unsigned_request_is_rejected(bot_http: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    payload = slash_command("help", response_url=slack_emulator.response_url())
    status, _, _ = post(bot_http.requests.events_url, form_body(payload), {"Content-Type": FORM_CONTENT_TYPE})
    assert status == 401


def test_url_verification_challenge(bot_http: BotUnderTest) -> None:
    # https://api.slack.com/events/url_verification
    challenge = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    body, headers = signed_request(json_body(challenge), SIGNING_SECRET, content_type=JSON_CONTENT_TYPE)
    status, _, raw = post(bot_http.requests.events_url, body, headers)
    assert status == 200
    assert challenge["challenge"] in raw.decode()


def test_other_paths_and_methods(bot_http: BotUnderTest) -> None:
    with pytest.raises(urllib.error.HTTPError) as not_found:
        urllib.request.urlopen(bot_http.base_url + "/admin", timeout=5)
    assert not_found.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as wrong_method:
        urllib.request.urlopen(bot_http.base_url + "/slack/events", timeout=5)
    assert wrong_method.value.code == 405


def test_error_in_lazy_work_reaches_the_user_with_a_logged_reference(
    bot_http: BotUnderTest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("lost connection password=hunter2 to the metadata service")

    monkeypatch.setattr(bot.answers, "pipeline_statuses", explode)
    with caplog.at_level(logging.ERROR):
        (response,) = bot_http.requests.slash("pipelines").responses
    match = re.fullmatch(
        r"etl-doctor hit an error: RuntimeError: lost connection password=\[redacted\] to the metadata service "
        r"\(ref ([0-9a-f]{6})\)",
        response["text"],
    )
    assert match, response["text"]
    assert "hunter2" not in json.dumps(response)
    logged = [record for record in caplog.records if getattr(record, "ref", None) == match[1]]
    assert logged and logged[0].exc_info is not None


def test_http_needs_a_signing_secret(make_settings: Callable[..., Settings], slack_emulator: SlackEmulator) -> None:
    settings = make_settings(SLACK_API_URL=slack_emulator.api_url, SLACK_SIGNING_SECRET="", PORT=0)
    services = Services(settings)
    with (
        pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is required"),
        running_bot(settings, services, slack_emulator),
    ):
        pass


def test_rejected_bot_token_stops_start_up(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator
) -> None:
    settings = make_settings(SLACK_API_URL=slack_emulator.api_url, SLACK_BOT_TOKEN="xoxb-revoked", PORT=0)
    with pytest.raises(Exception, match="invalid_auth"), running_bot(settings, Services(settings), slack_emulator):
        pass


def _mention(bot_http: BotUnderTest, text: str, event_id: str, *, retry: int | None = None) -> int:
    event = app_mention(f"<@U0ETLDOCTOR> {text}", user="U0ONCALL", channel="C0ETLALERTS")
    body, headers = signed_request(
        json_body(event_callback(event, event_id=event_id)), SIGNING_SECRET, content_type=JSON_CONTENT_TYPE
    )
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    status, _, _ = post(bot_http.requests.events_url, body, headers)
    return status


def test_mention_is_answered_in_its_thread(bot_http: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    assert _mention(bot_http, "help", "Ev0MENTION1") == 200
    (call,) = slack_emulator.wait_for("chat.postMessage")
    assert call.args["channel"] == "C0ETLALERTS"
    assert call.args["thread_ts"]  # a reply in the mention's thread, not a new post
    assert call.args["text"] == HELP_TEXT


def test_mention_with_a_typo_gets_usage_in_the_thread(bot_http: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    assert _mention(bot_http, "pipelinez", "Ev0MENTION2") == 200
    (call,) = slack_emulator.wait_for("chat.postMessage")
    assert call.args["text"].startswith("`pipelinez` is not an etl-doctor subcommand — did you mean `pipelines`?")


def test_retried_event_is_answered_once(bot_http: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    assert _mention(bot_http, "help", "Ev0RETRIED") == 200
    slack_emulator.wait_for("chat.postMessage")
    assert _mention(bot_http, "help", "Ev0RETRIED", retry=1) == 200  # Slack's retry of the same event
    assert _mention(bot_http, "help", "Ev0DIFFERENT") == 200
    calls = slack_emulator.wait_for("chat.postMessage", count=2)
    assert len(calls) == 2
    with bot_http.services.store.transaction() as uow:
        assert not uow.event_receipts.first_delivery("Ev0RETRIED", bot_http.services.clock())

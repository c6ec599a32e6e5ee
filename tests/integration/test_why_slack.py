"""`/etl why`, `/etl logs` and the Logs button through the HTTP transport, answered in the Slack emulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.config import Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, block_actions, interactive_body, post, signed_request
from bot.services import Services
from tests.conftest import SIGNING_SECRET
from tests.support.bot import BotUnderTest, running_bot

ARN = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"
PROJECT = f"pipelines:\n  policies-etl:\n    state_machine_arn: {MACHINE}\n"


@pytest.fixture
def bot(
    make_settings: Callable[..., Settings],
    slack_emulator: SlackEmulator,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
) -> Iterator[BotUnderTest]:
    load("ecs_oom")
    settings = make_settings(
        PROJECT,
        SLACK_API_URL=slack_emulator.api_url,
        AWS_ENDPOINT_URL=replay.endpoint_url,
        ETL_DOCTOR_HTTP_HOST="127.0.0.1",
        PORT=0,
    )
    with running_bot(settings, Services(settings, aws=replay_aws), slack_emulator) as running:
        yield running


def test_why_acks_with_progress_then_posts_the_diagnosis_in_channel(bot: BotUnderTest) -> None:
    result = bot.requests.slash("why latest policies-etl")
    assert result.ack is not None and result.ack["text"].startswith(":mag: Diagnosing `latest policies-etl`")
    (answer,) = result.responses
    assert answer["response_type"] == "in_channel"
    assert answer["text"] == "policies-etl failed at LoadFactPolicies: Out of memory (exit 137)"
    assert answer["blocks"][0]["text"]["text"] == "policies-etl failed at LoadFactPolicies"
    everything = json.dumps(answer["blocks"])
    assert "java.lang.OutOfMemoryError: Java heap space" in everything
    buttons = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in buttons] == [
        ("Logs", "etl.logs", ARN),
        ("Retry", "etl.retry", ARN),
        ("Redrive", "etl.redrive", ARN),
    ]


@pytest.mark.parametrize("target", [ARN, "policies-etl/run-2025-02-18", "run-2025-02-18"])
def test_why_accepts_every_way_of_naming_the_execution(bot: BotUnderTest, target: str) -> None:
    (answer,) = bot.requests.slash(f"why {target}").responses
    assert answer["text"].startswith("policies-etl failed at LoadFactPolicies")


def test_unknown_execution_is_a_plain_answer(bot: BotUnderTest) -> None:
    (answer,) = bot.requests.slash("why policies-etl/run-1999-01-01").responses
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == (
        "execution arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-1999-01-01 not found in us-east-1"
    )


def test_bad_target_is_usage_in_the_ack(bot: BotUnderTest) -> None:
    result = bot.requests.slash("why https://example.com/nothing", responses=0)
    assert result.ack is not None
    assert result.ack["text"].startswith("that link does not name a Step Functions execution")


def test_logs_with_grep(bot: BotUnderTest) -> None:
    (answer,) = bot.requests.slash("logs latest policies-etl --grep OutOfMemoryError").responses
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == "3 log lines from /ecs/policies-etl ecs/loader/5f1c9e0b2a7d4c3e9b8a6f4d2c1e0a97"


def test_logs_button_on_a_diagnosis(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    payload = block_actions("etl.logs", ARN, response_url=slack_emulator.response_url("logs-button"))
    body, headers = signed_request(interactive_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
    status, _, _ = post(bot.requests.events_url, body, headers)
    assert status == 200
    (posted,) = slack_emulator.wait_for("response_url", timeout=15)
    assert posted.key == "logs-button"
    assert posted.args["response_type"] == "ephemeral"
    assert posted.args["text"].endswith("log lines from /ecs/policies-etl ecs/loader/5f1c9e0b2a7d4c3e9b8a6f4d2c1e0a97")

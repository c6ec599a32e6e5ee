"""Retry and Redrive on a `/etl why` answer, end to end over HTTP: the same path as `/etl retry|redrive <ARN>`.

The bot runs on loopback against the Slack emulator and the AWS replay endpoint (StartExecution and
RedriveExecution with AWS's semantics); clicks are signed `block_actions` payloads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.alerts.sns import PinnedCertificate
from bot.aws.clients import AwsClients
from bot.config import Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, block_actions, interactive_body, post, signed_request
from tests.conftest import SIGNING_SECRET
from tests.support.alerts import MACHINE, SIGNER
from tests.support.bot import BotStarter, BotUnderTest

ARN = MACHINE.replace(":stateMachine:", ":execution:") + ":run-2025-02-18"
ALICE, MALLORY = "U0ALICE", "U0MALLORY"
PROJECT = f"""
pipelines:
  policies-etl:
    state_machine_arn: {MACHINE}
alerts:
  enrich: false
permissions:
  - actions: [retry, redrive]
    pipelines: [policies-etl]
    users: [{ALICE}]
"""


@pytest.fixture
def bot(
    make_settings: Callable[..., Settings],
    slack_emulator: SlackEmulator,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
) -> Iterator[BotUnderTest]:
    load("ecs_oom")
    with BotStarter(
        make_settings, slack_emulator, replay, replay_aws, PROJECT, PinnedCertificate(SIGNER.pem)
    ) as starter:
        yield starter.start()


def why(bot: BotUnderTest, user: str) -> dict[str, Any]:
    """The `/etl why <ARN>` answer as ``user`` sees it in the channel."""
    (answer,) = bot.requests.slash(f"why {ARN}", user_id=user).responses
    assert answer["response_type"] == "in_channel"
    return answer


def button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    (found,) = [
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
    return dict(found)


def click(bot: BotUnderTest, slack_emulator: SlackEmulator, message: dict[str, Any], action_id: str, user: str) -> Any:
    """Click a button of ``message`` as ``user``; return the one ephemeral answer it got."""
    before = len(slack_emulator.calls("response_url"))
    payload = block_actions(
        action_id,
        str(button(message, action_id)["value"]),
        user_id=user,
        response_url=slack_emulator.response_url(),
        message_text=message.get("text", ""),
    )
    body, headers = signed_request(interactive_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
    assert post(bot.requests.events_url, body, headers)[0] == 200
    calls = slack_emulator.wait_for("response_url", before + 1, timeout=20)
    (answer,) = [call.args for call in calls[before:]]
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    return answer


def test_retry_on_a_why_answer_is_the_confirmation_of_slash_retry(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    answer = why(bot, ALICE)
    assert button(answer, "etl.retry")["value"] == ARN
    clicked = click(bot, slack_emulator, answer, "etl.retry", ALICE)
    assert "Start `run-2025-02-18-retry-1` of `policies-etl` with the same input as `run-2025-02-18`" in clicked["text"]
    assert replay.started_executions() == []  # nothing runs before the confirmation
    # the command and the button are one request: same text, same Confirm button (request id)
    (typed,) = bot.requests.slash(f"retry {ARN}", user_id=ALICE).responses
    assert typed["text"] == clicked["text"]
    assert button(typed, "etl.confirm") == button(clicked, "etl.confirm")
    started = click(bot, slack_emulator, clicked, "etl.confirm", ALICE)
    assert "started `run-2025-02-18-retry-1`" in started["text"]
    assert [execution["name"] for execution in replay.started_executions()] == ["run-2025-02-18-retry-1"]
    with bot.services.store.transaction() as uow:
        outcomes = [(record.actor, record.action, record.outcome) for record in reversed(uow.audit.recent())]
    assert outcomes == [(ALICE, "retry", "requested"), (ALICE, "retry", "started")]


def test_redrive_on_a_why_answer_is_preflighted_and_confirmed(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    answer = why(bot, ALICE)
    confirmation = click(bot, slack_emulator, answer, "etl.redrive", ALICE)
    assert "Redrive `run-2025-02-18` of `policies-etl`" in confirmation["text"]
    assert "(redrive 1)" in confirmation["text"]
    done = click(bot, slack_emulator, confirmation, "etl.confirm", ALICE)
    assert "redrove `run-2025-02-18`" in done["text"]


@pytest.mark.parametrize("action_id", ["etl.retry", "etl.redrive"])
def test_a_user_without_the_grant_is_refused_and_it_is_audited(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay, action_id: str
) -> None:
    answer = why(bot, MALLORY)  # anyone may ask why
    refused = click(bot, slack_emulator, answer, action_id, MALLORY)
    kind = action_id.removeprefix("etl.")
    assert f"<@{MALLORY}> may not `{kind}` on `policies-etl`" in refused["text"]
    assert not any(block["type"] == "actions" for block in refused["blocks"])  # no Confirm to press
    assert replay.started_executions() == []
    with bot.services.store.transaction() as uow:
        (record,) = uow.audit.recent()
    assert (record.actor, record.action, record.target, record.outcome) == (MALLORY, kind, ARN, "refused")

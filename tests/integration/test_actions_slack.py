"""Actions end to end over HTTP: signed block_actions and slash commands → the bot → AWS (replay) and Slack.

moto has no RedriveExecution and cannot run the recorded policies-etl state machine, so StartExecution and
RedriveExecution are answered by the replay endpoint with AWS's semantics (idempotent names and client
tokens, ExecutionNotRedrivable), through the same boto3 code path.
"""

from __future__ import annotations

import json
import time
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
from tests.support.alerts import CHANNEL, MACHINE, SIGNER, blocks_text, notify, parents, sfn_event, wait_until
from tests.support.bot import BotStarter, BotUnderTest

RUN = "run-2025-02-18"
ARN = MACHINE.replace(":stateMachine:", ":execution:") + f":{RUN}"
ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
PROJECT = f"""
default_channel: "{CHANNEL}"
pipelines:
  policies-etl:
    state_machine_arn: {MACHINE}
sns_topics: ["arn:aws:sns:us-east-1:123456789012:etl-*"]
alerts:
  enrich: false
permissions:
  - actions: [retry, redrive]
    pipelines: [policies-etl]
    users: [{ALICE}, {BOB}]
  - actions: [ack, snooze]
    usergroups: [S0ONCALL]
"""


@pytest.fixture
def start_bot(
    make_settings: Callable[..., Settings],
    slack_emulator: SlackEmulator,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
) -> Iterator[Callable[..., BotUnderTest]]:
    load("ecs_oom")
    slack_emulator.add_usergroup("S0ONCALL", [CAROL])
    certificates = PinnedCertificate(SIGNER.pem)
    with BotStarter(make_settings, slack_emulator, replay, replay_aws, PROJECT, certificates) as starter:
        yield starter.start


@pytest.fixture
def bot(start_bot: Callable[..., BotUnderTest]) -> BotUnderTest:
    return start_bot()


def alert(bot: BotUnderTest, slack_emulator: SlackEmulator) -> dict[str, Any]:
    notify(bot, sfn_event("FAILED", RUN))
    (parent,) = wait_until(lambda: parents(slack_emulator))
    return parent


def element(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message["blocks"]:
        for item in block.get("elements", []) if block["type"] == "actions" else []:
            if item["action_id"] == action_id:
                return dict(item)
    raise AssertionError(f"no {action_id} in {blocks_text(message)}")


def click(
    bot: BotUnderTest,
    slack_emulator: SlackEmulator,
    message: dict[str, Any],
    action_id: str,
    user: str,
    *,
    option: str | None = None,
) -> list[dict[str, Any]]:
    """Click a button (or choose a select option) as ``user``; return the ephemeral answers it got."""
    target = element(message, action_id)
    response_url = slack_emulator.response_url()
    payload = block_actions(
        action_id=action_id,
        value=str(target.get("value", "")),
        user_id=user,
        channel_id=slack_emulator.channel_id(CHANNEL),
        message_ts=message.get("ts", "1700000000.000100"),
        response_url=response_url,
        action_type=target["type"],
    )
    if option is not None:
        chosen = next(o for o in target["options"] if o["value"].endswith(f":{option}"))
        payload["actions"][0].pop("value")
        payload["actions"][0]["selected_option"] = chosen
    before = len(slack_emulator.calls("response_url"))
    body, headers = signed_request(interactive_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
    assert post(f"{bot.base_url}/slack/events", body, headers)[0] == 200
    calls = slack_emulator.wait_for("response_url", before + 1, timeout=20)
    return [call.args for call in calls[before:]]


def thread_texts(slack_emulator: SlackEmulator, parent: dict[str, Any]) -> list[str]:
    return [m["text"] for m in slack_emulator.thread(CHANNEL, parent["ts"])[1:]]


def test_a_refused_click_names_the_missing_permission_and_is_audited(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    parent = alert(bot, slack_emulator)
    (answer,) = click(bot, slack_emulator, parent, "etl.retry", MALLORY)
    assert answer["response_type"] == "ephemeral"
    assert "<@U0MALLORY> may not `retry` on `policies-etl`" in answer["text"]
    assert replay.started_executions() == []
    with bot.services.store.transaction() as uow:
        (record,) = uow.audit.recent()
        assert (record.actor, record.action, record.outcome) == (MALLORY, "retry", "refused")
        channel = slack_emulator.channel_id(CHANNEL)
        assert record.slack_link == f"https://slack.com/archives/{channel}/p{parent['ts'].replace('.', '')}"


def test_retry_confirm_start_follow_and_resolve(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    parent = alert(bot, slack_emulator)
    (confirmation,) = click(bot, slack_emulator, parent, "etl.retry", ALICE)
    assert "Start `run-2025-02-18-retry-1` of `policies-etl` with the same input" in confirmation["text"]
    assert replay.started_executions() == []  # nothing runs before the confirmation
    (started,) = click(bot, slack_emulator, confirmation, "etl.confirm", ALICE)
    assert "started `run-2025-02-18-retry-1`" in started["text"]
    (execution,) = replay.started_executions()
    recorded_input = json.loads(replay_describe(replay, ARN)["input"])
    assert json.loads(execution["input"]) == recorded_input  # the same input
    wait_until(lambda: any("started `run-2025-02-18-retry-1`" in t for t in thread_texts(slack_emulator, parent)))
    replay.finish_execution(execution["executionArn"], "SUCCEEDED")
    (outcome,) = bot.services.actions.follow()
    assert outcome.extra["resolved"] is True
    wait_until(lambda: parents(slack_emulator)[0]["text"].startswith("Resolved"))
    assert any("`run-2025-02-18-retry-1` (Retry) SUCCEEDED" in t for t in thread_texts(slack_emulator, parent))
    # a second click on the same Retry does not start another execution
    (again,) = click(bot, slack_emulator, parent, "etl.retry", BOB)
    assert "was already done by <@U0ALICE>" in again["text"] and len(replay.started_executions()) == 1
    with bot.services.store.transaction() as uow:
        outcomes = [(r.action, r.outcome) for r in reversed(uow.audit.recent())]
    assert outcomes == [("retry", "requested"), ("retry", "started")]


def replay_describe(replay: AwsReplay, arn: str) -> dict[str, Any]:
    import boto3

    client = boto3.client(
        "stepfunctions",
        endpoint_url=replay.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return dict(client.describe_execution(executionArn=arn))


def test_redrive_is_preflighted_confirmed_and_run(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    parent = alert(bot, slack_emulator)
    (confirmation,) = click(bot, slack_emulator, parent, "etl.redrive", ALICE)
    assert (
        "Redrive `run-2025-02-18` of `policies-etl`" in confirmation["text"] and "(redrive 1)" in confirmation["text"]
    )
    (done,) = click(bot, slack_emulator, confirmation, "etl.confirm", ALICE)
    assert "redrove `run-2025-02-18`" in done["text"]
    described = replay_describe(replay, ARN)
    assert (described["status"], described["redriveCount"]) == ("RUNNING", 1)
    # a second click on Redrive does not redrive twice
    (again,) = click(bot, slack_emulator, parent, "etl.redrive", BOB)
    assert again["text"] == "Redrive of `run-2025-02-18` was already done by <@U0ALICE>: `run-2025-02-18` is started."
    # once the redriven run succeeds, the request says so
    replay.finish_execution(ARN, "SUCCEEDED")
    bot.services.actions.follow()
    (done,) = click(bot, slack_emulator, parent, "etl.redrive", BOB)
    assert done["text"].endswith("`run-2025-02-18` is succeeded.")


def test_a_redrive_that_cannot_run_says_why_and_offers_a_retry(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    parent = alert(bot, slack_emulator)
    (confirmation,) = click(bot, slack_emulator, parent, "etl.retry", ALICE)
    click(bot, slack_emulator, confirmation, "etl.confirm", ALICE)
    (started,) = replay.started_executions()
    replay.finish_execution(started["executionArn"], "SUCCEEDED")
    (refused,) = bot.requests.slash(f"redrive {started['executionArn']}", user_id=ALICE).responses
    assert refused["text"].startswith("Cannot redrive: `run-2025-02-18-retry-1` SUCCEEDED")
    assert element(refused, "etl.retry")["value"] == started["executionArn"]


def test_cancel_leaves_nothing_started(bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay) -> None:
    parent = alert(bot, slack_emulator)
    (confirmation,) = click(bot, slack_emulator, parent, "etl.retry", ALICE)
    (cancelled,) = click(bot, slack_emulator, confirmation, "etl.cancel", ALICE)
    assert cancelled["text"] == "Cancelled; nothing was started."
    (late,) = click(bot, slack_emulator, confirmation, "etl.confirm", ALICE)
    assert late["text"] == "This request is already cancelled."
    assert replay.started_executions() == []


def test_only_the_requester_confirms(bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay) -> None:
    parent = alert(bot, slack_emulator)
    (confirmation,) = click(bot, slack_emulator, parent, "etl.retry", ALICE)
    (other,) = click(bot, slack_emulator, confirmation, "etl.confirm", BOB)
    assert other["text"] == "Only <@U0ALICE> can confirm their request."
    assert replay.started_executions() == []


def test_two_person_rule(
    start_bot: Callable[..., BotUnderTest], slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    bot = start_bot(PROJECT + "two_person_rule: [policies-etl]\n")
    parent = alert(bot, slack_emulator)
    (confirmation,) = click(bot, slack_emulator, parent, "etl.retry", ALICE)
    (waiting,) = click(bot, slack_emulator, confirmation, "etl.confirm", ALICE)
    assert waiting["text"].startswith("Waiting for a second person")
    request = wait_until(
        lambda: [m for m in slack_emulator.thread(CHANNEL, parent["ts"])[1:] if "must approve" in m["text"]]
    )[0]
    (self_approval,) = click(bot, slack_emulator, request, "etl.approve", ALICE)
    assert self_approval["text"] == "The two-person rule needs a different person to approve."
    (outsider,) = click(bot, slack_emulator, request, "etl.approve", MALLORY)
    assert "may not `retry`" in outsider["text"] and replay.started_executions() == []
    (approved,) = click(bot, slack_emulator, request, "etl.approve", BOB)
    assert "(approved by <@U0BOB>)" in approved["text"]
    assert len(replay.started_executions()) == 1


def test_ack_and_snooze_update_the_parent_and_quiet_the_repeats(
    bot: BotUnderTest, slack_emulator: SlackEmulator
) -> None:
    parent = alert(bot, slack_emulator)
    click(bot, slack_emulator, parent, "etl.ack", CAROL)
    acked = wait_until(lambda: [m for m in parents(slack_emulator) if "acked by <@U0CAROL>" in blocks_text(m)])[0]
    assert element(acked, "etl.unack")
    (refused,) = click(bot, slack_emulator, acked, "etl.unack", MALLORY)
    assert "may not `ack`" in refused["text"]
    click(bot, slack_emulator, acked, "etl.snooze", CAROL, option="1h")
    snoozed = wait_until(lambda: [m for m in parents(slack_emulator) if "snoozed until" in blocks_text(m)])[0]
    before = len(thread_texts(slack_emulator, parent))
    notify(bot, sfn_event("FAILED", "run-2025-02-18-retry-9"))
    wait_until(lambda: "×2" in blocks_text(parents(slack_emulator)[0]))
    time.sleep(0.5)
    assert len(thread_texts(slack_emulator, parent)) == before  # counted, not posted
    click(bot, slack_emulator, snoozed, "etl.unsnooze", CAROL)
    wait_until(lambda: "snoozed" not in blocks_text(parents(slack_emulator)[0]))
    notify(bot, sfn_event("FAILED", "run-2025-02-18-retry-10"))
    wait_until(lambda: len(thread_texts(slack_emulator, parent)) == before + 1)


def test_slash_retry_and_audit(bot: BotUnderTest, replay: AwsReplay) -> None:
    result = bot.requests.slash(f"retry {ARN}", user_id=ALICE)
    (confirmation,) = result.responses
    assert confirmation["response_type"] == "ephemeral"
    assert "Start `run-2025-02-18-retry-1`" in confirmation["text"]
    (audit,) = bot.requests.slash("audit policies-etl --limit 5").responses
    assert "Audit trail for policies-etl" in audit["text"] and "retry requested" in audit["text"]
    bad = bot.requests.slash("audit --limit 0", responses=0)
    assert bad.ack is not None and "`--limit` takes a number from 1 to 200" in bad.ack["text"]


def test_a_retry_after_a_failed_retry_gets_the_next_name(
    bot: BotUnderTest, slack_emulator: SlackEmulator, replay: AwsReplay
) -> None:
    # AWS refuses to start a name again once its execution has closed, so the next attempt is -retry-2.
    parent = alert(bot, slack_emulator)
    (confirmation,) = click(bot, slack_emulator, parent, "etl.retry", ALICE)
    click(bot, slack_emulator, confirmation, "etl.confirm", ALICE)
    (first,) = replay.started_executions()
    replay.finish_execution(first["executionArn"], "FAILED", error="States.TaskFailed", cause="again")
    (ended,) = bot.services.actions.follow()
    assert ended.kind == "done" and "FAILED" in ended.text
    (again,) = click(bot, slack_emulator, parent, "etl.retry", ALICE)
    assert "Start `run-2025-02-18-retry-2`" in again["text"]
    (started,) = click(bot, slack_emulator, again, "etl.confirm", ALICE)
    assert "started `run-2025-02-18-retry-2`" in started["text"]
    assert [e["name"] for e in replay.started_executions()] == ["run-2025-02-18-retry-1", "run-2025-02-18-retry-2"]

"""Alerts end to end over HTTP: signed SNS posts to the running bot → messages in the Slack emulator."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.alerts.sns import PinnedCertificate
from bot.aws.clients import AwsClients
from bot.config import Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, block_actions, interactive_body, post, signed_request
from tests.conftest import SIGNING_SECRET
from tests.support.alerts import (
    CHANNEL,
    FIXTURES,
    MACHINE,
    PROJECT,
    SIGNER,
    blocks_text,
    fixture,
    notify,
    parents,
    send,
    sfn_event,
    wait_until,
)
from tests.support.bot import BotStarter, BotUnderTest


@pytest.fixture
def start_bot(
    make_settings: Callable[..., Settings],
    slack_emulator: SlackEmulator,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
) -> Iterator[Callable[..., BotUnderTest]]:
    load("ecs_oom")
    certificates = PinnedCertificate(SIGNER.pem)
    with BotStarter(make_settings, slack_emulator, replay, replay_aws, PROJECT, certificates) as starter:
        yield starter.start


@pytest.fixture
def bot(start_bot: Callable[..., BotUnderTest]) -> BotUnderTest:
    return start_bot()


def test_a_step_functions_failure_is_posted_at_once_then_enriched_with_the_diagnosis(
    bot: BotUnderTest, slack_emulator: SlackEmulator
) -> None:
    status, answer = notify(bot, sfn_event("FAILED", "run-2025-02-18"), subject="policies-etl failed")
    assert status == 200 and answer["stored"]
    (parent,) = wait_until(lambda: parents(slack_emulator))
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"
    assert "out of memory" in blocks_text(parent)
    buttons = [e for b in parent["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == [
        "etl.why",
        "etl.alert_logs",
        "etl.retry",
        "etl.redrive",
        "etl.ack",
        "etl.snooze",
    ]
    # Why and Logs carry the execution (read-only); the actions carry only the incident's opaque id
    assert (
        buttons[0]["value"] == buttons[1]["value"] == MACHINE.replace("stateMachine", "execution") + ":run-2025-02-18"
    )
    assert len({buttons[2]["value"], buttons[3]["value"], buttons[4]["value"]}) == 1
    assert all(len(b["value"]) == 32 for b in buttons[2:5])
    # the diagnosis follows the ECS task into its logs and updates the same message
    enriched = wait_until(
        lambda: [m for m in parents(slack_emulator) if "java.lang.OutOfMemoryError" in blocks_text(m)], timeout=20
    )
    assert "LoadFactPolicies" in blocks_text(enriched[0])
    assert "Next step" in blocks_text(enriched[0])
    assert "diagnosing" not in blocks_text(enriched[0])


def test_repeats_become_thread_replies_and_the_parent_counts_them(
    bot: BotUnderTest, slack_emulator: SlackEmulator
) -> None:
    notify(bot, sfn_event("FAILED", "run-2025-02-18"))
    (parent,) = wait_until(lambda: parents(slack_emulator))
    for name in ("run-2025-02-18-retry-1", "run-2025-02-18-retry-2"):
        assert notify(bot, sfn_event("FAILED", name))[0] == 200
    wait_until(lambda: "run-2025-02-18-retry-2" in json.dumps(slack_emulator.thread(CHANNEL, parent["ts"])[1:]))
    wait_until(lambda: "×3" in blocks_text(parents(slack_emulator)[0]))
    replies = slack_emulator.thread(CHANNEL, parent["ts"])[1:]
    # each repeat is listed exactly once, in order, whether the two came in one batched reply or two
    listed = [
        line.split()[2]  # "• 03:41 <execution> `<error>`"
        for reply in replies
        for line in reply["blocks"][0]["text"]["text"].splitlines()
        if line.startswith("• ")
    ]
    assert listed == ["run-2025-02-18-retry-1", "run-2025-02-18-retry-2"]
    assert len(parents(slack_emulator)) == 1


def test_a_different_failure_of_the_same_pipeline_gets_its_own_thread(
    bot: BotUnderTest, slack_emulator: SlackEmulator
) -> None:
    notify(bot, sfn_event("FAILED", "run-a"))
    lambda_failure = json.loads((FIXTURES / "sfn_failed_lambda.json").read_text())
    lambda_failure["detail"]["stateMachineArn"] = MACHINE
    notify(bot, lambda_failure)
    wait_until(lambda: len(parents(slack_emulator)) == 2)


def test_the_same_message_id_twice_posts_once(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    envelope = SIGNER.notification(json.dumps(sfn_event("FAILED", "run-2025-02-18")))
    status, answer = send(bot, envelope)
    assert status == 200 and answer["stored"]
    wait_until(lambda: parents(slack_emulator))
    status, answer = send(bot, envelope)
    assert (status, answer) == (200, {"duplicate": True})
    time.sleep(0.5)
    assert len(parents(slack_emulator)) == 1
    assert len(slack_emulator.thread(CHANNEL, parents(slack_emulator)[0]["ts"])) == 1


def test_a_later_success_resolves_the_alert(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    notify(bot, sfn_event("FAILED", "run-2025-02-18"))
    (parent,) = wait_until(lambda: parents(slack_emulator))
    assert notify(bot, sfn_event("SUCCEEDED", "run-2025-02-19"))[0] == 200
    resolved = wait_until(lambda: [m for m in parents(slack_emulator) if m["text"].startswith("Resolved")])
    assert "run-2025-02-19 SUCCEEDED" in blocks_text(resolved[0])
    wait_until(lambda: parents(slack_emulator)[0].get("reactions"))
    assert parents(slack_emulator)[0]["reactions"][0]["name"] == "white_check_mark"
    thread = slack_emulator.thread(CHANNEL, parent["ts"])
    assert thread[-1]["text"].startswith(":white_check_mark: Resolved by execution run-2025-02-19 SUCCEEDED")
    # a success with nothing open posts nothing
    notify(bot, sfn_event("SUCCEEDED", "run-2025-02-20"))
    time.sleep(0.5)
    assert len(slack_emulator.messages(CHANNEL)) == len(thread)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alarm_alarm.json", "policies-etl-executions-failed: ALARM"),
        ("alarm_metric_math.json", "ALARM"),
        ("ecs_task_stopped_oom.json", "policies-loader: task"),
        ("ecs_task_failed_to_start.json", "STOPPED"),
        ("glue_failed.json", "Glue job run FAILED"),
        ("glue_timeout.json", "Glue job run TIMEOUT"),
        ("batch_failed.json", "Batch job FAILED"),
        ("generic_json.json", ""),
        ("generic_text.txt", "Nightly reconciliation for policies-etl did not finish"),
    ],
)
def test_every_kind_of_payload_becomes_a_message(
    bot: BotUnderTest, slack_emulator: SlackEmulator, name: str, expected: str
) -> None:
    raw = (FIXTURES / name).read_text(encoding="utf-8")
    status, _ = notify(bot, raw)
    assert status == 200
    (parent,) = wait_until(lambda: parents(slack_emulator))
    assert expected in parent["text"]
    assert parent["blocks"][0]["type"] == "header"


def test_an_alarm_going_ok_resolves_it(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    notify(bot, fixture("alarm_alarm.json"))
    wait_until(lambda: parents(slack_emulator))
    notify(bot, fixture("alarm_ok.json"))
    wait_until(lambda: parents(slack_emulator)[0]["text"].startswith("Resolved"))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda e: e.update(Message=e["Message"].replace("FAILED", "SUCCEEDED")), "signature does not match"),
        (lambda e: e.update(Subject="injected"), "signature does not match"),
        (lambda e: e.update(SigningCertURL="https://sns.us-east-1.amazonaws.com.evil.example/x.pem"), "host"),
        (lambda e: e.update(SigningCertURL=e["SigningCertURL"].replace("https", "http")), "https"),
        (lambda e: e.pop("Signature"), "Signature"),
    ],
)
def test_tampered_messages_get_403_and_nothing_is_posted(
    bot: BotUnderTest, slack_emulator: SlackEmulator, tamper: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    envelope = SIGNER.notification(json.dumps(sfn_event()))
    tamper(envelope)
    status, answer = send(bot, envelope)
    assert status in (400, 403)
    assert reason in answer["error"]
    assert bot.server.alerts is not None
    assert sum(bot.server.alerts.ingest.rejections.values()) == 1
    time.sleep(0.3)
    assert slack_emulator.calls("chat.postMessage") == []


def test_old_messages_and_foreign_topics_are_refused(bot: BotUnderTest) -> None:
    old = SIGNER.notification("x", timestamp=datetime(2020, 1, 1, tzinfo=UTC))
    status, answer = send(bot, old)
    assert status == 403 and "old" in answer["error"]
    foreign = SIGNER.notification("x", topic_arn="arn:aws:sns:us-east-1:999999999999:other")
    status, answer = send(bot, foreign)
    assert status == 403 and "not in sns_topics" in answer["error"]


def test_non_sns_bodies_are_bad_requests(bot: BotUnderTest) -> None:
    assert send(bot, b"hello")[0] == 400
    assert send(bot, b'{"Type": "Notification"}')[0] == 400


def test_raw_delivery_is_refused_unless_enabled(
    start_bot: Callable[..., BotUnderTest], slack_emulator: SlackEmulator
) -> None:
    headers = {
        "x-amz-sns-rawdelivery": "true",
        "x-amz-sns-topic-arn": "arn:aws:sns:us-east-1:123456789012:etl-raw",
        "x-amz-sns-message-id": "raw-1",
    }
    refused = start_bot()
    status, answer = send(refused, json.dumps(sfn_event()).encode(), headers)
    assert status == 403 and "raw message delivery" in answer["error"]
    enabled = start_bot(
        PROJECT + "  - arn: arn:aws:sns:us-east-1:123456789012:etl-raw\n    raw_message_delivery: true\n"
    )
    assert send(enabled, json.dumps(sfn_event()).encode(), headers)[0] == 200
    wait_until(lambda: parents(slack_emulator))


def test_unsubscribe_confirmation_posts_a_warning(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    status, _ = send(bot, SIGNER.confirmation("UnsubscribeConfirmation"))
    assert status == 200
    (parent,) = wait_until(lambda: parents(slack_emulator))
    assert parent["text"] == "etl-doctor was unsubscribed from etl-alerts"


def test_subscription_confirmation_for_a_topic_not_allowed_is_refused(bot: BotUnderTest) -> None:
    status, answer = send(bot, SIGNER.confirmation(topic_arn="arn:aws:sns:us-east-1:999999999999:other"))
    assert status == 403 and "add it to sns_topics" in answer["error"]


def test_slack_429s_are_waited_out_and_nothing_is_lost(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    slack_emulator.rate_limit("chat.postMessage", retry_after=1, times=2)
    notify(bot, sfn_event("FAILED", "run-2025-02-18"))
    (parent,) = wait_until(lambda: parents(slack_emulator), timeout=15)
    statuses = [c.status for c in slack_emulator.calls("chat.postMessage")]
    assert statuses[:3] == [429, 429, 200]
    assert parent["text"].endswith("FAILED")


def test_alerts_stored_while_slack_is_down_are_posted_after_a_restart(
    start_bot: Callable[..., BotUnderTest], slack_emulator: SlackEmulator
) -> None:
    with SlackEmulator() as lost_slack:
        down = start_bot(SLACK_API_URL=lost_slack.api_url)
    # that Slack is gone now: posts fail with connection errors while alerts keep arriving
    for name in ("run-1", "run-2"):
        assert notify(down, sfn_event("FAILED", name))[0] == 200
    with down.services.store.transaction() as uow:
        assert [a.status for a in uow.alerts.backlog()] == ["received", "received"]
    assert down.server.alerts is not None
    down.server.stop()
    up = start_bot()
    (parent,) = wait_until(lambda: parents(slack_emulator), timeout=15)
    wait_until(lambda: len(slack_emulator.thread(CHANNEL, parent["ts"])) == 2)
    with up.services.store.transaction() as uow:
        assert uow.alerts.backlog() == []


def test_the_why_button_posts_the_diagnosis_in_the_thread(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    notify(bot, sfn_event("FAILED", "run-2025-02-18"))
    (parent,) = wait_until(lambda: parents(slack_emulator))
    why = next(
        e for b in parent["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "etl.why"
    )
    payload = block_actions(
        action_id="etl.why",
        value=why["value"],
        channel_id=slack_emulator.channel_id(CHANNEL),
        message_ts=parent["ts"],
        response_url=slack_emulator.response_url(),
    )
    request = signed_request(interactive_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
    assert post(f"{bot.base_url}/slack/events", *request)[0] == 200
    answer = wait_until(lambda: slack_emulator.thread(CHANNEL, parent["ts"])[1:], timeout=20)
    assert answer[0]["text"].startswith("policies-etl failed at LoadFactPolicies")


def test_healthz_counts_accepted_duplicate_and_rejected_deliveries(bot: BotUnderTest) -> None:
    envelope = SIGNER.notification(json.dumps(sfn_event()))
    send(bot, envelope)
    send(bot, envelope)
    send(bot, {**envelope, "Message": "changed"})
    with urllib.request.urlopen(bot.base_url + "/healthz", timeout=5) as response:
        document = json.load(response)
    assert document["alerts"] == {"accepted": 1, "duplicates": 1, "rejected": {"bad_signature": 1}}

"""Alerts through the Lambda entry point: `/sns` over API Gateway, direct SNS and EventBridge invocations.

The handler under test is `handlers.lambda_handler.build_handler` with real services: a SQLite store, the
Slack Web API emulator on loopback (``SLACK_API_URL``) and AWS through the replay endpoint in front of moto
(``load("ecs_oom")`` serves the recorded run-2025-02-18 so enrichment finds its OutOfMemoryError).

`POST /sns` answers at once and the function invokes itself (``{"etl_doctor": "drain_alerts"}``,
``InvocationType=Event``) to post and enrich. That self-invocation goes through a real boto3 Lambda client
pointed at `LoopbackLambda`, which answers 202 like Lambda and runs the same handler on another thread.
Direct SNS and EventBridge invocations store, post and enrich in place. `LambdaContext` has no
``get_remaining_time_in_millis``, so the handler gives every drain 60 s.
"""

from __future__ import annotations

import base64
import copy
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bot.alerts.sns import PinnedCertificate
from bot.aws.clients import AwsClients
from bot.config import Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, form_body, signed_request, slash_command
from bot.services import Services
from handlers.lambda_handler import LambdaAlerts, build_handler
from tests.conftest import SIGNING_SECRET
from tests.support.alerts import CHANNEL, FIXTURES, PROJECT, SIGNER, blocks_text, fixture, parents, sfn_event
from tests.support.apigw import apigw_event
from tests.support.golden import HELP_TEXT
from tests.support.lambda_invoke import LambdaContext, LoopbackLambda

OOM = "java.lang.OutOfMemoryError"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class LambdaWorld:
    handler: Handler
    loopback: LoopbackLambda
    services: Services


def _lambda_client(endpoint_url: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def build_world(
    make_settings: Callable[..., Settings],
    slack_emulator: SlackEmulator,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
) -> Iterator[Callable[..., LambdaWorld]]:
    """Build the function; its self-invocations reach LoopbackLambda (or ``lambda_endpoint`` when given)."""
    load("ecs_oom")
    loopbacks: list[LoopbackLambda] = []

    def build(lambda_endpoint: str | None = None) -> LambdaWorld:
        settings = make_settings(PROJECT, SLACK_API_URL=slack_emulator.api_url, AWS_ENDPOINT_URL=replay.endpoint_url)
        services = Services(settings, aws=replay_aws, sns_certificates=PinnedCertificate(SIGNER.pem))
        holder: list[Handler] = []
        loopback = LoopbackLambda(lambda event, context: holder[0](event, context)).start()
        loopbacks.append(loopback)
        client = _lambda_client(lambda_endpoint or loopback.endpoint_url)
        holder.append(build_handler(settings, services=services, lambda_client=client))
        return LambdaWorld(holder[0], loopback, services)

    yield build
    for loopback in loopbacks:
        loopback.stop()


@pytest.fixture
def world(build_world: Callable[..., LambdaWorld]) -> LambdaWorld:
    return build_world()


def sns_http_event(envelope: dict[str, Any] | bytes, *, base64_body: bool = False) -> dict[str, Any]:
    """The API Gateway HTTP API (v2.0) event for SNS's POST of ``envelope`` to /sns."""
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    headers = {"Content-Type": "text/plain; charset=UTF-8", "User-Agent": "Amazon Simple Notification Service Agent"}
    if isinstance(envelope, dict):
        headers |= {
            "x-amz-sns-message-type": str(envelope.get("Type")),
            "x-amz-sns-message-id": str(envelope.get("MessageId")),
            "x-amz-sns-topic-arn": str(envelope.get("TopicArn")),
        }
    event = apigw_event(body.decode("utf-8", "replace"), headers, path="/sns")
    if base64_body:
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
    return event


def sns_records(message: str, *, message_id: str | None = None) -> dict[str, Any]:
    """A direct SNS → Lambda invocation (the documented Records shape) carrying ``message``."""
    event = copy.deepcopy(fixture("sns_lambda_records_ecs.json"))
    record = event["Records"][0]["Sns"]
    record.update(Message=message, MessageId=message_id or str(uuid.uuid4()))
    return event


def drain_invocations(loopback: LoopbackLambda) -> list[Any]:
    return [i for i in loopback.invocations if i.payload == LambdaAlerts.DRAIN_EVENT]


def stored_counts(services: Services) -> dict[str, int]:
    with services.store.transaction() as uow:
        return uow.alerts.counts_by_status()


# ---------------------------------------------------------------- /sns through API Gateway


def test_sns_over_api_gateway_answers_200_then_the_drain_invocation_posts_and_enriches(
    world: LambdaWorld, slack_emulator: SlackEmulator
) -> None:
    envelope = SIGNER.notification(json.dumps(sfn_event("FAILED", "run-2025-02-18")), subject="policies-etl failed")
    response = world.handler(sns_http_event(envelope), LambdaContext())

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    answer = json.loads(response["body"])
    assert set(answer) == {"stored", "incident"}
    assert isinstance(answer["stored"], int) and answer["incident"]
    # the answer did not wait for Slack: the function invoked itself, asynchronously, to post
    (invocation,) = world.loopback.invocations
    assert invocation.invocation_type == "Event"
    assert invocation.function_name == LambdaContext.invoked_function_arn  # this version or alias, like Bolt
    assert invocation.payload == {"etl_doctor": "drain_alerts"}

    assert world.loopback.wait_for_results(1, timeout=30) == [{"posted": 1, "complete": True}]
    assert world.loopback.errors == []
    (parent,) = parents(slack_emulator)
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"
    # the drain invocation also diagnosed the execution and updated the same message
    assert OOM in blocks_text(parent)
    assert "LoadFactPolicies" in blocks_text(parent)
    assert "diagnosing" not in blocks_text(parent)
    assert len(slack_emulator.calls("chat.postMessage")) == 1
    assert stored_counts(world.services) == {"posted": 1}


def test_a_base64_encoded_sns_body_is_decoded(world: LambdaWorld, slack_emulator: SlackEmulator) -> None:
    envelope = SIGNER.notification(json.dumps(sfn_event("FAILED", "run-2025-02-18")))
    response = world.handler(sns_http_event(envelope, base64_body=True), LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    assert "stored" in json.loads(response["body"])
    world.loopback.wait_for_results(1, timeout=30)
    (parent,) = parents(slack_emulator)
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"


def test_a_redelivered_sns_message_is_a_duplicate_and_starts_no_second_drain(
    world: LambdaWorld, slack_emulator: SlackEmulator
) -> None:
    envelope = SIGNER.notification(json.dumps(sfn_event("FAILED", "run-2025-02-18")))
    assert world.handler(sns_http_event(envelope), LambdaContext())["statusCode"] == 200
    world.loopback.wait_for_results(1, timeout=30)
    again = world.handler(sns_http_event(envelope), LambdaContext())
    assert again["statusCode"] == 200
    assert json.loads(again["body"]) == {"duplicate": True}
    assert len(drain_invocations(world.loopback)) == 1
    assert len(parents(slack_emulator)) == 1
    assert len(slack_emulator.thread(CHANNEL, parents(slack_emulator)[0]["ts"])) == 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda e: e.update(Message=e["Message"].replace("FAILED", "SUCCEEDED")), "signature does not match"),
        (lambda e: e.update(Subject="injected"), "signature does not match"),
        (lambda e: e.update(SigningCertURL="https://sns.us-east-1.amazonaws.com.evil.example/x.pem"), "host"),
        (lambda e: e.update(SigningCertURL=e["SigningCertURL"].replace("https", "http")), "must use https"),
    ],
    ids=["message", "subject", "cert-host", "cert-scheme"],
)
def test_a_tampered_envelope_gets_403_and_starts_nothing(
    world: LambdaWorld, slack_emulator: SlackEmulator, tamper: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    envelope = SIGNER.notification(json.dumps(sfn_event("FAILED", "run-2025-02-18")))
    tamper(envelope)
    response = world.handler(sns_http_event(envelope), LambdaContext())
    assert response["statusCode"] == 403
    assert reason in json.loads(response["body"])["error"]
    assert world.loopback.invocations == []
    assert stored_counts(world.services) == {}
    assert slack_emulator.calls("chat.postMessage") == []


def test_a_body_that_is_not_sns_is_a_bad_request(world: LambdaWorld) -> None:
    response = world.handler(sns_http_event(b"hello"), LambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"].startswith("not an SNS message: not JSON")
    assert world.loopback.invocations == []


def test_a_deeply_nested_json_body_is_a_bad_request_not_a_crash(world: LambdaWorld) -> None:
    # 100 kB (under the 512 KiB limit) of nested arrays: json.loads raises RecursionError, not JSONDecodeError.
    body = b"[" * 50_000 + b"]" * 50_000
    response = world.handler(sns_http_event(body), LambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"].startswith("not an SNS message")
    assert world.loopback.invocations == []


# ---------------------------------------------------------------- direct SNS invocations


def test_a_direct_sns_invocation_stores_and_posts_in_place(world: LambdaWorld, slack_emulator: SlackEmulator) -> None:
    event = fixture("sns_lambda_records_ecs.json")
    assert world.handler(event, LambdaContext()) == {"stored": 1, "duplicates": 0, "posted": 1}
    (parent,) = parents(slack_emulator)
    assert parent["text"] == "example-api-v1: task a6eaf0150a4248dAA1bcbd688121014e STOPPED (exit 2)"
    assert parent["blocks"][0]["type"] == "header"
    assert world.loopback.invocations == []  # asynchronous already: nothing to hand over
    # SNS retries a Lambda delivery it thinks failed: the same MessageId posts nothing more
    assert world.handler(event, LambdaContext()) == {"stored": 0, "duplicates": 1, "posted": 0}
    assert len(slack_emulator.messages(CHANNEL)) == 1


def test_a_direct_sns_invocation_of_a_step_functions_failure_is_enriched_in_place(
    world: LambdaWorld, slack_emulator: SlackEmulator
) -> None:
    event = sns_records(json.dumps(sfn_event("FAILED", "run-2025-02-18")))
    assert world.handler(event, LambdaContext()) == {"stored": 1, "duplicates": 0, "posted": 1}
    (parent,) = parents(slack_emulator)  # posted and enriched before the invocation returned
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"
    assert OOM in blocks_text(parent)
    assert world.loopback.invocations == []


def test_a_direct_sns_invocation_with_two_records_stores_both(
    world: LambdaWorld, slack_emulator: SlackEmulator
) -> None:
    event = sns_records(json.dumps(sfn_event("FAILED", "run-a")))
    second = sns_records(json.dumps(fixture("glue_failed.json")))["Records"][0]
    event["Records"].append(second)
    assert world.handler(event, LambdaContext()) == {"stored": 2, "duplicates": 0, "posted": 2}
    texts = sorted(p["text"] for p in parents(slack_emulator))
    assert texts == ["policies-curate: Glue job run FAILED", "policies-etl: execution run-a FAILED"]


# ---------------------------------------------------------------- direct EventBridge invocations


def test_a_direct_eventbridge_step_functions_failure_is_posted_enriched_and_deduplicated(
    world: LambdaWorld, slack_emulator: SlackEmulator
) -> None:
    event = sfn_event("FAILED", "run-2025-02-18")
    assert world.handler(event, LambdaContext()) == {"stored": 1, "duplicates": 0, "posted": 1}
    (parent,) = parents(slack_emulator)
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"
    assert OOM in blocks_text(parent)
    assert world.loopback.invocations == []
    # EventBridge delivers at least once: the same event id again changes nothing
    assert world.handler(copy.deepcopy(event), LambdaContext()) == {"stored": 0, "duplicates": 1, "posted": 0}
    assert len(parents(slack_emulator)) == 1
    assert len(slack_emulator.thread(CHANNEL, parent["ts"])) == 1


def test_a_direct_eventbridge_glue_failure_is_posted(world: LambdaWorld, slack_emulator: SlackEmulator) -> None:
    event = json.loads((FIXTURES / "glue_failed.json").read_text(encoding="utf-8"))
    assert world.handler(event, LambdaContext()) == {"stored": 1, "duplicates": 0, "posted": 1}
    (parent,) = parents(slack_emulator)
    assert parent["text"] == "policies-curate: Glue job run FAILED"
    assert "should be given assume role permissions for Glue Service" in blocks_text(parent)
    assert "diagnosing" not in blocks_text(parent)  # only Step Functions alerts are enriched
    assert world.handler(event, LambdaContext()) == {"stored": 0, "duplicates": 1, "posted": 0}
    assert len(slack_emulator.messages(CHANNEL)) == 1


def test_a_direct_eventbridge_success_resolves_the_open_alert(
    world: LambdaWorld, slack_emulator: SlackEmulator
) -> None:
    world.handler(sfn_event("FAILED", "run-2025-02-18"), LambdaContext())
    (parent,) = parents(slack_emulator)
    assert world.handler(sfn_event("SUCCEEDED", "run-2025-02-19"), LambdaContext()) == {
        "stored": 1,
        "duplicates": 0,
        "posted": 1,
    }
    (resolved,) = parents(slack_emulator)
    assert resolved["text"].startswith("Resolved")
    assert resolved["reactions"][0]["name"] == "white_check_mark"
    thread = slack_emulator.thread(CHANNEL, parent["ts"])
    assert thread[-1]["text"].startswith(":white_check_mark: Resolved by execution run-2025-02-19 SUCCEEDED")


# ---------------------------------------------------------------- Slack still works, and the fallback


def test_slash_commands_still_work_through_the_same_handler(world: LambdaWorld, slack_emulator: SlackEmulator) -> None:
    payload = slash_command("help", response_url=slack_emulator.response_url("alerts-lambda-help"))
    body, headers = signed_request(form_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
    response = world.handler(apigw_event(body, headers), LambdaContext())
    assert response["statusCode"] == 200
    assert response["body"] == ""
    (invocation,) = world.loopback.invocations
    assert invocation.payload["headers"]["x-slack-bolt-lazy-function-name"] == "run_etl"
    (lazy_result,) = world.loopback.wait_for_results(1, timeout=30)
    assert lazy_result["statusCode"] == 200
    (posted,) = slack_emulator.wait_for("response_url")
    assert posted.key == "alerts-lambda-help"
    assert posted.args["text"] == HELP_TEXT
    assert stored_counts(world.services) == {}  # a Slack request is not an alert


def test_when_the_self_invocation_fails_the_alert_is_posted_inline(
    build_world: Callable[..., LambdaWorld], slack_emulator: SlackEmulator
) -> None:
    world = build_world(lambda_endpoint=f"http://127.0.0.1:{_closed_port()}")
    envelope = SIGNER.notification(json.dumps(sfn_event("FAILED", "run-2025-02-18")))
    response = world.handler(sns_http_event(envelope), LambdaContext())
    assert response["statusCode"] == 200
    assert "stored" in json.loads(response["body"])
    # posted before the invocation returned, without waiting for anything
    (parent,) = parents(slack_emulator)
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"
    assert world.loopback.invocations == []
    assert stored_counts(world.services) == {"posted": 1}

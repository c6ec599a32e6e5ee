"""Actions through the Lambda entry point: signed block_actions and `/etl` over API Gateway (HTTP API v2).

The handler is `handlers.lambda_handler.build_handler` with real services: a SQLite store, the Slack Web API
emulator on loopback, AWS through the replay endpoint in front of moto (`load("ecs_oom")` serves the FAILED
policies-etl/run-2025-02-18). The first invocation only acks; Bolt's lazy listener runs in the function's
asynchronous self-invocation, which a real boto3 Lambda client sends to `LoopbackLambda` (202, then the same
handler on another thread). The alert itself comes from a direct EventBridge invocation of the same handler.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bot.aws.clients import AwsClients
from bot.config import Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import (
    FORM_CONTENT_TYPE,
    block_actions,
    form_body,
    interactive_body,
    signed_request,
    slash_command,
)
from bot.services import Services
from handlers.lambda_handler import build_handler
from tests.conftest import SIGNING_SECRET
from tests.integration.test_actions_slack import ALICE, ARN, BOB, CAROL, MALLORY, PROJECT, RUN, element
from tests.support.alerts import CHANNEL, blocks_text, parents, sfn_event
from tests.support.apigw import apigw_event
from tests.support.lambda_invoke import LambdaContext, LoopbackLambda

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
RETRY_NAME = f"{RUN}-retry-1"


@dataclass
class LambdaWorld:
    handler: Handler
    loopback: LoopbackLambda
    services: Services
    emulator: SlackEmulator
    replay: AwsReplay

    def alert(self) -> dict[str, Any]:
        """A direct EventBridge invocation for the failed run; the parent it posted."""
        assert self.handler(sfn_event("FAILED", RUN), LambdaContext()) == {"stored": 1, "duplicates": 0, "posted": 1}
        (parent,) = parents(self.emulator)
        return parent

    def _send(self, body: str, headers: dict[str, str], lazy: str) -> list[dict[str, Any]]:
        """One API Gateway request: assert the ack, let the self-invocation run; return its response_url posts."""
        runs, posts = len(self.loopback.results), len(self.emulator.calls("response_url"))
        invocations = len(self.loopback.invocations)
        response = self.handler(apigw_event(body, headers), LambdaContext())
        assert response["statusCode"] == 200
        assert response.get("body", "") == ""  # the ack; the answer comes from the lazy invocation
        (invocation,) = self.loopback.invocations[invocations:]
        assert invocation.invocation_type == "Event"
        assert invocation.function_name == LambdaContext.invoked_function_arn
        assert invocation.payload["headers"]["x-slack-bolt-lazy-function-name"] == lazy
        results = self.loopback.wait_for_results(runs + 1, timeout=30)
        assert results[-1]["statusCode"] == 200
        assert self.loopback.errors == []
        calls = self.emulator.wait_for("response_url", posts + 1, timeout=20)
        return [call.args for call in calls[posts:]]

    def click(self, message: dict[str, Any], action_id: str, user: str, lazy: str) -> list[dict[str, Any]]:
        """Click a button of ``message`` as ``user`` through API Gateway."""
        target = element(message, action_id)
        payload = block_actions(
            action_id=action_id,
            value=str(target.get("value", "")),
            user_id=user,
            channel_id=self.emulator.channel_id(CHANNEL),
            message_ts=message.get("ts", "1700000000.000100"),
            response_url=self.emulator.response_url(),
            action_type=target["type"],
        )
        body, headers = signed_request(interactive_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
        return self._send(body, headers, lazy)

    def slash(self, text: str, user: str) -> list[dict[str, Any]]:
        """`/etl <text>` as ``user`` through API Gateway."""
        payload = slash_command(text, user_id=user, response_url=self.emulator.response_url())
        body, headers = signed_request(form_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
        return self._send(body, headers, "run_etl")

    def thread(self, parent: dict[str, Any]) -> list[str]:
        return [m["text"] for m in self.emulator.thread(CHANNEL, parent["ts"])[1:]]

    def audit(self) -> list[tuple[str, str, str]]:
        with self.services.store.transaction() as uow:
            return [(r.actor, r.action, r.outcome) for r in reversed(uow.audit.recent(limit=100))]


@pytest.fixture
def build_world(
    make_settings: Callable[..., Settings],
    slack_emulator: SlackEmulator,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
) -> Iterator[Callable[..., LambdaWorld]]:
    load("ecs_oom")
    slack_emulator.add_usergroup("S0ONCALL", [CAROL])
    loopbacks: list[LoopbackLambda] = []

    def build(project: str = PROJECT) -> LambdaWorld:
        settings = make_settings(project, SLACK_API_URL=slack_emulator.api_url, AWS_ENDPOINT_URL=replay.endpoint_url)
        services = Services(settings, aws=replay_aws)
        holder: list[Handler] = []
        loopback = LoopbackLambda(lambda event, context: holder[0](event, context)).start()
        loopbacks.append(loopback)
        client = boto3.client(
            "lambda",
            endpoint_url=loopback.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}),
        )
        holder.append(build_handler(settings, services=services, lambda_client=client))
        return LambdaWorld(holder[0], loopback, services, slack_emulator, replay)

    yield build
    for loopback in loopbacks:
        loopback.stop()


@pytest.fixture
def world(build_world: Callable[..., LambdaWorld]) -> LambdaWorld:
    return build_world()


def recorded_input(replay_aws: AwsClients) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(replay_aws.stepfunctions.describe_execution(executionArn=ARN)["input"])
    return loaded


def test_retry_button_confirm_and_start_through_api_gateway(
    world: LambdaWorld, replay: AwsReplay, replay_aws: AwsClients
) -> None:
    parent = world.alert()
    incident_id = element(parent, "etl.retry")["value"]
    with world.services.store.transaction() as uow:
        incident = uow.incidents.get(incident_id)
        assert incident is not None and incident.execution_arn == ARN

    (confirmation,) = world.click(parent, "etl.retry", ALICE, "run_retry")

    assert (confirmation["response_type"], confirmation["replace_original"]) == ("ephemeral", False)
    assert f"Start `{RETRY_NAME}` of `policies-etl` with the same input as `{RUN}`" in confirmation["text"]
    assert replay.started_executions() == []  # nothing runs before the confirmation
    with world.services.store.transaction() as uow:
        request = uow.action_requests.by_key(f"retry:{ARN}")
        assert request is not None
        assert (request.status, request.incident_id, request.thread_ts) == (
            "awaiting_confirmation",
            incident_id,
            parent["ts"],
        )
    assert element(confirmation, "etl.confirm")["value"] == request.id

    (started,) = world.click(confirmation, "etl.confirm", ALICE, "run_confirm")

    assert started["response_type"] == "ephemeral"
    assert f"<@{ALICE}> started `{RETRY_NAME}` (Retry)" in started["text"]
    (execution,) = replay.started_executions()
    assert (execution["name"], execution["status"]) == (RETRY_NAME, "RUNNING")
    assert json.loads(execution["input"]) == recorded_input(replay_aws)
    assert replay.call_counts()["states:StartExecution"] == 1
    # the note went into the alert's thread, through the function's own Slack client
    assert any(f"started `{RETRY_NAME}`" in text for text in world.thread(parent))
    assert world.audit() == [(ALICE, "retry", "requested"), (ALICE, "retry", "started")]

    # a second Confirm click (Slack retries, double clicks) starts nothing more
    (again,) = world.click(confirmation, "etl.confirm", ALICE, "run_confirm")
    assert again["text"] == f"This request is already started by <@{ALICE}>."
    assert len(replay.started_executions()) == 1


def test_the_started_run_is_followed_when_the_function_next_handles_alerts(
    world: LambdaWorld, replay: AwsReplay
) -> None:
    parent = world.alert()
    (confirmation,) = world.click(parent, "etl.retry", ALICE, "run_retry")
    world.click(confirmation, "etl.confirm", ALICE, "run_confirm")
    (execution,) = replay.started_executions()
    replay.finish_execution(execution["executionArn"], "SUCCEEDED")

    # no poller on Lambda: the next alert invocation (here the self-invoked drain) follows the started runs
    assert world.handler({"etl_doctor": "drain_alerts"}, LambdaContext()) == {"posted": 0, "complete": True}

    with world.services.store.transaction() as uow:
        request = uow.action_requests.by_key(f"retry:{ARN}")
        assert request is not None and request.status == "succeeded"
        assert request.incident_id is not None
        incident = uow.incidents.get(request.incident_id)
        assert incident is not None and incident.status == "resolved"
        assert incident.details["resolved_by"] == f"execution {RETRY_NAME} SUCCEEDED"
    assert f":white_check_mark: `{RETRY_NAME}` (Retry) SUCCEEDED" in world.thread(parent)
    (resolved,) = parents(world.emulator)
    assert resolved["text"].startswith("Resolved")


def test_a_refused_click_gets_the_ephemeral_refusal_and_starts_nothing(world: LambdaWorld, replay: AwsReplay) -> None:
    parent = world.alert()

    (refusal,) = world.click(parent, "etl.retry", MALLORY, "run_retry")

    assert refusal["response_type"] == "ephemeral"
    assert refusal["text"].startswith(f"<@{MALLORY}> may not `retry` on `policies-etl`")
    assert "Confirm" not in json.dumps(refusal.get("blocks", []))
    assert replay.started_executions() == []
    assert replay.call_counts()["states:StartExecution"] == 0
    with world.services.store.transaction() as uow:
        assert uow.action_requests.by_key(f"retry:{ARN}") is None
    assert world.audit() == [(MALLORY, "retry", "refused")]


def test_slash_retry_confirms_and_audit_lists_the_rows(world: LambdaWorld, replay: AwsReplay) -> None:
    (confirmation,) = world.slash(f"retry {ARN}", ALICE)

    assert confirmation["response_type"] == "ephemeral"
    assert f"Start `{RETRY_NAME}` of `policies-etl`" in confirmation["text"]
    assert replay.started_executions() == []
    (started,) = world.click(confirmation, "etl.confirm", ALICE, "run_confirm")
    assert f"started `{RETRY_NAME}`" in started["text"]
    assert len(replay.started_executions()) == 1
    (refused,) = world.slash(f"retry {ARN}", MALLORY)
    assert refused["text"].startswith(f"<@{MALLORY}> may not `retry`")

    (audit,) = world.slash("audit policies-etl --limit 5", BOB)

    assert audit["response_type"] == "ephemeral"
    assert audit["text"].startswith("Audit trail for policies-etl (latest 3): ")
    assert "retry refused; retry started; retry requested" in audit["text"]
    shown = blocks_text(audit)
    assert f"<@{ALICE}> retry `{RUN}` *requested*" in shown
    assert f"<@{ALICE}> retry `{RUN}` *started*" in shown
    assert f"<@{MALLORY}> retry `{RUN}` *refused*" in shown


def test_two_person_rule_approve_button_in_the_thread(
    build_world: Callable[..., LambdaWorld], replay: AwsReplay
) -> None:
    world = build_world(PROJECT + "two_person_rule: [policies-etl]\n")
    parent = world.alert()
    (confirmation,) = world.click(parent, "etl.retry", ALICE, "run_retry")

    (waiting,) = world.click(confirmation, "etl.confirm", ALICE, "run_confirm")

    assert waiting["text"].startswith("Waiting for a second person")
    (request_message,) = [m for m in world.emulator.thread(CHANNEL, parent["ts"])[1:] if "must approve" in m["text"]]
    assert replay.started_executions() == []
    (self_approval,) = world.click(request_message, "etl.approve", ALICE, "run_approve")
    assert self_approval["text"] == "The two-person rule needs a different person to approve."
    (approved,) = world.click(request_message, "etl.approve", BOB, "run_approve")
    assert f"(approved by <@{BOB}>)" in approved["text"]
    (execution,) = replay.started_executions()
    assert execution["name"] == RETRY_NAME


def test_ack_button_updates_the_parent_through_the_function(world: LambdaWorld) -> None:
    parent = world.alert()

    (answer,) = world.click(parent, "etl.ack", CAROL, "run_ack")

    assert answer["text"].startswith(f"Acked by <@{CAROL}> at ")
    (updated,) = parents(world.emulator)
    assert f"acked by <@{CAROL}>" in blocks_text(updated)
    assert element(updated, "etl.unack")["value"] == element(parent, "etl.ack")["value"]
    (refused,) = world.click(updated, "etl.unack", MALLORY, "run_unack")
    assert "may not `ack`" in refused["text"]
    assert world.audit() == [(CAROL, "ack", "done"), (MALLORY, "unack", "refused")]

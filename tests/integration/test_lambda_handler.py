"""The Lambda entry point: ack within the first invocation, lazy work in Bolt's async self-invocation.

The self-invocation goes through Bolt's real `LambdaLazyListenerRunner` and a real boto3 Lambda client;
the client is pointed at a loopback Lambda Invoke endpoint that, like Lambda, answers 202 to an
``Event`` invocation and then runs the function with the payload on another thread.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bot.config import Settings
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import (
    FORM_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    app_mention,
    event_callback,
    form_body,
    json_body,
    signed_request,
    slash_command,
)
from handlers.lambda_handler import build_handler
from tests.conftest import SIGNING_SECRET
from tests.support.apigw import apigw_event
from tests.support.golden import HELP_TEXT
from tests.support.lambda_invoke import LambdaContext, LoopbackLambda


@pytest.fixture
def lambda_world(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator
) -> Iterator[tuple[Callable[[dict[str, Any], Any], dict[str, Any]], LoopbackLambda]]:
    settings = make_settings(SLACK_API_URL=slack_emulator.api_url, LOG_FORMAT="json")
    holder: list[Callable[[dict[str, Any], Any], dict[str, Any]]] = []
    loopback = LoopbackLambda(lambda event, context: holder[0](event, context)).start()
    client = boto3.client(
        "lambda",
        endpoint_url=loopback.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    holder.append(build_handler(settings, lambda_client=client))
    yield holder[0], loopback
    loopback.stop()


def _signed_event(text: str, emulator: SlackEmulator, key: str, *, secret: str = SIGNING_SECRET) -> dict[str, Any]:
    payload = slash_command(text, response_url=emulator.response_url(key))
    body, headers = signed_request(form_body(payload), secret, content_type=FORM_CONTENT_TYPE)
    return apigw_event(body, headers)


def test_help_acks_then_self_invokes_for_the_answer(lambda_world: Any, slack_emulator: SlackEmulator) -> None:
    handler, loopback = lambda_world
    response = handler(_signed_event("help", slack_emulator, "lambda-help"), LambdaContext())
    assert response["statusCode"] == 200
    assert response["body"] == ""  # the ack; the answer comes from the lazy invocation
    (invocation,) = loopback.invocations
    assert invocation.invocation_type == "Event"
    assert invocation.function_name == LambdaContext.invoked_function_arn
    assert invocation.payload["headers"]["x-slack-bolt-lazy-only"] == "1"
    assert invocation.payload["headers"]["x-slack-bolt-lazy-function-name"] == "run_etl"
    (lazy_result,) = loopback.wait_for_results(1)
    assert lazy_result["statusCode"] == 200
    assert loopback.errors == []
    (posted,) = slack_emulator.wait_for("response_url")
    assert posted.key == "lambda-help"
    assert posted.args["text"] == HELP_TEXT


def test_usage_error_is_answered_in_the_first_invocation(lambda_world: Any, slack_emulator: SlackEmulator) -> None:
    handler, _ = lambda_world
    response = handler(_signed_event("frobnicate", slack_emulator, "lambda-bad"), LambdaContext())
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["response_type"] == "ephemeral"
    assert body["text"].startswith("`frobnicate` is not an etl-doctor subcommand")


def test_bad_signature_is_rejected_before_any_invocation(lambda_world: Any, slack_emulator: SlackEmulator) -> None:
    handler, loopback = lambda_world
    response = handler(_signed_event("help", slack_emulator, "forged", secret="wrong"), LambdaContext())
    assert response["statusCode"] == 401
    assert loopback.invocations == []


def test_lazy_invocation_is_verified_again(lambda_world: Any, slack_emulator: SlackEmulator) -> None:
    # A forged "lazy-only" event must not run anything: Bolt checks the signature on re-invocation too.
    handler, _ = lambda_world
    event = _signed_event("help", slack_emulator, "tampered")
    event["headers"]["x-slack-bolt-lazy-only"] = "1"
    event["headers"]["x-slack-bolt-lazy-function-name"] = "run_etl"
    event["body"] = event["body"].replace("help", "pipelines")
    assert handler(event, LambdaContext())["statusCode"] == 401


def test_base64_encoded_body(lambda_world: Any, slack_emulator: SlackEmulator) -> None:
    handler, loopback = lambda_world
    event = _signed_event("help", slack_emulator, "b64")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert handler(event, LambdaContext())["statusCode"] == 200
    loopback.wait_for_results(1)
    assert slack_emulator.wait_for("response_url")[0].key == "b64"


def test_failed_self_invocation_is_reported_to_the_user(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator
) -> None:
    settings = make_settings(SLACK_API_URL=slack_emulator.api_url)
    unreachable = boto3.client(
        "lambda",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    handler = build_handler(settings, lambda_client=unreachable)
    response = handler(_signed_event("help", slack_emulator, "no-invoke"), LambdaContext())
    assert response["statusCode"] == 200
    (posted,) = slack_emulator.wait_for("response_url")
    assert posted.key == "no-invoke"
    assert posted.args["text"].startswith(
        "etl-doctor hit an error: could not start the background work: could not reach AWS at http://127.0.0.1:9"
    )


def test_mention_is_answered_through_the_self_invocation(lambda_world: Any, slack_emulator: SlackEmulator) -> None:
    # The lazy invocation re-dispatches the same event_id; retry dedupe must not swallow it.
    handler, loopback = lambda_world
    event = app_mention("<@U0ETLDOCTOR> help", user="U0ONCALL", channel="C0ETLALERTS")
    body, headers = signed_request(
        json_body(event_callback(event, event_id="Ev0LAMBDA")), SIGNING_SECRET, content_type=JSON_CONTENT_TYPE
    )
    assert handler(apigw_event(body, headers), LambdaContext())["statusCode"] == 200
    (lazy_result,) = loopback.wait_for_results(1)
    assert lazy_result["statusCode"] == 200
    (posted,) = slack_emulator.wait_for("chat.postMessage")
    assert posted.args["text"] == HELP_TEXT
    retry_headers = headers | {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert handler(apigw_event(body, retry_headers), LambdaContext())["statusCode"] == 200
    assert len(loopback.invocations) == 1  # Slack's retry started nothing


def test_self_invocation_uses_the_client_factory_when_no_client_is_given(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.services import Services

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    holder: list[Callable[[dict[str, Any], Any], dict[str, Any]]] = []
    loopback = LoopbackLambda(lambda event, context: holder[0](event, context)).start()
    try:
        settings = make_settings(
            SLACK_API_URL=slack_emulator.api_url, AWS_ENDPOINT_URL=loopback.endpoint_url, AWS_REGION="eu-west-1"
        )
        services = Services(settings)
        holder.append(build_handler(settings, services=services))  # no lambda_client: the factory's, on first use
        response = holder[0](_signed_event("help", slack_emulator, "factory-help"), LambdaContext())
        assert response["statusCode"] == 200
        (invocation,) = loopback.invocations  # reached the settings' endpoint, not boto3's default
        assert invocation.invocation_type == "Event"
        loopback.wait_for_results(1)
        assert services.aws.call_counts()["lambda:Invoke"] == 1  # made by the factory's shared client
        client = services.aws.client("lambda")
        assert client.meta.config.retries["mode"] == "adaptive"
        assert client.meta.region_name == "eu-west-1"
        (posted,) = slack_emulator.wait_for("response_url")
        assert posted.args["text"] == HELP_TEXT
    finally:
        loopback.stop()

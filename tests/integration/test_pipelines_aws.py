"""`pipelines` against a moto server reached over HTTP, through the same boto3 code path as production."""

from __future__ import annotations

import json

import pytest

from bot.aws.clients import AwsClients
from bot.aws.stepfunctions import StateMachineNotFoundError, StepFunctionsGateway
from bot.config import ProjectConfig
from bot.pipelines import pipeline_statuses
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.world import PIPELINES, ROLE_ARN, seed_world

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:"


def test_latest_execution_statuses(replay: AwsReplay, replay_aws: AwsClients) -> None:
    # claims-etl and billing-etl run on moto; policies-etl is the recorded ECS failure.
    seed_world(replay, replay_aws)
    aws = replay_aws
    project = ProjectConfig.model_validate(
        {
            "default_channel": "#etl-alerts",
            "pipelines": {
                **{p.name: {"state_machine_arn": p.state_machine_arn} for p in PIPELINES},
                "ledger-etl": {"state_machine_arn": SM + "ledger-etl", "channel": "#ledger"},
            },
        }
    )
    statuses = {s.name: s for s in pipeline_statuses(project, StepFunctionsGateway(aws.stepfunctions), "us-east-1")}
    assert list(statuses) == ["billing-etl", "claims-etl", "ledger-etl", "policies-etl"]
    policies = statuses["policies-etl"].latest
    assert policies is not None and policies.status == "FAILED" and policies.name == "run-2025-02-18"
    claims = statuses["claims-etl"].latest
    assert claims is not None and claims.status == "SUCCEEDED"
    assert statuses["billing-etl"].latest is None and statuses["billing-etl"].problem is None
    assert statuses["ledger-etl"].problem == "state machine not found in us-east-1"
    assert statuses["ledger-etl"].channel == "#ledger"


def test_latest_is_the_newest_run(aws: AwsClients) -> None:
    client = aws.stepfunctions
    definition = {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
    arn = client.create_state_machine(name="m", definition=json.dumps(definition), roleArn=ROLE_ARN)["stateMachineArn"]
    for name in ("first", "second", "third"):
        client.start_execution(stateMachineArn=arn, name=name)
    latest = StepFunctionsGateway(client).latest_execution(arn)
    assert latest is not None and latest.name == "third"


def test_missing_state_machine(aws: AwsClients) -> None:
    with pytest.raises(StateMachineNotFoundError):
        StepFunctionsGateway(aws.stepfunctions).latest_execution(SM + "nope")


def test_unreachable_aws_is_reported_per_pipeline() -> None:
    unreachable = AwsClients(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=("a", "b"), max_attempts=1
    )
    project = ProjectConfig.model_validate({"pipelines": {"p": {"state_machine_arn": SM + "p"}}})
    (status,) = pipeline_statuses(project, StepFunctionsGateway(unreachable.stepfunctions), "us-east-1")
    assert status.latest is None
    assert status.problem == "could not reach AWS at http://127.0.0.1:9/ (connection failed)"

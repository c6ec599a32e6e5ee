"""The sandbox's pipelines: two that moto really runs, and policies-etl, a recorded ECS out-of-memory failure."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.aws.clients import AwsClients
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.kpi_world import KpiWorld, project_fragment, seed_kpi_catalog
from bot.sandbox.moto_server import SANDBOX_ACCOUNT, SANDBOX_REGION
from bot.sandbox.scenarios import load_scenario, read_scenario

ROLE_ARN = f"arn:aws:iam::{SANDBOX_ACCOUNT}:role/etl-doctor-sandbox"
ALERTS_CHANNEL = "#etl-alerts"
ONCALL_LEAD, ONCALL_GROUP, ONCALL_MEMBER = "U0ALICE", "S0ONCALL", "U0CAROL"  # who may act in the sandbox
DLQ_NAME, DLQ_QUEUE, DLQ_SOURCE = "policies-dlq", "policies-etl-dlq", "policies-etl-input"
DLQ_MESSAGES = (
    {"business_date": "2025-02-17", "partition": "eu", "error": "Lambda timed out after 900 seconds"},
    {"business_date": "2025-02-17", "partition": "us", "error": "Lambda timed out after 900 seconds"},
    {"business_date": "2025-02-18", "partition": "apac", "error": "ThrottlingException: Rate exceeded"},
)
SCENARIOS = Path(__file__).parent / "scenarios"
# policies-etl's failure is recorded (moto's ECS .sync never fails): a copy of
# tests/fixtures/executions/ecs_oom, whose sources are listed in tests/fixtures/executions/SOURCES.md.
RECORDED_FAILURE = SCENARIOS / "policies_etl_oom.json"


@dataclass(frozen=True)
class SandboxPipeline:
    """A pipeline of the demo world."""

    name: str
    description: str
    definition: dict[str, Any] | None
    runs: tuple[str, ...]

    @property
    def state_machine_arn(self) -> str:
        """Its state machine's ARN in the sandbox account."""
        return f"arn:aws:states:{SANDBOX_REGION}:{SANDBOX_ACCOUNT}:stateMachine:{self.name}"


def _succeeding() -> dict[str, Any]:
    return {
        "StartAt": "ExtractClaims",
        "States": {"ExtractClaims": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}},
    }


PIPELINES: tuple[SandboxPipeline, ...] = (
    SandboxPipeline(
        "policies-etl", "Oracle policies → Redshift fact_policies (Spark on ECS)", None, ("run-2025-02-18",)
    ),
    SandboxPipeline("claims-etl", "Claims feed → Redshift fact_claims", _succeeding(), ("run-2025-02-18",)),
    SandboxPipeline("billing-etl", "Billing export (weekly)", _succeeding(), ()),
)

KPI_PIPELINE = PIPELINES[0].name  # policies-etl loads fact_policies: re-running it for a partition backfills it


def seed(stepfunctions: Any, *, wait_seconds: float = 20.0) -> None:
    """Create the moto-run pipelines' state machines, start their runs and wait until each has finished.

    Args:
        stepfunctions: A boto3 ``stepfunctions`` client pointed at the moto server (or the replay endpoint).
        wait_seconds: Longest wait for executions to leave RUNNING.

    Raises:
        TimeoutError: An execution was still running after ``wait_seconds``.
    """
    started: list[str] = []
    for pipeline in PIPELINES:
        if pipeline.definition is None:
            continue
        created = stepfunctions.create_state_machine(
            name=pipeline.name, definition=json.dumps(pipeline.definition), roleArn=ROLE_ARN, type="STANDARD"
        )
        for run in pipeline.runs:
            execution = stepfunctions.start_execution(stateMachineArn=created["stateMachineArn"], name=run, input="{}")
            started.append(execution["executionArn"])
    deadline = time.monotonic() + wait_seconds
    for arn in started:
        while stepfunctions.describe_execution(executionArn=arn)["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox execution {arn} still RUNNING after {wait_seconds:.0f} s")
            time.sleep(0.05)


def queue_url(name: str) -> str:
    """A sandbox queue's URL (moto finds queues by name and account whatever the host)."""
    return f"https://sqs.{SANDBOX_REGION}.amazonaws.com/{SANDBOX_ACCOUNT}/{name}"


def seed_dead_letters(sqs: Any) -> None:
    """policies-etl's input queue, and its dead-letter queue holding three failed partitions."""
    sqs.create_queue(QueueName=DLQ_SOURCE)
    sqs.create_queue(QueueName=DLQ_QUEUE)
    for message in DLQ_MESSAGES:
        sqs.send_message(QueueUrl=queue_url(DLQ_QUEUE), MessageBody=json.dumps(message))


def seed_world(replay: AwsReplay, aws: AwsClients, *, kpi: KpiWorld | None = None) -> dict[str, Any]:
    """The whole sandbox world: moto-run pipelines, a DLQ, and the recorded policies-etl failure (returned).

    Args:
        replay: The replay endpoint.
        aws: Clients pointed at the replay endpoint (or moto).
        kpi: The KPI world, whose raw layer then goes to S3 and the Glue Data Catalog (one partition short).
    """
    seed(aws.client("stepfunctions"))
    seed_dead_letters(aws.client("sqs"))
    if kpi is not None:
        seed_kpi_catalog(kpi, aws.client("glue"), aws.client("s3"))
    return load_scenario(read_scenario(RECORDED_FAILURE), replay, aws)


def write_project_file(path: Path, *, kpi: KpiWorld | None = None) -> Path:
    """Write the etl-doctor.yml that describes the sandbox's pipelines (and, given a KPI world, its KPI and check)."""
    lines = [
        f'default_channel: "{ALERTS_CHANNEL}"',
        "sns_topics:",
        f"  - arn:aws:sns:{SANDBOX_REGION}:{SANDBOX_ACCOUNT}:etl-*",
        "pipelines:",
    ]
    for pipeline in PIPELINES:
        lines += [
            f"  {pipeline.name}:",
            f"    state_machine_arn: {pipeline.state_machine_arn}",
            f'    description: "{pipeline.description}"',
        ]
    lines += [
        "alerts:",
        "  group_window_minutes: 60",
        "permissions:",
        "  - actions: [retry, redrive, dlq_replay]",
        "    pipelines: [policies-etl]",
        f"    users: [{ONCALL_LEAD}]",
        "  - actions: [ack, snooze]",
        f"    usergroups: [{ONCALL_GROUP}]",
        "dlq:",
        f"  {DLQ_NAME}:",
        f"    queue_url: {queue_url(DLQ_QUEUE)}",
        "    pipeline: policies-etl",
        '    description: "Partitions the loader gave up on"',
        f"    target: {{queue_url: {queue_url(DLQ_SOURCE)}}}",
    ]
    if kpi is not None:
        fragment = project_fragment(kpi, pipeline=KPI_PIPELINE, channel=ALERTS_CHANNEL)
        lines += yaml.safe_dump(fragment, sort_keys=False, allow_unicode=True, width=120).splitlines()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

"""The sandbox's pipelines: state machines and executions seeded into moto, and the matching etl-doctor.yml."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sandbox.moto_server import SANDBOX_ACCOUNT, SANDBOX_REGION

ROLE_ARN = f"arn:aws:iam::{SANDBOX_ACCOUNT}:role/etl-doctor-sandbox"
ALERTS_CHANNEL = "#etl-alerts"


@dataclass(frozen=True)
class SandboxPipeline:
    """A pipeline of the demo world."""

    name: str
    description: str
    definition: dict[str, Any]
    runs: tuple[str, ...]

    @property
    def state_machine_arn(self) -> str:
        """Its state machine's ARN in the sandbox account."""
        return f"arn:aws:states:{SANDBOX_REGION}:{SANDBOX_ACCOUNT}:stateMachine:{self.name}"


def _failing_load() -> dict[str, Any]:
    return {
        "Comment": "Extract policies, then load the fact table (fails: the loader runs out of memory).",
        "StartAt": "ExtractPolicies",
        "States": {
            "ExtractPolicies": {"Type": "Pass", "Next": "LoadFactPolicies"},
            "LoadFactPolicies": {
                "Type": "Fail",  # custom error names must not start with "States." (reserved by the ASL spec)
                "Error": "LoadFailed",
                "Cause": "Essential container in task exited: OutOfMemoryError: Container killed due to memory usage",
            },
        },
    }


def _succeeding() -> dict[str, Any]:
    return {
        "StartAt": "ExtractClaims",
        "States": {"ExtractClaims": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}},
    }


PIPELINES: tuple[SandboxPipeline, ...] = (
    SandboxPipeline("policies-etl", "Oracle policies → Redshift fact_policies", _failing_load(), ("run-2025-02-18",)),
    SandboxPipeline("claims-etl", "Claims feed → Redshift fact_claims", _succeeding(), ("run-2025-02-18",)),
    SandboxPipeline("billing-etl", "Billing export (weekly)", _succeeding(), ()),
)


def seed(stepfunctions: Any, *, wait_seconds: float = 20.0) -> None:
    """Create the sandbox's state machines, start their runs and wait until each run has finished.

    Args:
        stepfunctions: A boto3 ``stepfunctions`` client pointed at the moto server.
        wait_seconds: Longest wait for executions to leave RUNNING.

    Raises:
        TimeoutError: An execution was still running after ``wait_seconds``.
    """
    started: list[str] = []
    for pipeline in PIPELINES:
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


def write_project_file(path: Path) -> Path:
    """Write the etl-doctor.yml that describes the sandbox's pipelines."""
    lines = [f'default_channel: "{ALERTS_CHANNEL}"', "pipelines:"]
    for pipeline in PIPELINES:
        lines += [
            f"  {pipeline.name}:",
            f"    state_machine_arn: {pipeline.state_machine_arn}",
            f'    description: "{pipeline.description}"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

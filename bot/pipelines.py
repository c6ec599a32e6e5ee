"""Pipeline overview: each configured pipeline with its latest execution."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.aws.errors import describe_aws_error
from bot.aws.stepfunctions import ExecutionSummary, StateMachineNotFoundError, StepFunctionsGateway
from bot.config import ProjectConfig

_MAX_PARALLEL_CALLS = 8


@dataclass(frozen=True)
class PipelineStatus:
    """A configured pipeline and what its state machine last did.

    Attributes:
        name: Pipeline name from etl-doctor.yml.
        state_machine_arn: Its state machine.
        description: One line from the config.
        channel: Where its alerts go.
        latest: The most recent execution, None if none (or on error).
        problem: Why ``latest`` could not be read, if it could not.
    """

    name: str
    state_machine_arn: str
    description: str
    channel: str | None
    latest: ExecutionSummary | None
    problem: str | None = None


def pipeline_statuses(project: ProjectConfig, stepfunctions: StepFunctionsGateway, region: str) -> list[PipelineStatus]:
    """Look up the latest execution of every configured pipeline, a few calls in parallel.

    A failure for one pipeline (missing state machine, access denied) is reported on that pipeline
    and does not hide the others.

    Args:
        project: The project config (pipelines).
        stepfunctions: Gateway to Step Functions.
        region: Region name used in messages.

    Returns:
        One status per pipeline, in name order.
    """
    names = sorted(project.pipelines)

    def one(name: str) -> PipelineStatus:
        config = project.pipelines[name]
        latest: ExecutionSummary | None = None
        problem: str | None = None
        try:
            latest = stepfunctions.latest_execution(config.state_machine_arn)
        except StateMachineNotFoundError:
            problem = f"state machine not found in {region}"
        except Exception as exc:
            described = describe_aws_error(exc)
            if described is None:
                raise
            problem = described
        return PipelineStatus(
            name=name,
            state_machine_arn=config.state_machine_arn,
            description=config.description,
            channel=project.channel_for(name),
            latest=latest,
            problem=problem,
        )

    if len(names) <= 1:
        return [one(name) for name in names]
    with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL_CALLS, len(names))) as pool:
        return list(pool.map(one, names))

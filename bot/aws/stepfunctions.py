"""Step Functions gateway: the few calls etl-doctor makes, returning plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


class StateMachineNotFoundError(Exception):
    """The state machine does not exist in the region (or the ARN is malformed)."""


@dataclass(frozen=True)
class ExecutionSummary:
    """One execution as ListExecutions describes it."""

    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    start_date: datetime
    stop_date: datetime | None


class StepFunctionsGateway:
    """Calls Step Functions through one boto3 client.

    Args:
        client: A ``stepfunctions`` client (from `AwsClients`).
    """

    def __init__(self, client: SFNClient) -> None:
        self._client = client

    def latest_execution(self, state_machine_arn: str) -> ExecutionSummary | None:
        """Return the most recently started execution of a state machine, or None if it never ran.

        Raises:
            StateMachineNotFoundError: No such state machine.
        """
        try:
            page = self._client.list_executions(stateMachineArn=state_machine_arn, maxResults=1)
        except self._client.exceptions.StateMachineDoesNotExist:
            raise StateMachineNotFoundError(state_machine_arn) from None
        except self._client.exceptions.InvalidArn:
            raise StateMachineNotFoundError(state_machine_arn) from None
        executions = [_summary(item) for item in page.get("executions", [])]
        # AWS lists newest first; taking the newest explicitly keeps emulators that ignore maxResults honest.
        return max(executions, key=lambda execution: execution.start_date, default=None)


def _summary(item: Any) -> ExecutionSummary:
    return ExecutionSummary(
        execution_arn=item["executionArn"],
        state_machine_arn=item["stateMachineArn"],
        name=item["name"],
        status=item["status"],
        start_date=item["startDate"],
        stop_date=item.get("stopDate"),
    )

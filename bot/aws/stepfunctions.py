"""Step Functions gateway: the few calls etl-doctor makes, returning plain dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.errors import UserFacingError

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

HISTORY_PAGE_SIZE = 1000  # the API's maximum: the failure and what scheduled it are nearly always on page one


class StateMachineNotFoundError(UserFacingError):
    """The state machine does not exist in the region (or the ARN is malformed)."""


class ExecutionNotFoundError(UserFacingError):
    """The execution does not exist in the region."""


@dataclass(frozen=True)
class ExecutionSummary:
    """One execution as ListExecutions describes it."""

    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    start_date: datetime
    stop_date: datetime | None


@dataclass(frozen=True)
class ExecutionDescription:
    """DescribeExecution's answer, the fields etl-doctor uses."""

    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    start_date: datetime
    stop_date: datetime | None
    error: str | None
    cause: str | None
    input: str | None
    map_run_arn: str | None
    redrive_count: int
    redrive_status: str | None
    state_machine_version_arn: str | None

    @classmethod
    def from_api(cls, item: Any, *, fallback_arn: str = "") -> ExecutionDescription:
        """Build from a DescribeExecution response (live, or saved by the AWS CLI)."""
        arn = item.get("executionArn", fallback_arn)
        return cls(
            execution_arn=arn,
            state_machine_arn=item.get("stateMachineArn", ""),
            name=item.get("name") or arn.rsplit(":", 1)[-1],
            status=item["status"],
            start_date=item["startDate"],
            stop_date=item.get("stopDate"),
            error=item.get("error"),
            cause=item.get("cause"),
            input=item.get("input"),
            map_run_arn=item.get("mapRunArn"),
            redrive_count=int(item.get("redriveCount", 0)),
            redrive_status=item.get("redriveStatus"),
            state_machine_version_arn=item.get("stateMachineVersionArn"),
        )


@dataclass(frozen=True)
class StateMachineDefinition:
    """The definition an execution ran, and where the state machine logs."""

    name: str
    definition: dict[str, Any]
    log_group_arns: tuple[str, ...]
    log_level: str | None


class StepFunctionsGateway:
    """Calls Step Functions through one boto3 client.

    Args:
        client: A ``stepfunctions`` client (from `AwsClients`).
    """

    def __init__(self, client: SFNClient) -> None:
        self._client = client

    @property
    def region(self) -> str:
        """The client's region."""
        return str(self._client.meta.region_name)

    def latest_execution(self, state_machine_arn: str) -> ExecutionSummary | None:
        """Return the most recently started execution of a state machine, or None if it never ran.

        Raises:
            StateMachineNotFoundError: No such state machine.
        """
        executions = self._list(stateMachineArn=state_machine_arn, maxResults=1)
        # AWS lists newest first; taking the newest explicitly keeps emulators that ignore maxResults honest.
        return max(executions, key=lambda execution: execution.start_date, default=None)

    def latest_failure(self, state_machine_arn: str) -> ExecutionSummary | None:
        """The most recent FAILED, TIMED_OUT or ABORTED execution (three filtered calls), or None."""
        found = [
            execution
            for status in ("FAILED", "TIMED_OUT", "ABORTED")
            for execution in self._list(stateMachineArn=state_machine_arn, statusFilter=status, maxResults=1)
        ]
        return max(found, key=lambda execution: execution.start_date, default=None)

    def failed_map_run_executions(self, map_run_arn: str, *, limit: int = 100) -> list[ExecutionSummary]:
        """Child executions of a Distributed Map run that failed (at most ``limit``)."""
        return self._list(mapRunArn=map_run_arn, statusFilter="FAILED", maxResults=limit)

    def map_run_item_counts(self, map_run_arn: str) -> dict[str, int] | None:
        """DescribeMapRun's ``itemCounts`` (``failed``, ``total``, ``succeeded``…), or None when it cannot be read."""
        from botocore.exceptions import ClientError

        try:
            counts: dict[str, Any] = dict(self._client.describe_map_run(mapRunArn=map_run_arn).get("itemCounts") or {})
        except ClientError:
            return None  # optional: the failed children are still listed and the first one diagnosed
        return {key: int(value) for key, value in counts.items()}

    def _list(self, **request: Any) -> list[ExecutionSummary]:
        try:
            page = self._client.list_executions(**request)
        except (self._client.exceptions.StateMachineDoesNotExist, self._client.exceptions.InvalidArn):
            raise StateMachineNotFoundError(
                f"state machine {request.get('stateMachineArn') or request.get('mapRunArn')} not found in {self.region}"
            ) from None
        except self._client.exceptions.ResourceNotFound:
            raise StateMachineNotFoundError(f"map run {request.get('mapRunArn')} not found in {self.region}") from None
        return [_summary(item) for item in page.get("executions", [])]

    def find_state_machine(self, name: str) -> str | None:
        """The ARN of the state machine called ``name`` in this region, or None."""
        paginator = self._client.get_paginator("list_state_machines")
        for page in paginator.paginate():
            for machine in page.get("stateMachines", []):
                if machine["name"] == name:
                    return str(machine["stateMachineArn"])
        return None

    def describe_execution(self, execution_arn: str) -> ExecutionDescription:
        """DescribeExecution.

        Raises:
            ExecutionNotFoundError: No such execution (or a malformed ARN).
        """
        try:
            item = self._client.describe_execution(executionArn=execution_arn)
        except (self._client.exceptions.ExecutionDoesNotExist, self._client.exceptions.InvalidArn):
            raise ExecutionNotFoundError(f"execution {execution_arn} not found in {self.region}") from None
        return ExecutionDescription.from_api(item, fallback_arn=execution_arn)

    def start_execution(self, state_machine_arn: str, name: str, execution_input: str) -> tuple[str, datetime]:
        """StartExecution with a deterministic name (idempotent in AWS for the same name and input).

        Returns:
            The execution's ARN and start date.
        """
        item = self._client.start_execution(stateMachineArn=state_machine_arn, name=name, input=execution_input)
        return str(item["executionArn"]), item["startDate"]

    def redrive_execution(self, execution_arn: str, client_token: str) -> datetime:
        """RedriveExecution with a client token (a repeat with the same token does not redrive twice)."""
        item = self._client.redrive_execution(executionArn=execution_arn, clientToken=client_token)
        redriven: datetime = item["redriveDate"]
        return redriven

    def state_machine_type(self, state_machine_arn: str) -> str:
        """``STANDARD`` or ``EXPRESS``."""
        return str(self._client.describe_state_machine(stateMachineArn=state_machine_arn).get("type", "STANDARD"))

    def history_page(
        self, execution_arn: str, token: str | None, *, page_size: int = HISTORY_PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the history, newest first."""
        request: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": page_size}
        if token:
            request["nextToken"] = token
        page = self._client.get_execution_history(**request)
        return [dict(event) for event in page["events"]], page.get("nextToken")

    def definition_for_execution(self, execution_arn: str) -> StateMachineDefinition:
        """The definition (and logging configuration) of the version this execution ran."""
        item = self._client.describe_state_machine_for_execution(executionArn=execution_arn)
        logging_config = item.get("loggingConfiguration") or {}
        groups = tuple(
            str(destination.get("cloudWatchLogsLogGroup", {}).get("logGroupArn"))
            for destination in logging_config.get("destinations", [])
            if destination.get("cloudWatchLogsLogGroup", {}).get("logGroupArn")
        )
        return StateMachineDefinition(
            name=item["name"],
            definition=json.loads(item["definition"]),
            log_group_arns=groups,
            log_level=logging_config.get("level"),
        )


def _summary(item: Any) -> ExecutionSummary:
    return ExecutionSummary(
        execution_arn=item["executionArn"],
        state_machine_arn=item["stateMachineArn"],
        name=item["name"],
        status=item["status"],
        start_date=item["startDate"],
        stop_date=item.get("stopDate"),
    )

"""StartExecution and RedriveExecution on the replay endpoint, through boto3, with Step Functions' semantics.

The rules come from the Step Functions API reference (the StartExecution and RedriveExecution pages, also in
botocore's service model): StartExecution is idempotent for the same name and input while that execution runs,
and answers ExecutionAlreadyExists when the input differs or the execution has closed; RedriveExecution restarts
FAILED, TIMED_OUT and ABORTED executions that closed in the last 14 days, and answers the same redriveDate again
for a client token it has already seen (15 minutes, last 10 tokens).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.aws.clients import AwsClients
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.scenarios import load_scenario, read_scenario
from tests.conftest import EXECUTIONS

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"
RECORDED_RUN = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18"
ROLE = "arn:aws:iam::123456789012:role/policies-etl-sfn"
INPUT = json.dumps({"business_date": "2025-02-18", "pipeline": "policies-etl"}, separators=(",", ":"))  # as recorded

Load = Callable[[str], dict[str, Any]]


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def _replayed(replay: AwsReplay, operation: str) -> list[bool]:
    return [call.replayed for call in replay.calls if call.operation == operation]


def _serve_step_functions(name: str, replay: AwsReplay, aws: AwsClients) -> dict[str, Any]:
    """A recorded scenario's executions and state machines, rebased as `load` does, without its logs and
    metrics (seconds of moto writes these tests never read)."""
    scenario = read_scenario(EXECUTIONS / name)
    return load_scenario({k: v for k, v in scenario.items() if k not in {"logs", "metrics", "ecs"}}, replay, aws)


@pytest.fixture
def sfn(replay: AwsReplay, replay_aws: AwsClients) -> Any:
    """Step Functions through the replay, serving ecs_oom's policies-etl and its FAILED run-2025-02-18."""
    _serve_step_functions("ecs_oom", replay, replay_aws)
    return replay_aws.stepfunctions


# ---------------------------------------------------------------- StartExecution


def test_start_execution_of_a_recorded_machine_runs_and_is_visible(
    load: Load, replay: AwsReplay, replay_aws: AwsClients
) -> None:
    load("ecs_oom")  # the whole scenario, as the bot's tests serve it
    sfn = replay_aws.stepfunctions
    before = datetime.now(UTC)
    started = sfn.start_execution(stateMachineArn=MACHINE, name="retry-run-2025-02-18-1", input=INPUT)

    arn = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:retry-run-2025-02-18-1"
    assert started["executionArn"] == arn
    assert before - timedelta(seconds=1) <= started["startDate"] <= datetime.now(UTC) + timedelta(seconds=1)

    described = sfn.describe_execution(executionArn=arn)
    assert described["status"] == "RUNNING"
    assert described["name"] == "retry-run-2025-02-18-1"
    assert described["stateMachineArn"] == MACHINE
    assert described["input"] == INPUT
    assert described["startDate"] == started["startDate"]
    assert described["redriveCount"] == 0
    assert described["redriveStatus"] == "NOT_REDRIVABLE"
    assert described["redriveStatusReason"] == "Execution is RUNNING and cannot be redriven"
    assert "stopDate" not in described and "error" not in described

    events = sfn.get_execution_history(executionArn=arn)["events"]
    assert [event["type"] for event in events] == ["ExecutionStarted"]
    assert events[0]["id"] == 1 and events[0]["previousEventId"] == 0
    assert events[0]["executionStartedEventDetails"] == {
        "input": INPUT,
        "inputDetails": {"truncated": False},
        "roleArn": ROLE,
    }

    listed = sfn.list_executions(stateMachineArn=MACHINE)["executions"]
    assert [item["executionArn"] for item in listed] == [arn, RECORDED_RUN]  # newest first
    assert listed[0]["status"] == "RUNNING"
    running = sfn.list_executions(stateMachineArn=MACHINE, statusFilter="RUNNING")["executions"]
    assert [item["executionArn"] for item in running] == [arn]

    assert [doc["executionArn"] for doc in replay.started_executions()] == [arn]
    assert replay.started_executions()[0]["status"] == "RUNNING"
    assert replay.call_counts()["states:StartExecution"] == 1
    assert _replayed(replay, "StartExecution") == [True]


def test_same_name_and_input_is_idempotent_while_running(sfn: Any, replay: AwsReplay) -> None:
    first = sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)
    again = sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)

    assert again["executionArn"] == first["executionArn"]
    assert again["startDate"] == first["startDate"]
    assert len(replay.started_executions()) == 1
    assert len(sfn.list_executions(stateMachineArn=MACHINE)["executions"]) == 2
    assert len(sfn.get_execution_history(executionArn=first["executionArn"])["events"]) == 1


def test_same_name_with_another_input_already_exists(sfn: Any, replay: AwsReplay) -> None:
    first = sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)

    with pytest.raises(ClientError) as raised:
        sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input='{"business_date":"2025-02-19"}')

    assert _error(raised) == ("ExecutionAlreadyExists", f"Execution Already Exists: '{first['executionArn']}'", 400)
    assert isinstance(raised.value, sfn.exceptions.ExecutionAlreadyExists)
    assert len(replay.started_executions()) == 1
    assert _replayed(replay, "StartExecution") == [True, True]


def test_same_name_after_the_execution_closed_already_exists(sfn: Any, replay: AwsReplay) -> None:
    """API reference: "If the execution is closed or if the input is different, it returns a 400
    ExecutionAlreadyExists error" (the name is reusable 90 days after it closes)."""
    first = sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)
    replay.finish_execution(first["executionArn"], "SUCCEEDED")

    with pytest.raises(ClientError) as raised:
        sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)
    assert _error(raised)[0] == "ExecutionAlreadyExists"

    with pytest.raises(ClientError) as recorded:  # the recorded FAILED run's name is taken too
        sfn.start_execution(stateMachineArn=MACHINE, name="run-2025-02-18", input=INPUT)
    assert _error(recorded)[:2] == ("ExecutionAlreadyExists", f"Execution Already Exists: '{RECORDED_RUN}'")


def test_a_name_is_reusable_90_days_after_its_execution_closed(replay: AwsReplay, replay_aws: AwsClients) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=91)
    old = {
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:nightly:2024-11-01",
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:nightly",
        "name": "2024-11-01",
        "status": "FAILED",
        "startDate": long_ago.isoformat(),
        "stopDate": (long_ago + timedelta(minutes=5)).isoformat(),
        "input": "{}",
    }
    replay.add_execution(old, [])

    started = replay_aws.stepfunctions.start_execution(stateMachineArn=old["stateMachineArn"], name="2024-11-01")

    assert started["executionArn"] == old["executionArn"]
    described = replay_aws.stepfunctions.describe_execution(executionArn=old["executionArn"])
    assert described["status"] == "RUNNING" and "stopDate" not in described


def test_machine_known_only_from_recorded_executions(replay: AwsReplay, replay_aws: AwsClients) -> None:
    """No DescribeStateMachine recorded: the machine ARN comes from the execution, the role from its history."""
    recorded = {
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:orphan:first",
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:orphan",
        "name": "first",
        "status": "FAILED",
        "startDate": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "stopDate": (datetime.now(UTC) - timedelta(minutes=50)).isoformat(),
    }
    started_event = {
        "timestamp": recorded["startDate"],
        "type": "ExecutionStarted",
        "id": 1,
        "previousEventId": 0,
        "executionStartedEventDetails": {"input": "{}", "roleArn": "arn:aws:iam::123456789012:role/orphan"},
    }
    replay.add_execution(recorded, [started_event])
    sfn = replay_aws.stepfunctions

    started = sfn.start_execution(stateMachineArn=recorded["stateMachineArn"])  # no name: a UUID, like AWS

    name = started["executionArn"].rsplit(":", 1)[1]
    assert len(name) == 36 and name.count("-") == 4
    assert started["executionArn"] == f"arn:aws:states:us-east-1:123456789012:execution:orphan:{name}"
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert described["input"] == "{}" and described["name"] == name
    details = sfn.get_execution_history(executionArn=started["executionArn"])["events"][0]
    assert details["executionStartedEventDetails"]["roleArn"] == "arn:aws:iam::123456789012:role/orphan"


def test_version_arn_starts_the_machine_and_is_remembered(sfn: Any) -> None:
    started = sfn.start_execution(stateMachineArn=f"{MACHINE}:3", name="on-version-3")

    assert started["executionArn"].endswith(":execution:policies-etl:on-version-3")
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert described["stateMachineArn"] == MACHINE
    assert described["stateMachineVersionArn"] == f"{MACHINE}:3"


def test_invalid_name_and_input_are_refused(sfn: Any, replay: AwsReplay) -> None:
    with pytest.raises(ClientError) as name:
        sfn.start_execution(stateMachineArn=MACHINE, name="retry 1", input=INPUT)
    assert _error(name)[:2] == ("InvalidName", "Invalid Name: 'retry 1'")

    with pytest.raises(ClientError) as too_long:
        sfn.start_execution(stateMachineArn=MACHINE, name="x" * 81, input=INPUT)
    assert _error(too_long)[0] == "ValidationException"

    with pytest.raises(ClientError) as bad_input:
        sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input="{not json")
    assert _error(bad_input)[0] == "InvalidExecutionInput"
    assert replay.started_executions() == []


def test_unknown_machine_goes_to_moto(sfn: Any, replay: AwsReplay) -> None:
    unknown = "arn:aws:states:us-east-1:123456789012:stateMachine:not-recorded"

    with pytest.raises(ClientError) as raised:
        sfn.start_execution(stateMachineArn=unknown, name="retry-1", input=INPUT)

    assert _error(raised)[0] == "StateMachineDoesNotExist"  # moto's answer
    assert _replayed(replay, "StartExecution") == [False]
    assert replay.started_executions() == []


def test_fifty_concurrent_identical_starts_make_one_execution(sfn: Any, replay: AwsReplay) -> None:
    barrier = threading.Barrier(50)

    def start(_: int) -> str:
        barrier.wait(timeout=30)
        arn: str = sfn.start_execution(stateMachineArn=MACHINE, name="retry-storm", input=INPUT)["executionArn"]
        return arn

    with ThreadPoolExecutor(max_workers=50) as pool:
        arns = list(pool.map(start, range(50)))

    assert set(arns) == {"arn:aws:states:us-east-1:123456789012:execution:policies-etl:retry-storm"}
    assert len(replay.started_executions()) == 1
    assert replay.call_counts()["states:StartExecution"] == 50
    assert len(sfn.list_executions(stateMachineArn=MACHINE)["executions"]) == 2


def test_recorded_machine_without_executions_lists_none(replay: AwsReplay, replay_aws: AwsClients) -> None:
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:empty"
    replay.add_state_machine({"stateMachineArn": machine, "name": "empty", "type": "STANDARD", "status": "ACTIVE"})

    assert replay_aws.stepfunctions.list_executions(stateMachineArn=machine)["executions"] == []
    started = replay_aws.stepfunctions.start_execution(stateMachineArn=machine, name="first")
    listed = replay_aws.stepfunctions.list_executions(stateMachineArn=machine)["executions"]
    assert [item["executionArn"] for item in listed] == [started["executionArn"]]


# ---------------------------------------------------------------- RedriveExecution


def test_redrive_the_recorded_failed_run(sfn: Any, replay: AwsReplay) -> None:
    recorded_events = sfn.get_execution_history(executionArn=RECORDED_RUN)["events"]
    before = datetime.now(UTC)

    redriven = sfn.redrive_execution(executionArn=RECORDED_RUN, clientToken="slack-action-1")

    assert before - timedelta(seconds=1) <= redriven["redriveDate"] <= datetime.now(UTC) + timedelta(seconds=1)
    described = sfn.describe_execution(executionArn=RECORDED_RUN)
    assert described["status"] == "RUNNING"
    assert described["redriveCount"] == 1
    assert described["redriveDate"] == redriven["redriveDate"]
    assert described["redriveStatus"] == "NOT_REDRIVABLE"
    assert described["redriveStatusReason"] == "Execution is RUNNING and cannot be redriven"
    assert not {"error", "cause", "stopDate"} & described.keys()
    assert described["input"] == INPUT  # a redrive keeps the execution's input and ARN

    events = sfn.get_execution_history(executionArn=RECORDED_RUN, maxResults=1000)["events"]
    assert events[:-1] == recorded_events
    assert events[-1]["type"] == "ExecutionRedriven"
    assert events[-1]["id"] == recorded_events[-1]["id"] + 1
    assert events[-1]["executionRedrivenEventDetails"] == {"redriveCount": 1}

    listed = sfn.list_executions(stateMachineArn=MACHINE, redriveFilter="REDRIVEN")["executions"]
    assert [(item["executionArn"], item["status"], item["redriveCount"]) for item in listed] == [
        (RECORDED_RUN, "RUNNING", 1)
    ]
    assert sfn.list_executions(stateMachineArn=MACHINE, redriveFilter="NOT_REDRIVEN")["executions"] == []
    assert replay.started_executions() == []  # a redrive starts no new execution
    assert _replayed(replay, "RedriveExecution") == [True]


def test_redrive_is_idempotent_by_client_token(sfn: Any, replay: AwsReplay) -> None:
    first = sfn.redrive_execution(executionArn=RECORDED_RUN, clientToken="slack-action-1")
    again = sfn.redrive_execution(executionArn=RECORDED_RUN, clientToken="slack-action-1")

    assert again["redriveDate"] == first["redriveDate"]
    assert sfn.describe_execution(executionArn=RECORDED_RUN)["redriveCount"] == 1

    with pytest.raises(ClientError) as raised:
        sfn.redrive_execution(executionArn=RECORDED_RUN, clientToken="slack-action-2")
    code, message, status = _error(raised)
    assert (code, status) == ("ExecutionNotRedrivable", 400)
    assert message == f"Execution is RUNNING and cannot be redriven: '{RECORDED_RUN}'"
    assert isinstance(raised.value, sfn.exceptions.ExecutionNotRedrivable)
    assert sfn.describe_execution(executionArn=RECORDED_RUN)["redriveCount"] == 1
    assert replay.call_counts()["states:RedriveExecution"] == 3


def test_concurrent_redrives_redrive_once(sfn: Any) -> None:
    barrier = threading.Barrier(20)

    def redrive(i: int) -> str:
        barrier.wait(timeout=30)
        token = "same-click" if i % 2 else f"other-click-{i}"
        try:
            return str(sfn.redrive_execution(executionArn=RECORDED_RUN, clientToken=token)["redriveDate"])
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(redrive, range(20)))

    assert sfn.describe_execution(executionArn=RECORDED_RUN)["redriveCount"] == 1
    dates = {answer for answer in answers if answer != "ExecutionNotRedrivable"}
    assert len(dates) == 1
    assert answers.count("ExecutionNotRedrivable") >= 9  # every "other" token but perhaps the winner


def test_redrive_a_succeeded_execution_is_refused(sfn: Any, replay: AwsReplay) -> None:
    started = sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)
    replay.finish_execution(started["executionArn"], "SUCCEEDED", output='{"rows": 1200}')

    with pytest.raises(ClientError) as raised:
        sfn.redrive_execution(executionArn=started["executionArn"], clientToken="t-1")

    assert _error(raised)[:2] == (
        "ExecutionNotRedrivable",
        f"Execution is SUCCEEDED and cannot be redriven: '{started['executionArn']}'",
    )


def test_redrive_an_unknown_execution(sfn: Any, replay: AwsReplay) -> None:
    unknown = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:never-ran"

    with pytest.raises(ClientError) as raised:
        sfn.redrive_execution(executionArn=unknown)
    assert _error(raised) == ("ExecutionDoesNotExist", f"Execution Does Not Exist: '{unknown}'", 400)

    with pytest.raises(ClientError) as described:  # what DescribeExecution answers (moto) for the same ARN
        sfn.describe_execution(executionArn=unknown)
    assert _error(described)[0] == "ExecutionDoesNotExist"

    with pytest.raises(ClientError) as invalid:
        sfn.redrive_execution(executionArn=MACHINE)
    assert _error(invalid)[0] == "InvalidArn"
    assert _replayed(replay, "RedriveExecution") == [True, True]


def test_redrive_outside_the_14_day_window_is_refused(replay: AwsReplay, replay_aws: AwsClients) -> None:
    stopped = datetime.now(UTC) - timedelta(days=15)
    old = {
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:nightly:old",
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:nightly",
        "name": "old",
        "status": "TIMED_OUT",
        "startDate": (stopped - timedelta(hours=1)).isoformat(),
        "stopDate": stopped.isoformat(),
    }
    replay.add_execution(old, [])
    recent = copy.deepcopy(old) | {
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:nightly:recent",
        "name": "recent",
        "status": "ABORTED",
        "startDate": (datetime.now(UTC) - timedelta(days=13)).isoformat(),
        "stopDate": (datetime.now(UTC) - timedelta(days=13)).isoformat(),
    }
    replay.add_execution(recent, [])  # no redriveStatus recorded: redrivable, it closed 13 days ago
    sfn = replay_aws.stepfunctions

    with pytest.raises(ClientError) as raised:
        sfn.redrive_execution(executionArn=old["executionArn"])
    assert _error(raised)[:2] == (
        "ExecutionNotRedrivable",
        f"Execution redrivable period exceeded: '{old['executionArn']}'",
    )
    assert sfn.redrive_execution(executionArn=recent["executionArn"])["redriveDate"]
    assert sfn.describe_execution(executionArn=recent["executionArn"])["status"] == "RUNNING"


def test_a_map_run_child_is_redriven_only_by_its_map_run(replay: AwsReplay, replay_aws: AwsClients) -> None:
    scenario = _serve_step_functions("map_distributed", replay, replay_aws)
    child = next(
        arn
        for arn, recorded in scenario["executions"].items()
        if recorded["describe"].get("redriveStatus") == "REDRIVABLE_BY_MAP_RUN"
    )

    with pytest.raises(ClientError) as raised:
        replay_aws.stepfunctions.redrive_execution(executionArn=child)

    code, message, _status = _error(raised)
    assert code == "ExecutionNotRedrivable" and "Map Run" in message


# ---------------------------------------------------------------- test seams


def test_finish_execution_is_what_describe_and_history_show(sfn: Any, replay: AwsReplay) -> None:
    started = sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)
    arn = started["executionArn"]

    replay.finish_execution(arn, "FAILED", error="States.TaskFailed", cause="OutOfMemoryError: Container killed")

    described = sfn.describe_execution(executionArn=arn)
    assert described["status"] == "FAILED"
    assert described["error"] == "States.TaskFailed"
    assert described["cause"] == "OutOfMemoryError: Container killed"
    assert described["stopDate"] >= described["startDate"]
    assert described["redriveStatus"] == "REDRIVABLE" and "redriveStatusReason" not in described
    events = sfn.get_execution_history(executionArn=arn)["events"]
    assert [event["type"] for event in events] == ["ExecutionStarted", "ExecutionFailed"]
    assert events[1]["executionFailedEventDetails"] == {
        "error": "States.TaskFailed",
        "cause": "OutOfMemoryError: Container killed",
    }
    assert replay.started_executions()[0]["status"] == "FAILED"

    sfn.redrive_execution(executionArn=arn, clientToken="t-1")  # a failed retry can be redriven
    replay.finish_execution(arn, "SUCCEEDED", output='{"rows": 1200}')

    described = sfn.describe_execution(executionArn=arn)
    assert (described["status"], described["redriveCount"], described["output"]) == ("SUCCEEDED", 1, '{"rows": 1200}')
    assert described["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven"
    assert "error" not in described
    events = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=2)["events"]
    assert [event["type"] for event in events] == ["ExecutionSucceeded", "ExecutionRedriven"]
    assert [event["id"] for event in events] == [4, 3]


def test_finish_execution_refuses_what_aws_could_not_do(sfn: Any, replay: AwsReplay) -> None:
    started = sfn.start_execution(stateMachineArn=MACHINE, name="retry-1", input=INPUT)

    with pytest.raises(KeyError):
        replay.finish_execution("arn:aws:states:us-east-1:123456789012:execution:policies-etl:nope", "FAILED")
    with pytest.raises(ValueError, match="status"):
        replay.finish_execution(started["executionArn"], "DONE")
    with pytest.raises(ValueError, match="no output"):
        replay.finish_execution(started["executionArn"], "FAILED", output="{}")
    with pytest.raises(ValueError, match="not RUNNING"):
        replay.finish_execution(RECORDED_RUN, "SUCCEEDED")  # the recorded run has FAILED already
    replay.finish_execution(started["executionArn"], "ABORTED")
    assert sfn.describe_execution(executionArn=started["executionArn"])["status"] == "ABORTED"


def test_slow_down_delays_concurrent_calls_in_parallel(sfn: Any, replay: AwsReplay) -> None:
    delay = 0.5
    replay.slow_down("StartExecution", delay)
    barrier = threading.Barrier(5)

    def start(i: int) -> float:
        barrier.wait(timeout=30)
        began = time.monotonic()
        sfn.start_execution(stateMachineArn=MACHINE, name=f"slow-{i}", input=INPUT)
        return time.monotonic() - began

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=5) as pool:
        durations = list(pool.map(start, range(5)))
    elapsed = time.monotonic() - began

    assert replay.call_counts()["states:StartExecution"] == 5
    assert min(durations) >= delay * 0.9  # each call was slowed…
    assert replay.in_flight_peak("StartExecution") >= 2  # …and they waited side by side, not one after another
    assert elapsed < 5 * delay  # generous: a serialised delay would take 5 × 0.5 s
    assert len(replay.started_executions()) == 5

    slow_start = time.monotonic()
    sfn.describe_execution(executionArn=RECORDED_RUN)  # other operations are not slowed
    assert time.monotonic() - slow_start < delay

    replay.slow_down("StartExecution", 0)
    replay.reset_calls()
    quick = time.monotonic()
    sfn.start_execution(stateMachineArn=MACHINE, name="fast", input=INPUT)
    assert time.monotonic() - quick < delay
    assert replay.in_flight_peak("StartExecution") == 1


def test_slow_down_rejects_a_negative_delay(replay: AwsReplay) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        replay.slow_down("StartExecution", -1)

"""`why` where real histories and streams get awkward: interleaved Map iterations, warm Lambda streams, capped map
runs, deep child chains, Causes without the error, and the state machine's own log group.

Everything is served through the real boto3 code path: recorded scenarios (tests/fixtures/executions) from the
replay endpoint and moto, altered in place the way AWS would produce them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.config import ProjectConfig, load_settings
from bot.diagnosis.model import Diagnosis
from bot.diagnosis.runner import diagnose
from bot.sandbox.aws_replay import AwsReplay, parse_time
from bot.sandbox.scenarios import load_scenario, put_log_stream, put_metric, read_scenario
from bot.services import Services
from tests.conftest import EXECUTIONS
from tests.unit.test_history_budget import concurrent_map_history

ACCOUNT = "arn:aws:states:us-east-1:123456789012"


def _services(aws: AwsClients) -> Services:
    return Services(load_settings({"AWS_REGION": "us-east-1"}, project=ProjectConfig()), aws=aws)


def _only(scenario: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (arn,) = scenario["executions"]
    return arn, scenario["executions"][arn]


def _event(history: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(event for event in reversed(history) if event["type"] == kind)


def _sfn_calls(replay: AwsReplay) -> int:
    calls = replay.call_counts()
    return calls["states:DescribeExecution"] + calls["states:GetExecutionHistory"]


# ------------------------------------------------------------------ history budget (interleaved Map iterations)


def _serve_in_map(scenario: dict[str, Any], replay: AwsReplay, state: str, *, twin: str | None = None) -> None:
    """Serve the scenario's state machine with the recorded Task ``state`` moved into an inline Map.

    The definition `concurrent_map_history` implies: ``LoadPartitions`` runs ``state`` for each item.
    With ``twin``, a copy of the task (same Resource, other name) runs after it in the same iteration.
    """
    (machine,) = scenario["state_machines"].values()
    task = {k: v for k, v in json.loads(machine["definition"])["States"][state].items() if k not in {"Next", "End"}}
    states = {state: task | {"End": True}}
    if twin is not None:
        states = {state: task | {"Next": twin}, twin: copy.deepcopy(task) | {"End": True}}
    processor = {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": state, "States": states}
    loop = {"Type": "Map", "ItemsPath": "$.partitions", "ItemProcessor": processor, "End": True}
    definition = {"StartAt": "LoadPartitions", "States": {"LoadPartitions": loop}}
    replay.add_state_machine(machine | {"definition": json.dumps(definition)})


def test_ecs_failure_pages_after_its_scheduling_event_is_still_followed(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    # 2,500+ events of other Map iterations between the task's TaskSubmitted and its TaskFailed: the scheduling
    # events are on the history's third page, beyond the budget. The Cause (the ECS task JSON) is enough to go on.
    # The failed state is named from the definition: the Map's only ecs:runTask.sync task.
    scenario = load("ecs_oom")
    arn, recorded = _only(scenario)
    history = concurrent_map_history(recorded["history"], "LoadFactPolicies", between=2_500)
    failed = _event(history, "TaskFailed")
    assert failed["id"] - failed["previousEventId"] > 2_500
    replay.add_execution(recorded["describe"], history)
    _serve_in_map(scenario, replay, "LoadFactPolicies")
    replay.reset_calls()

    diagnosis = diagnose([arn], _services(replay_aws))

    assert _sfn_calls(replay) <= 3
    assert replay.call_counts()["states:DescribeStateMachineForExecution"] == 1
    assert diagnosis.context["history_pages"] == 2
    assert diagnosis.failed_state == "LoadFactPolicies" and diagnosis.integration == "ecs"
    assert any(note.startswith("the failed state's scheduling event is more than") for note in diagnosis.notes)
    assert (
        "the failed state is `LoadFactPolicies`, the only `ecs:runTask.sync` task in `LoadPartitions` "
        "(its scheduling event was not read)"
    ) in diagnosis.notes
    hops = [(hop.kind, hop.label, hop.detail) for hop in diagnosis.hops[1:3]]
    assert hops == [
        ("map", "LoadPartitions", "iteration #0 failed"),
        ("state", "LoadFactPolicies", "States.TaskFailed"),
    ]
    assert [advice.state for advice in diagnosis.retry_audit] == ["LoadFactPolicies"]  # the task's Retry, not the Map's
    kinds = [hop.kind for hop in diagnosis.hops if hop.followed]
    assert {"ecs_task", "container", "log_stream"} <= set(kinds)
    assert diagnosis.root_exception == "java.lang.OutOfMemoryError: Java heap space"
    assert diagnosis.category == "out_of_memory"
    # the task's start comes from the Cause, so the memory metrics are still read
    assert any(note.startswith("memory reached") for note in diagnosis.resource_notes)


def test_lambda_failure_pages_after_its_scheduling_event_is_followed_from_the_definition(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    # Only the scheduling event's parameters name the function: the Map's only lambda:invoke task names it too.
    scenario = load("lambda_error")
    arn, recorded = _only(scenario)
    expected = scenario["expected"]
    history = concurrent_map_history(recorded["history"], "ScanLandedFile", between=2_600)
    replay.add_execution(recorded["describe"], history)
    _serve_in_map(scenario, replay, "ScanLandedFile")
    replay.reset_calls()

    diagnosis = diagnose([arn], _services(replay_aws))

    assert _sfn_calls(replay) <= 3
    assert replay.call_counts()["states:DescribeStateMachineForExecution"] == 1
    assert diagnosis.failed_state == "ScanLandedFile"
    assert diagnosis.integration == "lambda" and diagnosis.error == "KeyError"
    assert (
        "the failed state is `ScanLandedFile`, the only `lambda:invoke` task in `LoadPartitions` "
        "(its scheduling event was not read)"
    ) in diagnosis.notes
    assert not [note for note in diagnosis.notes if "named only by the scheduling event" in note]
    (function,) = [hop for hop in diagnosis.hops if hop.kind == "lambda"]
    assert function.label == "documents-etl-scan"
    assert function.detail.startswith(f"request {expected['request_id']}")  # the request id from the Cause
    assert replay.call_counts()["lambda:GET"] == 1  # its configuration is asked for (the log group, the timeout)
    followed = [hop.label for hop in diagnosis.hops if hop.kind == "log_stream" and hop.followed]
    assert followed == [f"{expected['log_group']} › {expected['log_stream']}"]
    assert diagnosis.evidence and all(line.log_group == expected["log_group"] for line in diagnosis.evidence)
    assert (diagnosis.root_exception or "").startswith("KeyError")
    assert any(diagnosis.root_exception in line.message for line in diagnosis.evidence)  # read from the logs
    assert diagnosis.category == "code_bug"


def test_two_tasks_that_could_have_failed_are_not_guessed_between(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    # Two lambda:invoke tasks in the Map: the failed one is not guessed, and the function stays unknown.
    scenario = load("lambda_error")
    arn, recorded = _only(scenario)
    history = concurrent_map_history(recorded["history"], "ScanLandedFile", between=2_600)
    replay.add_execution(recorded["describe"], history)
    _serve_in_map(scenario, replay, "ScanLandedFile", twin="ScanAgain")
    replay.reset_calls()

    diagnosis = diagnose([arn], _services(replay_aws))

    assert _sfn_calls(replay) <= 3
    assert replay.call_counts()["states:DescribeStateMachineForExecution"] == 1
    assert diagnosis.failed_state == "LoadPartitions"
    assert (
        "2 `lambda:invoke` tasks in `LoadPartitions` could have failed (`ScanLandedFile`, `ScanAgain`); "
        "without the scheduling event the failed one is not known"
    ) in diagnosis.notes
    assert diagnosis.integration == "lambda" and diagnosis.error == "KeyError"
    assert (diagnosis.root_exception or "").startswith("KeyError")  # from the Cause's errorType and stackTrace
    assert diagnosis.category == "code_bug"
    assert "the Lambda function is named only by the scheduling event, which was not read" in diagnosis.notes
    assert not diagnosis.evidence
    assert replay.call_counts()["logs:FilterLogEvents"] == 0


def test_an_unreadable_definition_is_asked_for_once_and_reported(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    scenario = load("lambda_error")
    arn, recorded = _only(scenario)
    history = concurrent_map_history(recorded["history"], "ScanLandedFile", between=2_600)
    unknown = recorded["describe"]["stateMachineArn"] + "-deleted"  # neither recorded nor in moto
    replay.add_execution(recorded["describe"] | {"stateMachineArn": unknown}, history)
    replay.reset_calls()

    diagnosis = diagnose([arn], _services(replay_aws))

    assert replay.call_counts()["states:DescribeStateMachineForExecution"] == 1
    assert diagnosis.failed_state == "LoadPartitions"
    (note,) = [note for note in diagnosis.notes if note.startswith("definition not read: ")]
    assert "DescribeStateMachineForExecution" in note
    assert "the Lambda function is named only by the scheduling event, which was not read" in diagnosis.notes


# ------------------------------------------------------------------ Lambda evidence bounded to the invocation

REQUEST_ID = "58b2e4d1-7c6a-4f09-8e3d-2b1a9c7f6e04"  # the failing (third) invocation of lambda_error
NEXT_ID = "a4b6c8d0-e2f4-4a61-8b3c-5d7e9f1a2b4c"  # a later invocation in the same warm environment


def _other_invocation_error() -> str:
    """A real traceback of another function (map_inline's ValueError), as the next invocation's failure."""
    scenario = read_scenario(EXECUTIONS / "map_inline")
    return next(e["message"] for stream in scenario["logs"] for e in stream["events"] if "ValueError" in e["message"])


def _at(base: str, milliseconds: int) -> str:
    return (parse_time(base) + timedelta(milliseconds=milliseconds)).isoformat()


def _warm_lambda_scenario(fmt: str, *, busy_lines: int = 0) -> dict[str, Any]:
    """lambda_error with the next invocation (another traceback) logged in the same stream right after ours."""
    scenario = read_scenario(EXECUTIONS / "lambda_error")
    (stream,) = scenario["logs"]
    report = stream["events"][-1]["timestamp"]
    error = _other_invocation_error()
    stream["events"] += [
        {"timestamp": _at(report, 400), "message": f"START RequestId: {NEXT_ID} Version: $LATEST\n"},
        *(
            {
                "timestamp": _at(report, 500 + i),
                "message": f"Script starting at 2025/02/18 05:20:{8 + i // 1000:02d} UTC\n",
            }
            for i in range(busy_lines)
        ),
        {"timestamp": _at(report, 900 + busy_lines), "message": error},
        {"timestamp": _at(report, 902 + busy_lines), "message": f"END RequestId: {NEXT_ID}\n"},
        {
            "timestamp": _at(report, 902 + busy_lines),
            "message": f"REPORT RequestId: {NEXT_ID}\tDuration: 1300.00 ms\tBilled Duration: 1301 ms\t"
            "Memory Size: 2048 MB\tMax Memory Used: 74 MB\t\n",
        },
    ]
    if fmt == "json":
        stream["events"] = [event | {"message": _as_json_format(event)} for event in stream["events"]]
        function = scenario["lambda"]["functions"]["documents-etl-scan"]
        function["LoggingConfig"] = function["LoggingConfig"] | {"LogFormat": "JSON"}
    return scenario


def _as_json_format(event: dict[str, Any]) -> str:
    """A plain-text line of the Lambda Python runtime as the JSON log format writes it (AWS Lambda docs,
    "Configuring JSON and plain text log formats"; the error object as the Python runtime logs it).

    System lines: ``{"time", "type": "platform.start|platform.runtimeDone|platform.report", "record": {...}}``;
    an uncaught exception: ``{"timestamp", "log_level": "ERROR", "errorMessage", "errorType", "requestId",
    "stackTrace"}``; ``print`` output stays plain text.
    """
    message: str = event["message"]
    when = parse_time(event["timestamp"]).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    words = message.split()
    if message.startswith(("START RequestId:", "END RequestId:", "REPORT RequestId:")):
        kind = {"START": "platform.start", "END": "platform.runtimeDone", "REPORT": "platform.report"}[words[0]]
        record: dict[str, Any] = {"requestId": words[2]}
        record |= {"version": "$LATEST"} if kind == "platform.start" else {"status": "error"}
        return json.dumps({"time": when, "type": kind, "record": record}, separators=(",", ":"))
    if message.startswith("[ERROR] "):
        head, _, rest = message.partition("\n")
        error_type, _, error_message = head.removeprefix("[ERROR] ").partition(": ")
        frames = rest.split("\n")[1:]
        stack = ["\n".join(frames[i : i + 2]) + "\n" for i in range(0, len(frames) - 1, 2) if frames[i].strip()]
        owner = REQUEST_ID if "Records" in error_message else NEXT_ID
        return json.dumps(
            {
                "timestamp": when[:19] + "Z",
                "log_level": "ERROR",
                "errorMessage": error_message,
                "errorType": error_type,
                "requestId": owner,
                "stackTrace": stack,
            }
        )
    return message


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_lambda_evidence_is_the_failed_invocation_only(fmt: str, replay: AwsReplay, replay_aws: AwsClients) -> None:
    scenario = load_scenario(_warm_lambda_scenario(fmt), replay, replay_aws)
    diagnosis = diagnose([_only(scenario)[0]], _services(replay_aws))

    assert (diagnosis.root_exception or "").startswith("KeyError"), diagnosis.root_exception
    assert diagnosis.evidence
    messages = [line.message for line in diagnosis.evidence]
    assert not [m for m in messages if NEXT_ID in m or "ValueError" in m], messages  # not the next invocation's
    earlier = ("3f6c9a1e-2b7d-4e80-9c15-6a4d8e2f1b73", "a0d5e7c2-9f31-48b6-b2e4-71c8d9f0a6e5")
    assert not [m for m in messages if any(request in m for request in earlier)]  # nor the earlier attempts'
    assert REQUEST_ID in messages[-1] and ("REPORT" in messages[-1] or "platform.report" in messages[-1])


def test_lambda_invocation_pushed_out_of_the_tail_is_found_by_its_request_id(
    replay: AwsReplay, replay_aws: AwsClients
) -> None:
    # The next invocation logs 400 lines within the minute after ours: the stream's tail holds none of ours.
    scenario = load_scenario(_warm_lambda_scenario("text", busy_lines=400), replay, replay_aws)
    replay.reset_calls()
    diagnosis = diagnose([_only(scenario)[0]], _services(replay_aws))
    assert (diagnosis.root_exception or "").startswith("KeyError")
    messages = [line.message for line in diagnosis.evidence]
    assert messages[-1].startswith(f"REPORT RequestId: {REQUEST_ID}")
    assert any("KeyError: 'Records'" in m for m in messages) and not [m for m in messages if NEXT_ID in m]
    assert replay.call_counts()["logs:GetLogEvents"] == 2  # the tail, then the tail up to our REPORT line


# ------------------------------------------------------------------ fingerprint stability


def test_fingerprint_does_not_depend_on_the_log_lines_around_the_failure(
    load: Callable[[str], dict[str, Any]], replay_aws: AwsClients
) -> None:
    scenario = load("ecs_oom")
    arn, _ = _only(scenario)
    (stream,) = scenario["logs"]
    trace_ms = max(int(parse_time(e["timestamp"]).timestamp() * 1000) for e in stream["events"])
    services = _services(replay_aws)

    def shutdown(lines: list[str], offset_ms: int) -> Diagnosis:
        events = [
            {"timestamp": trace_ms + offset_ms + i * 10, "message": f"25/02/18 03:11:51 INFO {line}"}
            for i, line in enumerate(lines)
        ]
        put_log_stream(replay_aws, stream["group"], stream["stream"], events)
        return diagnose([arn], services)

    first = shutdown(["MemoryStore: MemoryStore cleared", "BlockManager: BlockManager stopped"] * 3, 500)
    second = shutdown(
        ["SparkContext: Successfully stopped SparkContext", "ShutdownHookManager: Shutdown hook called"] * 3, 900
    )
    assert [line.message for line in first.evidence][-5:] != [line.message for line in second.evidence][-5:]
    assert first.category == second.category == "out_of_memory"
    assert first.fingerprint == second.fingerprint


# ------------------------------------------------------------------ Container Insights CPU


def test_cpu_is_read_with_memory_in_one_call(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    scenario = load("ecs_oom")
    arn, recorded = _only(scenario)
    failed = parse_time(_event(recorded["history"], "TaskFailed")["timestamp"])
    task_id = scenario["expected"]["task_arn"].rsplit("/", 1)[-1]
    points = [[(failed - timedelta(minutes=9)).isoformat(), 150.0]]  # busy only at the end: not averaged in
    points += [[(failed - timedelta(seconds=s)).isoformat(), 993.28] for s in (270, 210, 150, 90, 30)]
    put_metric(
        replay_aws,
        {
            "namespace": "ECS/ContainerInsights",
            "name": "CpuUtilized",
            "dimensions": {"ClusterName": "etl", "TaskId": task_id},
            "unit": "None",
            "points": points,
        },
    )
    replay.reset_calls()
    diagnosis = diagnose([arn], _services(replay_aws))
    assert "CPU averaged 97% of 1024 units in the 5 min before exit (Container Insights)" in diagnosis.resource_notes
    assert any(note.startswith("memory reached 98% of 4096 MiB") for note in diagnosis.resource_notes)
    assert diagnosis.context["ecs"]["cpu_average_pct"] == 97.0
    assert replay.call_counts()["monitoring:POST"] == 1  # memory and CPU in the same GetMetricData call


# ------------------------------------------------------------------ the state machine's own log group

SFN_LOG_GROUP = "/aws/vendedlogs/states/flights-glue-athena-Logs"


def _sfn_log_line(arn: str, event: dict[str, Any]) -> str:
    """A history event as Step Functions logs it to CloudWatch Logs (ids and timestamps as strings).

    The shape of the lines in ``/aws/vendedlogs/states/<name>-Logs`` (streams ``states/<name>/<hour>/<id>``) as
    public examples show them, e.g. the Step Functions log events in DataDog/datadog-serverless-functions'
    ``aws/logs_monitoring`` tests.
    """
    moment = int(parse_time(event["timestamp"]).timestamp() * 1000)
    event_details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
    document = {
        "id": str(event["id"]),
        "type": event["type"],
        "details": event_details,
        "previous_event_id": str(event.get("previousEventId", 0)),
        "event_timestamp": str(moment),
        "execution_arn": arn,
        "redrive_count": "0",
    }
    return json.dumps(document, separators=(",", ":"))


def test_state_machine_log_group_gives_evidence_when_the_task_gives_none(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    # The failed state is an AWS SDK integration (glue:startCrawler) that is not followed: no task logs.
    scenario = load("parallel")
    arn, recorded = _only(scenario)
    (machine,) = scenario["state_machines"].values()
    logging = {
        "level": "ALL",
        "includeExecutionData": True,
        "destinations": [
            {
                "cloudWatchLogsLogGroup": {
                    "logGroupArn": f"arn:aws:logs:us-east-1:123456789012:log-group:{SFN_LOG_GROUP}:*"
                }
            }
        ],
    }
    replay.add_state_machine(machine | {"loggingConfiguration": logging})
    other = arn.rsplit(":", 1)[0] + ":an-earlier-run"
    history = recorded["history"]
    ours = [
        e for e in history if e["type"] in {"TaskStateEntered", "TaskFailed", "ParallelStateFailed", "ExecutionFailed"}
    ]
    lines = [
        {"timestamp": _at(e["timestamp"], -30_000), "message": _sfn_log_line(other, e)}
        for e in history
        if e["type"] in {"TaskFailed", "ExecutionFailed"}
    ]
    lines += [{"timestamp": e["timestamp"], "message": _sfn_log_line(arn, e)} for e in ours]
    put_log_stream(replay_aws, SFN_LOG_GROUP, "states/flights-glue-athena/2025-02-18-10/0a1b2c3d", lines)
    replay.reset_calls()

    diagnosis = diagnose([arn], _services(replay_aws))

    (hop,) = [h for h in diagnosis.hops if h.kind == "state_machine_logs"]
    assert hop.detail == "level ALL · 3 failure events of this execution read"
    kinds = [json.loads(line.message)["type"] for line in diagnosis.evidence]
    assert kinds == ["TaskFailed", "ParallelStateFailed", "ExecutionFailed"]
    assert all(json.loads(line.message)["execution_arn"] == arn for line in diagnosis.evidence)
    assert all(line.log_group == SFN_LOG_GROUP and line.url for line in diagnosis.evidence)
    (search,) = [
        c for c in replay.calls if c.operation == "FilterLogEvents" and c.params["logGroupName"] == SFN_LOG_GROUP
    ]
    assert search.params["filterPattern"] == f'"{arn}"'


def test_state_machine_log_group_is_not_read_when_the_task_gave_evidence(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    scenario = load("ecs_oom")
    (machine,) = scenario["state_machines"].values()
    group = "/aws/vendedlogs/states/policies-etl-Logs"
    logging = {
        "level": "ERROR",
        "destinations": [
            {"cloudWatchLogsLogGroup": {"logGroupArn": f"arn:aws:logs:us-east-1:123456789012:log-group:{group}:*"}}
        ],
    }
    replay.add_state_machine(machine | {"loggingConfiguration": logging})
    replay.reset_calls()
    diagnosis = diagnose([_only(scenario)[0]], _services(replay_aws))
    assert diagnosis.evidence and all(line.log_group == "/ecs/policies-etl" for line in diagnosis.evidence)
    assert not [c for c in replay.calls if c.params.get("logGroupName") == group]


# ------------------------------------------------------------------ container-start failures


@pytest.mark.parametrize(
    ("name", "images", "secrets"),
    [
        ("ecs_cannot_pull", ["docker.io/acme/claims-transform:1.8.2"], []),
        (
            "ecs_resource_init",
            ["123456789012.dkr.ecr.us-east-1.amazonaws.com/billing-export:41"],
            ["arn:aws:secretsmanager:us-east-1:123456789012:secret:billing-etl/warehouse-password-EaPYTy"],
        ),
    ],
)
def test_container_start_failure_names_images_and_secrets(
    name: str, images: list[str], secrets: list[str], load: Callable[[str], dict[str, Any]], replay: AwsReplay,
    replay_aws: AwsClients,
) -> None:  # fmt: skip
    scenario = load(name)
    replay.reset_calls()
    diagnosis = diagnose([_only(scenario)[0]], _services(replay_aws))
    assert any("never started" in note for note in diagnosis.notes)
    assert diagnosis.context["container_images"] == images
    assert diagnosis.context["container_secrets"] == secrets
    assert replay.call_counts()["ecs:DescribeTaskDefinition"] == 1
    assert "log_stream" not in [hop.kind for hop in diagnosis.hops]


# ------------------------------------------------------------------ Parallel and Distributed Map


def test_parallel_names_the_failed_branch(load: Callable[[str], dict[str, Any]], replay_aws: AwsClients) -> None:
    diagnosis = diagnose([_only(load("parallel"))[0]], _services(replay_aws))
    (hop,) = [h for h in diagnosis.hops if h.kind == "parallel"]
    assert hop.label == "Parallel" and hop.detail == "branch 2 of 2 (starts at `StartCrawler`) failed"


def test_capped_map_run_failures_are_counted_by_describe_map_run(replay: AwsReplay, replay_aws: AwsClients) -> None:
    # ListExecutions(mapRunArn, FAILED) answers one page of 100: DescribeMapRun's itemCounts say how many in all.
    scenario = read_scenario(EXECUTIONS / "map_distributed")
    (run,) = scenario["map_runs"].values()
    failed = next(item for item in run["executions"] if item["status"] == "FAILED")
    for index in range(129):
        twin = copy.deepcopy(failed)
        twin["name"] = f"{index:08d}-0000-3000-8000-000000000000"
        twin["executionArn"] = failed["executionArn"].rsplit(":", 1)[0] + ":" + twin["name"]
        twin["startDate"] = _at(failed["startDate"], -1 - index)
        twin["stopDate"] = _at(failed["stopDate"], 1 + index)
        run["executions"].append(twin)
    for counts in ("itemCounts", "executionCounts"):
        run["describe"][counts] |= {"failed": 130, "succeeded": 370, "pending": 0, "total": 500}
    scenario = load_scenario(scenario, replay, replay_aws)
    parent = next(arn for arn, record in scenario["executions"].items() if "mapRunArn" not in record["describe"])
    replay.reset_calls()

    diagnosis = diagnose([parent], _services(replay_aws))

    (hop,) = [h for h in diagnosis.hops if h.kind == "map_run"]
    assert hop.detail == "130 of 500 items failed"
    assert "129 more items of the map run failed; showing the first" in diagnosis.notes
    assert diagnosis.context["child"]["execution_arn"] == failed["executionArn"]
    assert replay.call_counts()["states:DescribeMapRun"] == 1


def test_uncapped_map_run_needs_no_describe_map_run(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    scenario = load("map_distributed")
    parent = next(arn for arn, record in scenario["executions"].items() if "mapRunArn" not in record["describe"])
    replay.reset_calls()
    diagnosis = diagnose([parent], _services(replay_aws))
    (hop,) = [h for h in diagnosis.hops if h.kind == "map_run"]
    assert hop.detail == "1 child executions failed"
    assert replay.call_counts()["states:DescribeMapRun"] == 0


# ------------------------------------------------------------------ child executions: the depth limit


def _nested_chain(levels: int) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``levels`` + 1 executions, each failing in a startExecution.sync task that ran the next.

    Shapes as in the child_execution scenario: TaskScheduled, TaskStarted, TaskSubmitted{ExecutionArn},
    TaskFailed{Cause: the child}, ExecutionFailed.
    """
    template = read_scenario(EXECUTIONS / "child_execution")
    parent = template["executions"][f"{ACCOUNT}:execution:policies-etl-orchestrator:nightly-2025-02-20"]
    arns = [f"{ACCOUNT}:execution:nested-level-{level}:run-2025-02-20" for level in range(levels + 1)]
    chain = []
    for level, arn in enumerate(arns[:-1]):
        child = arns[level + 1]
        history = copy.deepcopy(parent["history"])
        for event in history:
            for key, value in list(event.items()):
                if key.endswith("EventDetails") and isinstance(value, dict):
                    text = json.dumps(value).replace(parent["describe"]["stateMachineArn"], arn.rsplit(":", 1)[0])
                    event[key] = json.loads(text)
        cause = json.dumps({"ExecutionArn": child, "Status": "FAILED", "Error": "States.TaskFailed", "Cause": "{}"})
        submitted = _event(history, "TaskSubmitted")["taskSubmittedEventDetails"]
        submitted["output"] = json.dumps({"ExecutionArn": child, "StartDate": 1740020401000})
        _event(history, "TaskFailed")["taskFailedEventDetails"]["cause"] = cause
        _event(history, "ExecutionFailed")["executionFailedEventDetails"]["cause"] = cause
        describe = parent["describe"] | {
            "executionArn": arn,
            "stateMachineArn": arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
            "name": arn.rsplit(":", 1)[-1],
            "error": "States.TaskFailed",
            "cause": cause,
        }
        chain.append((describe, history))
    return chain


def test_child_executions_are_followed_five_levels_deep(replay: AwsReplay, replay_aws: AwsClients) -> None:
    chain = _nested_chain(6)
    for describe, history in chain:
        replay.add_execution(describe, history)
    replay.reset_calls()

    diagnosis = diagnose([chain[0][0]["executionArn"]], _services(replay_aws))

    children = [hop for hop in diagnosis.hops if hop.kind == "child_execution"]
    assert [hop.followed for hop in children] == [True] * 5 + [False]
    assert children[-1].detail == "not followed: deeper than 5 levels"
    assert any(note.startswith("child executions are followed 5 levels deep") for note in diagnosis.notes)
    described = [call.params["executionArn"] for call in replay.calls if call.operation == "DescribeExecution"]
    assert described == [describe["executionArn"] for describe, _ in chain]  # the sixth child is never read


# ------------------------------------------------------------------ Glue and Batch: the Cause lacks the error


def _serve_with_cause(scenario: dict[str, Any], change: Callable[[str], str], replay: AwsReplay) -> str:
    """Serve the recorded execution with its TaskFailed Cause changed (calls counted from here); its ARN."""
    arn, recorded = _only(scenario)
    history = copy.deepcopy(recorded["history"])
    failed = _event(history, "TaskFailed")["taskFailedEventDetails"]
    failed["cause"] = change(failed["cause"])
    replay.add_execution(recorded["describe"], history)
    replay.reset_calls()
    return arn


def _truncated(cause: str) -> str:
    return cause[:400]  # Step Functions cuts a Cause at 32,768 characters: no longer JSON


def _without(*keys: str) -> Callable[[str], str]:
    return lambda cause: json.dumps({k: v for k, v in json.loads(cause).items() if k not in keys})


@pytest.mark.parametrize("change", [_truncated, _without("ErrorMessage")], ids=["truncated", "no_error_message"])
def test_glue_error_is_read_with_get_job_run(
    change: Callable[[str], str], load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    arn = _serve_with_cause(load("glue_failed"), change, replay)
    diagnosis = diagnose([arn], _services(replay_aws))
    assert replay.call_counts()["glue:GetJobRun"] == 1
    (hop,) = [h for h in diagnosis.hops if h.kind == "glue_job_run"]
    assert hop.detail.startswith("FAILED · AnalysisException: Path does not exist: s3://")
    assert diagnosis.category == "missing_resource"


@pytest.mark.parametrize("change", [_truncated, _without("StatusReason")], ids=["truncated", "no_status_reason"])
def test_batch_job_is_read_with_describe_jobs(
    change: Callable[[str], str], load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    arn = _serve_with_cause(load("batch_failed"), change, replay)
    diagnosis = diagnose([arn], _services(replay_aws))
    assert replay.call_counts()["batch:DescribeJobs"] == 1
    (hop,) = [h for h in diagnosis.hops if h.kind == "batch_job"]
    assert hop.detail == "FAILED · Essential container in task exited · exit 1"
    assert diagnosis.category == "permission_denied"
    assert (diagnosis.root_exception or "").startswith("botocore.exceptions.ClientError")

"""Consistency checks for the recorded failure scenarios in tests/fixtures/executions/.

Each scenario is a real-shaped Step Functions failure (GetExecutionHistory, DescribeExecution, DescribeStateMachine,
the downstream ECS/Lambda/Glue/Batch objects and their CloudWatch logs). These tests do not judge the diagnosis; they
keep the fixtures honest: API shapes, id chains, ARNs, log stream naming and time windows must agree, so the engine
is tested against what AWS would actually return.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.diagnosis.classify import CATEGORIES as CLASSIFIER_CATEGORIES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "executions"
SCENARIOS = sorted(p.parent.name for p in FIXTURES.glob("*/scenario.json"))
REQUIRED_SCENARIOS = {
    "ecs_oom",
    "ecs_cannot_pull",
    "ecs_resource_init",
    "lambda_error",
    "lambda_timeout",
    "glue_failed",
    "batch_failed",
    "child_execution",
    "map_inline",
    "map_distributed",
    "parallel",
    "fail_state",
    "states_runtime",
}
CATEGORIES = set(CLASSIFIER_CATEGORIES)
INTEGRATIONS = {"ecs", "lambda", "glue", "batch", "states", "map", "parallel", "fail", "runtime"}
ACCOUNT = "123456789012"
TERMINAL = {"ExecutionFailed": "FAILED", "ExecutionTimedOut": "TIMED_OUT", "ExecutionAborted": "ABORTED"}
MAX_CAUSE, MAX_ERROR = 32768, 256  # HistoryEvent *EventDetails length constraints

# HistoryEvent.type -> the one details member it carries (API_HistoryEvent). None: the event has no details.
DETAILS: dict[str, str | None] = {
    "ActivityFailed": "activityFailedEventDetails",
    "ActivityScheduled": "activityScheduledEventDetails",
    "ActivityScheduleFailed": "activityScheduleFailedEventDetails",
    "ActivityStarted": "activityStartedEventDetails",
    "ActivitySucceeded": "activitySucceededEventDetails",
    "ActivityTimedOut": "activityTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionStarted": "executionStartedEventDetails",
    "ExecutionSucceeded": "executionSucceededEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionRedriven": "executionRedrivenEventDetails",
    "FailStateEntered": "stateEnteredEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionScheduled": "lambdaFunctionScheduledEventDetails",
    "LambdaFunctionScheduleFailed": "lambdaFunctionScheduleFailedEventDetails",
    "LambdaFunctionStarted": None,
    "LambdaFunctionStartFailed": "lambdaFunctionStartFailedEventDetails",
    "LambdaFunctionSucceeded": "lambdaFunctionSucceededEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "MapIterationAborted": "mapIterationAbortedEventDetails",
    "MapIterationFailed": "mapIterationFailedEventDetails",
    "MapIterationStarted": "mapIterationStartedEventDetails",
    "MapIterationSucceeded": "mapIterationSucceededEventDetails",
    "MapStateAborted": None,
    "MapStateFailed": None,
    "MapStateStarted": "mapStateStartedEventDetails",
    "MapStateSucceeded": None,
    "MapRunAborted": None,
    "MapRunFailed": "mapRunFailedEventDetails",
    "MapRunStarted": "mapRunStartedEventDetails",
    "MapRunSucceeded": None,
    "MapRunRedriven": "mapRunRedrivenEventDetails",
    "ParallelStateAborted": None,
    "ParallelStateFailed": None,
    "ParallelStateStarted": None,
    "ParallelStateSucceeded": None,
    "TaskFailed": "taskFailedEventDetails",
    "TaskScheduled": "taskScheduledEventDetails",
    "TaskStarted": "taskStartedEventDetails",
    "TaskStartFailed": "taskStartFailedEventDetails",
    "TaskStateAborted": None,
    "TaskSubmitFailed": "taskSubmitFailedEventDetails",
    "TaskSubmitted": "taskSubmittedEventDetails",
    "TaskSucceeded": "taskSucceededEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "WaitStateAborted": None,
    "EvaluationFailed": "evaluationFailedEventDetails",
}
for _state in ("Choice", "Map", "Parallel", "Pass", "Succeed", "Task", "Wait"):
    DETAILS[f"{_state}StateEntered"] = "stateEnteredEventDetails"
    DETAILS[f"{_state}StateExited"] = "stateExitedEventDetails"

REQUIRED_FIELDS = {
    "taskScheduledEventDetails": {"resourceType", "resource", "region"},
    "taskStartedEventDetails": {"resourceType", "resource"},
    "taskSubmittedEventDetails": {"resourceType", "resource"},
    "taskSucceededEventDetails": {"resourceType", "resource"},
    "taskFailedEventDetails": {"resourceType", "resource"},
    "taskTimedOutEventDetails": {"resourceType", "resource"},
    "stateEnteredEventDetails": {"name"},
    "stateExitedEventDetails": {"name"},
    "mapIterationStartedEventDetails": {"name", "index"},
    "mapIterationSucceededEventDetails": {"name", "index"},
    "mapIterationFailedEventDetails": {"name", "index"},
    "mapIterationAbortedEventDetails": {"name", "index"},
    "mapRunStartedEventDetails": {"mapRunArn"},
    "lambdaFunctionScheduledEventDetails": {"resource"},
    "executionStartedEventDetails": {"roleArn"},
}
JSON_STRING_FIELDS = {"input", "output", "parameters"}

EXECUTION_ARN_RE = re.compile(r"arn:aws:states:[a-z0-9-]+:\d{12}:execution:[^\s\"'\\]+")
MAP_RUN_ARN_RE = re.compile(r"arn:aws:states:[a-z0-9-]+:\d{12}:mapRun:[^\s\"'\\]+")
ANY_ARN_ACCOUNT_RE = re.compile(r"arn:aws:[a-z0-9-]+:([a-z0-9-]*):(\d{12})")
LAMBDA_STREAM_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/\[\$LATEST\][0-9a-f]{32}$")
REQUEST_ID_RE = re.compile(r"^(START|END|REPORT) RequestId: ([0-9a-f-]{36})")


# ----------------------------------------------------------------------------------------------------- helpers


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name / "scenario.json").read_text())


def ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp without offset: {value}"
    return parsed


def details_of(event: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    keys = [k for k in event if k.endswith("EventDetails")]
    assert len(keys) <= 1, f"event {event['id']} has several details members: {keys}"
    return (keys[0], event[keys[0]]) if keys else (None, None)


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a structure, JSON strings unpacked too (causes embed JSON in JSON)."""
    if isinstance(value, str):
        yield value
        if value[:1] in "{[":
            try:
                inner = json.loads(value)
            except ValueError:
                return
            yield from strings_in(inner)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def state_names(definition: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for name, state in definition.get("States", {}).items():
        names.add(name)
        for branch in state.get("Branches", []):
            names |= state_names(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                names |= state_names(state[key])
    return names


def window(data: dict[str, Any]) -> tuple[datetime, datetime]:
    starts = [ts(e["describe"]["startDate"]) for e in data["executions"].values()]
    stops = [ts(e["describe"]["stopDate"]) for e in data["executions"].values()]
    return min(starts), max(stops)


def awslogs_streams(data: dict[str, Any]) -> dict[str, set[str]]:
    """awslogs-group -> the stream names the ECS tasks in this scenario write (prefix/container/task-id)."""
    ecs = data.get("ecs", {})
    by_family = {td["family"]: td for td in ecs.get("task_definitions", [])}
    streams: dict[str, set[str]] = {}
    for task_arn, task in ecs.get("tasks", {}).items():
        family = task["taskDefinitionArn"].rsplit("/", 1)[1].split(":")[0]
        td = by_family[family]
        task_id = task_arn.rsplit("/", 1)[1]
        for container in task["containers"]:
            cdef = next(c for c in td["containerDefinitions"] if c["name"] == container["name"])
            opts = cdef["logConfiguration"]["options"]
            stream = f"{opts['awslogs-stream-prefix']}/{container['name']}/{task_id}"
            streams.setdefault(opts["awslogs-group"], set()).add(stream)
    return streams


def failed_events(data: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    found = []
    for execution in data["executions"].values():
        for event in execution["history"]:
            if event["type"] == "TaskFailed" and event["taskFailedEventDetails"]["resourceType"] == resource_type:
                found.append(event["taskFailedEventDetails"])
    return found


# ----------------------------------------------------------------------------------------------------- tests


def test_all_required_scenarios_are_present() -> None:
    assert set(SCENARIOS) >= REQUIRED_SCENARIOS, sorted(REQUIRED_SCENARIOS - set(SCENARIOS))


def test_sources_md_names_every_scenario() -> None:
    text = (FIXTURES / "SOURCES.md").read_text()
    missing = [name for name in SCENARIOS if f"`{name}`" not in text]
    assert not missing, f"SOURCES.md does not describe: {missing}"


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, load(request.param)


def test_top_level_shape(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    for key in ("description", "sources", "region", "executions", "state_machines", "logs", "expected"):
        assert key in data, f"{name}: missing {key}"
    assert data["region"] == "us-east-1"
    assert data["executions"], name
    assert data["sources"]
    for source in data["sources"]:
        assert source["url"].startswith("https://"), source
        assert source["what"].strip(), source
    expected = data["expected"]
    assert expected["category"] in CATEGORIES, expected["category"]
    assert expected["integration"] in INTEGRATIONS, expected["integration"]
    assert expected["failed_state"]
    assert "root_exception" in expected


def test_every_arn_uses_the_fixture_account_and_region(scenario: tuple[str, dict[str, Any]]) -> None:
    _, data = scenario
    for text in strings_in(data):
        for region, account in ANY_ARN_ACCOUNT_RE.findall(text):
            assert account == ACCOUNT, text[:200]
            assert region in ("", "us-east-1"), text[:200]


def test_describe_execution(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    for arn, execution in data["executions"].items():
        d = execution["describe"]
        for key in ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate", "input"):
            assert key in d, f"{name}: describe of {arn} lacks {key}"
        assert d["executionArn"] == arn
        sm_name = d["stateMachineArn"].split(":stateMachine:", 1)[1]
        assert arn == d["stateMachineArn"].replace(":stateMachine:", ":execution:") + f":{d['name']}"
        assert arn.split(":execution:", 1)[1] == f"{sm_name}:{d['name']}"
        assert ts(d["startDate"]) <= ts(d["stopDate"])
        json.loads(d["input"])
        if "mapRunArn" not in d:
            assert d["stateMachineArn"] in data["state_machines"], f"{name}: no DescribeStateMachine for {arn}"
        else:
            assert d["mapRunArn"] in data.get("map_runs", {}), d["mapRunArn"]
        for key in ("error", "cause"):
            if key in d:
                assert d[key] is not None


def test_history_ids_links_and_details(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    for arn, execution in data["executions"].items():
        history = execution["history"]
        assert [e["id"] for e in history] == list(range(1, len(history) + 1)), f"{name}: ids of {arn}"
        previous_time = None
        for event in history:
            assert set(event) >= {"timestamp", "type", "id", "previousEventId"}
            assert isinstance(event["previousEventId"], int)
            assert 0 <= event["previousEventId"] < event["id"], f"{name}: event {event['id']} of {arn}"
            when = ts(event["timestamp"])
            assert previous_time is None or when >= previous_time, f"{name}: event {event['id']} goes back in time"
            previous_time = when
            assert event["type"] in DETAILS, f"{name}: unknown HistoryEventType {event['type']}"
            key, details = details_of(event)
            assert key == DETAILS[event["type"]], f"{name}: event {event['id']} {event['type']} carries {key}"
            if details is None:
                continue
            missing = REQUIRED_FIELDS.get(key, set()) - set(details)
            assert not missing, f"{name}: event {event['id']} {key} lacks {missing}"
            for field in JSON_STRING_FIELDS & set(details):
                assert isinstance(details[field], str), f"{name}: event {event['id']} {field} must be a JSON string"
                json.loads(details[field])
            if "cause" in details:
                assert len(details["cause"]) <= MAX_CAUSE
            if "error" in details:
                assert len(details["error"]) <= MAX_ERROR
        assert history[0]["type"] == "ExecutionStarted"
        assert history[0]["previousEventId"] == 0


def test_last_event_is_terminal_and_matches_describe(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    for arn, execution in data["executions"].items():
        history, d = execution["history"], execution["describe"]
        last = history[-1]
        assert last["type"] in TERMINAL, f"{name}: {arn} ends with {last['type']}"
        assert d["status"] == TERMINAL[last["type"]]
        assert ts(history[0]["timestamp"]) == ts(d["startDate"])
        assert ts(last["timestamp"]) == ts(d["stopDate"])
        _, details = details_of(last)
        for key in ("error", "cause"):
            if key in d:
                assert details is not None and details.get(key) == d[key], f"{name}: describe.{key} != history"


def test_referenced_executions_and_map_runs_are_present(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    map_runs = data.get("map_runs", {})
    for execution in data["executions"].values():
        for event in execution["history"]:
            _, details = details_of(event)
            for text in strings_in(details or {}):
                for ref in EXECUTION_ARN_RE.findall(text):
                    assert ref in data["executions"], f"{name}: event {event['id']} names {ref} (not recorded)"
                for ref in MAP_RUN_ARN_RE.findall(text):
                    assert ref in map_runs, f"{name}: event {event['id']} names map run {ref} (not recorded)"
    for run_arn, run in map_runs.items():
        d = run["describe"]
        assert d["mapRunArn"] == run_arn
        assert d["executionArn"] in data["executions"]
        for key in (
            "status",
            "startDate",
            "maxConcurrency",
            "toleratedFailureCount",
            "toleratedFailurePercentage",
            "itemCounts",
            "executionCounts",
        ):
            assert key in d, key
        counts = d["executionCounts"]
        listed = run["executions"]
        assert all(item["mapRunArn"] == run_arn for item in listed)
        assert sum(item["status"] == "FAILED" for item in listed) == counts["failed"]
        assert sum(item["status"] == "SUCCEEDED" for item in listed) == counts["succeeded"]
        failed = [item["executionArn"] for item in listed if item["status"] == "FAILED"]
        assert any(arn in data["executions"] for arn in failed), f"{name}: no failed child of {run_arn} recorded"
        for arn in failed:
            if arn in data["executions"]:
                assert data["executions"][arn]["describe"]["mapRunArn"] == run_arn


def test_state_machines_and_state_names(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    known: set[str] = set()
    for arn, sm in data["state_machines"].items():
        for key in ("stateMachineArn", "name", "status", "definition", "roleArn", "type", "creationDate"):
            assert key in sm, f"{name}: {arn} lacks {key}"
        assert sm["stateMachineArn"] == arn
        assert arn.endswith(f":stateMachine:{sm['name']}")
        assert isinstance(sm["definition"], str)
        known |= state_names(json.loads(sm["definition"]))
    entered = set()
    for execution in data["executions"].values():
        for event in execution["history"]:
            if event["type"].endswith("StateEntered"):
                entered.add(event["stateEnteredEventDetails"]["name"])
    assert entered <= known, f"{name}: states not in any definition: {entered - known}"
    assert data["expected"]["failed_state"] in entered


def test_expected_pointers(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    expected = data["expected"]
    if expected.get("child_execution_arn"):
        assert expected["child_execution_arn"] in data["executions"]
    if expected.get("map_run_arn"):
        assert expected["map_run_arn"] in data["map_runs"]
    if "failed_iteration" in expected:
        index = expected["failed_iteration"]
        iteration_failed = any(
            e["type"] == "MapIterationFailed" and e["mapIterationFailedEventDetails"]["index"] == index
            for x in data["executions"].values()
            for e in x["history"]
        )
        child = expected.get("child_execution_arn")
        child_index = json.loads(data["executions"][child]["describe"]["input"]).get("index") if child else None
        assert iteration_failed or child_index == index, f"{name}: iteration {index} is not the failed one"
    if expected.get("log_stream"):
        streams = {(lg["group"], lg["stream"]) for lg in data["logs"]}
        assert (expected["log_group"], expected["log_stream"]) in streams
    if expected.get("request_id"):
        texts = [ev["message"] for lg in data["logs"] if lg["stream"] == expected["log_stream"] for ev in lg["events"]]
        assert any(expected["request_id"] in t for t in texts)


def test_log_events_fall_inside_the_executions(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    start, stop = window(data)
    for lg in data["logs"]:
        assert lg["group"] and lg["stream"]
        times = [ts(ev["timestamp"]) for ev in lg["events"]]
        assert times, f"{name}: empty stream {lg['stream']}"
        assert times == sorted(times), f"{name}: {lg['stream']} is not in time order"
        assert start <= times[0] and times[-1] <= stop, f"{name}: {lg['stream']} outside {start}..{stop}"
    for metric in data.get("metrics", []):
        for key in ("namespace", "name", "dimensions", "unit", "points"):
            assert key in metric
        for when, value in metric["points"]:
            assert start <= ts(when) <= stop, f"{name}: metric point {when} outside the execution"
            assert isinstance(value, float)


def test_ecs_tasks_causes_and_streams(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    ecs = data.get("ecs")
    causes = failed_events(data, "ecs")
    if ecs is None:
        assert not causes, f"{name}: ECS failures without ecs.tasks"
        return
    for td in ecs["task_definitions"]:
        assert td["family"] and td["cpu"] and td["memory"]
        for cdef in td["containerDefinitions"]:
            log = cdef["logConfiguration"]
            assert log["logDriver"] == "awslogs"
            assert set(log["options"]) >= {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"}
    for arn, task in ecs["tasks"].items():
        assert task["taskArn"] == arn
        assert "TaskArn" not in task, "DescribeTasks objects are camelCase"
        assert task["lastStatus"] == "STOPPED"
    streams = awslogs_streams(data)
    for lg in data["logs"]:
        if lg["group"] in streams:
            assert lg["stream"] in streams[lg["group"]], f"{name}: {lg['stream']} is not prefix/container/task-id"
    if data["expected"].get("log_group") in streams and data["expected"].get("log_stream"):
        assert data["expected"]["log_stream"] in streams[data["expected"]["log_group"]]
    assert causes, f"{name}: ecs.tasks without a failed ECS task"
    for details in causes:
        assert details["error"] == "States.TaskFailed"
        cause = json.loads(details["cause"])
        assert "TaskArn" in cause and "taskArn" not in cause, "the Cause is the task in PascalCase"
        task = ecs["tasks"][cause["TaskArn"]]
        assert cause["StopCode"] == task["stopCode"]
        assert cause["StoppedReason"] == task["stoppedReason"]
        for c_cause, c_task in zip(cause["Containers"], task["containers"], strict=True):
            assert c_cause["Name"] == c_task["name"]
            assert c_cause.get("ExitCode") == c_task.get("exitCode")
            assert c_cause.get("Reason") == c_task.get("reason")
        assert isinstance(cause["StoppedAt"], int), "Step Functions writes dates as epoch milliseconds"


def test_lambda_streams(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    for lg in data["logs"]:
        if not lg["group"].startswith("/aws/lambda/"):
            continue
        match = LAMBDA_STREAM_RE.match(lg["stream"])
        assert match, f"{name}: {lg['stream']} is not YYYY/MM/DD/[$LATEST]<32 hex>"
        first = ts(lg["events"][0]["timestamp"])
        assert tuple(int(x) for x in match.groups()) == (first.year, first.month, first.day)
        started: set[str] = set()
        for ev in lg["events"]:
            found = REQUEST_ID_RE.match(ev["message"])
            if not found:
                continue
            kind, request_id = found.groups()
            if kind == "START":
                assert ev["message"].rstrip("\n").endswith("Version: $LATEST")
                started.add(request_id)
            else:
                assert request_id in started, f"{name}: {kind} for {request_id} without START"
            if kind == "REPORT":
                for field in ("Duration:", "Billed Duration:", "Memory Size:", "Max Memory Used:"):
                    assert field in ev["message"]
    for details in failed_events(data, "lambda"):
        cause = details.get("cause", "")
        if cause.startswith("{"):
            payload = json.loads(cause)
            assert set(payload) >= {"errorMessage", "errorType", "requestId", "stackTrace"}
            assert payload["errorType"] == details["error"]


def test_glue_runs_causes_and_streams(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    causes = failed_events(data, "glue")
    runs = data.get("glue", {}).get("job_runs", {})
    for key, run in runs.items():
        assert key == f"{run['JobName']}/{run['Id']}", "glue.job_runs keys are <JobName>/<JobRunId>"
    for details in causes:
        cause = json.loads(details["cause"])
        assert f"{cause['JobName']}/{cause['Id']}" in runs
        assert cause["JobRunState"] in {"FAILED", "TIMEOUT", "STOPPED", "ERROR"}
        assert isinstance(cause["StartedOn"], int)
    run_ids = {run["Id"] for run in runs.values()}
    for lg in data["logs"]:
        if lg["group"].startswith("/aws-glue/"):
            assert lg["group"] in {"/aws-glue/jobs/error", "/aws-glue/jobs/output"}
            assert lg["stream"] in run_ids, f"{name}: Glue stream {lg['stream']} is not a JobRunId"


def test_batch_jobs_causes_and_streams(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    jobs = data.get("batch", {}).get("jobs", {})
    for job_id, job in jobs.items():
        assert job["jobId"] == job_id and job["status"] in {"FAILED", "SUCCEEDED"}
    for details in failed_events(data, "batch"):
        cause = json.loads(details["cause"])
        job = jobs[cause["JobId"]]
        assert cause["Status"] == job["status"]
        assert cause["StatusReason"] == job["statusReason"]
        assert cause["Attempts"][-1]["Container"]["LogStreamName"] == job["attempts"][-1]["container"]["logStreamName"]
        assert cause["Attempts"][-1]["Container"]["ExitCode"] == job["attempts"][-1]["container"]["exitCode"]
    streams = {job["container"]["logStreamName"] for job in jobs.values()}
    for lg in data["logs"]:
        if lg["group"] == "/aws/batch/job":
            assert lg["stream"] in streams, f"{name}: {lg['stream']} is not a job's logStreamName"
            job_def = lg["stream"].split("/")[0]
            assert any(job["jobDefinition"].rsplit("/", 1)[1].split(":")[0] == job_def for job in jobs.values())


def test_child_execution_links(scenario: tuple[str, dict[str, Any]]) -> None:
    name, data = scenario
    for details in failed_events(data, "states"):
        cause = json.loads(details["cause"])
        child = cause["ExecutionArn"]
        assert child in data["executions"], f"{name}: failed child {child} not recorded"
        d = data["executions"][child]["describe"]
        assert cause["Status"] == d["status"]
        assert cause.get("Error") == d.get("error") and cause.get("Cause") == d.get("cause")
        child_input = json.loads(d["input"])
        parent = child_input.get("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID")
        assert parent in data["executions"], "the child names its parent"

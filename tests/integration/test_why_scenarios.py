"""`why` on recorded, real-shaped failures (tests/fixtures/executions), through the real boto3 code path.

Step Functions histories, ECS tasks, Glue runs and Batch jobs come from the replay endpoint (moto cannot
make them fail); logs, task definitions, Lambda configurations and metrics are in moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.config import ProjectConfig, load_settings
from bot.diagnosis.model import diagnosis_json
from bot.diagnosis.runner import diagnose
from bot.render.diagnosis import render_diagnosis
from bot.render.limits import BUTTON_TEXT_MAX, HEADER_TEXT_MAX, MESSAGE_BLOCKS_MAX, SECTION_TEXT_MAX
from bot.sandbox.aws_replay import AwsReplay, parse_time
from bot.sandbox.scenarios import load_scenario, read_scenario
from bot.services import Services
from tests.conftest import EXECUTIONS, SCENARIOS

JSON_KEYS = {
    "execution_arn", "status", "failed_state", "error", "cause_summary", "hops", "category", "confidence", "transient",
    "fingerprint", "root_exception", "evidence", "remediation", "retry_audit",
}  # fmt: skip


def _top_level(scenario: dict[str, Any]) -> str:
    """The execution a user would ask about: a parent stops when (or after) its failed child does."""
    children = {e["executionArn"] for run in scenario.get("map_runs", {}).values() for e in run["executions"]}
    candidates = [(arn, rec["describe"]) for arn, rec in scenario["executions"].items() if arn not in children]
    return max(candidates, key=lambda item: (parse_time(item[1]["stopDate"]), -len(item[0])))[0]


def _services(aws: AwsClients) -> Services:
    return Services(load_settings({"AWS_REGION": "us-east-1"}, project=ProjectConfig()), aws=aws)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_is_diagnosed(
    name: str, load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    scenario = load(name)
    expected = scenario["expected"]
    replay.reset_calls()
    diagnosis = diagnose([_top_level(scenario)], _services(replay_aws))

    assert diagnosis.status == "FAILED"
    failed = diagnosis.failed_state or ""
    assert failed == expected["failed_state"] or failed.endswith(f" › {expected['failed_state']}"), failed
    assert diagnosis.category == expected["category"], (diagnosis.category, diagnosis.reasons)
    if expected.get("root_exception"):
        assert (diagnosis.root_exception or "").startswith(expected["root_exception"]), diagnosis.root_exception
    if expected.get("log_stream"):
        followed = [h.label for h in diagnosis.hops if h.kind == "log_stream" and h.followed]
        assert f"{expected['log_group']} › {expected['log_stream']}" in followed, diagnosis.hops
        assert diagnosis.evidence, "a followed log stream gives evidence lines"
    assert len(diagnosis.evidence) <= 30
    assert diagnosis.remediation and len(diagnosis.remediation) <= 4
    # Reaching the failed state costs at most 3 Step Functions calls (DescribeExecution + history pages).
    assert diagnosis.context["history_pages"] <= 2

    document = diagnosis_json(diagnosis)
    assert set(document) >= JSON_KEYS
    json.dumps(document)  # serialisable as documented

    message = render_diagnosis(diagnosis)
    blocks = message["blocks"]
    assert len(blocks) <= MESSAGE_BLOCKS_MAX
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_TEXT_MAX
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_TEXT_MAX
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= BUTTON_TEXT_MAX
    assert message["text"].startswith(f"{diagnosis.pipeline or diagnosis.state_machine_arn.rsplit(':', 1)[-1]} failed")


def test_ecs_oom_chain_resources_and_next_steps(load: Callable[[str], dict[str, Any]], replay_aws: AwsClients) -> None:
    scenario = load("ecs_oom")
    diagnosis = diagnose([_top_level(scenario)], _services(replay_aws))
    assert [hop.kind for hop in diagnosis.hops] == ["execution", "state", "ecs_task", "container", "log_stream"]
    assert diagnosis.hops[3].detail.startswith("exit 137")
    assert diagnosis.root_exception == "java.lang.OutOfMemoryError: Java heap space"
    assert any(note.startswith("memory reached") and "of 4096 MiB" in note for note in diagnosis.resource_notes)
    assert diagnosis.remediation[0].startswith("task definition `policies-loader:14` gives the task 4096 MiB")
    assert "8192 MiB" in diagnosis.remediation[0]
    assert not diagnosis.transient
    assert all(
        line.url and "#logsV2:log-groups/log-group/$252Fecs$252Fpolicies-etl" in line.url for line in diagnosis.evidence
    )


def test_child_execution_is_followed(load: Callable[[str], dict[str, Any]], replay_aws: AwsClients) -> None:
    scenario = load("child_execution")
    diagnosis = diagnose([_top_level(scenario)], _services(replay_aws))
    kinds = [hop.kind for hop in diagnosis.hops]
    assert kinds[:3] == ["execution", "state", "child_execution"]
    assert "ecs_task" in kinds and "log_stream" in kinds
    assert diagnosis.context["child"]["execution_arn"] == scenario["expected"]["child_execution_arn"]


def test_distributed_map_diagnoses_the_failed_child(
    load: Callable[[str], dict[str, Any]], replay_aws: AwsClients
) -> None:
    scenario = load("map_distributed")
    diagnosis = diagnose([_top_level(scenario)], _services(replay_aws))
    assert [h.kind for h in diagnosis.hops][:4] == ["execution", "state", "map_run", "child_execution"]
    assert diagnosis.error == "Lambda.TooManyRequestsException"  # the child's error, not the threshold message
    (advice,) = diagnosis.retry_audit
    assert advice.state == "ClassifyDocument"
    assert advice.suggestion is not None and advice.suggestion["ErrorEquals"] == ["Lambda.TooManyRequestsException"]
    assert diagnosis.transient


def test_task_that_never_started_reads_no_logs(load: Callable[[str], dict[str, Any]], replay_aws: AwsClients) -> None:
    diagnosis = diagnose([_top_level(load("ecs_cannot_pull"))], _services(replay_aws))
    assert "log_stream" not in [hop.kind for hop in diagnosis.hops]
    assert any("never started" in note for note in diagnosis.notes)
    assert "CannotPullContainerError" in diagnosis.hops[2].detail


def test_states_runtime_shows_the_state_and_what_is_missing(
    load: Callable[[str], dict[str, Any]], replay_aws: AwsClients
) -> None:
    diagnosis = diagnose([_top_level(load("states_runtime"))], _services(replay_aws))
    assert diagnosis.definition_snippet is not None and '"JobName.$": "$.JobName"' in diagnosis.definition_snippet
    assert any("`$.JobName` (for `JobName.$`) is not in the state's input" in note for note in diagnosis.notes)
    assert diagnosis.remediation[0].startswith(
        "`$.JobName` (for `JobName.$`) is missing from the input of `Glue StartJobRun`"
    )


def test_fail_state_points_at_the_decision(load: Callable[[str], dict[str, Any]], replay_aws: AwsClients) -> None:
    diagnosis = diagnose([_top_level(load("fail_state"))], _services(replay_aws))
    assert diagnosis.context["path"][:2] == ["Job Complete?", "Get Job Status"]
    assert diagnosis.remediation[0].startswith(
        "`Job Failed` is reached on purpose: `Job Complete?` sent the execution there"
    )


def test_succeeded_and_running_executions_get_a_clear_answer(replay: AwsReplay, replay_aws: AwsClients) -> None:
    base = {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl", "input": "{}"}
    arn = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:"
    replay.add_execution(
        base | {"executionArn": arn + "run-42", "name": "run-42", "status": "SUCCEEDED",
                "startDate": "2025-02-18T03:00:00+00:00", "stopDate": "2025-02-18T03:40:00+00:00"}, [],
    )  # fmt: skip
    replay.add_execution(
        base
        | {
            "executionArn": arn + "run-43",
            "name": "run-43",
            "status": "RUNNING",
            "startDate": "2025-02-18T04:00:00+00:00",
        },
        [],
    )
    services = _services(replay_aws)
    done = diagnose([arn + "run-42"], services)
    assert done.verdict == "`run-42` of `policies-etl` SUCCEEDED at 2025-02-18 03:40 UTC — nothing to diagnose"
    assert render_diagnosis(done)["text"] == done.verdict
    assert diagnose([arn + "run-43"], services).verdict.startswith("`run-43` of `policies-etl` is still running")


def test_missing_execution_names_the_region(replay_aws: AwsClients) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:nope"
    with pytest.raises(Exception, match=f"execution {arn} not found in us-east-1"):
        diagnose([arn], _services(replay_aws))


def test_truncated_cause_is_completed_with_describe_tasks(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    # Step Functions cuts a Cause at 32,768 characters; the ECS task JSON is then not parseable.
    scenario = load("ecs_oom")
    (arn,) = scenario["executions"]
    recorded = scenario["executions"][arn]
    history = json.loads(json.dumps(recorded["history"]))
    failed = next(e for e in history if e["type"] == "TaskFailed")
    failed["taskFailedEventDetails"]["cause"] = failed["taskFailedEventDetails"]["cause"][:400]
    replay.add_execution(recorded["describe"], history)
    replay.reset_calls()
    diagnosis = diagnose([arn], _services(replay_aws))
    assert replay.call_counts()["ecs:DescribeTasks"] == 1
    assert "the Cause was truncated; the task was read with DescribeTasks" in diagnosis.notes
    assert diagnosis.category == "out_of_memory"
    assert diagnosis.root_exception == "java.lang.OutOfMemoryError: Java heap space"


def test_state_machine_log_group_is_linked(
    load: Callable[[str], dict[str, Any]], replay: AwsReplay, replay_aws: AwsClients
) -> None:
    scenario = load("ecs_oom")
    (machine,) = scenario["state_machines"].values()
    group = "/aws/vendedlogs/states/policies-etl-Logs"
    logging_config = {
        "level": "ERROR",
        "includeExecutionData": True,
        "destinations": [
            {"cloudWatchLogsLogGroup": {"logGroupArn": f"arn:aws:logs:us-east-1:123456789012:log-group:{group}:*"}}
        ],
    }
    replay.add_state_machine(machine | {"loggingConfiguration": logging_config})
    diagnosis = diagnose([next(iter(scenario["executions"]))], _services(replay_aws))
    (hop,) = [h for h in diagnosis.hops if h.kind == "state_machine_logs"]
    assert hop.label == group and hop.detail == "level ERROR"
    assert hop.url is not None and "$252Faws$252Fvendedlogs$252Fstates$252Fpolicies-etl-Logs" in hop.url


def test_glue_5_driver_stream_is_found_by_prefix(replay: AwsReplay, replay_aws: AwsClients) -> None:
    # Glue 5.0 writes the driver's log to "<JobRunId>-driver" instead of "<JobRunId>".
    scenario = read_scenario(EXECUTIONS / "glue_failed")
    for stream in scenario["logs"]:
        stream["stream"] = stream["stream"] + "-driver"
    load_scenario(scenario, replay, replay_aws)
    diagnosis = diagnose([_top_level(scenario)], _services(replay_aws))
    (hop,) = [h for h in diagnosis.hops if h.kind == "log_stream"]
    assert hop.followed and hop.label.endswith("-driver")
    assert (diagnosis.root_exception or "").startswith("pyspark.sql.utils.AnalysisException")


def test_lambda_timeout_reported_by_status_on_the_report_line(replay: AwsReplay, replay_aws: AwsClients) -> None:
    # Current Lambda runtimes no longer print "Task timed out"; the REPORT line ends with "Status: timeout".
    scenario = read_scenario(EXECUTIONS / "lambda_timeout")
    for stream in scenario["logs"]:
        kept = []
        for event in stream["events"]:
            if "Task timed out" in event["message"]:
                continue
            if event["message"].startswith("REPORT RequestId:"):
                event = event | {"message": event["message"].rstrip() + "\tStatus: timeout"}
            kept.append(event)
        stream["events"] = kept
    load_scenario(scenario, replay, replay_aws)
    diagnosis = diagnose([_top_level(scenario)], _services(replay_aws))
    assert diagnosis.category == "timeout"
    assert diagnosis.context["lambda"]["timed_out_after"] > 2.9
    assert diagnosis.remediation[0].startswith("Lambda `invoices-ocr-textract-sync` timed out after")


def test_lambda_named_with_its_latest_qualifier_shows_its_limits(replay: AwsReplay, replay_aws: AwsClients) -> None:
    # The recorded Parameters.FunctionName is "…:function:documents-etl-scan:$LATEST" (a qualified ARN).
    scenario = read_scenario(EXECUTIONS / "lambda_error")
    load_scenario(scenario, replay, replay_aws)
    diagnosis = diagnose([_top_level(scenario)], _services(replay_aws))
    function = scenario["lambda"]["functions"]["documents-etl-scan"]
    assert diagnosis.context["lambda"]["function"] == "documents-etl-scan"
    assert diagnosis.context["lambda"]["memory"] == function.get("MemorySize", 128)
    (hop,) = [hop for hop in diagnosis.hops if hop.kind == "lambda"]
    assert f"{diagnosis.context['lambda']['memory']} MB, timeout" in hop.detail

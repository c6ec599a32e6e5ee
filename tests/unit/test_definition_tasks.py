"""Which Task states of a definition could have done the work a failure event names (`task_states`)."""

from __future__ import annotations

from typing import Any

from bot.diagnosis.retry_audit import task_states

INVOKE = "arn:aws:states:::lambda:invoke"
RUN_TASK = "arn:aws:states:::ecs:runTask.sync"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:documents-etl-scan"


def _task(resource: str, **more: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, "End": True} | more


def _names(found: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in found]


def _machine() -> dict[str, Any]:
    """A Map with an ItemProcessor, a legacy Iterator Map, a Parallel state and top-level tasks."""
    return {
        "Stage": _task(INVOKE, End=False, Next="LoadPartitions"),
        "LoadPartitions": {
            "Type": "Map",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "ScanLandedFile",
                "States": {
                    "ScanLandedFile": _task(INVOKE, End=False, Next="LoadPartition"),
                    "LoadPartition": _task(RUN_TASK),
                },
            },
            "Next": "Legacy",
        },
        "Legacy": {
            "Type": "Map",
            "Iterator": {"StartAt": "ScanOld", "States": {"ScanOld": _task(FUNCTION)}},
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Crawl", "States": {"Crawl": _task("arn:aws:states:::aws-sdk:glue:startCrawler")}},
                {"StartAt": "Wait", "States": {"Wait": _task(f"{INVOKE}.waitForTaskToken")}},
            ],
            "End": True,
        },
    }


def test_the_task_inside_a_map_item_processor() -> None:
    assert _names(task_states(_machine(), "LoadPartitions", "lambda", "invoke")) == ["ScanLandedFile"]
    assert _names(task_states(_machine(), "LoadPartitions", "ecs", "runTask.sync")) == ["LoadPartition"]


def test_a_legacy_iterator_and_a_lambda_function_resource() -> None:
    # LambdaFunctionFailed names no resource: the Task's Resource is the function's ARN
    assert _names(task_states(_machine(), "Legacy", "lambda", None)) == ["ScanOld"]
    assert task_states(_machine(), "Legacy", "lambda", "invoke") == []


def test_parallel_branches_and_service_integration_variants() -> None:
    assert _names(task_states(_machine(), "Both", "aws-sdk:glue", "startCrawler")) == ["Crawl"]
    assert _names(task_states(_machine(), "Both", "lambda", "invoke.waitForTaskToken")) == ["Wait"]
    assert task_states(_machine(), "Both", "lambda", "invoke") == []  # not the .waitForTaskToken task


def test_the_whole_machine_and_two_matching_tasks() -> None:
    found = task_states(_machine(), None, "lambda", "invoke")
    assert _names(found) == ["Stage", "ScanLandedFile"]  # definition order, nested ones included
    assert found[1][1]["Resource"] == INVOKE


def test_nested_maps_count_but_a_distributed_map_does_not() -> None:
    inner = {"StartAt": "Scan", "States": {"Scan": _task(INVOKE)}}
    states = {
        "Outer": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "Inner",
                "States": {
                    "Inner": {"Type": "Map", "ItemProcessor": inner, "Next": "Far"},
                    "Far": {
                        "Type": "Map",
                        "ItemProcessor": inner | {"ProcessorConfig": {"Mode": "DISTRIBUTED"}},
                        "End": True,
                    },
                },
            },
            "End": True,
        }
    }
    assert _names(task_states(states, "Outer", "lambda", "invoke")) == ["Scan"]  # Inner's, not Far's
    assert _names(task_states(states, "Far", "lambda", "invoke")) == ["Scan"]  # asked for it by name


def test_an_undefined_container_has_no_tasks() -> None:
    assert task_states(_machine(), "NoSuchMap", "lambda", "invoke") == []
    assert task_states(_machine(), "Stage", "lambda", "invoke") == []  # a Task is no container

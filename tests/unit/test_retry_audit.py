from typing import Any

from bot.diagnosis.retry_audit import audit_retry, find_state


def _machine(retry: list[dict[str, Any]] | None, resource: str = "arn:aws:states:::lambda:invoke") -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": resource, "End": True}
    if retry is not None:
        state["Retry"] = retry
    return {"StartAt": "Load", "States": {"Load": state}}


def test_transient_error_without_retry_gets_a_retry_block() -> None:
    advice = audit_retry(_machine(None), "Load", "Lambda.TooManyRequestsException", transient=True)
    assert advice is not None and not advice.has_retry
    assert advice.suggestion == {
        "ErrorEquals": ["Lambda.TooManyRequestsException"],
        "IntervalSeconds": 2,
        "BackoffRate": 2.0,
        "MaxAttempts": 3,
        "JitterStrategy": "FULL",
    }


def test_ecs_states_wait_longer_between_attempts() -> None:
    advice = audit_retry(
        _machine(None, "arn:aws:states:::ecs:runTask.sync"), "Load", "States.TaskFailed", transient=True
    )
    assert advice is not None and advice.suggestion is not None and advice.suggestion["IntervalSeconds"] == 10


def test_non_transient_error_gets_no_retry_proposal() -> None:
    advice = audit_retry(_machine(None), "Load", "KeyError", transient=False)
    assert advice is not None and advice.suggestion is None and "not a transient error" in advice.note


def test_exhausted_retry_is_reported() -> None:
    advice = audit_retry(
        _machine([{"ErrorEquals": ["Lambda.TooManyRequestsException"], "MaxAttempts": 6}]),
        "Load",
        "Lambda.TooManyRequestsException",
        transient=True,
    )
    assert advice is not None and advice.has_retry
    assert advice.note == "Retry covers `Lambda.TooManyRequestsException` (MaxAttempts 6); the attempts were used up"


def test_wildcards_follow_the_documented_exceptions() -> None:
    task_failed = _machine([{"ErrorEquals": ["States.TaskFailed"]}])
    every = _machine([{"ErrorEquals": ["States.ALL"]}])
    assert audit_retry(task_failed, "Load", "Lambda.ServiceException", transient=True).has_retry  # type: ignore[union-attr]
    assert not audit_retry(task_failed, "Load", "States.Timeout", transient=True).has_retry  # type: ignore[union-attr]
    assert audit_retry(every, "Load", "States.Timeout", transient=True).has_retry  # type: ignore[union-attr]
    assert not audit_retry(every, "Load", "States.Runtime", transient=True).has_retry  # type: ignore[union-attr]


def test_states_are_found_inside_map_and_parallel() -> None:
    definition = {
        "States": {
            "Fan": {"Type": "Map", "ItemProcessor": {"States": {"Classify": {"Type": "Task"}}}},
            "Both": {"Type": "Parallel", "Branches": [{"States": {"Crawl": {"Type": "Task"}}}]},
        }
    }
    assert find_state(definition["States"], "Classify") == {"Type": "Task"}
    assert find_state(definition["States"], "Crawl") == {"Type": "Task"}
    assert find_state(definition["States"], "Nope") is None
    assert audit_retry(definition, "Fan › Classify", "Lambda.TooManyRequestsException", transient=True) is not None

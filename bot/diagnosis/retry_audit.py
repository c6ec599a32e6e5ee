"""Retry-policy audit: does the failed state retry the error it failed with, and what Retry block would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bot.diagnosis.model import PATH_SEPARATOR, RetryAdvice

# Errors AWS documents as transient for its integrations: retrying them as they are is safe.
KNOWN_TRANSIENT = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "States.Http.Socket",
    "ECS.AmazonECSException",
    "Glue.ConcurrentRunsExceededException",
    "Batch.AWSBatchException",
)
LAMBDA_FUNCTION_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+")


def find_state(states: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A state's definition by name, searching inside Map (ItemProcessor/Iterator) and Parallel branches."""
    if name in states:
        found: dict[str, Any] = states[name]
        return found
    for state in states.values():
        for machine in _machines_in(state):
            inner = find_state(machine.get("States", {}), name)
            if inner is not None:
                return inner
    return None


def task_states(
    states: dict[str, Any], within: str | None, resource_type: str, resource: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """The Task states that do one kind of work, inside a Map or Parallel state (at any depth) or anywhere.

    A TaskFailed/TaskTimedOut event names its work only by ``resourceType`` and ``resource`` (``lambda`` and
    ``invoke`` for ``arn:aws:states:::lambda:invoke``); a legacy LambdaFunctionFailed names none: its Task's
    Resource is the function's ARN. A Distributed Map's own tasks are left out (its items run as child
    executions, whose events are not in this history).

    Args:
        states: The machine's ``States``.
        within: The Map/Parallel state whose ItemProcessor/Iterator/Branches are searched; None: the whole machine.
        resource_type: The event's ``resourceType`` (``lambda``, ``ecs``, ``aws-sdk:glue``…).
        resource: The event's ``resource`` (``invoke``, ``runTask.sync``…); None for a legacy Lambda failure.

    Returns:
        (name, state) of each matching Task state, in definition order (empty when ``within`` is not defined).
    """
    if within is None:
        tasks = list(_tasks(states))
    else:
        container = find_state(states, within)
        machines = _machines_in(container) if container is not None else []
        tasks = [task for machine in machines for task in _tasks(machine.get("States", {}))]
    return [(name, state) for name, state in tasks if _does_work(state, resource_type, resource)]


def _machines_in(state: dict[str, Any], *, inline_only: bool = False) -> list[dict[str, Any]]:
    """The state machines nested in a Map (ItemProcessor, or the legacy Iterator) or Parallel state (Branches).

    Args:
        state: Any state.
        inline_only: Leave out a Distributed Map's ItemProcessor.
    """
    nested = [state.get("ItemProcessor"), state.get("Iterator"), *(state.get("Branches") or [])]
    return [
        machine
        for machine in nested
        if isinstance(machine, dict)
        and not (inline_only and (machine.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED")
    ]


def _tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Task state, nested ones too (not those of a Distributed Map: they run in child executions)."""
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        for machine in _machines_in(state, inline_only=True):
            yield from _tasks(machine.get("States", {}))


def _does_work(state: dict[str, Any], resource_type: str, resource: str | None) -> bool:
    """Whether a Task's Resource is the work a failure event names (``arn:aws:states:::<type>:<resource>``)."""
    arn = str(state.get("Resource", ""))
    if resource is None:
        return resource_type == "lambda" and LAMBDA_FUNCTION_ARN.match(arn) is not None
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[0] == "arn" and parts[2] == "states" and parts[5] == f"{resource_type}:{resource}"


def _covers(retriers: list[dict[str, Any]], error: str) -> dict[str, Any] | None:
    """The retrier that matches ``error``, with the wildcards' documented exceptions.

    ``States.ALL`` matches everything but ``States.Runtime``/``States.DataLimitExceeded``;
    ``States.TaskFailed`` matches any error except ``States.Timeout``.
    """
    for retrier in retriers:
        equals = set(retrier.get("ErrorEquals", []))
        if error in equals:
            return retrier
        if "States.ALL" in equals and error not in {"States.Runtime", "States.DataLimitExceeded"}:
            return retrier
        if "States.TaskFailed" in equals and error != "States.Timeout" and error != "States.Runtime":
            return retrier
    return None


def audit_retry(
    definition: dict[str, Any], state_name: str, error: str | None, *, transient: bool
) -> RetryAdvice | None:
    """Audit the failed state's Retry for the error it failed with.

    Args:
        definition: The state machine definition (parsed).
        state_name: The failed state (``Parent › Child`` paths use the last part).
        error: The error name it failed with.
        transient: Whether the diagnosis judged the failure safe to retry as is.

    Returns:
        A finding, or None when the state is not a Task/Map/Parallel state or there is no error name.
    """
    name = state_name.split(PATH_SEPARATOR)[-1].strip()
    state = find_state(definition.get("States", {}), name)
    if state is None or not error or state.get("Type") not in {"Task", "Map", "Parallel"}:
        return None
    retriers = list(state.get("Retry") or [])
    retrier = _covers(retriers, error)
    worth_retrying = transient or error in KNOWN_TRANSIENT
    if retrier is not None:
        attempts = retrier.get("MaxAttempts", 3)
        note = (
            f"Retry covers `{error}` (MaxAttempts {attempts}); the attempts were used up"
            if attempts
            else f"Retry lists `{error}` with MaxAttempts 0, which never retries"
        )
        return RetryAdvice(state=name, errors=(error,), has_retry=True, note=note)
    if not worth_retrying:
        return RetryAdvice(
            state=name,
            errors=(error,),
            has_retry=False,
            note=f"no Retry for `{error}`; not a transient error, so none is proposed",
        )
    suggestion = {
        "ErrorEquals": [error],
        "IntervalSeconds": 10 if state.get("Resource", "").startswith("arn:aws:states:::ecs") else 2,
        "BackoffRate": 2.0,
        "MaxAttempts": 3,
        "JitterStrategy": "FULL",
    }
    return RetryAdvice(
        state=name,
        errors=(error,),
        has_retry=False,
        suggestion=suggestion,
        note=f"`{name}` has no Retry for the transient error `{error}`",
    )

"""Retry-policy audit: does the failed state retry the error it failed with, and what Retry block would."""

from __future__ import annotations

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


def find_state(states: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A state's definition by name, searching inside Map (ItemProcessor/Iterator) and Parallel branches."""
    if name in states:
        found: dict[str, Any] = states[name]
        return found
    for state in states.values():
        nested = [state.get("ItemProcessor"), state.get("Iterator"), *(state.get("Branches") or [])]
        for machine in nested:
            if isinstance(machine, dict):
                inner = find_state(machine.get("States", {}), name)
                if inner is not None:
                    return inner
    return None


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

"""What a retry or redrive would do, decided before anyone confirms (pure: no AWS, no store)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.aws.stepfunctions import ExecutionDescription
from bot.config import RetryResources
from bot.errors import UserFacingError

NAME_MAX = 80  # Step Functions execution names
REDRIVE_WINDOW = timedelta(days=14)
_RETRY_SUFFIX = re.compile(r"-retry-(\d+)$")
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


class PlanError(UserFacingError):
    """The action cannot be planned as asked; the message says why and what to do instead."""


@dataclass(frozen=True)
class RetryPlan:
    """StartExecution of the same state machine.

    Attributes:
        state_machine_arn: The machine to start.
        source_arn: The execution being retried.
        name: The new execution's deterministic name.
        execution_input: The input to start it with.
        changes: Human lines for what differs from the source's input ("`$.resources.memory`: 4096 → 8192").
    """

    state_machine_arn: str
    source_arn: str
    name: str
    execution_input: str
    changes: tuple[str, ...] = ()

    @property
    def new_execution_arn(self) -> str:
        """The ARN the new execution will have."""
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{self.name}"


def retry_name(execution_name: str) -> str:
    """``run-42`` → ``run-42-retry-1``; ``run-42-retry-1`` → ``run-42-retry-2`` (at most 80 characters)."""
    match = _RETRY_SUFFIX.search(execution_name)
    base = execution_name[: match.start()] if match else execution_name
    number = int(match.group(1)) + 1 if match else 1
    suffix = f"-retry-{number}"
    return base[: NAME_MAX - len(suffix)] + suffix


def plan_retry(source: ExecutionDescription, resources: RetryResources | None = None) -> RetryPlan:
    """Plan a retry with the same input, or with the memory raised when ``resources`` is given.

    Raises:
        PlanError: The input is not JSON or has no number at the configured path.
    """
    original = source.input if source.input is not None else "{}"
    if resources is None:
        return RetryPlan(source.state_machine_arn, source.execution_arn, retry_name(source.name), original)
    new_input, old, new = raise_memory(original, resources)
    change = f"`{resources.memory_path}`: {old} → {new}" + (
        " (the configured maximum)" if new == resources.maximum else ""
    )
    return RetryPlan(
        source.state_machine_arn,
        source.execution_arn,
        retry_name(source.name) + "-mem",
        new_input,
        (change,),
    )


def plan_backfill(kpi: str, partition: str, state_machine_arn: str, rerun_input: str, day: datetime) -> RetryPlan:
    """Plan a re-run of a KPI's pipeline for one partition (input from the KPI's `rerun_input`).

    Raises:
        PlanError: The input with the partition filled in is not JSON.
    """
    execution_input = rerun_input.replace("{partition}", json.dumps(partition)[1:-1])
    try:
        json.loads(execution_input)
    except ValueError:
        raise PlanError(f"kpis.{kpi}.rerun_input is not JSON once the partition is filled in") from None
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{kpi}-{partition}").strip("-")
    name = f"backfill-{label}"[: NAME_MAX - 16] + day.strftime("-%Y%m%dT%H%M")
    return RetryPlan(state_machine_arn, state_machine_arn, name, execution_input, (f"input: `{execution_input}`",))


def raise_memory(execution_input: str, resources: RetryResources) -> tuple[str, int, int]:
    """The input with the value at ``memory_path`` multiplied by ``factor``, capped at ``maximum``.

    Returns:
        The new input (JSON), the old and the new value.

    Raises:
        PlanError: Not JSON, no such path, not a number, or already at the maximum.
    """
    try:
        document: Any = json.loads(execution_input)
    except ValueError:
        raise PlanError("the execution's input is not JSON, so its memory cannot be raised; retry as is") from None
    parts = [(m.group(1), m.group(2)) for m in _PATH_PART.finditer(resources.memory_path)]
    parent: Any = document
    for key, index in parts[:-1]:
        parent = _step(parent, key, index, resources.memory_path)
    last_key, last_index = parts[-1]
    value = _step(parent, last_key, last_index, resources.memory_path)
    try:
        old = int(str(value))
    except ValueError:
        raise PlanError(f"`{resources.memory_path}` in the input is {value!r}, not a number of MiB") from None
    if old >= resources.maximum:
        raise PlanError(
            f"`{resources.memory_path}` is already {old}, at or above the configured maximum {resources.maximum}"
        )
    new = min(int(old * resources.factor), resources.maximum)
    replacement: Any = str(new) if isinstance(value, str) else new
    if last_key is not None:
        parent[last_key] = replacement
    else:
        parent[int(last_index)] = replacement
    return json.dumps(document, separators=(",", ":")), old, new


def _step(node: Any, key: str | None, index: str | None, path: str) -> Any:
    try:
        return node[key] if key is not None else node[int(index or 0)]
    except (KeyError, IndexError, TypeError):
        raise PlanError(f"the execution's input has no `{path}`; check pipelines.<name>.retry_resources") from None


def redrive_refusal(source: ExecutionDescription, machine_type: str, now: datetime) -> str | None:
    """Why this execution cannot be redriven (None when it can), in the user's terms."""
    if machine_type != "STANDARD":
        return f"`{source.name}` ran on an {machine_type} workflow; only STANDARD executions can be redriven"
    if source.status == "SUCCEEDED":
        return f"`{source.name}` SUCCEEDED; there is nothing to redrive"
    if source.status in {"RUNNING", "PENDING_REDRIVE"}:
        return f"`{source.name}` is {source.status}; wait for it to end"
    if source.stop_date is not None and now - source.stop_date > REDRIVE_WINDOW:
        days = (now - source.stop_date).days
        return f"`{source.name}` stopped {days} days ago; AWS redrives only within 14 days"
    if source.redrive_status not in (None, "REDRIVABLE"):
        return f"AWS says `{source.name}` is {source.redrive_status}"
    return None

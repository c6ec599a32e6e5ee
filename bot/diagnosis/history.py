"""Find the failure in an execution history read newest-first: which state, which event, which integration."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Event = dict[str, Any]
PageFetcher = Callable[[str | None], tuple[list[Event], str | None]]

TERMINAL_TYPES = {"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
LEAF_FAILURE_TYPES = {
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
    "ActivityFailed",
    "ActivityTimedOut",
    "ActivityScheduleFailed",
    "FailStateEntered",
}
CONTAINER_FAILURE_TYPES = {
    "MapRunFailed",
    "MapRunAborted",
    "MapIterationFailed",
    "MapIterationAborted",
    "MapStateFailed",
    "MapStateAborted",
    "ParallelStateFailed",
    "ParallelStateAborted",
}
SCHEDULE_TYPES = {"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"}
_RUNTIME_STATE = re.compile(r"while executing the state '([^']+)'")


class HistoryWindow:
    """The part of an execution history read so far, newest first; reads older pages on demand.

    When the page budget is spent, older events are simply not read: `get` answers None for them and
    ``budget_spent`` is set, so a diagnosis goes on with what was read (the failure events are the newest).

    Args:
        fetch_page: Returns one page (newest first) and the token of the next one.
        max_pages: How many pages may be read in all.
    """

    def __init__(self, fetch_page: PageFetcher, *, max_pages: int = 2) -> None:
        self._fetch_page = fetch_page
        self.max_pages = max_pages
        self._by_id: dict[int, Event] = {}
        self._order: list[Event] = []
        self._next_token: str | None = None
        self.pages_read = 0
        self.exhausted = False
        self.budget_spent = False
        self._read_page()

    @property
    def oldest_read(self) -> int | None:
        """The id of the oldest event read so far (None before any)."""
        return min(self._by_id) if self._by_id else None

    def _read_page(self) -> bool:
        if self.exhausted:
            return False
        if self.pages_read >= self.max_pages:
            self.budget_spent = True
            return False
        events, self._next_token = self._fetch_page(self._next_token if self.pages_read else None)
        self.pages_read += 1
        self.exhausted = self._next_token is None
        for event in events:
            self._by_id[int(event["id"])] = event
            self._order.append(event)
        return bool(events)

    @property
    def events(self) -> list[Event]:
        """Events read so far, newest first."""
        return list(self._order)

    def get(self, event_id: int) -> Event | None:
        """The event with this id, reading older pages when it has not been read yet."""
        while event_id not in self._by_id and not self.exhausted:
            oldest = min(self._by_id) if self._by_id else None
            if oldest is not None and event_id > oldest:
                return None
            if not self._read_page():
                break
        return self._by_id.get(event_id)

    def chain(self, start: Event, *, limit: int = 200, to_state_entry: bool = False) -> list[Event]:
        """``start`` and the events before it along ``previousEventId``, newest first.

        Args:
            start: Where to begin.
            limit: Most events to return.
            to_state_entry: Stop at the first ``*StateEntered`` event of a state that is not a Map or
                Parallel container (its work is all that matters; older events may be pages away).
        """
        chain = [start]
        current = start
        while len(chain) < limit:
            entered = current is not start and current["type"].endswith("StateEntered")
            if to_state_entry and entered and current["type"] not in {"MapStateEntered", "ParallelStateEntered"}:
                break
            previous_id = current.get("previousEventId")
            if not previous_id:
                break
            previous = self.get(int(previous_id))
            if previous is None:
                break
            chain.append(previous)
            current = previous
        return chain


@dataclass
class FailurePoint:
    """Where and how an execution failed, as read from its history.

    Attributes:
        terminal: The ExecutionFailed / ExecutionTimedOut / ExecutionAborted event.
        leaf: The innermost failure event (TaskFailed, LambdaFunctionFailed, FailStateEntered…), if any.
        container: An enclosing Map/Parallel failure event, if the leaf failed inside one.
        scheduled: The event that scheduled the leaf's work (TaskScheduled…), if any.
        submitted: TaskSubmitted/TaskStarted of that work (holds e.g. the ECS task ARN in its output).
        entered: The ``*StateEntered`` event of the failed state.
        caught: A failure that a Catch routed to a Fail state (the real cause), when the leaf is a Fail state.
        branch_start: Inside a Parallel state: the first state of the branch that failed.
        state_name: Name of the failed state.
        integration: ``ecs``, ``lambda``, ``glue``, ``batch``, ``child``, ``activity``, ``distributed_map``,
            ``fail``, ``runtime``, ``timeout``, ``aborted``, or the resource type of another service integration.
        resource: The scheduled resource (e.g. ``arn:aws:states:::ecs:runTask.sync``).
        task_state: The failed Task state's definition, when the state machine definition named the state
            (its scheduling event was not read): e.g. its ``Parameters.FunctionName``.
        error: Error name of the failure.
        cause: Its cause text.
    """

    terminal: Event
    leaf: Event | None = None
    container: Event | None = None
    scheduled: Event | None = None
    submitted: Event | None = None
    entered: Event | None = None
    caught: Event | None = None
    state_name: str | None = None
    integration: str = "unknown"
    resource: str | None = None
    task_state: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None
    iteration_index: int | None = None
    map_run_arn: str | None = None
    container_state: str | None = None
    branch_start: str | None = None
    path: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def started_at(self) -> datetime | None:
        """When the failed work started (scheduled, else state entered)."""
        for event in (self.submitted, self.scheduled, self.entered):
            if event is not None:
                timestamp: datetime = event["timestamp"]
                return timestamp
        return None

    @property
    def failed_at(self) -> datetime:
        """When it failed."""
        event = self.leaf or self.container or self.terminal
        timestamp: datetime = event["timestamp"]
        return timestamp


def details(event: Event) -> dict[str, Any]:
    """The ``*EventDetails`` object of an event (empty when it has none)."""
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def parse_json(text: str | None) -> Any:
    """Parse JSON text, or return None when it is not JSON (e.g. a Cause truncated at 32,768 characters)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def locate_failure(window: HistoryWindow) -> FailurePoint:
    """Find the terminal event, the innermost failure and the work that failed.

    Raises:
        ValueError: The history holds no terminal failure event (the execution did not fail).
    """
    terminal = next((event for event in window.events if event["type"] in TERMINAL_TYPES), None)
    if terminal is None:
        raise ValueError("no ExecutionFailed, ExecutionTimedOut or ExecutionAborted event in the history")
    point = FailurePoint(terminal=terminal)
    terminal_details = details(terminal)
    point.error, point.cause = terminal_details.get("error"), terminal_details.get("cause")
    chain = window.chain(terminal, to_state_entry=True)
    point.container = next((event for event in chain if event["type"] in CONTAINER_FAILURE_TYPES), None)
    point.leaf = next((event for event in chain if event["type"] in LEAF_FAILURE_TYPES), None)
    if point.leaf is None and (point.container is not None or terminal["type"] == "ExecutionFailed"):
        point.leaf = _latest_leaf_before(window, int((point.container or terminal)["id"]))
    if point.leaf is not None and point.leaf["type"] == "FailStateEntered":
        point.caught = next(
            (
                event
                for event in window.chain(point.leaf, limit=4)[1:]
                if event["type"] in LEAF_FAILURE_TYPES - {"FailStateEntered"}
            ),
            None,
        )
    _describe_work(window, point)
    _describe_containers(window, point, chain)
    if terminal["type"] == "ExecutionTimedOut":
        point.integration = "timeout" if point.integration == "unknown" else point.integration
        point.state_name = point.state_name or _running_state(window)
    elif terminal["type"] == "ExecutionAborted":
        point.integration = "aborted" if point.integration == "unknown" else point.integration
        point.state_name = point.state_name or _running_state(window)
    elif point.error == "States.Runtime" and point.leaf is None:
        point.integration = "runtime"
        match = _RUNTIME_STATE.search(point.cause or "")
        point.state_name = match[1] if match else _running_state(window)
        point.entered = _entered_event(window, point.state_name)
    return point


def _latest_leaf_before(window: HistoryWindow, before_id: int) -> Event | None:
    """The newest leaf failure read so far that is older than ``before_id`` (no further pages are read)."""
    return next(
        (e for e in window.events if int(e["id"]) < before_id and e["type"] in LEAF_FAILURE_TYPES),
        None,
    )


def _describe_work(window: HistoryWindow, point: FailurePoint) -> None:
    work = point.caught or point.leaf
    if work is None:
        return
    work_details = details(work)  # the work's own error beats the execution's summary of it
    point.error = work_details.get("error") or point.error
    point.cause = work_details.get("cause") or point.cause
    for event in window.chain(work, to_state_entry=True)[1:]:
        kind = event["type"]
        if kind in {"TaskSubmitted", "TaskStarted"} and point.submitted is None:
            point.submitted = event
        elif kind in SCHEDULE_TYPES and point.scheduled is None:
            point.scheduled = event
        elif kind.endswith("StateEntered"):
            point.entered = event
            break
    if work["type"] == "FailStateEntered":
        point.entered = work
    if point.entered is not None:
        point.state_name = details(point.entered).get("name")
    if point.leaf is not None and point.leaf["type"] == "FailStateEntered" and point.caught is None:
        point.integration = "fail"
        point.state_name = details(point.leaf).get("name")
        point.path = [
            str(details(event).get("name"))
            for event in window.chain(point.leaf, limit=12)[1:]
            if event["type"].endswith("StateExited") and details(event).get("name")
        ][:3]
        return
    point.integration, point.resource = _integration(point.scheduled, work)
    if point.scheduled is None and point.entered is None and window.budget_spent:
        back = int(work["id"]) - (window.oldest_read or 0)
        point.notes.append(
            f"the failed state's scheduling event is more than {back:,} events back; not read "
            f"(budget of {window.max_pages + 1} Step Functions calls)"
        )
    if point.caught is not None and point.leaf is not None:
        fail_state = details(point.leaf).get("name")
        point.notes.append(f"the error was caught and routed to the Fail state `{fail_state}`")


def _integration(scheduled: Event | None, work: Event) -> tuple[str, str | None]:
    # TaskFailed/TaskTimedOut name the resource too: enough when the scheduling event was not read
    source = details(scheduled) if scheduled is not None else details(work)
    if scheduled is not None and scheduled["type"] == "LambdaFunctionScheduled":
        return "lambda", source.get("resource")
    if scheduled is not None and scheduled["type"] == "ActivityScheduled":
        return "activity", source.get("resource")
    resource_type = str(source.get("resourceType", ""))
    resource = str(source.get("resource", ""))
    if scheduled is None and not resource_type:
        kind = work["type"]
        if kind.startswith("LambdaFunction"):
            return "lambda", None
        if kind.startswith("Activity"):
            return "activity", None
        return "unknown", None
    if resource_type == "states" and resource.startswith("startExecution"):
        return "child", f"arn:aws:states:::states:{resource}"
    known = {"ecs": "ecs", "lambda": "lambda", "glue": "glue", "batch": "batch"}
    return known.get(resource_type, resource_type or "unknown"), f"arn:aws:states:::{resource_type}:{resource}"


def _describe_containers(window: HistoryWindow, point: FailurePoint, chain: list[Event]) -> None:
    seen = [*chain, *window.events]
    # the failed iteration, not one that was aborted because of it (MapIterationAborted is written after it)
    iteration = next((e for e in seen if e["type"] == "MapIterationFailed"), None) or next(
        (e for e in seen if e["type"] == "MapIterationAborted"), None
    )
    point.map_run_arn = next((details(e).get("mapRunArn") for e in seen if e["type"] == "MapRunStarted"), None)
    if iteration is not None:
        point.iteration_index = details(iteration).get("index")
    map_run_failure = next((event for event in chain if event["type"] in {"MapRunFailed", "MapRunAborted"}), None)
    if map_run_failure is not None and point.leaf is None:
        # A Distributed Map runs its items as child executions: the failure is in one of them.
        point.integration = "distributed_map"
        point.container = map_run_failure
        point.error = details(map_run_failure).get("error", point.error)
        point.cause = details(map_run_failure).get("cause", point.cause)
    if point.container is not None:
        parallel = point.container["type"].startswith("Parallel")
        # MapIterationFailed names its Map state too: enough when the MapStateEntered was not read
        point.container_state = _state_of(window, point.container, parallel) or (
            details(iteration).get("name") if iteration is not None and not parallel else None
        )
        if parallel and point.entered is not None:
            point.branch_start = _branch_start(window, point.entered)
        if point.state_name is None:
            point.state_name = point.container_state


def _branch_start(window: HistoryWindow, entered: Event) -> str | None:
    """The first state of the Parallel branch ``entered`` is in: the state entered right after ParallelStateStarted."""
    newer: Event | None = None
    for event in window.chain(entered, limit=500):
        if event["type"] == "ParallelStateStarted":
            name = details(newer).get("name") if newer is not None else None
            return str(name) if name else None
        newer = event
    return None


def _state_of(window: HistoryWindow, event: Event, parallel: bool) -> str | None:
    """The Map or Parallel state a container event belongs to (its own ``*StateEntered``, not a child's)."""
    wanted = "ParallelStateEntered" if parallel else "MapStateEntered"
    for previous in window.chain(event, limit=60):
        if previous["type"] == wanted:
            name: str | None = details(previous).get("name")
            return name
    return None


def _running_state(window: HistoryWindow) -> str | None:
    exited: set[str] = set()
    for event in window.events:
        name = details(event).get("name")
        if event["type"].endswith("StateExited") and name:
            exited.add(name)
        elif event["type"].endswith("StateEntered") and name and name not in exited:
            return str(name)
    return None


def _entered_event(window: HistoryWindow, state_name: str | None) -> Event | None:
    if state_name is None:
        return None
    return next(
        (e for e in window.events if e["type"].endswith("StateEntered") and details(e).get("name") == state_name),
        None,
    )

"""Reading a history newest-first within a page budget: what is found when the scheduling event is pages back."""

from __future__ import annotations

import copy
import json
import math
from datetime import timedelta
from typing import Any

import pytest

from bot.diagnosis.history import HistoryWindow, details, locate_failure
from bot.sandbox.aws_replay import parse_time
from tests.conftest import EXECUTIONS

Event = dict[str, Any]
PAGE = 1000
_WORK = ("TaskScheduled", "TaskStarted", "TaskSubmitted")


def recorded_history(name: str) -> list[Event]:
    """The (only, or top-level) recorded history of a scenario, in forward order."""
    scenario = json.loads((EXECUTIONS / name / "scenario.json").read_text())
    histories = [record["history"] for record in scenario["executions"].values()]
    return copy.deepcopy(max(histories, key=len))


def concurrent_map_history(
    history: list[Event], state: str, *, between: int, map_state: str = "LoadPartitions"
) -> list[Event]:
    """A recorded failure of ``state`` replayed as iteration 0 of an inline Map, with ``between`` events of other
    iterations (which succeed) between the task's scheduling events and its failure.

    That is how concurrent Map iterations interleave: the failed task's TaskScheduled/TaskStarted are written when
    it starts, its TaskFailed when it fails, and everything the other iterations did meanwhile sits in between.
    Event shapes are the recorded ones (MapStateEntered, MapStateStarted{length}, MapIterationStarted/Succeeded/
    Failed{name, index}, TaskStateEntered/Exited, the task's own events, TaskSucceeded, MapStateFailed).
    """
    by_id = {int(event["id"]): event for event in history}
    failed = next(event for event in reversed(history) if event["type"] == "TaskFailed")
    terminal = next(event for event in reversed(history) if event["type"] == "ExecutionFailed")
    work: list[Event] = []
    current = failed
    while (previous := by_id.get(int(current.get("previousEventId") or 0))) and previous["type"] in _WORK:
        work.insert(0, previous)
        current = previous
        if previous["type"] == "TaskScheduled":
            break
    entered = next(
        event for event in history if event["type"] == "TaskStateEntered" and details(event).get("name") == state
    )
    per_iteration = len(work) + 5
    others = math.ceil(between / per_iteration)
    begin, end = parse_time(work[-1]["timestamp"]), parse_time(failed["timestamp"])
    events: list[Event] = []

    def add(kind: str, previous: int, when: Any, **event_details: Any) -> int:
        stamp = when if isinstance(when, str) else when.isoformat()
        events.append({"timestamp": stamp, "type": kind, "id": len(events) + 1, "previousEventId": previous})
        events[-1].update(copy.deepcopy(event_details))
        return len(events)

    def own_details(event: Event) -> dict[str, Any]:
        return {key: value for key, value in event.items() if key.endswith("EventDetails")}

    add("ExecutionStarted", 0, history[0]["timestamp"], **own_details(history[0]))
    iteration = {"name": map_state}
    map_entered = add(
        "MapStateEntered", 0, entered["timestamp"], stateEnteredEventDetails={"name": map_state, "input": "{}"}
    )
    map_started = add(
        "MapStateStarted", map_entered, entered["timestamp"], mapStateStartedEventDetails={"length": others + 1}
    )
    first = add(
        "MapIterationStarted",
        map_started,
        entered["timestamp"],
        mapIterationStartedEventDetails=iteration | {"index": 0},
    )
    last = add("TaskStateEntered", first, entered["timestamp"], **own_details(entered))
    for event in work:
        last = add(event["type"], last, event["timestamp"], **own_details(event))
    scheduled = details(work[0])
    resource = {"resourceType": scheduled.get("resourceType"), "resource": scheduled.get("resource")}
    for index in range(1, others + 1):
        when = begin + (end - begin) * index / (others + 2)
        step = timedelta(microseconds=1)
        other = add(
            "MapIterationStarted", map_started, when, mapIterationStartedEventDetails=iteration | {"index": index}
        )
        other = add(
            "TaskStateEntered",
            other,
            when,
            stateEnteredEventDetails={"name": state, "input": json.dumps({"partition": index})},
        )
        for event in work:
            other = add(event["type"], other, when + step, **own_details(event))
        other = add("TaskSucceeded", other, when + 2 * step, taskSucceededEventDetails=resource | {"output": "{}"})
        other = add("TaskStateExited", other, when + 2 * step, stateExitedEventDetails={"name": state, "output": "{}"})
        add(
            "MapIterationSucceeded",
            other,
            when + 2 * step,
            mapIterationSucceededEventDetails=iteration | {"index": index},
        )
    failure = add("TaskFailed", last, failed["timestamp"], **own_details(failed))
    add("MapIterationFailed", failure, failed["timestamp"], mapIterationFailedEventDetails=iteration | {"index": 0})
    map_failed = add("MapStateFailed", failure, failed["timestamp"])
    add("ExecutionFailed", map_failed, terminal["timestamp"], **own_details(terminal))
    return events


def window_over(history: list[Event], *, max_pages: int = 2) -> tuple[HistoryWindow, list[int]]:
    """A window that reads ``history`` newest-first, 1,000 events a page, counting the pages fetched."""
    newest_first = list(reversed(history))
    fetched: list[int] = []

    def fetch(token: str | None) -> tuple[list[Event], str | None]:
        start = int(token or 0)
        fetched.append(start)
        following = start + PAGE
        return newest_first[start:following], (str(following) if following < len(newest_first) else None)

    return HistoryWindow(fetch, max_pages=max_pages), fetched


@pytest.mark.parametrize(
    ("scenario", "state", "integration"),
    [("ecs_oom", "LoadFactPolicies", "ecs"), ("lambda_error", "ScanLandedFile", "lambda")],
)
def test_scheduling_event_beyond_the_budget_is_left_unread(scenario: str, state: str, integration: str) -> None:
    history = concurrent_map_history(recorded_history(scenario), state, between=2_500)
    failed = next(event for event in history if event["type"] == "TaskFailed")
    started = next(event for event in history if event["id"] == failed["previousEventId"])
    assert failed["id"] - started["id"] > 2_500
    window, fetched = window_over(history)

    point = locate_failure(window)  # no exception: the failure is diagnosed from what two pages hold

    assert len(fetched) == 2 and window.budget_spent
    assert point.leaf == failed
    assert point.scheduled is None and point.submitted is None and point.entered is None
    assert point.integration == integration  # named by TaskFailed's resourceType
    assert point.state_name == "LoadPartitions" and point.iteration_index == 0  # from MapIterationFailed
    assert point.error == details(failed)["error"] and point.cause == details(failed)["cause"]
    (note,) = [note for note in point.notes if "scheduling event" in note]
    assert note.startswith("the failed state's scheduling event is more than 1,")
    assert note.endswith("events back; not read (budget of 3 Step Functions calls)")


def test_scheduling_event_within_the_budget_is_read() -> None:
    history = concurrent_map_history(recorded_history("ecs_oom"), "LoadFactPolicies", between=1_200)
    window, fetched = window_over(history)
    point = locate_failure(window)
    assert len(fetched) == 2 and not window.budget_spent
    assert point.scheduled is not None and point.state_name == "LoadFactPolicies"
    assert not [note for note in point.notes if "scheduling event" in note]


def test_the_failed_iteration_is_named_not_an_aborted_one() -> None:
    # map_inline: iteration 3 fails, iteration 4 is aborted because of it (MapIterationAborted is newer).
    window, _ = window_over(recorded_history("map_inline"))
    point = locate_failure(window)
    assert point.iteration_index == 3
    assert point.container_state == "ProcessHourlyFiles" and point.state_name == "ParseFlowLogFile"


def test_the_failed_parallel_branch_is_named_by_its_first_state() -> None:
    window, _ = window_over(recorded_history("parallel"))
    point = locate_failure(window)
    assert point.container_state == "Parallel" and point.state_name == "StartCrawler"
    assert point.branch_start == "StartCrawler"

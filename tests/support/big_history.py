"""Grow a recorded history to tens of thousands of events (a long inline Map before the failure), for scale tests.

The inserted events use the HistoryEvent shapes of the Step Functions API reference (MapStateEntered,
MapStateStarted{length}, MapIterationStarted/Succeeded{name, index}, PassStateEntered/Exited, MapStateSucceeded,
MapStateExited); ids and previousEventIds of the recorded events after the insertion are renumbered.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

from bot.sandbox.aws_replay import parse_time


def pad_history(history: list[dict[str, Any]], total: int, *, before_state: str) -> list[dict[str, Any]]:
    """Insert a Map of Pass iterations before ``before_state`` is entered, so the history has ``total`` events."""
    events = copy.deepcopy(history)
    at = next(
        i
        for i, e in enumerate(events)
        if e["type"].endswith("StateEntered") and e.get("stateEnteredEventDetails", {}).get("name") == before_state
    )
    head, tail = events[:at], events[at:]
    iterations = max(1, (total - len(events) - 4) // 4)
    start = parse_time(head[-1]["timestamp"])
    inserted: list[dict[str, Any]] = []
    next_id = len(head) + 1

    def add(kind: str, previous: int, **details: Any) -> int:
        nonlocal next_id
        moment = start + timedelta(milliseconds=len(inserted))
        event = {"timestamp": moment.isoformat(), "type": kind, "id": next_id, "previousEventId": previous, **details}
        inserted.append(event)
        next_id += 1
        return int(event["id"])

    entered = add(
        "MapStateEntered", int(head[-1]["id"]), stateEnteredEventDetails={"name": "StageBatches", "input": "{}"}
    )
    started = add("MapStateStarted", entered, mapStateStartedEventDetails={"length": iterations})
    last = started
    for index in range(iterations):
        iteration = {"name": "StageBatches", "index": index}
        begun = add("MapIterationStarted", started, mapIterationStartedEventDetails=iteration)
        passed = add(
            "PassStateEntered",
            begun,
            stateEnteredEventDetails={"name": "StageBatch", "input": json.dumps({"batch": index})},
        )
        exited = add(
            "PassStateExited",
            passed,
            stateExitedEventDetails={"name": "StageBatch", "output": json.dumps({"batch": index})},
        )
        last = add("MapIterationSucceeded", exited, mapIterationSucceededEventDetails=iteration)
    done = add("MapStateSucceeded", last)
    exit_id = add("MapStateExited", done, stateExitedEventDetails={"name": "StageBatches", "output": "[]"})
    offset = next_id - (len(head) + 1)
    for event in tail:
        old_id = int(event["id"])
        event["id"] = old_id + offset
        previous = int(event.get("previousEventId") or 0)
        if previous == int(head[-1]["id"]):
            event["previousEventId"] = exit_id
        elif previous >= len(head) + 1:
            event["previousEventId"] = previous + offset
        event["timestamp"] = (parse_time(event["timestamp"]) + timedelta(milliseconds=len(inserted))).isoformat()
    return [*head, *inserted, *tail]

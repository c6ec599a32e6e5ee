"""Scale: a 25,000-event history costs at most 3 Step Functions calls to reach the failed state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot.aws.clients import AwsClients
from bot.aws.compute import ComputeGateway
from bot.aws.logs import LogsGateway
from bot.aws.stepfunctions import StepFunctionsGateway
from bot.config import ProjectConfig, load_settings
from bot.diagnosis.chase import Chase
from bot.diagnosis.runner import diagnose
from bot.sandbox.aws_replay import AwsReplay, parse_time
from bot.sandbox.scenarios import put_log_stream
from bot.services import Services
from tests.conftest import EXECUTIONS
from tests.support.big_history import pad_history


def test_failure_at_the_end_of_25000_events(
    replay: AwsReplay, replay_aws: AwsClients, load: Callable[[str], Any]
) -> None:
    scenario = load("ecs_oom")
    (arn,) = scenario["executions"]
    recorded = scenario["executions"][arn]
    history = pad_history(recorded["history"], 25_000, before_state="LoadFactPolicies")
    assert len(history) >= 25_000 - 4 and history[-1]["type"] == "ExecutionFailed"
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    replay.add_execution(recorded["describe"], history)
    replay.reset_calls()

    services = Services(load_settings({"AWS_REGION": "us-east-1"}, project=ProjectConfig()), aws=replay_aws)
    diagnosis = diagnose([arn], services)

    calls = replay.call_counts()
    assert calls["states:DescribeExecution"] + calls["states:GetExecutionHistory"] <= 3, calls
    assert diagnosis.failed_state == "LoadFactPolicies"
    assert diagnosis.category == "out_of_memory"
    assert diagnosis.root_exception == "java.lang.OutOfMemoryError: Java heap space"


def test_padding_keeps_the_recorded_chain_intact() -> None:
    scenario = json.loads((EXECUTIONS / "ecs_oom" / "scenario.json").read_text())
    (recorded,) = scenario["executions"].values()
    history = pad_history(recorded["history"], 1_000, before_state="LoadFactPolicies")
    by_id = {e["id"]: e for e in history}
    failed = next(e for e in history if e["type"] == "TaskFailed")
    chain = []
    event = failed
    while event.get("previousEventId"):
        event = by_id[event["previousEventId"]]
        chain.append(event["type"])
    assert chain[:4] == ["TaskSubmitted", "TaskStarted", "TaskScheduled", "TaskStateEntered"]
    assert "MapStateExited" in chain


def test_trace_buried_under_a_dense_tail_is_found_by_search(
    replay: AwsReplay, replay_aws: AwsClients, load: Callable[[str], Any]
) -> None:
    # 5,000 INFO lines within 10 s after the trace (a busy executor keeps logging): the stream's tail holds no
    # error, so the server-side search must find the trace and read only around it.
    scenario = load("ecs_oom")
    (arn,) = scenario["executions"]
    (stream,) = scenario["logs"]
    trace_ms = max(int(parse_time(e["timestamp"]).timestamp() * 1000) for e in stream["events"])
    busy = [
        {
            "timestamp": trace_ms + 1 + i * 2,
            "message": f"25/02/18 03:12:{i % 60:02d} INFO BlockManager: Removing RDD {i}",
        }
        for i in range(5_000)
    ]
    # just as busy in the 20 s before the trace: a window read forward from before the match never reaches it
    busy += [
        {
            "timestamp": trace_ms - 20_000 + i * 4,
            "message": f"25/02/18 03:11:{i % 60:02d} INFO MemoryStore: rdd_{i} stored",
        }
        for i in range(4_999)
    ]
    put_log_stream(replay_aws, stream["group"], stream["stream"], busy)
    logs = LogsGateway(replay_aws.client("logs"))
    chase = Chase(
        StepFunctionsGateway(replay_aws.stepfunctions), logs, ComputeGateway(replay_aws), ProjectConfig(), "us-east-1"
    )
    diagnosis = chase.diagnose(arn)
    assert diagnosis.root_exception == "java.lang.OutOfMemoryError: Java heap space"
    total = sum(len(e["message"].encode()) for e in busy) + sum(len(e["message"].encode()) for e in stream["events"])
    assert logs.bytes_read < 0.25 * total  # the tail, the matches and a bounded window: not the stream

"""`/etl why` at scale: a 25,000-event history (failure last) and a 1,000,000-line ECS log stream.

Sets up moto and the replay endpoint on loopback, serves the recorded ECS out-of-memory scenario with its
history padded to 25,000 events and its log stream grown to 1,000,000 lines (Spark INFO lines, then the
recorded failure at the end), then diagnoses it twice in the same run:

* etl-doctor: DescribeExecution, GetExecutionHistory newest-first (1,000 events a page), the stream's tail;
* a naive baseline: the whole history paged oldest-first, the whole stream read from the head, and the same
  stack-trace extraction over everything read.

Prints AWS calls by API, log bytes read, wall time, and whether both found the same root exception. The
last line is ``sfn_calls=… log_bytes_pct=… speedup=…`` (plus the figures behind them), where

* ``sfn_calls``: every Step Functions (``states:*``) call etl-doctor made for the whole diagnosis
  (DescribeExecution, GetExecutionHistory, DescribeStateMachineForExecution for the definition and the Retry
  audit, and any ListExecutions/DescribeMapRun of a map run); ``naive_sfn_calls`` is the same count for the
  baseline;
* ``sfn_calls_to_failed_state``: the calls it took to find the failed state and its scheduling event, i.e.
  DescribeExecution plus the GetExecutionHistory pages (the issue's budget: at most 3);
* ``log_bytes_pct``: log message bytes read by etl-doctor, as a percentage of the stream's bytes;
* ``speedup``: the baseline's wall time divided by etl-doctor's.

Note: moto sorts a stream's events on every GetLogEvents call, so the baseline's time here grows faster with
stream size than on AWS; bytes read and calls made do not depend on the emulator.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.aws.clients import AwsClients  # noqa: E402
from bot.aws.compute import ComputeGateway  # noqa: E402
from bot.aws.logs import LogsGateway  # noqa: E402
from bot.aws.stepfunctions import StepFunctionsGateway  # noqa: E402
from bot.config import ProjectConfig  # noqa: E402
from bot.diagnosis.chase import Chase  # noqa: E402
from bot.diagnosis.history import LEAF_FAILURE_TYPES  # noqa: E402
from bot.diagnosis.stacktrace import root_cause  # noqa: E402
from bot.sandbox.aws_replay import AwsReplay, parse_time  # noqa: E402
from bot.sandbox.moto_server import SANDBOX_CREDENTIALS, MotoSandbox  # noqa: E402
from bot.sandbox.scenarios import load_scenario, put_log_stream, read_scenario  # noqa: E402
from tests.support.big_history import pad_history  # noqa: E402

SCENARIO = ROOT / "tests" / "fixtures" / "executions" / "ecs_oom"


def _filler(count: int, start_ms: int, span_ms: int) -> list[dict[str, Any]]:
    """Spark executor INFO lines in the format of the recorded log, evenly spread over the task's life."""
    return [
        {
            "timestamp": start_ms + (i * span_ms) // max(1, count),  # several lines may share a millisecond
            "message": f"25/02/18 03:{(i // 60) % 60:02d}:{i % 60:02d} INFO TaskSetManager: Finished task "
            f"{i % 200}.0 in stage {i // 200}.0 (TID {i}) in {120 + i % 900} ms on 10.0.{i % 4}.{i % 250} "
            f"(executor {i % 8}) ({i % 200 + 1}/200)",
        }
        for i in range(count)
    ]


def _setup(replay: AwsReplay, aws: AwsClients, events: int, lines: int) -> tuple[str, str, str, int]:
    scenario = load_scenario(read_scenario(SCENARIO), replay, aws)
    (arn,) = scenario["executions"]
    recorded = scenario["executions"][arn]
    history = pad_history(recorded["history"], events, before_state="LoadFactPolicies")
    replay.add_execution(recorded["describe"], history)
    (stream,) = scenario["logs"]
    failure = [(int(parse_time(e["timestamp"]).timestamp() * 1000), e["message"]) for e in stream["events"]]
    submitted = next(e for e in history if e["type"] == "TaskSubmitted")
    start_ms = int(parse_time(submitted["timestamp"]).timestamp() * 1000)
    first_failure_ms = min(ms for ms, _ in failure)
    filler = _filler(lines - len(failure), start_ms, first_failure_ms - start_ms - 1_000)
    put_log_stream(aws, stream["group"], stream["stream"], filler)  # appended after the recorded lines' stream
    size = sum(len(e["message"].encode()) for e in filler) + sum(len(m.encode()) for _, m in failure)
    return arn, stream["group"], stream["stream"], size


def _ours(aws: AwsClients, arn: str) -> tuple[Any, int, float]:
    logs = LogsGateway(aws.client("logs"))
    chase = Chase(StepFunctionsGateway(aws.stepfunctions), logs, ComputeGateway(aws), ProjectConfig(), "us-east-1")
    started = time.perf_counter()
    diagnosis = chase.diagnose(arn)
    return diagnosis, logs.bytes_read, time.perf_counter() - started


def _naive(aws: AwsClients, arn: str, group: str, stream: str) -> tuple[str | None, int, float]:
    started = time.perf_counter()
    client = aws.stepfunctions
    client.describe_execution(executionArn=arn)
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.get_execution_history(
            executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    failure = next(e for e in reversed(events) if e["type"] in LEAF_FAILURE_TYPES)
    assert failure["type"] == "TaskFailed"
    logs = LogsGateway(aws.client("logs"))
    lines = logs.read_all(group, stream)
    messages = [part for line in lines for part in line.message.split("\n")]
    trace = root_cause(messages[-20_000:]) or root_cause(messages)
    return (trace.root_exception if trace else None), logs.bytes_read, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=25_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with MotoSandbox() as moto, AwsReplay(moto.endpoint_url) as replay:
        aws = AwsClients(region="us-east-1", endpoint_url=replay.endpoint_url, credentials=SANDBOX_CREDENTIALS)
        setup_started = time.perf_counter()
        arn, group, stream, size = _setup(replay, aws, args.events, args.lines)
        print(f"set up {args.events:,} history events and {args.lines:,} log lines ({size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - setup_started:.0f} s")  # fmt: skip

        replay.reset_calls()
        diagnosis, our_bytes, our_time = _ours(aws, arn)
        our_calls = replay.call_counts()
        replay.reset_calls()
        naive_root, naive_bytes, naive_time = _naive(aws, arn, group, stream)
        naive_calls = replay.call_counts()

    sfn_calls = _states(our_calls)
    to_failed_state = our_calls["states:DescribeExecution"] + our_calls["states:GetExecutionHistory"]
    pct = 100.0 * our_bytes / size
    speedup = naive_time / our_time
    same = diagnosis.root_exception == naive_root
    for name, calls, seconds, read in (
        ("etl-doctor", our_calls, our_time, our_bytes),
        ("naive", naive_calls, naive_time, naive_bytes),
    ):
        print(f"{name:10} {seconds:8.2f} s  log bytes read {read:>12,}  calls: {_calls(calls)}")
    print(f"etl-doctor: {diagnosis.failed_state} · {diagnosis.category} · {diagnosis.root_exception}")
    print(f"naive     : root exception {naive_root}  (same as etl-doctor: {same})")
    print(
        f"sfn_calls={sfn_calls} sfn_calls_to_failed_state={to_failed_state} log_bytes_pct={pct:.4f} "
        f"speedup={speedup:.1f} our_s={our_time:.2f} naive_s={naive_time:.1f} log_bytes={our_bytes} "
        f"stream_bytes={size} naive_sfn_calls={_states(naive_calls)} same_root={same}"
    )


def _states(calls: Counter[str]) -> int:
    """Step Functions calls of any operation."""
    return sum(count for name, count in calls.items() if name.startswith("states:"))


def _calls(calls: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(calls.items()))


if __name__ == "__main__":
    main()

"""Load a recorded failure scenario: rebased to the present, served by `AwsReplay`, logs and metrics in moto."""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.aws.clients import AwsClients
from bot.sandbox.aws_replay import AwsReplay, parse_time, rebase

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_000_000  # PutLogEvents: 1,048,576 bytes including 26 bytes per event


def read_scenario(path: Path) -> dict[str, Any]:
    """Read ``scenario.json`` (or a directory holding one)."""
    file = path / "scenario.json" if path.is_dir() else path
    document: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return document


def load_scenario(
    scenario: dict[str, Any], replay: AwsReplay, aws: AwsClients, *, now: datetime | None = None
) -> dict[str, Any]:
    """Serve a scenario: recorded API responses from ``replay``, logs/task definitions/metrics in moto.

    Every timestamp is shifted so the earliest execution started an hour before ``now``.

    Args:
        scenario: The recorded scenario (see tests/fixtures/executions/).
        replay: The replay endpoint (recorded Step Functions, ECS tasks, Glue runs, Batch jobs).
        aws: Clients pointed at moto (or at ``replay``, which forwards to moto).
        now: The present (default: now).

    Returns:
        The rebased scenario (its ``expected`` block and ARNs are what tests compare against).
    """
    starts = [parse_time(e["describe"]["startDate"]) for e in scenario.get("executions", {}).values()]
    present = now or datetime.now(UTC)
    delta = (present - timedelta(hours=1)) - min(starts) if starts else timedelta(0)
    rebased: dict[str, Any] = rebase(scenario, delta)
    for recorded in rebased.get("executions", {}).values():
        replay.add_execution(recorded["describe"], recorded["history"])
    for machine in rebased.get("state_machines", {}).values():
        replay.add_state_machine(machine)
    for run in rebased.get("map_runs", {}).values():
        replay.add_map_run(run["describe"], run["executions"])
    for task in rebased.get("ecs", {}).get("tasks", {}).values():
        replay.add_ecs_task(task)
    for job_run in rebased.get("glue", {}).get("job_runs", {}).values():
        replay.add_glue_job_run(job_run)
    for job in rebased.get("batch", {}).get("jobs", {}).values():
        replay.add_batch_job(job)
    ecs = aws.client("ecs")
    text = json.dumps(rebased)
    for definition in rebased.get("ecs", {}).get("task_definitions", []):
        # Recorded tasks name a revision (family:7): register until the account has that revision, as a real one would.
        revisions = [int(r) for r in re.findall(rf"task-definition/{re.escape(definition['family'])}:(\d+)", text)]
        for _ in range(max(revisions, default=1)):
            ecs.register_task_definition(**definition)
    functions = rebased.get("lambda", {}).get("functions", {})
    if functions:
        create_lambda_functions(aws, list(functions.values()))
    for stream in rebased.get("logs", []):
        put_log_stream(aws, stream["group"], stream["stream"], stream["events"])
    for metric in rebased.get("metrics", []):
        put_metric(aws, metric)
    return rebased


def put_log_stream(aws: AwsClients, group: str, stream: str, events: list[dict[str, Any]]) -> None:
    """Create the group and stream if needed and put the events (ISO or epoch-ms timestamps), in batches."""
    logs = aws.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    ordered = sorted(
        ({"timestamp": _ms(event["timestamp"]), "message": event["message"]} for event in events),
        key=lambda event: event["timestamp"],
    )
    batch: list[dict[str, Any]] = []
    size = 0
    for event in ordered:
        event_size = len(event["message"].encode()) + 26
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + event_size > MAX_BATCH_BYTES):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)


def put_metric(aws: AwsClients, metric: dict[str, Any]) -> None:
    """Put a recorded metric series into CloudWatch."""
    dimensions = [{"Name": name, "Value": value} for name, value in metric.get("dimensions", {}).items()]
    data = [
        {
            "MetricName": metric["name"],
            "Dimensions": dimensions,
            "Timestamp": parse_time(when),
            "Value": float(value),
            "Unit": metric.get("unit", "None"),
        }
        for when, value in metric["points"]
    ]
    cloudwatch = aws.client("cloudwatch")
    for start in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace=metric["namespace"], MetricData=data[start : start + 500])


def _ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(parse_time(value).timestamp() * 1000)


def create_lambda_functions(aws: AwsClients, functions: list[dict[str, Any]]) -> None:
    """Create recorded Lambda functions (configuration only: moto never runs them here)."""
    iam, client = aws.client("iam"), aws.client("lambda")
    try:
        role = iam.get_role(RoleName="etl-doctor-sandbox-lambda")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = iam.create_role(RoleName="etl-doctor-sandbox-lambda", AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("handler.py", "def lambda_handler(event, context):\n    return event\n")
    for function in functions:
        settings = {
            key: function[key]
            for key in ("FunctionName", "Runtime", "Handler", "Timeout", "MemorySize", "LoggingConfig")
            if key in function
        }
        client.create_function(Role=role, Code={"ZipFile": archive.getvalue()}, **settings)

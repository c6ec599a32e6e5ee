"""Run a diagnosis or a logs lookup for a target, with the process's services (shared by Slack and the CLI)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.aws.logs import LogsGateway
from bot.diagnosis.chase import Chase
from bot.diagnosis.logs_lookup import LogsQuery, LogsResult, LogsUsageError, read_stream
from bot.diagnosis.model import PATH_SEPARATOR, Diagnosis
from bot.diagnosis.targets import parse_target, resolve_target
from bot.services import Services

_TASK_ARN = re.compile(r"^arn:aws[a-z-]*:ecs:([a-z0-9-]+):\d{12}:task/(?:([A-Za-z0-9_-]+)/)?([A-Za-z0-9]+)$")


def make_chase(services: Services, logs: LogsGateway | None = None) -> Chase:
    """A chase over the services' AWS clients."""
    return Chase(
        services.stepfunctions,
        logs or services.logs(),
        services.compute,
        services.settings.project,
        services.aws.region,
    )


def diagnose(args: Sequence[str], services: Services) -> Diagnosis:
    """Parse a target, resolve it to an execution and diagnose it (AWS calls counted in ``context``)."""
    before = sum(services.aws.call_counts().values())
    chase = make_chase(services)
    arn = resolve_target(parse_target(args), services.settings.project, services.stepfunctions)
    diagnosis = chase.diagnose(arn)
    diagnosis.context["aws_calls"] = sum(services.aws.call_counts().values()) - before
    return diagnosis


def find_logs(query: LogsQuery, services: Services) -> LogsResult:
    """The log stream a target points to (by the same hops as `why`), tail or matches.

    Raises:
        LogsUsageError: The target leads to no log stream (the message says why).
    """
    logs = services.logs()
    region, now = services.aws.region, services.clock()
    word = query.target[0] if len(query.target) == 1 else ""
    if ":" in word and not word.startswith(("arn:", "http")):
        group, _, stream = word.partition(":")
        return read_stream(logs, group, stream, query, region=region, now=now, found_by="named")
    task = _TASK_ARN.match(word)
    if task:
        return _task_logs(word, task[2], query, services, logs)
    diagnosis = make_chase(services, logs).diagnose(
        resolve_target(parse_target(query.target), services.settings.project, services.stepfunctions)
    )
    hop = next((h for h in reversed(diagnosis.hops) if h.kind == "log_stream" and h.followed), None)
    if hop is None:
        reason = next((h.detail for h in diagnosis.hops if h.kind == "log_stream"), "")
        verdict = diagnosis.verdict or f"the failed state `{diagnosis.failed_state}` leads to no log stream"
        raise LogsUsageError(f"{verdict}{': ' + reason if reason else ''}")
    group, _, stream = hop.label.partition(PATH_SEPARATOR)
    return read_stream(
        logs,
        group,
        stream,
        query,
        region=region,
        now=now,
        around=diagnosis.stopped_at,
        found_by=diagnosis.execution_name,
    )


def _task_logs(arn: str, cluster: str | None, query: LogsQuery, services: Services, logs: LogsGateway) -> LogsResult:
    task = services.compute.ecs_task(cluster, arn)
    if task is None:
        raise LogsUsageError(
            f"ECS does not know task {arn.rsplit('/', 1)[-1]} (stopped tasks expire after about an hour)"
        )
    definition = services.compute.ecs_task_definition(task["taskDefinitionArn"]) or {}
    task_id = arn.rsplit("/", 1)[-1]
    for container in definition.get("containerDefinitions", []):
        options = (container.get("logConfiguration") or {}).get("options", {})
        if options.get("awslogs-group") and options.get("awslogs-stream-prefix"):
            stream = f"{options['awslogs-stream-prefix']}/{container['name']}/{task_id}"
            return read_stream(
                logs, options["awslogs-group"], stream, query, region=services.aws.region, now=services.clock(),
                around=task.get("stoppedAt"), found_by=task_id,
            )  # fmt: skip
    raise LogsUsageError(
        f"task {task_id}'s containers do not log to CloudWatch (no awslogs driver with a stream prefix)"
    )

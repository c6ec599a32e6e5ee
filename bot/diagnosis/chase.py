"""The chase: follow a failed execution through every hop to the log lines that explain it."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.aws.console import execution_url, log_group_url, log_stream_url
from bot.aws.errors import describe_aws_error
from bot.aws.logs import LogGroupNotFoundError, LogsGateway
from bot.aws.stepfunctions import ExecutionDescription, StateMachineDefinition, StepFunctionsGateway
from bot.config import ProjectConfig
from bot.diagnosis.classify import Signals, classify
from bot.diagnosis.evidence import MAX_EVIDENCE, LogFindings, read_evidence
from bot.diagnosis.history import Event, FailurePoint, HistoryWindow, details, locate_failure, parse_json
from bot.diagnosis.model import PATH_SEPARATOR, Diagnosis, EvidenceLine, Hop
from bot.diagnosis.remediation import remediate
from bot.diagnosis.retry_audit import LAMBDA_FUNCTION_ARN, audit_retry, find_state, task_states
from bot.diagnosis.stacktrace import StackTrace, parse_lambda_error
from bot.errors import UserFacingError

MAX_DEPTH = 5
HISTORY_PAGES = 2  # with DescribeExecution: at most 3 Step Functions calls to reach the failed state
CPU_WINDOW = timedelta(minutes=5)  # the CPU average covers this long before the failure
STATE_MACHINE_LOG_WINDOW = timedelta(minutes=10)  # the state machine's own log is searched this long before the stop
STATE_MACHINE_LOG_LINES = 200
MAP_RUN_FAILED_LISTED = 100  # ListExecutions(mapRunArn, FAILED): one page; beyond it DescribeMapRun counts
LAMBDA_MAX_TIMEOUT = 900  # seconds: no invocation lasts longer
_FAILURE_EVENT = re.compile(r"(Failed|TimedOut|Aborted)$|^FailStateEntered$")
_TASK_ARN = re.compile(r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task/[A-Za-z0-9_/-]+")
_EXECUTION_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+")
_REPORT = re.compile(r"Memory Size: (\d+) MB\s+Max Memory Used: (\d+) MB")
_REQUEST_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_TIMED_OUT = re.compile(r"Task timed out after ([\d.]+) seconds|Duration: ([\d.]+) ms.*Status: timeout")


def _lower_keys(value: Any) -> Any:
    """ECS/Glue/Batch objects arrive PascalCase inside Causes and camelCase from the APIs: use camelCase."""
    if isinstance(value, dict):
        return {(key[:1].lower() + key[1:]): _lower_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lower_keys(item) for item in value]
    return value


@dataclass
class _Found:
    """What the followers gathered for classification and remediation.

    ``texts`` (error, cause, stop reasons…) are also hashed into the fingerprint; ``log_texts`` (evidence
    lines, which differ from run to run) only help to classify.
    """

    texts: list[str] = field(default_factory=list)
    log_texts: list[str] = field(default_factory=list)
    exit_code: int | None = None
    stop_code: str | None = None
    memory_peak_pct: float | None = None
    trace: StackTrace | None = None
    findings: LogFindings | None = None


class Chase:
    """Diagnoses executions.

    Args:
        sfn: Step Functions gateway.
        logs: CloudWatch Logs gateway.
        compute: ECS/Lambda/Glue/Batch/metrics gateway.
        (All three are None offline: hops that need AWS are then listed as not followed.)
        project: Pipelines (to name the pipeline of an execution).
        region: Default region for links.
    """

    def __init__(
        self,
        sfn: StepFunctionsGateway | None,
        logs: LogsGateway | None,
        compute: Any,
        project: ProjectConfig,
        region: str,
    ) -> None:
        self.sfn = sfn
        self.logs = logs
        self.compute = compute
        self.project = project
        self.region = region
        self._machines: dict[str, StateMachineDefinition | str] = {}  # by execution ARN; str: the AWS error

    # ------------------------------------------------------------------ entry points

    def diagnose(self, execution_arn: str, *, depth: int = 0) -> Diagnosis:
        """Diagnose one execution (describe, read its history newest-first, follow the failed work)."""
        sfn = self._live()
        description = sfn.describe_execution(execution_arn)
        diagnosis = self._start(description)
        if not diagnosis.diagnosable:
            return diagnosis
        window = HistoryWindow(lambda token: sfn.history_page(execution_arn, token), max_pages=HISTORY_PAGES)
        self._diagnose_history(diagnosis, description, window, depth=depth)
        return diagnosis

    def diagnose_offline(self, describe: dict[str, Any] | None, events: list[Event]) -> Diagnosis:
        """Diagnose from saved describe-execution / get-execution-history output (no AWS calls)."""
        ordered = sorted(events, key=lambda event: int(event["id"]), reverse=True)
        terminal_types = {"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted", "ExecutionSucceeded"}
        status = next(
            (
                {"ExecutionFailed": "FAILED", "ExecutionTimedOut": "TIMED_OUT", "ExecutionAborted": "ABORTED"}.get(
                    e["type"], "SUCCEEDED"
                )
                for e in ordered
                if e["type"] in terminal_types
            ),
            "RUNNING",
        )
        start_event = next((e for e in reversed(ordered) if e["type"] == "ExecutionStarted"), None)
        described = {
            "executionArn": "(from a saved history)",
            "stateMachineArn": details(start_event or {}).get("stateMachineArn", ""),
            "status": status,
            "startDate": (start_event or ordered[-1])["timestamp"],
            "stopDate": ordered[0]["timestamp"],
        } | {key: value for key, value in (describe or {}).items() if value is not None}
        description = ExecutionDescription.from_api(described)
        diagnosis = self._start(description)
        if diagnosis.diagnosable:
            window = HistoryWindow(lambda token: (ordered, None), max_pages=1)
            self._diagnose_history(diagnosis, description, window, depth=0, offline=True)
        return diagnosis

    # ------------------------------------------------------------------ common

    def _live(self) -> StepFunctionsGateway:
        if self.sfn is None:
            raise UserFacingError("this diagnosis is offline (from saved files): no AWS calls can be made")
        return self.sfn

    def _start(self, description: ExecutionDescription) -> Diagnosis:
        region = (
            description.execution_arn.split(":")[3] if description.execution_arn.startswith("arn:") else self.region
        )
        diagnosis = Diagnosis(
            execution_arn=description.execution_arn,
            status=description.status,
            state_machine_arn=description.state_machine_arn,
            execution_name=description.name,
            pipeline=self._pipeline_of(description.state_machine_arn),
            region=region,
            started_at=description.start_date,
            stopped_at=description.stop_date,
            error=description.error,
        )
        name = f"`{description.name}` of `{diagnosis.pipeline or description.state_machine_arn.rsplit(':', 1)[-1]}`"
        if description.status in {"RUNNING", "PENDING_REDRIVE"}:
            diagnosis.verdict = f"{name} is still running (started {description.start_date:%Y-%m-%d %H:%M} UTC)"
        elif description.status == "SUCCEEDED":
            stopped = f" at {description.stop_date:%Y-%m-%d %H:%M} UTC" if description.stop_date else ""
            diagnosis.verdict = f"{name} SUCCEEDED{stopped} — nothing to diagnose"
        if description.execution_arn.startswith("arn:"):
            diagnosis.hops.append(
                Hop("execution", description.name, description.status, execution_url(description.execution_arn, region))
            )
        return diagnosis

    def _pipeline_of(self, machine_arn: str) -> str | None:
        return self.project.pipeline_for_state_machine(machine_arn)

    def _diagnose_history(
        self,
        diagnosis: Diagnosis,
        description: ExecutionDescription,
        window: HistoryWindow,
        *,
        depth: int,
        offline: bool = False,
    ) -> None:
        point = locate_failure(window)
        if not offline and description.execution_arn.startswith("arn:"):
            self._name_unread_task(point, window, description.execution_arn)
        diagnosis.context["history_pages"] = window.pages_read
        diagnosis.failed_state = point.state_name
        diagnosis.integration = point.integration
        diagnosis.context["path"] = point.path
        diagnosis.error = point.error or description.error
        diagnosis.cause_summary = _summarise_cause(point.cause or description.cause)
        diagnosis.notes += point.notes
        state_detail = point.error or ""
        branch_hop: int | None = None
        if point.container_state and point.container_state != point.state_name and point.container is not None:
            parallel = point.container["type"].startswith("Parallel")
            what = "a branch failed" if parallel else "an iteration failed"
            if point.iteration_index is not None:
                what = f"iteration #{point.iteration_index} failed"
            if parallel and point.branch_start:
                what = f"the branch that starts at `{point.branch_start}` failed"
                branch_hop = len(diagnosis.hops)
            diagnosis.hops.append(Hop("parallel" if parallel else "map", point.container_state, what))
        if point.state_name:
            diagnosis.hops.append(Hop("state", point.state_name, state_detail.strip()))
        found = _Found(texts=[text for text in (point.error, point.cause) if text])
        follower: Callable[[Diagnosis, FailurePoint, _Found, int], None] | None = {
            "ecs": self._follow_ecs,
            "lambda": self._follow_lambda,
            "glue": self._follow_glue,
            "batch": self._follow_batch,
            "child": self._follow_child,
            "distributed_map": self._follow_map_run,
        }.get(point.integration)
        if follower is not None:
            if offline:
                diagnosis.hops.append(
                    Hop(
                        point.integration, point.resource or point.integration, "not followed (offline)", followed=False
                    )
                )
                self._use_cause_only(diagnosis, point, found)
            else:
                self._guarded(diagnosis, point.integration, lambda: follower(diagnosis, point, found, depth))
        elif point.integration in {"fail", "runtime"}:
            diagnosis.notes.append(_explain_state_failure(point))
        definition = None
        if not offline and description.execution_arn.startswith("arn:"):
            definition = self._definition(diagnosis, found)
        if definition is not None and branch_hop is not None and point.container_state and point.branch_start:
            container = find_state(definition.get("States", {}), point.container_state) or {}
            starts = [branch.get("StartAt") for branch in container.get("Branches") or []]
            if point.branch_start in starts:
                number = starts.index(point.branch_start) + 1
                diagnosis.hops[branch_hop] = dataclasses.replace(
                    diagnosis.hops[branch_hop],
                    detail=f"branch {number} of {len(starts)} (starts at `{point.branch_start}`) failed",
                )
        if definition is not None and point.state_name:
            state = find_state(definition.get("States", {}), point.state_name)
            if state is not None and point.integration in {"fail", "runtime"}:
                diagnosis.definition_snippet = json.dumps({point.state_name: state}, indent=2)[:1500]
        if diagnosis.root_exception is None and found.trace is not None:
            diagnosis.root_exception = found.trace.root_exception
            diagnosis.app_frames = list(found.trace.app_frames)
        self._classify(diagnosis, found, diagnosis.error or point.error, point.integration)
        if definition is not None and diagnosis.failed_state and not diagnosis.retry_audit:
            # the innermost failed state: inside a Distributed Map it is in the parent's ItemProcessor
            advice = audit_retry(definition, diagnosis.failed_state, diagnosis.error, transient=diagnosis.transient)
            if advice is not None:
                diagnosis.retry_audit.append(advice)
        diagnosis.remediation = remediate(diagnosis)

    def _guarded(self, diagnosis: Diagnosis, kind: str, follow: Callable[[], None]) -> None:
        """Run a follower; an AWS or user-facing failure marks the hop as not followed instead of failing all."""
        try:
            follow()
        except UserFacingError as exc:
            diagnosis.hops.append(Hop(kind, kind, f"not followed: {exc}", followed=False))
        except Exception as exc:
            described = describe_aws_error(exc)
            if described is None:
                raise
            diagnosis.hops.append(Hop(kind, kind, f"not followed: {described}", followed=False))

    def _machine(self, execution_arn: str) -> StateMachineDefinition | str:
        """The definition an execution ran: one DescribeStateMachineForExecution call per execution.

        Returns:
            The definition, or the AWS error that kept it from being read (kept too: the call is not repeated).
        """
        if execution_arn not in self._machines:
            try:
                self._machines[execution_arn] = self._live().definition_for_execution(execution_arn)
            except Exception as exc:
                described = describe_aws_error(exc)
                if described is None:
                    raise
                self._machines[execution_arn] = described
        return self._machines[execution_arn]

    def _name_unread_task(self, point: FailurePoint, window: HistoryWindow, execution_arn: str) -> None:
        """Name the failed Task state from the definition when its scheduling event was beyond the page budget.

        The failure event still names its kind of work (``resourceType``/``resource``): when exactly one Task
        state of the enclosing Map/Parallel state (or of the machine) does that work, it is the failed state.
        With several, none is guessed. A definition that cannot be read is skipped here (`_definition` says so).
        """
        work = point.caught or point.leaf
        if work is None or point.scheduled is not None or point.entered is not None or not window.budget_spent:
            return
        work_details = details(work)
        resource_type, resource = work_details.get("resourceType"), work_details.get("resource")
        if work["type"].startswith("LambdaFunction"):  # a legacy Lambda task: its Resource is the function
            resource_type, resource = "lambda", None
        elif not resource_type or not resource:
            return
        machine = self._machine(execution_arn)
        if isinstance(machine, str):
            return
        candidates = task_states(machine.definition.get("States", {}), point.container_state, resource_type, resource)
        work_name = f"`{resource_type}:{resource}` task" if resource else "Lambda function task"
        where = f"`{point.container_state}`" if point.container_state else "the state machine"
        if len(candidates) == 1:
            ((name, state),) = candidates
            point.state_name, point.task_state = name, state
            point.notes.append(
                f"the failed state is `{name}`, the only {work_name} in {where} (its scheduling event was not read)"
            )
        elif candidates:
            names = ", ".join(f"`{name}`" for name, _ in candidates)
            point.notes.append(
                f"{len(candidates)} {work_name}s in {where} could have failed ({names}); "
                "without the scheduling event the failed one is not known"
            )

    def _definition(self, diagnosis: Diagnosis, found: _Found) -> dict[str, Any] | None:
        machine = self._machine(diagnosis.execution_arn)
        if isinstance(machine, str):
            diagnosis.notes.append(f"definition not read: {machine}")
            return None
        for arn in machine.log_group_arns:
            group = arn.split(":log-group:", 1)[-1].removesuffix(":*")
            detail = f"level {machine.log_level or '?'}"
            if not diagnosis.evidence and machine.log_level not in (None, "OFF"):
                detail += self._state_machine_log_evidence(diagnosis, found, group)
            diagnosis.hops.append(Hop("state_machine_logs", group, detail, log_group_url(diagnosis.region, group)))
        return machine.definition

    def _state_machine_log_evidence(self, diagnosis: Diagnosis, found: _Found, group: str) -> str:
        """When the task hop gave no log lines: this execution's failure events in the state machine's log group.

        One bounded FilterLogEvents search for the execution ARN, in the minutes before the execution stopped
        (failure events come right before ExecutionFailed; at level ALL older events could be many).

        Returns:
            What to add to the hop's detail.
        """
        if self.logs is None or diagnosis.stopped_at is None:
            return ""
        start = max(diagnosis.started_at or diagnosis.stopped_at, diagnosis.stopped_at - STATE_MACHINE_LOG_WINDOW)
        try:
            lines = self.logs.search(
                group,
                diagnosis.execution_arn,
                start,
                diagnosis.stopped_at + timedelta(minutes=1),
                limit=STATE_MACHINE_LOG_LINES,
                max_pages=5,
            )
        except LogGroupNotFoundError:
            return " · log group not found"
        except Exception as exc:
            if describe_aws_error(exc) is None:
                raise
            return f" · not read: {describe_aws_error(exc)}"
        failures = [line for line in lines if _is_failure_log_event(line.message, diagnosis.execution_arn)]
        diagnosis.evidence = [
            EvidenceLine(
                line.timestamp,
                line.message,
                group,
                line.stream,
                log_stream_url(diagnosis.region, group, line.stream, line.timestamp),
            )
            for line in failures[-MAX_EVIDENCE:]
        ]
        found.log_texts += [line.message for line in diagnosis.evidence]
        return f" · {len(failures)} failure events of this execution read"

    def _classify(self, diagnosis: Diagnosis, found: _Found, error: str | None, integration: str) -> None:
        texts = list(found.texts)
        if found.trace is not None:
            texts += list(found.trace.chain)
        log_texts = list(found.log_texts)
        if found.findings is not None:
            log_texts += [line.message for line in found.findings.evidence[-10:]]
        result = classify(
            Signals(
                texts=tuple(texts),
                log_texts=tuple(log_texts),
                error_name=error,
                exit_code=found.exit_code,
                stop_code=found.stop_code,
                memory_peak_pct=found.memory_peak_pct,
                integration=integration,
            )
        )
        diagnosis.category = result.category
        diagnosis.confidence = result.confidence
        diagnosis.transient = result.transient
        diagnosis.fingerprint = result.fingerprint
        diagnosis.title = result.title
        diagnosis.reasons = list(result.reasons)
        diagnosis.conflicts = list(result.conflicts)

    def _use_cause_only(self, diagnosis: Diagnosis, point: FailurePoint, found: _Found) -> None:
        cause = parse_json(point.cause)
        if point.integration == "lambda":
            trace = parse_lambda_error(point.cause or "")
            if trace is not None:
                found.trace = trace
        elif isinstance(cause, dict):
            task = _lower_keys(cause)
            found.texts += _cause_texts(task)
            exit_code = _first_exit_code(task)
            if exit_code is not None:
                found.exit_code = exit_code
            found.stop_code = task.get("stopCode")

    def _add_log_evidence(
        self,
        diagnosis: Diagnosis,
        found: _Found,
        group: str,
        stream: str,
        start: datetime | None,
        end: datetime,
        *,
        request_id: str | None = None,
    ) -> None:
        if self.logs is None:
            return
        findings = read_evidence(self.logs, group, stream, start, end, region=diagnosis.region, request_id=request_id)
        found.findings = findings
        if findings.trace is not None:
            found.trace = findings.trace
        diagnosis.evidence = findings.evidence
        detail = f"{findings.lines_read} lines read" + (
            f", searched {', '.join(findings.searched_terms)}" if findings.searched_terms else ""
        )
        diagnosis.hops.append(
            Hop(
                "log_stream",
                f"{group}{PATH_SEPARATOR}{stream}",
                detail,
                log_stream_url(diagnosis.region, group, stream, end),
            )
        )

    # ------------------------------------------------------------------ ECS

    def _follow_ecs(self, diagnosis: Diagnosis, point: FailurePoint, found: _Found, depth: int) -> None:
        cause = parse_json(point.cause)
        task = _lower_keys(cause) if isinstance(cause, dict) and ("taskArn" in cause or "TaskArn" in cause) else None
        if task is None:
            arn_match = _TASK_ARN.search(point.cause or "") or _TASK_ARN.search(
                json.dumps(details(point.submitted)) if point.submitted else ""
            )
            if arn_match is None:
                raise UserFacingError("the failure names no ECS task")
            cluster = _cluster_from(point)
            task = self.compute.ecs_task(cluster, arn_match[0])
            if task is None:
                raise UserFacingError(
                    f"ECS no longer describes task {arn_match[0].rsplit('/', 1)[-1]} (stopped tasks expire)"
                )
            diagnosis.notes.append("the Cause was truncated; the task was read with DescribeTasks")
        task_arn: str = task["taskArn"]
        task_id = task_arn.rsplit("/", 1)[-1]
        cluster_name = str(task.get("clusterArn", "")).rsplit("/", 1)[-1]
        found.stop_code = task.get("stopCode")
        found.texts += _cause_texts(task)
        containers = task.get("containers", [])
        failing = _failing_container(containers)
        diagnosis.hops.append(
            Hop(
                "ecs_task",
                task_id,
                " · ".join(str(part) for part in (task.get("stopCode"), task.get("stoppedReason")) if part),
                f"https://{diagnosis.region}.console.aws.amazon.com/ecs/v2/clusters/{cluster_name}/tasks/{task_id}"
                f"/configuration?region={diagnosis.region}",
            )
        )
        if failing is None:
            return
        found.exit_code = failing.get("exitCode")
        exit_text = f"exit {failing['exitCode']}" if failing.get("exitCode") is not None else "no exit code"
        diagnosis.hops.append(
            Hop(
                "container",
                failing.get("name", "?"),
                " · ".join(p for p in (exit_text, failing.get("reason", "")) if p),
            )
        )
        definition = (
            self.compute.ecs_task_definition(task["taskDefinitionArn"]) if task.get("taskDefinitionArn") else None
        )
        if definition is not None:  # what a container-start failure's next steps name: the images, the secrets
            definitions = definition.get("containerDefinitions", [])
            diagnosis.context["container_images"] = [str(c["image"]) for c in definitions if c.get("image")]
            diagnosis.context["container_secrets"] = [
                str(value)
                for c in definitions
                for value in [
                    *(secret.get("valueFrom") for secret in c.get("secrets", [])),
                    (c.get("repositoryCredentials") or {}).get("credentialsParameter"),
                ]
                if value
            ]
        if task.get("stopCode") == "TaskFailedToStart" or (
            failing.get("exitCode") is None and not task.get("startedAt")
        ):
            diagnosis.notes.append(
                "the container never started, so it wrote no logs: the stopped reason is the evidence"
            )
            return
        if definition is None:
            diagnosis.hops.append(
                Hop("log_stream", "?", "task definition not found: log stream unknown", followed=False)
            )
            return
        container_definition: dict[str, Any] = next(
            (c for c in definition.get("containerDefinitions", []) if c.get("name") == failing.get("name")), {}
        )
        diagnosis.context["ecs"] = {
            "task_definition": f"{definition.get('family')}:{definition.get('revision')}",
            "task_memory": definition.get("memory"),
            "task_cpu": definition.get("cpu"),
            "container": failing.get("name"),
            "container_memory": container_definition.get("memory") or container_definition.get("memoryReservation"),
            "image": container_definition.get("image"),
            "environment": {e.get("name"): e.get("value") for e in container_definition.get("environment", [])},
        }
        started = point.started_at or _moment(task.get("startedAt") or task.get("createdAt"))
        self._ecs_resources(diagnosis, found, cluster_name, task_id, definition, started, point.failed_at)
        options = (container_definition.get("logConfiguration") or {}).get("options", {})
        if (container_definition.get("logConfiguration") or {}).get("logDriver") != "awslogs" or not options.get(
            "awslogs-group"
        ):
            diagnosis.hops.append(
                Hop("log_stream", "?", "the container does not log to CloudWatch (no awslogs driver)", followed=False)
            )
            return
        group = options["awslogs-group"]
        prefix = options.get("awslogs-stream-prefix")
        stream = f"{prefix}/{failing['name']}/{task_id}" if prefix else failing.get("logStreamName")
        if not stream:
            stream_list = self.logs.streams_with_prefix(group, task_id) if self.logs else []
            if not stream_list:
                diagnosis.hops.append(Hop("log_stream", group, "no stream prefix configured", followed=False))
                return
            stream = stream_list[0]
        self._add_log_evidence(diagnosis, found, group, stream, started, point.failed_at)

    def _ecs_resources(
        self,
        diagnosis: Diagnosis,
        found: _Found,
        cluster: str,
        task_id: str,
        definition: dict[str, Any],
        started: datetime | None,
        failed: datetime,
    ) -> None:
        """Container Insights memory peak and CPU average near the failure (one GetMetricData call a dimension set)."""
        reserved, cpu_units = definition.get("memory"), definition.get("cpu")
        if not (reserved or cpu_units) or started is None:
            return
        dimension_sets = [
            {"ClusterName": cluster, "TaskId": task_id},
            {"ClusterName": cluster, "TaskDefinitionFamily": str(definition.get("family"))},
        ]
        metrics = {"memory": ("MemoryUtilized", "Maximum"), "cpu": ("CpuUtilized", "Average")}
        for dimensions in dimension_sets:
            series = self.compute.metric_series("ECS/ContainerInsights", metrics, dimensions, started, failed)
            memory, cpu = series.get("memory", []), series.get("cpu", [])
            if not memory and not cpu:
                continue
            if memory and reserved:
                when, value = max(reversed(memory), key=lambda point: point[1])  # the latest of equal peaks
                found.memory_peak_pct = 100.0 * value / float(reserved)
                before = (failed - when).total_seconds()
                timing = f"{before:.0f} s before the failure" if before >= 0 else "at the failure"
                diagnosis.resource_notes.append(
                    f"memory reached {found.memory_peak_pct:.0f}% of {reserved} MiB {timing} (Container Insights)"
                )
            recent = [value for when, value in cpu if failed - CPU_WINDOW <= when <= failed]
            if recent and cpu_units:
                average = 100.0 * sum(recent) / len(recent) / float(cpu_units)
                diagnosis.context.setdefault("ecs", {})["cpu_average_pct"] = round(average, 1)
                diagnosis.resource_notes.append(
                    f"CPU averaged {average:.0f}% of {cpu_units} units in the {CPU_WINDOW.seconds // 60} min "
                    "before exit (Container Insights)"
                )
            return

    # ------------------------------------------------------------------ Lambda

    def _follow_lambda(self, diagnosis: Diagnosis, point: FailurePoint, found: _Found, depth: int) -> None:
        function = _lambda_function(point)
        trace = parse_lambda_error(point.cause or "")
        cause = parse_json(point.cause)
        request_id = cause.get("requestId") if isinstance(cause, dict) else None
        if request_id is None:  # e.g. Lambda.Unknown quotes the function's last line, request id included
            quoted = _REQUEST_ID.search(point.cause or "")
            request_id = quoted[0] if quoted else None
        if trace is not None:
            found.trace = trace
        name = function.split(":function:")[-1].split(":")[0] if function else None
        configuration = self.compute.lambda_configuration(function) if function else None
        group = ((configuration or {}).get("LoggingConfig") or {}).get("LogGroup") or (
            f"/aws/lambda/{name}" if name else None
        )
        url = (
            f"https://{diagnosis.region}.console.aws.amazon.com/lambda/home?region={diagnosis.region}#/functions/{name}"
        )
        limits = ""
        if configuration:
            diagnosis.context["lambda"] = {
                "function": name,
                "memory": configuration.get("MemorySize"),
                "timeout": configuration.get("Timeout"),
            }
            limits = f"{configuration.get('MemorySize')} MB, timeout {configuration.get('Timeout')} s"
        diagnosis.hops.append(
            Hop(
                "lambda", name or "?", " · ".join(p for p in (request_id and f"request {request_id}", limits) if p), url
            )
        )
        if name is None and point.scheduled is None:
            diagnosis.notes.append("the Lambda function is named only by the scheduling event, which was not read")
        # without the scheduling event: the invocation ended at the failure and lasted at most the function's timeout
        timeout = int((configuration or {}).get("Timeout") or LAMBDA_MAX_TIMEOUT)
        started = point.started_at or point.failed_at - timedelta(seconds=timeout)
        if group is None or self.logs is None:
            return
        start, end = started - timedelta(seconds=5), point.failed_at + timedelta(seconds=5)
        markers = [m for m in (request_id, trace.root_type if trace else None) if m] or [
            "Task timed out",  # older runtimes
            "Status: timeout",  # current runtimes: on the REPORT line
        ]
        matches = []
        try:
            for marker in markers:
                matches = self.logs.search(group, marker, start, end, limit=20)
                if matches:
                    break
        except LogGroupNotFoundError:
            throttled = "TooManyRequests" in (point.error or "")
            why = "the invocation never reached the function" if throttled else "the function never logged"
            diagnosis.hops.append(Hop("log_stream", group, f"no such log group: {why}", followed=False))
            return
        if not matches:
            wanted = " or ".join(f"`{m}`" for m in markers)
            diagnosis.hops.append(
                Hop("log_stream", group, f"no line with {wanted} in the invocation's window", followed=False)
            )
            return
        stream = matches[-1].stream
        self._add_log_evidence(diagnosis, found, group, stream, started, point.failed_at, request_id=request_id)
        for line in diagnosis.evidence:
            report = _REPORT.search(line.message)
            if report:
                size, used = int(report[1]), int(report[2])
                diagnosis.resource_notes.append(f"Lambda used {used} of {size} MB")
                diagnosis.context.setdefault("lambda", {}).update({"memory": size, "max_memory_used": used})
                if used >= size:
                    found.texts.append("Lambda Max Memory Used reached Memory Size")
                    found.memory_peak_pct = 100.0
            timed_out = _TIMED_OUT.search(line.message)
            if timed_out:
                seconds = float(timed_out[1]) if timed_out[1] else float(timed_out[2]) / 1000
                diagnosis.context.setdefault("lambda", {})["timed_out_after"] = round(seconds, 2)
                found.texts.append(line.message)

    # ------------------------------------------------------------------ Glue

    def _follow_glue(self, diagnosis: Diagnosis, point: FailurePoint, found: _Found, depth: int) -> None:
        cause = parse_json(point.cause)
        run = _lower_keys(cause) if isinstance(cause, dict) else None
        parameters = parse_json(details(point.scheduled).get("parameters")) if point.scheduled else None
        job_name = (run or {}).get("jobName") or (parameters or {}).get("JobName")
        run_id = (run or {}).get("id")
        if run is None or not run.get("errorMessage"):
            submitted = parse_json(details(point.submitted).get("output")) if point.submitted else None
            run_id = run_id or (submitted or {}).get("JobRunId")
            if job_name and run_id:
                fetched = self.compute.glue_job_run(job_name, run_id)
                run = _lower_keys(fetched) if fetched else run
        if run is None or not job_name or not run_id:
            raise UserFacingError("the failure names no Glue job run")
        found.texts += [str(run.get("errorMessage", ""))]
        url = f"https://{diagnosis.region}.console.aws.amazon.com/gluestudio/home?region={diagnosis.region}#/job/{job_name}/run/{run_id}"
        detail = " · ".join(str(p) for p in (run.get("jobRunState"), run.get("errorMessage")) if p)
        diagnosis.hops.append(Hop("glue_job_run", f"{job_name}{PATH_SEPARATOR}{run_id}", detail[:300], url))
        diagnosis.context["glue"] = {
            "job": job_name,
            "worker_type": run.get("workerType"),
            "workers": run.get("numberOfWorkers"),
            "max_capacity": run.get("maxCapacity"),
            "glue_version": run.get("glueVersion"),
        }
        for group in ("/aws-glue/jobs/error", "/aws-glue/jobs/output"):
            try:
                # Glue 3.0 names the driver's stream after the run id; Glue 5.0 adds "-driver" (executors: their own).
                streams = self.logs.streams_with_prefix(group, run_id) if self.logs else []
                if not streams:
                    continue
                stream = (
                    run_id if run_id in streams else next((s for s in streams if s.endswith("-driver")), streams[0])
                )
                self._add_log_evidence(diagnosis, found, group, stream, point.started_at, point.failed_at)
            except UserFacingError:
                continue
            if found.trace is not None:
                return

    # ------------------------------------------------------------------ Batch

    def _follow_batch(self, diagnosis: Diagnosis, point: FailurePoint, found: _Found, depth: int) -> None:
        cause = parse_json(point.cause)
        job = _lower_keys(cause) if isinstance(cause, dict) and ("jobId" in cause or "JobId" in cause) else None
        if job is None or not job.get("statusReason"):  # a truncated Cause, or one without the reason: DescribeJobs
            submitted = parse_json(details(point.submitted).get("output")) if point.submitted else None
            job_id = (job or {}).get("jobId") or (submitted or {}).get("JobId") or (submitted or {}).get("jobId")
            fetched = self.compute.batch_job(job_id) if job_id else None
            job = _lower_keys(fetched) if fetched else job
        if job is None:
            raise UserFacingError("the failure names no Batch job")
        container = job.get("container") or {}
        attempts = job.get("attempts") or []
        last = (attempts[-1].get("container") if attempts else None) or {}
        found.exit_code = container.get("exitCode", last.get("exitCode"))
        found.texts += [str(t) for t in (job.get("statusReason"), container.get("reason"), last.get("reason")) if t]
        url = f"https://{diagnosis.region}.console.aws.amazon.com/batch/home?region={diagnosis.region}#jobs/detail/{job['jobId']}"
        detail = " · ".join(
            str(p)
            for p in (
                job.get("status"),
                job.get("statusReason"),
                found.exit_code is not None and f"exit {found.exit_code}",
            )
            if p
        )
        diagnosis.hops.append(Hop("batch_job", str(job.get("jobName", job["jobId"])), detail, url))
        stream = container.get("logStreamName") or last.get("logStreamName")
        options = ((container.get("logConfiguration") or {}).get("options")) or {}
        group = options.get("awslogs-group", "/aws/batch/job")
        if stream:
            self._add_log_evidence(diagnosis, found, group, stream, point.started_at, point.failed_at)

    # ------------------------------------------------------------------ child executions and map runs

    def _follow_child(self, diagnosis: Diagnosis, point: FailurePoint, found: _Found, depth: int) -> None:
        texts = [point.cause or "", json.dumps(details(point.submitted)) if point.submitted else ""]
        match = next((m for m in (_EXECUTION_ARN.search(text) for text in texts) if m), None)
        if match is None:
            raise UserFacingError("the failure names no child execution")
        self._merge_child(diagnosis, match[0], found, depth, kind="child_execution")

    def _follow_map_run(self, diagnosis: Diagnosis, point: FailurePoint, found: _Found, depth: int) -> None:
        map_run = point.map_run_arn
        if not map_run:
            raise UserFacingError("the Distributed Map run is not named in the history")
        live = self._live()
        failed = live.failed_map_run_executions(map_run, limit=MAP_RUN_FAILED_LISTED)
        run_id = map_run.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        detail = f"{len(failed)}{'+' if len(failed) >= MAP_RUN_FAILED_LISTED else ''} child executions failed"
        more = f"{len(failed) - 1} more child executions of the map run failed"
        if len(failed) >= MAP_RUN_FAILED_LISTED:  # capped: the map run itself knows how many
            counts = live.map_run_item_counts(map_run) or {}
            if counts.get("failed") is not None and counts.get("total"):
                detail = f"{counts['failed']:,} of {counts['total']:,} items failed"
                diagnosis.context["map_run_items"] = {"failed": counts["failed"], "total": counts["total"]}
                more = f"{counts['failed'] - 1:,} more items of the map run failed"
        diagnosis.hops.append(Hop("map_run", run_id, detail))
        if not failed:
            return
        first = min(failed, key=lambda execution: execution.stop_date or execution.start_date)
        if len(failed) > 1:
            diagnosis.notes.append(f"{more}; showing the first")
        self._merge_child(diagnosis, first.execution_arn, found, depth, kind="child_execution")

    def _merge_child(self, diagnosis: Diagnosis, child_arn: str, found: _Found, depth: int, *, kind: str) -> None:
        if depth + 1 > MAX_DEPTH:
            diagnosis.hops.append(
                Hop(kind, child_arn.rsplit(":", 1)[-1], f"not followed: deeper than {MAX_DEPTH} levels", followed=False)
            )
            diagnosis.notes.append(
                f"child executions are followed {MAX_DEPTH} levels deep; `{child_arn.rsplit(':', 1)[-1]}` "
                f"(level {depth + 1}) was not diagnosed"
            )
            return
        child = self.diagnose(child_arn, depth=depth + 1)
        hops = child.hops
        if hops and hops[0].kind == "execution":
            hops = [Hop(kind, hops[0].label, hops[0].detail, hops[0].url), *hops[1:]]
        diagnosis.hops += hops
        if diagnosis.error and child.error and diagnosis.error != child.error:
            diagnosis.notes.append(
                f"`{diagnosis.failed_state}` reported `{diagnosis.error}` because the child execution failed"
            )
        diagnosis.error = child.error or diagnosis.error
        diagnosis.cause_summary = child.cause_summary or diagnosis.cause_summary
        diagnosis.retry_audit += child.retry_audit
        diagnosis.evidence = child.evidence or diagnosis.evidence
        diagnosis.root_exception = child.root_exception
        diagnosis.app_frames = child.app_frames
        diagnosis.resource_notes += child.resource_notes
        diagnosis.notes += [note for note in child.notes if not note.startswith("definition not read")]
        diagnosis.context.update({k: v for k, v in child.context.items() if k not in diagnosis.context})
        diagnosis.context["child"] = {
            "execution_arn": child_arn,
            "failed_state": child.failed_state,
            "error": child.error,
        }
        found.texts += [t for t in (child.error, child.cause_summary, child.root_exception) if t]
        found.log_texts += [line.message for line in child.evidence[-10:]]
        if child.failed_state:
            diagnosis.failed_state = (
                f"{diagnosis.failed_state}{PATH_SEPARATOR}{child.failed_state}"
                if diagnosis.failed_state
                else child.failed_state
            )


def _is_failure_log_event(message: str, execution_arn: str) -> bool:
    """Whether a line of a state machine's CloudWatch log is a failure event of this execution.

    The lines are history events as JSON: ``{"id": "5", "type": "TaskFailed", "details": {...},
    "previous_event_id": "4", "event_timestamp": "...", "execution_arn": "..."}``.
    """
    event = parse_json(message)
    if not isinstance(event, dict):
        return False
    return event.get("execution_arn") == execution_arn and bool(_FAILURE_EVENT.search(str(event.get("type", ""))))


def _moment(value: Any) -> datetime | None:
    """A time from an ECS task: a datetime (DescribeTasks) or epoch milliseconds (a Cause)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    return None


def _summarise_cause(cause: str | None, limit: int = 500) -> str | None:
    if not cause:
        return None
    parsed = parse_json(cause)
    if isinstance(parsed, dict):
        lowered = _lower_keys(parsed)
        for key in ("errorMessage", "stoppedReason", "statusReason", "errorMessage", "cause", "error"):
            if lowered.get(key):
                return str(lowered[key])[:limit]
    text = " ".join(cause.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cause_texts(task: dict[str, Any]) -> list[str]:
    texts = [str(task[key]) for key in ("stoppedReason", "stopCode", "errorMessage", "statusReason") if task.get(key)]
    texts += [str(c["reason"]) for c in task.get("containers", []) if c.get("reason")]
    return texts


def _first_exit_code(task: dict[str, Any]) -> int | None:
    container = _failing_container(task.get("containers", []))
    code = container.get("exitCode") if container else None
    return int(code) if code is not None else None


def _failing_container(containers: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not containers:
        return None
    for container in containers:
        if container.get("exitCode") not in (None, 0):
            return container
    for container in containers:
        if container.get("reason"):
            return container
    return containers[0]


def _cluster_from(point: FailurePoint) -> str | None:
    parameters = parse_json(details(point.scheduled).get("parameters")) if point.scheduled else None
    cluster = (parameters or {}).get("Cluster")
    return str(cluster) if cluster else None


def _lambda_function(point: FailurePoint) -> str | None:
    if point.scheduled is None:
        return _state_function(point.task_state) if point.task_state is not None else None
    scheduled = details(point.scheduled)
    if point.scheduled["type"] == "LambdaFunctionScheduled":
        resource: str | None = scheduled.get("resource")
        return resource
    parameters = parse_json(scheduled.get("parameters")) or {}
    function = parameters.get("FunctionName") or parameters.get("functionName")
    return str(function) if function else None


def _state_function(state: dict[str, Any]) -> str | None:
    """The Lambda function a Task state names literally: its Resource (a function ARN) or FunctionName.

    ``FunctionName`` of ``Parameters`` (JSONPath) or ``Arguments`` (JSONata) counts only as a literal:
    not a ``FunctionName.$`` path nor a ``{% … %}`` expression, which the state's input decides.
    """
    resource = str(state.get("Resource", ""))
    if LAMBDA_FUNCTION_ARN.match(resource):
        return resource
    for block in (state.get("Parameters"), state.get("Arguments")):
        function = block.get("FunctionName") if isinstance(block, dict) else None
        if isinstance(function, str) and function and not function.startswith("{%"):
            return function
    return None


def _explain_state_failure(point: FailurePoint) -> str:
    if point.integration == "fail":
        came_from = " after ".join(f"`{name}`" for name in point.path)
        route = f", reached from {came_from}" if came_from else ""
        return (
            f"the state machine failed on purpose at the Fail state `{point.state_name}`{route} (error `{point.error}`)"
        )
    cause = point.cause or ""
    missing = re.search(
        r"The JSONPath '([^']+)' specified for the field '([^']+)' could not be found in the input '(.*)'",
        cause,
        re.DOTALL,
    )
    if missing:
        path, field_name, given = missing.groups()
        keys = parse_json(given)
        have = f"; the input has {', '.join(sorted(keys)) or 'no keys'}" if isinstance(keys, dict) else ""
        return f"state `{point.state_name}`: `{path}` (for `{field_name}`) is not in the state's input{have}"
    return f"state `{point.state_name}` failed at run time: {_summarise_cause(cause, 300)}"

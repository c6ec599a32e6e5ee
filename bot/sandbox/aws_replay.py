"""A loopback AWS endpoint that serves recorded API responses and forwards everything else to moto.

moto cannot produce real failures (its ECS ``.sync`` never fails, it ignores ``reverseOrder`` and
``maxResults`` of GetExecutionHistory, it has no RedriveExecution), so realistic executions come from
recorded, real-shaped JSON. This server answers those calls with AWS's own semantics (paging,
reverse order, error shapes) and forwards every other call (CloudWatch Logs, ECS task definitions,
CloudWatch metrics…) to a moto server, so etl-doctor's boto3 code path is exercised unchanged.
Point ``AWS_ENDPOINT_URL`` at it.

StartExecution on a recorded state machine and RedriveExecution of a recorded execution are answered here too,
with the semantics of the Step Functions API reference (STANDARD workflows): StartExecution is idempotent for
the same name and input while that execution is running, and answers ExecutionAlreadyExists when the input
differs or the execution has closed (the name is reusable 90 days after it closes); RedriveExecution restarts a
FAILED, TIMED_OUT or ABORTED execution that closed in the last 14 days, and repeats its first answer for a client
token used in the last 15 minutes (the last 10 tokens of each execution). Executions stay RUNNING until a test
ends them with `AwsReplay.finish_execution`.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

JSON_TARGETS = {
    "AWSStepFunctions": "states",
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "AWSGlue": "glue",
    "Logs_20140328": "logs",
}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
_EPOCH_MS_KEYS = {"createdAt", "startedAt", "stoppedAt", "timestamp", "ingestionTime"}
HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX = 100, 1000
REDRIVABLE_PERIOD = timedelta(days=14)  # RedriveExecution: closed in the last 14 days
MAX_OPEN_TIME = timedelta(days=365)  # an execution may stay open (and be redriven) for at most a year
NAME_REUSE_PERIOD = timedelta(days=90)  # StartExecution: a name is reusable 90 days after its execution closes
REDRIVE_TOKEN_TTL = timedelta(minutes=15)  # clientToken: idempotent for 15 minutes after first use…
REDRIVE_TOKENS_KEPT = 10  # …and only the last 10 tokens that redrove the execution
HISTORY_EVENT_LIMIT = 25_000  # a redrive appends ExecutionRedriven and at least one more event
CLOSED_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
REDRIVABLE_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
_TERMINAL_EVENTS = {
    "SUCCEEDED": ("ExecutionSucceeded", "executionSucceededEventDetails"),
    "FAILED": ("ExecutionFailed", "executionFailedEventDetails"),
    "TIMED_OUT": ("ExecutionTimedOut", "executionTimedOutEventDetails"),
    "ABORTED": ("ExecutionAborted", "executionAbortedEventDetails"),
}
_EXECUTION_ARN = re.compile(r"^arn:[\w-]+:states:[\w-]+:\d{12}:execution:[^:]+:[^:]+$")
_NAME_FORBIDDEN = re.compile(r'[\s<>{}\[\]?*"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]')  # StartExecution name rules


class ReplayError(Exception):
    """An AWS error to answer with (``__type`` and message, HTTP 400 by default)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class ApiCall:
    """One call the endpoint received."""

    service: str
    operation: str
    params: dict[str, Any]
    replayed: bool


def parse_time(value: Any) -> datetime:
    """An ISO-8601 string, epoch seconds or a datetime, as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _epoch(value: Any) -> float:
    return parse_time(value).timestamp()


def rebase(document: Any, delta: timedelta) -> Any:
    """Shift every timestamp in a recorded document by ``delta`` (ISO strings and epoch-millisecond fields).

    Recorded examples are years old; CloudWatch Logs refuses events older than 14 days, so scenarios
    are moved to the present before they are served.
    """

    def shift(value: Any, key: str | None) -> Any:
        if isinstance(value, dict):
            return {k: shift(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [shift(v, key) for v in value]
        if isinstance(value, str) and _ISO.match(value):
            return (parse_time(value) + delta).isoformat()
        if isinstance(value, int) and key in _EPOCH_MS_KEYS and value > 10**12:
            return value + int(delta.total_seconds() * 1000)
        return value

    return shift(document, None)


def _jsonable_times(document: Any, keys: set[str]) -> Any:
    """Recorded ISO timestamps as epoch seconds, the way JSON-protocol AWS services send them."""
    if isinstance(document, dict):
        return {
            k: (_epoch(v) if k in keys and v is not None else _jsonable_times(v, keys)) for k, v in document.items()
        }
    if isinstance(document, list):
        return [_jsonable_times(v, keys) for v in document]
    return document


_SFN_TIME_KEYS = {"startDate", "stopDate", "timestamp", "creationDate", "updateDate", "redriveDate"}
_ECS_TIME_KEYS = {
    "createdAt",
    "startedAt",
    "stoppedAt",
    "stoppingAt",
    "pullStartedAt",
    "pullStoppedAt",
    "connectivityAt",
    "executionStoppedAt",
}
_GLUE_TIME_KEYS = {"StartedOn", "LastModifiedOn", "CompletedOn"}


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ReplayError("InvalidToken", "Invalid Token: 'nextToken' is invalid") from exc


class _Server(ThreadingHTTPServer):
    """One thread per connection, and a listen backlog deep enough for a burst of concurrent clients."""

    daemon_threads = True
    request_queue_size = 128


class AwsReplay:
    """The endpoint. Use as a context manager; ``endpoint_url`` goes into AWS_ENDPOINT_URL.

    Args:
        moto_url: Where unrecorded calls go (a running moto server).
        host: Interface to bind.
        port: Port (0 picks a free one).
    """

    def __init__(self, moto_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.moto_url = moto_url
        self._lock = threading.Lock()
        self._executions: dict[str, dict[str, Any]] = {}
        self._state_machines: dict[str, dict[str, Any]] = {}
        self._map_runs: dict[str, dict[str, Any]] = {}
        self._ecs_tasks: dict[str, dict[str, Any]] = {}
        self._glue_runs: dict[tuple[str, str], dict[str, Any]] = {}
        self._batch_jobs: dict[str, dict[str, Any]] = {}
        self._started: list[str] = []  # ARNs of the executions StartExecution created, in order
        self._redrive_tokens: dict[str, dict[str, tuple[datetime, str]]] = {}  # ARN → token → (first use, redriveDate)
        self._delays: dict[str, float] = {}
        self._in_flight: Counter[str] = Counter()
        self._in_flight_peak: Counter[str] = Counter()
        self.calls: list[ApiCall] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._handle(self)

            def do_POST(self) -> None:
                owner._handle(self)

            def do_PUT(self) -> None:
                owner._handle(self)

            def do_DELETE(self) -> None:
                owner._handle(self)

        self._server = _Server((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self._server.server_address[0]!s}:{self._server.server_address[1]}"

    def start(self) -> AwsReplay:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AwsReplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ recorded data

    def add_execution(self, describe: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Record an execution: its DescribeExecution response and its events in forward order."""
        with self._lock:
            self._executions[describe["executionArn"]] = {"describe": describe, "history": history}

    def add_state_machine(self, describe: dict[str, Any]) -> None:
        """Record a DescribeStateMachine response (also served for the execution's version)."""
        with self._lock:
            self._state_machines[describe["stateMachineArn"]] = describe

    def add_map_run(self, describe: dict[str, Any], executions: list[dict[str, Any]]) -> None:
        """Record a Distributed Map run and its child executions (ListExecutions items)."""
        with self._lock:
            self._map_runs[describe["mapRunArn"]] = {"describe": describe, "executions": executions}

    def add_ecs_task(self, task: dict[str, Any]) -> None:
        """Record an ECS task as DescribeTasks returns it."""
        with self._lock:
            self._ecs_tasks[task["taskArn"]] = task

    def add_glue_job_run(self, job_run: dict[str, Any]) -> None:
        """Record a Glue JobRun (GetJobRun)."""
        with self._lock:
            self._glue_runs[(job_run["JobName"], job_run["Id"])] = job_run

    def add_batch_job(self, job: dict[str, Any]) -> None:
        """Record a Batch job (DescribeJobs)."""
        with self._lock:
            self._batch_jobs[job["jobId"]] = job

    def call_counts(self) -> Counter[str]:
        """Calls received, by ``service:Operation``."""
        with self._lock:
            return Counter(f"{call.service}:{call.operation}" for call in self.calls)

    def reset_calls(self) -> None:
        """Forget the recorded calls and the in-flight peaks (not the data)."""
        with self._lock:
            self.calls.clear()
            self._in_flight_peak = Counter(self._in_flight)

    # ------------------------------------------------------------------ test seams

    def finish_execution(
        self,
        arn: str,
        status: str,
        *,
        error: str | None = None,
        cause: str | None = None,
        output: str | None = None,
    ) -> None:
        """End a RUNNING execution (started, or redriven) as Step Functions would: stopDate now, a closing event.

        Args:
            arn: The execution.
            status: SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
            error: The error of a failure (FAILED, TIMED_OUT, ABORTED).
            cause: The cause of a failure.
            output: The output of a SUCCEEDED execution.

        Raises:
            KeyError: The replay does not know the execution.
            ValueError: An unknown status, an output for a failure, an error for a success, or an execution that
                is not RUNNING.
        """
        if status not in CLOSED_STATUSES:
            raise ValueError(f"status must be one of {sorted(CLOSED_STATUSES)}, not {status!r}")
        if status == "SUCCEEDED" and (error is not None or cause is not None):
            raise ValueError("a SUCCEEDED execution has no error or cause")
        if status != "SUCCEEDED" and output is not None:
            raise ValueError(f"a {status} execution has no output")
        stop = datetime.now(UTC).isoformat()
        with self._lock:
            record = self._executions.get(arn)
            if record is None:
                raise KeyError(f"the replay has no execution {arn}")
            current: dict[str, Any] = record["describe"]
            if current["status"] != "RUNNING":
                raise ValueError(f"{arn} is {current['status']}, not RUNNING")
            describe = {k: v for k, v in current.items() if k not in _OUTCOME_KEYS} | {
                "status": status,
                "stopDate": stop,
            }
            details: dict[str, Any] = {}
            if status == "SUCCEEDED":
                describe |= {"redriveStatus": "NOT_REDRIVABLE", "redriveStatusReason": _not_redrivable("SUCCEEDED")}
                if output is not None:
                    describe |= {"output": output, "outputDetails": {"included": True}}
                    details = {"output": output, "outputDetails": {"truncated": False}}
            else:
                describe["redriveStatus"] = "REDRIVABLE"
                describe.pop("redriveStatusReason", None)
                details = {key: value for key, value in (("error", error), ("cause", cause)) if value is not None}
                describe |= details
            event_type, details_key = _TERMINAL_EVENTS[status]
            history = _appended(record["history"], {"timestamp": stop, "type": event_type, details_key: details})
            self._executions[arn] = {"describe": describe, "history": history}

    def started_executions(self) -> list[dict[str, Any]]:
        """The executions StartExecution created, in the order they were started, as DescribeExecution has them now.

        Copies of the stored documents: dates are ISO-8601 strings, as in recorded ones.
        """
        with self._lock:
            return [copy.deepcopy(self._executions[arn]["describe"]) for arn in self._started]

    def slow_down(self, operation: str, seconds: float) -> None:
        """Answer every call of ``operation`` (e.g. "StartExecution") ``seconds`` late; 0 answers at once again.

        Each request waits on its own thread without holding a lock, so concurrent calls wait in parallel.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            if seconds:
                self._delays[operation] = seconds
            else:
                self._delays.pop(operation, None)

    def in_flight_peak(self, operation: str) -> int:
        """The most calls of ``operation`` seen in flight at once (since start, or since `reset_calls`)."""
        with self._lock:
            return self._in_flight_peak[operation]

    # ------------------------------------------------------------------ HTTP

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, operation = target.partition(".")
        service = JSON_TARGETS.get(prefix)
        params: dict[str, Any] = {}
        answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
        if service is not None:
            params = json.loads(body or b"{}")
            answer = self._json_handlers().get((service, operation))
        elif request.command == "POST" and urlsplit(request.path).path == "/v1/describejobs":
            service, operation = "batch", "DescribeJobs"
            params = json.loads(body or b"{}")
            answer = self._describe_batch_jobs
        else:
            service, operation = _service_from_auth(request.headers.get("Authorization", "")), request.command
        with self._lock:
            self._in_flight[operation] += 1
            self._in_flight_peak[operation] = max(self._in_flight_peak[operation], self._in_flight[operation])
            delay = self._delays.get(operation, 0.0)
        try:
            if delay:
                time.sleep(delay)  # outside the lock: concurrent requests wait in parallel
            self._answer(request, body, service, operation, params, answer)
        finally:
            with self._lock:
                self._in_flight[operation] -= 1

    def _answer(
        self,
        request: BaseHTTPRequestHandler,
        body: bytes,
        service: str,
        operation: str,
        params: dict[str, Any],
        answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None,
    ) -> None:
        if (service, operation) == ("states", "ListStateMachines"):
            self._record(service, operation, params, replayed=True)
            self._send_json(request, 200, self._list_state_machines(request, body))
            return
        try:
            result = answer(params) if answer is not None else None
        except ReplayError as error:
            self._record(service, operation, params, replayed=True)
            self._send_json(request, error.status, {"__type": error.code, "message": error.message})
            return
        self._record(service, operation, params, replayed=result is not None)
        if result is not None:
            self._send_json(request, 200, result)
            return
        self._forward(request, body)

    def _record(self, service: str, operation: str, params: dict[str, Any], *, replayed: bool) -> None:
        with self._lock:
            self.calls.append(ApiCall(service, operation, params, replayed))

    @staticmethod
    def _send_json(request: BaseHTTPRequestHandler, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/x-amz-json-1.0")
        request.send_header("Content-Length", str(len(data)))
        request.send_header("x-amzn-RequestId", "00000000-0000-4000-8000-000000000000")
        request.end_headers()
        request.wfile.write(data)

    def _ask_moto(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        target = urlsplit(self.moto_url)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)
        headers = {key: value for key, value in request.headers.items() if key.lower() not in {"host", "connection"}}
        headers["Host"] = target.netloc
        try:
            connection.request(request.command, request.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        status, headers, data = self._ask_moto(request, body)
        request.send_response(status)
        for key, value in headers:
            if key.lower() not in {"transfer-encoding", "connection", "content-length", "server", "date"}:
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _list_state_machines(self, request: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
        """The state machines moto knows plus the recorded ones, as one account would list them (one page)."""
        status, _headers, data = self._ask_moto(request, body)
        listed = json.loads(data).get("stateMachines", []) if status == 200 else []
        known = {machine["stateMachineArn"] for machine in listed}
        with self._lock:
            recorded = [m for arn, m in self._state_machines.items() if arn not in known]
        for machine in recorded:
            item = {key: machine[key] for key in ("stateMachineArn", "name", "type", "creationDate") if key in machine}
            listed.append(_jsonable_times(item, _SFN_TIME_KEYS))
        return {"stateMachines": listed}

    # ------------------------------------------------------------------ answers

    def _json_handlers(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any] | None]]:
        return {
            ("states", "DescribeExecution"): self._describe_execution,
            ("states", "GetExecutionHistory"): self._get_execution_history,
            ("states", "DescribeStateMachine"): self._describe_state_machine,
            ("states", "DescribeStateMachineForExecution"): self._describe_state_machine_for_execution,
            ("states", "ListExecutions"): self._list_executions,
            ("states", "DescribeMapRun"): self._describe_map_run,
            ("states", "StartExecution"): self._start_execution,
            ("states", "RedriveExecution"): self._redrive_execution,
            ("ecs", "DescribeTasks"): self._describe_ecs_tasks,
            ("glue", "GetJobRun"): self._get_glue_job_run,
        }

    def _execution(self, arn: str) -> dict[str, Any] | None:
        with self._lock:
            return self._executions.get(arn)

    def _describe_execution(self, params: dict[str, Any]) -> dict[str, Any] | None:
        recorded = self._execution(params.get("executionArn", ""))
        return _jsonable_times(recorded["describe"], _SFN_TIME_KEYS) if recorded else None

    def _get_execution_history(self, params: dict[str, Any]) -> dict[str, Any] | None:
        recorded = self._execution(params.get("executionArn", ""))
        if recorded is None:
            return None
        size = int(params.get("maxResults") or HISTORY_PAGE_DEFAULT)
        if not 0 < size <= HISTORY_PAGE_MAX:
            raise ReplayError("ValidationException", f"maxResults must be between 1 and {HISTORY_PAGE_MAX}")
        events: list[dict[str, Any]] = recorded["history"]
        ordered = list(reversed(events)) if params.get("reverseOrder") else events
        start = _offset(params.get("nextToken"))
        page = ordered[start : start + size]
        if params.get("includeExecutionData") is False:
            page = [_without_data(event) for event in page]
        result: dict[str, Any] = {"events": _jsonable_times(page, _SFN_TIME_KEYS)}
        if start + size < len(ordered):
            result["nextToken"] = _token(start + size)
        return result

    def _describe_state_machine(self, params: dict[str, Any]) -> dict[str, Any] | None:
        arn = params.get("stateMachineArn", "")
        with self._lock:
            recorded = self._state_machines.get(arn) or self._state_machines.get(arn.rsplit(":", 1)[0])
        return _jsonable_times(recorded, _SFN_TIME_KEYS) if recorded else None

    def _describe_state_machine_for_execution(self, params: dict[str, Any]) -> dict[str, Any] | None:
        recorded = self._execution(params.get("executionArn", ""))
        if recorded is None:
            return None
        arn = recorded["describe"]["stateMachineArn"]
        machine = self._describe_state_machine({"stateMachineArn": arn})
        if machine is None:
            return None
        return {k: v for k, v in machine.items() if k not in {"status", "type", "creationDate"}} | {
            "updateDate": machine.get("creationDate")
        }

    def _list_executions(self, params: dict[str, Any]) -> dict[str, Any] | None:
        map_run_arn = params.get("mapRunArn")
        if map_run_arn:
            with self._lock:
                run = self._map_runs.get(map_run_arn)
            if run is None:
                raise ReplayError("ResourceNotFound", f"Map Run Does Not Exist: '{map_run_arn}'")
            items = run["executions"]
        else:
            machine = params.get("stateMachineArn", "")
            with self._lock:
                items = [
                    r["describe"] for r in self._executions.values() if r["describe"]["stateMachineArn"] == machine
                ]
                recorded_machine = machine in self._state_machines
            if not items and not recorded_machine:
                return None  # moto knows this state machine (or says it does not exist)
            items = [_execution_list_item(d) for d in items]
        status = params.get("statusFilter")
        if status:
            items = [item for item in items if item["status"] == status]
        redriven = params.get("redriveFilter")
        if redriven:
            items = [item for item in items if (int(item.get("redriveCount") or 0) > 0) == (redriven == "REDRIVEN")]
        items = sorted(items, key=lambda item: _epoch(item["startDate"]), reverse=True)
        size = int(params.get("maxResults") or 100)
        start = _offset(params.get("nextToken"))
        result: dict[str, Any] = {"executions": _jsonable_times(items[start : start + size], _SFN_TIME_KEYS)}
        if start + size < len(items):
            result["nextToken"] = _token(start + size)
        return result

    def _describe_map_run(self, params: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            run = self._map_runs.get(params.get("mapRunArn", ""))
        return _jsonable_times(run["describe"], _SFN_TIME_KEYS) if run else None

    def _start_execution(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """StartExecution of a recorded state machine (a STANDARD workflow); others go to moto."""
        requested = params.get("stateMachineArn", "")
        name = params.get("name") or str(uuid.uuid4())
        given = params.get("input")
        execution_input = "{}" if given is None else str(given)
        now = datetime.now(UTC)
        with self._lock:
            machine = self._recorded_machine(requested)
            if machine is None:
                return None  # moto may know it (or says it does not exist)
            if len(name) > 80:
                raise ReplayError(
                    "ValidationException",
                    f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
                    "Member must have length less than or equal to 80",
                )
            if _NAME_FORBIDDEN.search(name):
                raise ReplayError("InvalidName", f"Invalid Name: '{name}'")
            try:
                json.loads(execution_input)
            except ValueError as exc:
                raise ReplayError("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{exc}'") from exc
            arn = machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"
            existing = self._executions.get(arn)
            if existing is not None:
                previous = existing["describe"]
                if previous["status"] == "RUNNING" and previous.get("input") == execution_input:
                    return {"executionArn": arn, "startDate": _epoch(previous["startDate"])}  # idempotent
                stopped = previous.get("stopDate")
                reusable = (
                    previous["status"] in CLOSED_STATUSES and stopped and now - parse_time(stopped) > NAME_REUSE_PERIOD
                )
                if not reusable:
                    raise ReplayError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
                self._redrive_tokens.pop(arn, None)
                if arn in self._started:
                    self._started.remove(arn)
            start = now.isoformat()
            describe: dict[str, Any] = {
                "executionArn": arn,
                "stateMachineArn": machine,
                "name": name,
                "status": "RUNNING",
                "startDate": start,
                "input": execution_input,
                "inputDetails": {"included": True},
                "redriveCount": 0,
                "redriveStatus": "NOT_REDRIVABLE",
                "redriveStatusReason": _not_redrivable("RUNNING"),
            }
            details: dict[str, Any] = {"input": execution_input, "inputDetails": {"truncated": False}}
            role = self._role_of(machine)
            if role:
                details["roleArn"] = role
            if requested != machine:  # a version (…:stateMachine:name:3) or an alias (…:name:PROD)
                key = "stateMachineVersionArn" if requested.rsplit(":", 1)[1].isdigit() else "stateMachineAliasArn"
                describe[key] = details[key] = requested
            started = {"timestamp": start, "type": "ExecutionStarted", "id": 1, "previousEventId": 0}
            self._executions[arn] = {
                "describe": describe,
                "history": [started | {"executionStartedEventDetails": details}],
            }
            self._started.append(arn)
        return {"executionArn": arn, "startDate": _epoch(start)}

    def _recorded_machine(self, arn: str) -> str | None:
        """The unqualified ARN of a state machine the replay knows (recorded, or named by a recorded execution)."""
        parts = arn.split(":")
        if len(parts) == 8 and parts[5] == "stateMachine":
            arn = ":".join(parts[:7])
        elif len(parts) != 7 or parts[5] != "stateMachine":
            return None
        if arn in self._state_machines:
            return arn
        known = any(r["describe"]["stateMachineArn"] == arn for r in self._executions.values())
        return arn if known else None

    def _role_of(self, machine: str) -> str | None:
        role = self._state_machines.get(machine, {}).get("roleArn")
        if role:
            return str(role)
        for record in self._executions.values():
            if record["describe"]["stateMachineArn"] == machine and record["history"]:
                first = record["history"][0].get("executionStartedEventDetails") or {}
                if first.get("roleArn"):
                    return str(first["roleArn"])
        return None

    def _redrive_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        """RedriveExecution of a recorded (or started) execution; moto has no RedriveExecution."""
        arn = params.get("executionArn", "")
        token = params.get("clientToken") or None
        if not _EXECUTION_ARN.match(arn):
            raise ReplayError("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {arn}'")
        now = datetime.now(UTC)
        with self._lock:
            record = self._executions.get(arn)
            if record is None:
                raise ReplayError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
            tokens = {
                t: used for t, used in self._redrive_tokens.get(arn, {}).items() if now - used[0] <= REDRIVE_TOKEN_TTL
            }
            self._redrive_tokens[arn] = tokens
            if token is not None and token in tokens:
                return {"redriveDate": _epoch(tokens[token][1])}  # the same request again: not redriven twice
            reason = self._why_not_redrivable(record, now)
            if reason is not None:
                raise ReplayError("ExecutionNotRedrivable", f"{reason}: '{arn}'")
            current: dict[str, Any] = record["describe"]
            count = int(current.get("redriveCount") or 0) + 1
            redrive = now.isoformat()
            describe = {k: v for k, v in current.items() if k not in _OUTCOME_KEYS} | {
                "status": "RUNNING",
                "redriveCount": count,
                "redriveDate": redrive,
                "redriveStatus": "NOT_REDRIVABLE",
                "redriveStatusReason": _not_redrivable("RUNNING"),
            }
            event = {
                "timestamp": redrive,
                "type": "ExecutionRedriven",
                "executionRedrivenEventDetails": {"redriveCount": count},
            }
            self._executions[arn] = {"describe": describe, "history": _appended(record["history"], event)}
            if token is not None:
                tokens[token] = (now, redrive)
                while len(tokens) > REDRIVE_TOKENS_KEPT:
                    del tokens[next(iter(tokens))]
        return {"redriveDate": _epoch(redrive)}

    def _why_not_redrivable(self, record: dict[str, Any], now: datetime) -> str | None:
        """AWS's redriveStatusReason for an execution RedriveExecution refuses; None when it can be redriven."""
        describe: dict[str, Any] = record["describe"]
        status = describe["status"]
        if status not in REDRIVABLE_STATUSES:
            return _not_redrivable("RUNNING" if status == "PENDING_REDRIVE" else status)
        recorded = describe.get("redriveStatus")
        if recorded == "REDRIVABLE_BY_MAP_RUN":
            return "Execution is a child workflow of a Map Run and can only be redriven by redriving its Map Run"
        if recorded not in (None, "REDRIVABLE"):
            return str(describe.get("redriveStatusReason") or f"Execution redriveStatus is {recorded}")
        machine = self._state_machines.get(describe["stateMachineArn"], {})
        if machine.get("status") == "DELETING":
            return "State machine is in DELETING status"
        stopped = describe.get("stopDate")
        if stopped and now - parse_time(stopped) > REDRIVABLE_PERIOD:
            return "Execution redrivable period exceeded"
        if now - parse_time(describe["startDate"]) > MAX_OPEN_TIME:
            return "Execution has exceeded the max execution time"
        if len(record["history"]) >= HISTORY_EVENT_LIMIT - 1:
            return "Execution history event limit exceeded"
        return None

    def _describe_ecs_tasks(self, params: dict[str, Any]) -> dict[str, Any] | None:
        wanted = params.get("tasks", [])
        with self._lock:
            found = [self._ecs_tasks[arn] for arn in wanted if arn in self._ecs_tasks]
        if not found:
            return None
        missing = [{"arn": arn, "reason": "MISSING"} for arn in wanted if arn not in {t["taskArn"] for t in found}]
        return {"tasks": _jsonable_times(found, _ECS_TIME_KEYS), "failures": missing}

    def _get_glue_job_run(self, params: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            run = self._glue_runs.get((params.get("JobName", ""), params.get("RunId", "")))
        return {"JobRun": _jsonable_times(run, _GLUE_TIME_KEYS)} if run else None

    def _describe_batch_jobs(self, params: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            found = [self._batch_jobs[job_id] for job_id in params.get("jobs", []) if job_id in self._batch_jobs]
        return {"jobs": copy.deepcopy(found)} if found else None


_OUTCOME_KEYS = {"stopDate", "error", "cause", "output", "outputDetails"}


def _not_redrivable(status: str) -> str:
    """AWS's redriveStatusReason for an execution in ``status`` (RUNNING or SUCCEEDED)."""
    return f"Execution is {status} and cannot be redriven"


def _appended(history: list[dict[str, Any]], event: dict[str, Any]) -> list[dict[str, Any]]:
    """A new history with ``event`` numbered after the last one (recorded histories are never changed in place)."""
    last = int(history[-1]["id"]) if history else 0
    return [
        *history,
        {"timestamp": event["timestamp"], "type": event["type"], "id": last + 1, "previousEventId": last}
        | {k: v for k, v in event.items() if k not in {"timestamp", "type"}},
    ]


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(event)
    for key, value in stripped.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            for field in ("input", "output", "parameters"):
                value.pop(field, None)
    return stripped


def _execution_list_item(describe: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "executionArn",
        "stateMachineArn",
        "name",
        "status",
        "startDate",
        "stopDate",
        "mapRunArn",
        "redriveCount",
        "redriveDate",
        "stateMachineVersionArn",
        "stateMachineAliasArn",
    )
    return {key: describe[key] for key in keys if key in describe}


def _service_from_auth(authorization: str) -> str:
    match = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", authorization)
    return match[1] if match else "unknown"

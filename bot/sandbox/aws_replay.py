"""A loopback AWS endpoint that serves recorded API responses and forwards everything else to moto.

moto cannot produce real failures (its ECS ``.sync`` never fails, it ignores ``reverseOrder`` and
``maxResults`` of GetExecutionHistory, it has no RedriveExecution), so realistic executions come from
recorded, real-shaped JSON. This server answers those calls with AWS's own semantics (paging,
reverse order, error shapes) and forwards every other call (CloudWatch Logs, ECS task definitions,
CloudWatch metrics…) to a moto server, so etl-doctor's boto3 code path is exercised unchanged.
Point ``AWS_ENDPOINT_URL`` at it.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import re
import threading
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

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
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
        """Forget the recorded calls (not the data)."""
        with self._lock:
            self.calls.clear()

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
            if not items:
                return None  # moto knows this state machine (or says it does not exist)
            items = [_execution_list_item(d) for d in items]
        status = params.get("statusFilter")
        if status:
            items = [item for item in items if item["status"] == status]
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


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(event)
    for key, value in stripped.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            for field in ("input", "output", "parameters"):
                value.pop(field, None)
    return stripped


def _execution_list_item(describe: dict[str, Any]) -> dict[str, Any]:
    keys = ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate", "mapRunArn", "redriveCount")
    return {key: describe[key] for key in keys if key in describe}


def _service_from_auth(authorization: str) -> str:
    match = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", authorization)
    return match[1] if match else "unknown"

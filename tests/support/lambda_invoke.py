"""A loopback endpoint for the Lambda Invoke API: Event invocations run the target later, like Lambda does."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


@dataclass
class LambdaContext:
    """The attributes Bolt's Lambda adapter reads from the context object."""

    function_name: str = "etl-doctor-test-slack"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:etl-doctor-test-slack"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"


@dataclass
class Invocation:
    function_name: str
    invocation_type: str
    payload: dict[str, Any]


class LoopbackLambda:
    """Answers ``POST /2015-03-31/functions/<fn>/invocations`` as Lambda does.

    ``InvocationType: Event`` gets 202 at once and the target runs on another thread with the payload
    (as a fresh Lambda invocation would); ``RequestResponse`` runs it and returns its result.
    """

    def __init__(self, target: Callable[[dict[str, Any], Any], Any]) -> None:
        self.target = target
        self.invocations: list[Invocation] = []
        self.results: list[Any] = []
        self.errors: list[BaseException] = []
        self._done = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                match = _INVOKE_PATH.match(self.path.split("?")[0])
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                if match is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                owner.invocations.append(Invocation(unquote(match["name"]), kind, payload))
                if kind == "Event":
                    self.send_response(202)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    threading.Thread(target=owner._run, args=(payload,), daemon=True).start()
                    return
                body = json.dumps(owner._run(payload)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _run(self, payload: dict[str, Any]) -> Any:
        try:
            result = self.target(payload, LambdaContext())
        except BaseException as exc:
            self.errors.append(exc)
            result = None
        with self._done:
            self.results.append(result)
            self._done.notify_all()
        return result

    def wait_for_results(self, count: int, timeout: float = 10.0) -> list[Any]:
        with self._done:
            if not self._done.wait_for(lambda: len(self.results) >= count, timeout=timeout):
                raise AssertionError(f"expected {count} lambda runs, got {len(self.results)}")
        return list(self.results)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LoopbackLambda:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

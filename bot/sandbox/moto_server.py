"""A moto server on loopback (ThreadedMotoServer) that Step Functions definitions really run on."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

SANDBOX_CREDENTIALS = ("testing", "testing")
SANDBOX_ACCOUNT = "123456789012"
SANDBOX_REGION = "us-east-1"


class MotoSandbox:
    """Starts moto's server on an ephemeral loopback port and configures it like DESIGN.md says.

    Step Functions executes definitions (``execute_state_machine``) so Fail states give real FAILED
    executions; Lambda and Batch never need Docker.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: Any = None

    def start(self) -> MotoSandbox:
        """Start the server and apply the sandbox configuration."""
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request access log

        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        self.configure(
            {
                "stepfunctions": {"execute_state_machine": True},
                "lambda": {"use_docker": False},
                "batch": {"use_docker": False},
            }
        )
        return self

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``, for AWS_ENDPOINT_URL."""
        if self._server is None:
            raise RuntimeError("MotoSandbox is not started")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def configure(self, config: dict[str, Any]) -> None:
        """POST a configuration to ``/moto-api/config`` (the server-mode twin of ``mock_aws(config=…)``)."""
        self._post("/moto-api/config", config)

    def reset(self) -> None:
        """Forget every resource (``/moto-api/reset``); the configuration stays."""
        self._post("/moto-api/reset", None)

    def _post(self, path: str, document: dict[str, Any] | None) -> None:
        data = json.dumps(document).encode() if document is not None else b""
        request = urllib.request.Request(  # noqa: S310 - loopback URL built here
            self.endpoint_url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

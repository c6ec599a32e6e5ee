"""The one place boto3 clients are made: shared session, adaptive retries, optional endpoint override."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_stepfunctions import SFNClient

    from bot.config import Settings


class AwsClients:
    """Creates boto3 clients once per service and shares them (boto3 clients are thread-safe).

    boto3 is imported on first use, not at import time, to keep the Lambda cold-start path light.

    Args:
        region: AWS region; None lets boto3 resolve it (profile, instance metadata).
        endpoint_url: Send every call here (moto server, LocalStack).
        max_attempts: Attempts per call in botocore's adaptive retry mode (throttling is retried).
        credentials: Static (access key id, secret) pair; only the sandbox and tests pass this.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for a response.
        max_pool_connections: Connections kept per client (as many as threads that call AWS at once).
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = 8,
        credentials: tuple[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_pool_connections: int = 10,
    ) -> None:
        self._region = region
        self.endpoint_url = endpoint_url
        self._max_attempts = max_attempts
        self._credentials = credentials
        self._timeouts = (connect_timeout, read_timeout)
        self._pool = max_pool_connections
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AwsClients:
        """Build the factory from settings (region, endpoint, attempts)."""
        return cls(
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            max_attempts=settings.aws_max_attempts,
            max_pool_connections=max(10, settings.workers + 4),
            **kwargs,
        )

    def _boto_session(self) -> boto3.Session:
        if self._session is None:
            import boto3

            access_key, secret_key = self._credentials or (None, None)
            self._session = boto3.Session(
                region_name=self._region, aws_access_key_id=access_key, aws_secret_access_key=secret_key
            )
        return self._session

    @property
    def region(self) -> str:
        """The region calls go to (as resolved by boto3 when not configured)."""
        with self._lock:
            return self._boto_session().region_name or "us-east-1"

    def client(self, service: str) -> Any:
        """Return the shared client for an AWS service name such as ``"stepfunctions"`` or ``"logs"``."""
        with self._lock:
            existing = self._clients.get(service)
            if existing is not None:
                return existing
            from botocore.config import Config

            config = Config(
                retries={"mode": "adaptive", "max_attempts": self._max_attempts},
                connect_timeout=self._timeouts[0],
                read_timeout=self._timeouts[1],
                user_agent_extra="etl-doctor",
                max_pool_connections=self._pool,
            )
            created = self._boto_session().client(  # type: ignore[call-overload]
                service, endpoint_url=self.endpoint_url, config=config
            )
            created.meta.events.register("before-call", self._count_call)
            self._clients[service] = created
            return created

    def _count_call(self, model: Any, **_kwargs: Any) -> None:
        with self._calls_lock:
            self._calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def call_counts(self) -> Counter[str]:
        """API calls made so far, by ``service:Operation`` (retries of one call count once)."""
        with self._calls_lock:
            return Counter(self._calls)

    @property
    def stepfunctions(self) -> SFNClient:
        """The Step Functions client."""
        client: SFNClient = self.client("stepfunctions")
        return client

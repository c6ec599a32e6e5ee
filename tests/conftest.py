"""Shared fixtures: real servers on loopback (moto, PostgreSQL, the Slack emulator) and settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.config import ProjectConfig, Settings, load_settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.moto_server import SANDBOX_CREDENTIALS, MotoSandbox
from bot.sandbox.scenarios import load_scenario, read_scenario
from bot.sandbox.slack_emulator import SlackEmulator
from bot.store.db import Store
from tests.support import postgres

SIGNING_SECRET = "test-signing-secret-8f14e45fceea167a"
REQUIRE_POSTGRES = os.environ.get("ETL_DOCTOR_REQUIRE_POSTGRES") == "1"


# ---------------------------------------------------------------- AWS (moto server)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoSandbox]:
    with MotoSandbox() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoSandbox) -> MotoSandbox:
    """The moto server, emptied before the test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def aws(moto: MotoSandbox) -> AwsClients:
    """AWS clients pointed at the moto server (through AWS_ENDPOINT_URL-equivalent settings)."""
    return AwsClients(
        region="us-east-1", endpoint_url=moto.endpoint_url, credentials=SANDBOX_CREDENTIALS, max_attempts=2
    )


@pytest.fixture
def replay(moto: MotoSandbox) -> Iterator[AwsReplay]:
    """Recorded AWS responses on loopback, in front of the (emptied) moto server."""
    with AwsReplay(moto.endpoint_url) as endpoint:
        yield endpoint


@pytest.fixture
def replay_aws(replay: AwsReplay) -> AwsClients:
    """AWS clients whose every call goes through the replay endpoint (recorded, else moto)."""
    return AwsClients(
        region="us-east-1", endpoint_url=replay.endpoint_url, credentials=SANDBOX_CREDENTIALS, max_attempts=2
    )


EXECUTIONS = Path(__file__).parent / "fixtures" / "executions"
SCENARIOS = sorted(path.name for path in EXECUTIONS.iterdir() if (path / "scenario.json").exists())


@pytest.fixture
def load(replay: AwsReplay, replay_aws: AwsClients) -> Callable[[str], dict[str, Any]]:
    """Serve a recorded scenario (tests/fixtures/executions/<name>) and return it, rebased to now."""

    def serve(name: str) -> dict[str, Any]:
        return load_scenario(read_scenario(EXECUTIONS / name), replay, replay_aws)

    return serve


# ---------------------------------------------------------------- Slack (Web API emulator on loopback)


@pytest.fixture
def slack_emulator() -> Iterator[SlackEmulator]:
    """A running Slack Web API / Socket Mode emulator on an ephemeral loopback port."""
    with SlackEmulator() as emulator:
        yield emulator


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database: the one named by ETL_DOCTOR_TEST_POSTGRES_URL, or
    a throwaway cluster. Skips (or fails, with ETL_DOCTOR_REQUIRE_POSTGRES=1) when neither is possible."""
    url = os.environ.get("ETL_DOCTOR_TEST_POSTGRES_URL")
    if url:
        problem = postgres.check_server(url)
        if problem is None:
            yield url
            return
        reason = f"ETL_DOCTOR_TEST_POSTGRES_URL is set but the server does not answer: {problem}"
    else:
        bin_dir = postgres.find_pg_bin()
        if bin_dir is not None:
            server = postgres.ThrowawayPostgres(bin_dir)
            try:
                server.start()
            except RuntimeError as exc:
                server.stop()
                reason = f"could not start a throwaway PostgreSQL from {bin_dir}: {exc}"
            else:
                try:
                    yield server.url
                finally:
                    server.stop()
                return
        else:
            reason = (
                "no PostgreSQL: set ETL_DOCTOR_TEST_POSTGRES_URL, or install Debian's `postgresql` package "
                "(make test does this when it can)"
            )
    if REQUIRE_POSTGRES:
        pytest.fail(f"ETL_DOCTOR_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    url = postgres.create_database(postgres_server)
    try:
        yield url
    finally:
        postgres.drop_database(postgres_server, url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, and (second run) a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on SQLite and on PostgreSQL."""
    opened = Store(database_url)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.dispose()


# ---------------------------------------------------------------- settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings from an explicit environment (never the developer's own variables)."""

    def build(project_yaml: str | None = None, **environ: Any) -> Settings:
        base = {
            "SLACK_BOT_TOKEN": "xoxb-sandbox-token",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_MAX_ATTEMPTS": "2",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'etl-doctor.db'}",
        }
        base.update({key: str(value) for key, value in environ.items()})
        if project_yaml is None:
            return load_settings(base, project=ProjectConfig())
        config_file = tmp_path / "etl-doctor.yml"
        config_file.write_text(project_yaml, encoding="utf-8")
        return load_settings({**base, "ETL_DOCTOR_CONFIG": str(config_file)})

    return build


# ---------------------------------------------------------------- KPI databases: MariaDB and the Redshift path

REQUIRE_MARIADB = os.environ.get("ETL_DOCTOR_REQUIRE_MARIADB") == "1"


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    """SQLAlchemy URL of a MariaDB/MySQL server (ETL_DOCTOR_TEST_MARIADB_URL, default root@127.0.0.1:3306).
    Nothing is started: skips with the reason when it does not answer (fails with ETL_DOCTOR_REQUIRE_MARIADB=1)."""
    from tests.support import kpi_databases

    url = os.environ.get("ETL_DOCTOR_TEST_MARIADB_URL") or kpi_databases.DEFAULT_MARIADB_URL
    problem = kpi_databases.check_mariadb(url)
    if problem is None:
        return url
    reason = f"no MariaDB/MySQL server: {problem} (set ETL_DOCTOR_TEST_MARIADB_URL to use another)"
    if REQUIRE_MARIADB:
        pytest.fail(f"ETL_DOCTOR_REQUIRE_MARIADB=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def mariadb_url(mariadb_server: str) -> Iterator[str]:
    """A fresh, empty MariaDB database (utf8mb4, case-insensitive collation) for one test, dropped afterwards."""
    from tests.support import kpi_databases

    url = kpi_databases.create_mariadb_database(mariadb_server)
    try:
        yield url
    finally:
        kpi_databases.drop_mariadb_database(mariadb_server, url)


@pytest.fixture(scope="session")
def redshift_proxy(postgres_server: str) -> Iterator[Any]:
    """The loopback proxy that lets redshift-connector talk to the test PostgreSQL server."""
    from sqlalchemy.engine import make_url

    from bot.sandbox.tcp_proxy import TcpProxy

    server = make_url(postgres_server)
    with TcpProxy(server.host or "127.0.0.1", server.port or 5432, redshift=True) as proxy:
        yield proxy


@pytest.fixture
def redshift_database(postgres_server: str, redshift_proxy: Any) -> Iterator[Any]:
    """A fresh PostgreSQL database playing Redshift (with stand-ins for Redshift-only functions such as STRTOL):
    ``.url`` goes through redshift-connector and the proxy, ``.setup_url`` straight to PostgreSQL."""
    from tests.support import kpi_databases

    url = postgres.create_database(postgres_server)
    try:
        database = kpi_databases.redshift_database(url, redshift_proxy.port)
        try:
            yield database
        finally:
            database.dispose()
    finally:
        postgres.drop_database(postgres_server, url)

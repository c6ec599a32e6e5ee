"""The `etl-doctor` command line, run as a user runs it (a subprocess of the installed console script)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.aws.clients import AwsClients
from bot.sandbox.moto_server import MotoSandbox
from bot.sandbox.world import PIPELINES, seed

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:"
EXE = shutil.which("etl-doctor", path=str(Path(sys.executable).parent)) or "etl-doctor"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")} | (env or {})
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=120, check=False)


def test_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("etl-doctor 0.")


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "etl-doctor.yml").write_text(f"pipelines:\n  p:\n    state_machine_arn: {ARN}p\n", encoding="utf-8")
    result = run(
        "config", "check",
        env={"SLACK_BOT_TOKEN": "xoxb-secret-value", "DATABASE_URL": "postgresql://etl:hunter2@db/etl"},
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "xoxb-secret-value" not in result.stdout and "hunter2" not in result.stdout
    assert "SLACK_BOT_TOKEN            (set, hidden)" in result.stdout
    assert "pipelines: p" in result.stdout


def test_config_errors_exit_2_with_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "etl-doctor.yml").write_text("pipelines:\n  p:\n    state_machine_arn: nope\n", encoding="utf-8")
    result = run("config", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: etl-doctor.yml: pipelines.p.state_machine_arn: not a Step Functions state machine ARN "
        "(expected arn:aws:states:<region>:<account-id>:stateMachine:<name>)"
    )
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    before = run("db", "current", env=env)
    assert "at (empty)" in before.stdout and "run `etl-doctor db upgrade`" in before.stdout
    upgraded = run("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "(empty) → 0002" in upgraded.stdout
    assert "(up to date)" in run("db", "current", env=env).stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgresql(postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url}
    assert "(empty) → 0002" in run("db", "upgrade", env=env).stdout
    assert "(up to date)" in run("db", "current", env=env).stdout


def test_pipelines_on_the_terminal(tmp_path: Path, moto: MotoSandbox) -> None:
    seed(AwsClients(region="us-east-1", endpoint_url=moto.endpoint_url, credentials=("t", "t")).client("stepfunctions"))
    (tmp_path / "etl-doctor.yml").write_text(
        "pipelines:\n" + "".join(f"  {p.name}:\n    state_machine_arn: {p.state_machine_arn}\n" for p in PIPELINES),
        encoding="utf-8",
    )
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = run("pipelines", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Pipelines (3)" in result.stdout
    assert "policies-etl  FAILED run-2025-02-18" in result.stdout


def test_serve_without_a_token_says_what_is_missing(tmp_path: Path) -> None:
    result = run("serve", env={"DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN is required" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.db").exists()  # nothing touched before the configuration is known to be complete


@pytest.mark.postgres
def test_serve_refuses_an_unmigrated_postgresql_store(postgres_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": postgres_url, "SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s"}
    result = run("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "run `etl-doctor db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr

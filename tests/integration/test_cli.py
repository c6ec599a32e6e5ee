"""The `etl-doctor` command line, run as a user runs it (a subprocess of the installed console script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.world import PIPELINES, seed_world
from bot.store.db import MIGRATIONS_DIR
from tests.conftest import EXECUTIONS

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


HEAD = sorted(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))[-1]


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    before = run("db", "current", env=env)
    assert "at (empty)" in before.stdout and "run `etl-doctor db upgrade`" in before.stdout
    upgraded = run("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"(empty) → {HEAD}" in upgraded.stdout
    assert "(up to date)" in run("db", "current", env=env).stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgresql(postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url}
    assert f"(empty) → {HEAD}" in run("db", "upgrade", env=env).stdout
    assert "(up to date)" in run("db", "current", env=env).stdout


def test_pipelines_on_the_terminal(tmp_path: Path, replay: AwsReplay, replay_aws: AwsClients) -> None:
    seed_world(replay, replay_aws)
    (tmp_path / "etl-doctor.yml").write_text(
        "pipelines:\n" + "".join(f"  {p.name}:\n    state_machine_arn: {p.state_machine_arn}\n" for p in PIPELINES),
        encoding="utf-8",
    )
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": replay.endpoint_url,
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


def _aws_env(replay: AwsReplay) -> dict[str, str]:
    return {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": replay.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def test_why_json_is_the_documented_object(tmp_path: Path, replay: AwsReplay, load: Callable[[str], Any]) -> None:
    load("ecs_oom")
    arn = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18"
    result = run("why", arn, "--json", env=_aws_env(replay), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["execution_arn"] == arn
    assert document["failed_state"] == "LoadFactPolicies"
    assert document["category"] == "out_of_memory"
    assert document["root_exception"] == "java.lang.OutOfMemoryError: Java heap space"
    assert [hop["kind"] for hop in document["hops"]] == ["execution", "state", "ecs_task", "container", "log_stream"]
    assert all(set(line) == {"timestamp", "message", "log_group", "log_stream", "url"} for line in document["evidence"])
    assert document["remediation"][0].startswith("task definition `policies-loader:14`")


def test_why_on_the_terminal_shows_links(tmp_path: Path, replay: AwsReplay, load: Callable[[str], Any]) -> None:
    load("lambda_error")
    result = run("why", "latest", "documents-etl", env=_aws_env(replay), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "KeyError: 'Records'" in result.stdout
    assert "(https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:" in result.stdout


def test_why_of_a_missing_execution_is_one_clear_line(tmp_path: Path, replay: AwsReplay) -> None:
    result = run("why", "policies-etl/run-1999", env=_aws_env(replay), cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: no pipeline or state machine `policies-etl` in us-east-1 (pipelines: none configured)"
    )


def test_explain_offline_from_saved_cli_output(tmp_path: Path) -> None:
    scenario = json.loads((EXECUTIONS / "glue_failed" / "scenario.json").read_text())
    (recorded,) = scenario["executions"].values()
    (tmp_path / "history.json").write_text(json.dumps({"events": recorded["history"]}))
    (tmp_path / "describe.json").write_text(json.dumps(recorded["describe"]))
    result = run(
        "explain", "--history", str(tmp_path / "history.json"), "--describe", str(tmp_path / "describe.json"), "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["failed_state"] == "PrepareLocations"
    assert document["category"] == "missing_resource"
    assert {"kind": "glue", "followed": False}.items() <= document["hops"][-1].items()
    assert document["hops"][-1]["detail"] == "not followed (offline)"


def test_explain_refuses_a_file_that_is_not_a_history(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"executions": []}')
    result = run("explain", "--history", str(tmp_path / "x.json"), cwd=tmp_path)
    assert result.returncode == 2
    assert "is not `get-execution-history` output" in result.stderr


def test_classify_from_stdin() -> None:
    text = "An error occurred (ThrottlingException) when calling the StartExecution operation: Rate exceeded"
    result = subprocess.run(
        [EXE, "classify", "--json"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {"category", "confidence", "transient", "fingerprint", "title", "remediation"}
    assert document["category"] == "throttling_or_rate_limit"
    assert document["transient"] is True
    empty = subprocess.run([EXE, "classify"], input="", capture_output=True, text=True, timeout=60, check=False)
    assert empty.returncode == 2 and "nothing on stdin" in empty.stderr


def test_logs_of_a_task_and_of_a_named_stream(tmp_path: Path, replay: AwsReplay, load: Callable[[str], Any]) -> None:
    scenario = load("ecs_oom")
    expected = scenario["expected"]
    by_task = run("logs", expected["task_arn"], "--lines", "5", env=_aws_env(replay), cwd=tmp_path)
    assert by_task.returncode == 0, by_task.stderr
    assert by_task.stdout.startswith(f"{expected['log_group']} › {expected['log_stream']}  (5 lines)")
    named = run("logs", f"{expected['log_group']}:{expected['log_stream']}", "--grep", "Java heap space",
                env=_aws_env(replay), cwd=tmp_path)  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert named.stdout.count("java.lang.OutOfMemoryError: Java heap space") >= 2

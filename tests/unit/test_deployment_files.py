"""Dockerfile, serverless.yml and the Slack app manifests say what the code does."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.commands import COMMAND, SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]
HTTP_MANIFEST, SOCKET_MANIFEST = ROOT / "manifest.yml", ROOT / "manifest.socket-mode.yml"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", [HTTP_MANIFEST, SOCKET_MANIFEST], ids=lambda p: p.name)
def test_manifest_respects_slacks_schema_limits(path: Path) -> None:
    # Limits from slackapi/manifest-schema, schemas/manifest.schema.1.0.0.json.
    manifest = _yaml(path)
    display = manifest["display_information"]
    assert 0 < len(display["name"]) <= 35
    assert 0 < len(display["description"]) <= 140
    assert 175 <= len(display["long_description"]) <= 4000
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", display["background_color"])
    assert 0 < len(manifest["features"]["bot_user"]["display_name"]) <= 80
    for command in manifest["features"]["slash_commands"]:
        assert command["command"].startswith("/") and 2 <= len(command["command"]) <= 32
        assert 0 < len(command["description"]) <= 2000
        assert 0 < len(command["usage_hint"]) <= 1000
    assert set(manifest) <= {"_metadata", "display_information", "features", "oauth_config", "settings"}


def test_manifest_declares_what_the_app_handles() -> None:
    manifest = _yaml(HTTP_MANIFEST)
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [COMMAND]
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_mention"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "commands",
        "chat:write",
        "reactions:write",  # the ✅ on a resolved alert
        "usergroups:read",  # permissions granted to user groups
        "files:write",  # the KPI chart (files_upload_v2)
    }
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is False
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    urls += [
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["request_url"],
    ]
    assert all(url.startswith("https://") and url.endswith("/slack/events") for url in urls)  # Bolt's one path


@pytest.mark.parametrize("path", [HTTP_MANIFEST, SOCKET_MANIFEST], ids=["http", "socket"])
def test_manifest_usage_hint_names_every_subcommand(path: Path) -> None:
    (command,) = _yaml(path)["features"]["slash_commands"]
    assert command["usage_hint"].split(" | ") == [sub.name for sub in SUBCOMMANDS]


def test_socket_mode_manifest_differs_only_in_transport() -> None:
    http, socket = _yaml(HTTP_MANIFEST), _yaml(SOCKET_MANIFEST)
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "url" not in str(socket["features"]["slash_commands"])
    assert "request_url" not in str(socket["settings"])
    assert socket["oauth_config"] == http["oauth_config"]
    assert socket["display_information"] == http["display_information"]
    assert (
        socket["settings"]["event_subscriptions"]["bot_events"] == http["settings"]["event_subscriptions"]["bot_events"]
    )


def test_serverless_points_at_the_real_handler_and_artifact() -> None:
    config = _yaml(ROOT / "serverless.yml")
    assert config["provider"]["runtime"] == "python3.12"
    function = config["functions"]["slack"]
    module_path, attribute = function["handler"].rsplit(".", 1)
    module = importlib.import_module(module_path.replace("/", "."))
    assert callable(getattr(module, attribute))
    http_routes = [e["httpApi"] for e in function["events"] if "httpApi" in e]
    assert http_routes == [{"path": "/slack/events", "method": "post"}, {"path": "/sns", "method": "post"}]
    patterns = [e["eventBridge"]["pattern"] for e in function["events"] if "eventBridge" in e]
    assert {"aws.states", "aws.glue", "aws.batch"} <= {source for p in patterns for source in p["source"]}
    script = (ROOT / "scripts" / "package_lambda.py").read_text(encoding="utf-8")
    assert config["package"]["artifact"] == "build/lambda/etl-doctor-lambda.zip"
    assert '"build" / "lambda" / "etl-doctor-lambda.zip"' in script


def test_serverless_schedules_kpi_reconciliation_with_a_real_handler() -> None:
    config = _yaml(ROOT / "serverless.yml")
    function = config["functions"]["kpi"]
    module_path, attribute = function["handler"].rsplit(".", 1)
    assert (ROOT / f"{module_path}.py").is_file()
    module = importlib.import_module(module_path.replace("/", "."))
    assert callable(getattr(module, attribute))
    (schedule,) = [e["schedule"] for e in function["events"] if "schedule" in e]
    assert schedule["rate"] == "rate(1 hour)"
    assert "enabled" in schedule  # a toggle, off unless deployed with kpi-schedule=true
    assert schedule["input"] == {"post": True}
    assert function["timeout"] <= 900  # Lambda's maximum


def test_serverless_scopes_self_invocation_to_its_own_function() -> None:
    config = _yaml(ROOT / "serverless.yml")
    statements = config["provider"]["iam"]["role"]["statements"]
    invoke = next(s for s in statements if "lambda:InvokeFunction" in s["Action"])
    function = "arn:aws:lambda:${aws:region}:${aws:accountId}:function:${self:service}-${sls:stage}-slack"
    assert invoke["Resource"] == [function, f"{function}:*"]  # itself, unqualified or by alias/version
    assert set(invoke["Action"]) == {"lambda:InvokeFunction", "lambda:GetFunction"}
    environment = config["provider"]["environment"]
    for secret in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL"):
        assert environment[secret].startswith("${ssm:"), f"{secret} must come from SSM, not the file"
    assert config["provider"]["logRetentionInDays"] > 0


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert len(re.findall(r"^FROM ", text, flags=re.MULTILINE)) == 2  # multi-stage
    assert re.search(r"^USER etl-doctor$", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["etl-doctor"]' in text and 'CMD ["serve"]' in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "slim" in text


def test_readme_and_serverless_grant_the_same_read_only_actions() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = readme.split("The bot needs these AWS permissions", 1)[1].split("Missing ones are reported", 1)[0]
    granted_in_readme = set(re.findall(r"`((?:states|ecs|logs|lambda|glue|batch|cloudwatch):[A-Za-z]+)`", readme))
    statements = _yaml(ROOT / "serverless.yml")["provider"]["iam"]["role"]["statements"]
    read_only = next(s for s in statements if "states:GetExecutionHistory" in s["Action"])
    assert set(read_only["Action"]) == granted_in_readme
    assert not any(
        action.split(":")[1].startswith(("Start", "Stop", "Redrive", "Put", "Delete", "Update"))
        for action in read_only["Action"]
    )


def test_readme_and_serverless_grant_the_same_action_permissions() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = readme.split("Actions need, in addition", 1)[1].split("\n\n", 1)[0]
    granted_in_readme = set(re.findall(r"`((?:states|sqs):[A-Za-z]+)`", readme))
    statements = _yaml(ROOT / "serverless.yml")["provider"]["iam"]["role"]["statements"]
    acting = next(s for s in statements if "states:StartExecution" in s["Action"])
    assert set(acting["Action"]) == granted_in_readme
    assert {"states:StartExecution", "states:RedriveExecution", "sqs:DeleteMessage"} <= granted_in_readme


def test_lambda_build_stops_at_once_without_the_project_file_the_function_loads(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "package_lambda.py"
    missing = subprocess.run(
        [sys.executable, str(script), "--config", str(tmp_path / "etl-doctor.yml"), "--work-dir", str(tmp_path / "w")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "etl-doctor.yml not found" in missing.stderr and "ETL_DOCTOR_CONFIG=etl-doctor.yml" in missing.stderr
    assert "--no-config" in missing.stderr
    assert not (tmp_path / "w").exists()  # stopped before any pip work
    invalid = tmp_path / "bad.yml"
    invalid.write_text("pipelines:\n  p:\n    state_machine_arn: 42\n    colour: red\n", encoding="utf-8")
    refused = subprocess.run(
        [sys.executable, str(script), "--config", str(invalid), "--work-dir", str(tmp_path / "w")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 1
    assert f"{invalid}: pipelines.p.colour: unknown key" in refused.stderr


def test_serverless_names_the_project_file_the_build_ships() -> None:
    config = _yaml(ROOT / "serverless.yml")
    script = (ROOT / "scripts" / "package_lambda.py").read_text(encoding="utf-8")
    assert config["provider"]["environment"]["ETL_DOCTOR_CONFIG"] == "etl-doctor.yml"
    assert 'PACKAGED_CONFIG = "etl-doctor.yml"' in script

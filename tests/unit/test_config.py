from pathlib import Path

import pytest

from bot.config import ConfigError, ProjectConfig, load_settings

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"


def test_environment_is_read_with_standard_names() -> None:
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": "xoxb-1-2",
            "SLACK_SIGNING_SECRET": "s3cr3t",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "DATABASE_URL": "postgresql://etl@db/etl",
            "PORT": "8080",
            "LOG_LEVEL": "debug",
            "SLACK_API_URL": "https://slack-gov.com/api",
        },
        project=ProjectConfig(),
    )
    assert settings.secret("slack_bot_token") == "xoxb-1-2"
    assert settings.aws_region == "eu-west-1"
    assert settings.aws_endpoint_url == "http://127.0.0.1:5000"
    assert settings.port == 8080
    assert settings.log_level == "DEBUG"
    assert settings.slack_api_url == "https://slack-gov.com/api/"  # slash added for slack_sdk


def test_aws_region_wins_over_aws_default_region(tmp_path: Path) -> None:
    settings = load_settings({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1"}, project=ProjectConfig())
    assert settings.aws_region == "us-west-2"


def test_secrets_never_show_in_repr_or_dump() -> None:
    settings = load_settings(
        {"SLACK_BOT_TOKEN": "xoxb-very-secret", "SLACK_SIGNING_SECRET": "abc123"}, project=ProjectConfig()
    )
    assert "xoxb-very-secret" not in repr(settings)
    assert "abc123" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PORT": "http"}, "environment variable PORT: Input should be a valid integer"),
        ({"LOG_LEVEL": "loud"}, "environment variable LOG_LEVEL:"),
        ({"AWS_MAX_ATTEMPTS": "0"}, "environment variable AWS_MAX_ATTEMPTS: Input should be greater than or equal"),
        ({"SLACK_API_URL": "slack.com/api"}, "environment variable SLACK_API_URL: Value error, must be an http(s) URL"),
    ],
)
def test_invalid_environment_names_the_variable(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)
    assert expected in str(raised.value)


def _write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "etl-doctor.yml"
    path.write_text(text, encoding="utf-8")
    return {"ETL_DOCTOR_CONFIG": str(path)}


def test_project_file_is_loaded(tmp_path: Path) -> None:
    environ = _write(
        tmp_path,
        f'default_channel: "#etl-alerts"\npipelines:\n  policies-etl:\n    state_machine_arn: {ARN}\n'
        '    channel: "#etl-policies"\n  claims-etl:\n    state_machine_arn: '
        "arn:aws:states:us-east-1:123456789012:stateMachine:claims-etl\n",
    )
    project = load_settings(environ).project
    assert project.pipelines["policies-etl"].state_machine_arn == ARN
    assert project.channel_for("policies-etl") == "#etl-policies"
    assert project.channel_for("claims-etl") == "#etl-alerts"
    assert project.channel_for(None) == "#etl-alerts"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "pipelines:\n  policies-etl:\n    state_machine_arn: arn:aws:lambda:us-east-1:1:function:x\n",
            "pipelines.policies-etl.state_machine_arn: not a Step Functions state machine ARN",
        ),
        (f"pipelines:\n  p:\n    state_machine_arn: {ARN}\n    chanel: '#x'\n", "pipelines.p.chanel: unknown key"),
        ("default_channel: etl alerts\n", "default_channel: must be a channel name like '#etl-alerts'"),
        ("pipelines:\n  p: {}\n", "pipelines.p.state_machine_arn: Field required"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("pipelines:\n  p: [unclosed\n", "not valid YAML at line"),
        (f"pipelines:\n  'bad name!':\n    state_machine_arn: {ARN}\n", "pipeline name 'bad name!' must be"),
    ],
)
def test_invalid_project_file_names_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    environ = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)
    message = str(raised.value)
    assert message.startswith(str(tmp_path / "etl-doctor.yml"))
    assert expected in message


def test_named_project_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings({"ETL_DOCTOR_CONFIG": str(tmp_path / "missing.yml")})


def test_default_project_file_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).project.pipelines == {}


def test_empty_project_file_is_an_empty_project(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "# nothing yet\n")).project.pipelines == {}

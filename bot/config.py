"""Settings: environment variables plus the optional etl-doctor.yml project file, read once."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from bot.errors import UserFacingError
from bot.kpi.definitions import (
    NAME as _KPI_NAME,
)
from bot.kpi.definitions import (
    CheckConfig,
    ConnectionConfig,
    GlueLocation,
    KpiConfig,
    LayerConfig,
    PartitionConfig,
    Tolerance,
)

DEFAULT_CONFIG_FILE = Path("etl-doctor.yml")

_STATE_MACHINE_ARN = re.compile(r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$")
_PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_CHANNEL = re.compile(r"^(#[a-z0-9_-]{1,80}|[CGD][A-Z0-9]{2,})$")
_TOPIC_PATTERN = re.compile(r"^arn:[a-z*-]+:sns:[a-z0-9*-]+:[0-9*]+:[A-Za-z0-9_*?.-]+$")
Severity = Literal["critical", "error", "warning", "info"]
ActionName = Literal["retry", "redrive", "ack", "snooze", "dlq_replay"]
ACTION_NAMES: tuple[str, ...] = ("retry", "redrive", "ack", "snooze", "dlq_replay")
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_USERGROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])+$")


class ConfigError(UserFacingError):
    """The configuration is invalid; the message names the source and the field."""


class RetryResources(BaseModel):
    """Where a pipeline's execution input sets memory, for "Retry with more memory"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_path: str = Field(description="JSON path of the memory value in the input, e.g. `$.resources.memory`.")
    factor: float = Field(2.0, gt=1, le=16, description="Multiply the memory by this on retry (default 2).")
    maximum: int = Field(description="Never ask for more than this (e.g. 30720 MiB, Fargate's limit for 4 vCPU).")

    @field_validator("memory_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not _JSON_PATH.match(value):
            raise ValueError("must be a simple JSON path like `$.resources.memory` or `$.tasks[0].memory`")
        return value


class PipelineConfig(BaseModel):
    """One pipeline etl-doctor watches (an entry under `pipelines:` in etl-doctor.yml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_machine_arn: str = Field(description="ARN of the pipeline's Step Functions state machine.")
    channel: str | None = Field(None, description="Slack channel for this pipeline; defaults to `default_channel`.")
    description: str = Field("", description="One line shown in `/etl pipelines`.")
    resources: tuple[str, ...] = Field(
        (),
        description=(
            "Names or shell patterns of the pipeline's other resources (Glue jobs, ECS task families, "
            "Batch queues or jobs, CloudWatch alarms), so their alerts are routed to this pipeline."
        ),
    )
    environment: str | None = Field(
        None, description="An environment tag (`prod`, `staging`…) that permission grants can name."
    )
    retry_resources: RetryResources | None = Field(
        None, description="Where the input sets memory, so an out-of-memory failure can be retried with more."
    )

    @field_validator("state_machine_arn")
    @classmethod
    def _check_arn(cls, value: str) -> str:
        if not _STATE_MACHINE_ARN.match(value):
            raise ValueError(
                "not a Step Functions state machine ARN "
                "(expected arn:aws:states:<region>:<account-id>:stateMachine:<name>)"
            )
        return value

    @field_validator("channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        return _validate_channel(value)


class AlertRoute(BaseModel):
    """One routing rule under `alerts.routes`: alerts that match go to `channel` (first match wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(description="Channel for the alerts this rule matches.")
    pipelines: tuple[str, ...] = Field((), description="Pipelines this rule applies to (empty: all).")
    severities: tuple[Severity, ...] = Field((), description="Severities this rule applies to (empty: all).")

    @field_validator("channel")
    @classmethod
    def _check_channel(cls, value: str) -> str:
        _validate_channel(value)
        return value


class AlertsConfig(BaseModel):
    """How alerts are grouped and routed (`alerts:` in etl-doctor.yml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_window_minutes: int = Field(
        60, ge=1, le=10080, description="Repeats of a failure within this many minutes join the first alert's thread."
    )
    routes: tuple[AlertRoute, ...] = Field(
        (), description="Routing rules by pipeline and severity, first match wins; then the pipeline's channel."
    )
    enrich: bool = Field(True, description="Diagnose Step Functions failures and update the alert with the verdict.")
    max_message_age_seconds: int = Field(
        3600, ge=0, description="`/sns` refuses signed messages older than this (0: no limit)."
    )


class SnsTopicConfig(BaseModel):
    """A topic `/sns` accepts: subscriptions to it are confirmed automatically."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arn: str = Field(description="Topic ARN, shell wildcards allowed (`arn:aws:sns:*:123456789012:etl-*`).")
    raw_message_delivery: bool = Field(
        False, description="Accept unsigned raw deliveries from this topic (only behind a private endpoint)."
    )

    @field_validator("arn")
    @classmethod
    def _check_arn(cls, value: str) -> str:
        if not _TOPIC_PATTERN.match(value):
            raise ValueError("not an SNS topic ARN or pattern (expected arn:aws:sns:<region>:<account-id>:<topic>)")
        return value


class DlqTarget(BaseModel):
    """Where a replayed message goes: back to the source queue, or into a Step Functions execution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_url: str | None = Field(None, description="Send the message back to this queue (the source queue).")
    state_machine_arn: str | None = Field(
        None, description="Or start an execution of this state machine with the message body as its input."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> DlqTarget:
        if (self.queue_url is None) == (self.state_machine_arn is None):
            raise ValueError("set exactly one of queue_url, state_machine_arn")
        if self.state_machine_arn is not None and not _STATE_MACHINE_ARN.match(self.state_machine_arn):
            raise ValueError(
                "state_machine_arn is not a Step Functions state machine ARN "
                "(expected arn:aws:states:<region>:<account-id>:stateMachine:<name>)"
            )
        return self


class DlqConfig(BaseModel):
    """One dead-letter queue (an entry under `dlq:` in etl-doctor.yml, keyed by a short name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_url: str = Field(description="URL of the dead-letter queue.")
    pipeline: str | None = Field(None, description="The pipeline it belongs to (permissions and display).")
    target: DlqTarget = Field(description="Where `/etl dlq replay` sends its messages.")
    description: str = Field("", description="One line shown in `/etl dlq`.")

    @model_validator(mode="after")
    def _not_a_loop(self) -> DlqConfig:
        if self.target.queue_url is not None and self.target.queue_url.rstrip("/") == self.queue_url.rstrip("/"):
            raise ValueError("target.queue_url is the dead-letter queue itself; replaying would go round in a loop")
        return self


class PermissionGrant(BaseModel):
    """One rule under `permissions:`: who may do which actions on which pipelines, from which channels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: tuple[ActionName, ...] = Field(min_length=1, description="Actions granted.")
    pipelines: tuple[str, ...] = Field(("*",), description="Pipelines they apply to (`*`: all).")
    environments: tuple[str, ...] = Field(
        (), description="Only pipelines with one of these `environment` tags (empty: any)."
    )
    users: tuple[str, ...] = Field((), description="Slack user ids (U…).")
    usergroups: tuple[str, ...] = Field(
        (), description="Slack user group ids (S…), resolved with usergroups.users.list."
    )
    channels: tuple[str, ...] = Field((), description="Channels the request must come from (empty: any).")

    @field_validator("users")
    @classmethod
    def _check_users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for user in value:
            if not _USER.match(user):
                raise ValueError(f"{user!r} is not a Slack user id (U… or W…; names change, ids do not)")
        return value

    @field_validator("usergroups")
    @classmethod
    def _check_usergroups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for group in value:
            if not _USERGROUP.match(group):
                raise ValueError(f"{group!r} is not a Slack user group id (S…)")
        return value

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for channel in value:
            _validate_channel(channel)
        return value


class ProjectConfig(BaseModel):
    """What etl-doctor.yml holds: pipelines, channels, alert routing, SNS topics, permissions, DLQs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_channel: str | None = Field(
        None, description="Channel for alerts and posts that no pipeline setting routes elsewhere."
    )
    pipelines: dict[str, PipelineConfig] = Field(
        default_factory=dict, description="Pipelines by name; each names its state machine."
    )
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert grouping and routing.")
    sns_topics: tuple[SnsTopicConfig, ...] = Field(
        (), description="SNS topics whose subscriptions `/sns` confirms (ARNs or wildcards)."
    )

    permissions: tuple[PermissionGrant, ...] = Field(
        (), description="Who may act (retry, redrive, ack, snooze, dlq_replay); nobody until granted."
    )
    two_person_rule: tuple[str, ...] = Field(
        (), description="Pipelines whose retries and redrives need a second person's approval."
    )
    dlq: dict[str, DlqConfig] = Field(default_factory=dict, description="SQS dead-letter queues by short name.")
    connections: dict[str, ConnectionConfig] = Field(
        default_factory=dict, description="Databases KPIs and checks read, by name."
    )
    kpis: dict[str, KpiConfig] = Field(default_factory=dict, description="KPIs reconciled by `/etl kpi`, by name.")
    checks: dict[str, CheckConfig] = Field(
        default_factory=dict, description="Data-quality checks run by `/etl check`, by name."
    )

    @field_validator("sns_topics", mode="before")
    @classmethod
    def _topics_from_strings(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"arn": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("default_channel")
    @classmethod
    def _check_default_channel(cls, value: str | None) -> str | None:
        return _validate_channel(value)

    @field_validator("pipelines")
    @classmethod
    def _check_pipeline_names(cls, value: dict[str, PipelineConfig]) -> dict[str, PipelineConfig]:
        for name in value:
            if not _PIPELINE_NAME.match(name):
                raise ValueError(f"pipeline name {name!r} must be 1-80 letters, digits, '.', '_' or '-'")
        return value

    def channel_for(self, pipeline: str | None, severity: str | None = None) -> str | None:
        """Return the channel for a pipeline's posts.

        The first matching alert route wins, then the pipeline's own channel, then the default channel.
        """
        for route in self.alerts.routes:
            if (not route.pipelines or pipeline in route.pipelines) and (
                not route.severities or severity in route.severities
            ):
                return route.channel
        config = self.pipelines.get(pipeline) if pipeline else None
        return (config.channel if config else None) or self.default_channel

    @field_validator("connections", "kpis", "checks")
    @classmethod
    def _check_kpi_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _KPI_NAME.match(name):
                raise ValueError(f"name {name!r} must start with a letter: 1-80 letters, digits, '.', '_' or '-'")
            if name in ("list", "all"):
                raise ValueError(f"name {name!r} is reserved (`/etl kpi {name}` is a command)")
        return value

    @model_validator(mode="after")
    def _check_connection_references(self) -> ProjectConfig:
        known = ", ".join(sorted(self.connections)) or "none"
        references = [
            (f"kpis.{name}.layers[{i}].connection", layer.connection)
            for name, kpi in self.kpis.items()
            for i, layer in enumerate(kpi.layers)
        ]
        references += [(f"checks.{name}.connection", check.connection) for name, check in self.checks.items()]
        for where, connection in references:
            if connection not in self.connections:
                raise ValueError(f"{where}: unknown connection {connection!r}; known: {known}")
        for name, kpi in self.kpis.items():
            if kpi.pipeline is not None and kpi.pipeline not in self.pipelines:
                pipelines = ", ".join(sorted(self.pipelines)) or "none"
                raise ValueError(f"kpis.{name}.pipeline: unknown pipeline {kpi.pipeline!r}; known: {pipelines}")
        return self

    @model_validator(mode="after")
    def _check_pipeline_references(self) -> ProjectConfig:
        known = ", ".join(sorted(self.pipelines)) or "none"
        references = [(f"alerts.routes[{i}].pipelines", r.pipelines) for i, r in enumerate(self.alerts.routes)]
        references += [(f"permissions[{i}].pipelines", g.pipelines) for i, g in enumerate(self.permissions)]
        references += [("two_person_rule", self.two_person_rule)]
        references += [(f"dlq.{name}.pipeline", (q.pipeline,)) for name, q in self.dlq.items() if q.pipeline]
        for where, names in references:
            unknown = [name for name in names if name != "*" and name not in self.pipelines]
            if unknown:
                raise ValueError(f"{where}: unknown pipeline {unknown[0]!r}; known: {known}")
        return self

    def pipeline_for_resource(self, *names: str | None) -> str | None:
        """The pipeline whose `resources` patterns match one of these resource names, or None."""
        for pipeline, config in self.pipelines.items():
            for name in names:
                if name and any(fnmatch.fnmatchcase(name, pattern) for pattern in config.resources):
                    return pipeline
        return None

    def pipeline_for_state_machine(self, state_machine_arn: str | None) -> str | None:
        """The pipeline watching this state machine (by ARN, version/alias ARN or name), or None."""
        if not state_machine_arn:
            return None
        name = state_machine_arn.split(":stateMachine:")[-1].split(":")[0]  # drop a version or alias
        for pipeline, config in self.pipelines.items():
            if config.state_machine_arn == state_machine_arn or config.state_machine_arn.endswith(f":{name}"):
                return pipeline
        return None


def _validate_channel(value: str | None) -> str | None:
    if value is not None and not _CHANNEL.match(value):
        raise ValueError("must be a channel name like '#etl-alerts' or a channel id like 'C0123ABCD'")
    return value


_environ_override: ContextVar[Mapping[str, str] | None] = ContextVar("etl_doctor_environ", default=None)


class _EnvironSource(EnvSettingsSource):
    """Environment source that reads a given mapping (os.environ by default) and never fills `project`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "project":
            return None, field_name, False
        return super().get_field_value(field, field_name)


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything etl-doctor reads from its environment, plus the project file's contents.

    Environment variables (standard names where Slack, AWS and twelve-factor apps have them):

    * ``SLACK_BOT_TOKEN`` (xoxb-…), ``SLACK_SIGNING_SECRET`` (HTTP and Lambda), ``SLACK_APP_TOKEN``
      (xapp-…, Socket Mode), ``SLACK_API_URL`` (another Web API base: GovSlack, an emulator).
    * ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` (moto, LocalStack), ``AWS_MAX_ATTEMPTS``.
      Credentials stay with boto3's own chain (env, profile, role); etl-doctor never holds them.
    * ``DATABASE_URL`` (SQLAlchemy URL of the incident store), ``PORT``/``ETL_DOCTOR_HTTP_HOST``/
      ``ETL_DOCTOR_HTTP_THREADS`` (HTTP server), ``LOG_LEVEL``/``LOG_FORMAT``, ``ETL_DOCTOR_CONFIG``
      (path of the project file).
    """

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_BOT_TOKEN"), description="Bot token (xoxb-…)."
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("SLACK_SIGNING_SECRET"),
        description="Signing secret; required for the HTTP server and Lambda.",
    )
    slack_app_token: SecretStr | None = Field(
        None,
        validation_alias=_env("SLACK_APP_TOKEN"),
        description="App-level token (xapp-…, scope connections:write); when set, `serve` uses Socket Mode.",
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        validation_alias=_env("SLACK_API_URL"),
        description="Slack Web API base URL (GovSlack: https://slack-gov.com/api/; tests: the emulator).",
    )
    slack_rate_limit_retries: int = Field(
        2,
        ge=0,
        le=10,
        validation_alias=_env("SLACK_RATE_LIMIT_RETRIES"),
        description="How many times a Slack call answered 429 is retried after its Retry-After.",
    )
    aws_region: str | None = Field(
        None,
        validation_alias=_env("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="AWS region; unset means boto3's own resolution (profile).",
    )
    aws_endpoint_url: str | None = Field(
        None,
        validation_alias=_env("AWS_ENDPOINT_URL"),
        description="Send every AWS call to this endpoint (moto server, LocalStack).",
    )
    aws_max_attempts: int = Field(
        8,
        ge=1,
        le=20,
        validation_alias=_env("AWS_MAX_ATTEMPTS"),
        description="botocore attempts per call (adaptive retry mode: throttling is retried with backoff).",
    )
    database_url: str = Field(
        "sqlite:///etl-doctor.db",
        validation_alias=_env("DATABASE_URL"),
        description="Incident store (SQLAlchemy URL). SQLite file by default; PostgreSQL in production.",
    )
    http_host: str = Field(
        "0.0.0.0",  # noqa: S104 - a container's server listens on all interfaces
        validation_alias=_env("ETL_DOCTOR_HTTP_HOST"),
        description="Interface the HTTP server binds.",
    )
    port: int = Field(3000, ge=0, le=65535, validation_alias=_env("PORT"), description="HTTP server port.")
    http_threads: int = Field(
        8, ge=1, le=256, validation_alias=_env("ETL_DOCTOR_HTTP_THREADS"), description="HTTP server worker threads."
    )
    workers: int = Field(
        16,
        ge=2,
        le=128,
        validation_alias=_env("ETL_DOCTOR_WORKERS"),
        description="Threads for slow work (diagnoses, actions' AWS calls); acks never wait for them.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("LOG_LEVEL"), description="Log level."
    )
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_env("LOG_FORMAT"), description="`json` for one JSON object per line (Lambda)."
    )
    config_file: Path = Field(
        DEFAULT_CONFIG_FILE,
        validation_alias=_env("ETL_DOCTOR_CONFIG"),
        description="Path of the project file (pipelines, channels).",
    )
    project: ProjectConfig = Field(default_factory=ProjectConfig, description="Contents of the project file.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("slack_api_url")
    @classmethod
    def _slash_terminated(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read init arguments, then the environment (or the mapping given to `load_settings`)."""
        environ = _environ_override.get()
        return init_settings, _EnvironSource(settings_cls, os.environ if environ is None else environ)

    def secret(self, name: Literal["slack_bot_token", "slack_signing_secret", "slack_app_token"]) -> str | None:
        """Return a secret's plain value, or None when it is not set."""
        value: SecretStr | None = getattr(self, name)
        return value.get_secret_value() if value is not None else None


def env_var_names() -> dict[str, tuple[str, ...]]:
    """Map each environment-backed setting to the variable names it is read from."""
    names: dict[str, tuple[str, ...]] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[field_name] = tuple(str(choice) for choice in alias.choices)
    return names


def project_keys() -> list[str]:
    """List the keys etl-doctor.yml understands, dotted (e.g. `pipelines.<name>.channel`)."""
    nested = {"pipelines", "alerts", "sns_topics", "permissions", "dlq", "connections", "kpis", "checks"}
    keys = [name for name in ProjectConfig.model_fields if name not in nested]
    keys += [f"pipelines.<name>.{name}" for name in PipelineConfig.model_fields if name != "retry_resources"]
    keys += [f"alerts.{name}" for name in AlertsConfig.model_fields if name != "routes"]
    keys += [f"alerts.routes[].{name}" for name in AlertRoute.model_fields]
    keys += [f"sns_topics[].{name}" for name in SnsTopicConfig.model_fields]
    keys += [f"pipelines.<name>.retry_resources.{name}" for name in RetryResources.model_fields]
    keys += [f"permissions[].{name}" for name in PermissionGrant.model_fields]
    keys += [f"dlq.<name>.{name}" for name in DlqConfig.model_fields if name != "target"]
    keys += [f"dlq.<name>.target.{name}" for name in DlqTarget.model_fields]
    keys += [f"connections.<name>.{name}" for name in ConnectionConfig.model_fields]
    nested_kpi = {"layers", "partition", "tolerance"}
    keys += [f"kpis.<name>.{name}" for name in KpiConfig.model_fields if name not in nested_kpi]
    keys += [f"kpis.<name>.partition.{name}" for name in PartitionConfig.model_fields]
    keys += [f"kpis.<name>.tolerance.{name}" for name in Tolerance.model_fields]
    keys += [f"kpis.<name>.layers[].{name}" for name in LayerConfig.model_fields if name != "glue"]
    keys += [f"kpis.<name>.layers[].glue.{name}" for name in GlueLocation.model_fields]
    keys += [f"checks.<name>.{name}" for name in CheckConfig.model_fields]
    return keys


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the environment and the project file once, validated.

    Args:
        environ: Variables to read instead of ``os.environ`` (tests, the sandbox).
        **overrides: Field values that win over the environment.

    Returns:
        The settings, with ``project`` filled from the project file when it exists.

    Raises:
        ConfigError: A variable or the file is invalid; the message names it.
    """
    token = _environ_override.set(environ)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe_env_errors(exc)) from None
    finally:
        _environ_override.reset(token)
    if "project" in overrides:
        return settings
    env_names = env_var_names()["config_file"]
    source = os.environ if environ is None else environ
    explicit = any(source.get(name) for name in env_names) or "config_file" in overrides
    project = load_project_file(settings.config_file, required=explicit, environ=source)
    return settings.model_copy(update={"project": project})


def load_project_file(path: Path, *, required: bool, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """Load and validate etl-doctor.yml.

    Args:
        path: The file.
        required: Fail when it is missing (it was named explicitly) instead of using an empty project.
        environ: Where `${VAR}` in `connections.<name>.url` is looked up (default: ``os.environ``).

    Raises:
        ConfigError: The file is missing (when required), not YAML, or invalid; the message names file and field.
    """
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: file not found (named by ETL_DOCTOR_CONFIG or --config)")
        return ProjectConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return ProjectConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (keys: {', '.join(ProjectConfig.model_fields)})")
    _expand_connection_urls(data, os.environ if environ is None else environ, path)
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_errors(exc, prefix=f"{path}: ")) from None


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_connection_urls(data: dict[str, Any], environ: Mapping[str, str], path: Path) -> None:
    """Replace `${VAR}` in connection URLs from the environment, so passwords stay out of the file."""
    connections = data.get("connections")
    if not isinstance(connections, dict):
        return
    for name, connection in connections.items():
        url = connection.get("url") if isinstance(connection, dict) else None
        if not isinstance(url, str):
            continue
        missing = [m.group(1) for m in _VARIABLE.finditer(url) if m.group(1) not in environ]
        if missing:
            raise ConfigError(f"{path}: connections.{name}.url: environment variable {missing[0]} is not set")
        whole = _VARIABLE.fullmatch(url)
        connection["url"] = (
            environ[whole.group(1)] if whole else _VARIABLE.sub(lambda m: _url_quote(environ[m.group(1)]), url)
        )


def _url_quote(value: str) -> str:
    """Quote a substituted value so '@', ':' or '/' in a password cannot change the URL's shape."""
    from urllib.parse import quote

    return quote(value, safe="")


def _describe_errors(exc: ValidationError, *, prefix: str) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{prefix}{location}: {message}")
    return "\n".join(lines)


def _describe_env_errors(exc: ValidationError) -> str:
    names = env_var_names()
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = names.get(field, (field,))[0]
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int) and "secret" not in field else ""
        lines.append(f"environment variable {variable}: {error['msg']}{shown}")
    return "\n".join(lines)

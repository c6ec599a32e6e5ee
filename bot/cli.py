"""`etl-doctor` command line: serve, why, logs, kpi, check, alerts, sns, db, config, pipelines, demo."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from bot import __version__
from bot.config import ConfigError, Settings, env_var_names, load_settings

if TYPE_CHECKING:
    from rich.console import Console

    from bot.kpi.model import KpiReport
    from bot.services import Services

app = typer.Typer(
    name="etl-doctor",
    help="Tells on-call why an AWS ETL pipeline failed and what to do next (Slack bot and CLI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Incident store schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
sns_app = typer.Typer(help="Amazon SNS deliveries.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts: preview a payload, see the backlog.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(sns_app, name="sns")
app.add_typer(alerts_app, name="alerts")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Project file (default: $ETL_DOCTOR_CONFIG or ./etl-doctor.yml).")
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _load_settings(config: Path | None = None) -> Settings:
    """The settings, from ``config`` when given.

    Raises:
        ConfigError: The environment or the project file is invalid.
    """
    return load_settings(config_file=config) if config is not None else load_settings()


def _settings(config: Path | None = None) -> Settings:
    try:
        return _load_settings(config)
    except ConfigError as exc:
        _fail(str(exc), 2)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"etl-doctor {__version__}")


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run the Slack bot: Socket Mode if SLACK_APP_TOKEN is set, else the HTTP server on $PORT."""
    from bot.app import serve as run_server
    from bot.logging_setup import configure_logging
    from bot.store.db import StoreSchemaError

    settings = _settings(config)
    configure_logging(settings.log_level, settings.log_format)
    try:
        run_server(settings)
    except (ConfigError, StoreSchemaError) as exc:
        _fail(str(exc), 2)


@app.command()
def pipelines(config: ConfigOption = None) -> None:
    """Configured pipelines with their latest execution (what `/etl pipelines` shows in Slack)."""
    from bot.answers import answer
    from bot.commands import parse
    from bot.errors import describe_exception
    from bot.render.terminal import render_message
    from bot.services import Services

    settings = _settings(config)
    try:
        message = answer(parse("pipelines"), Services(settings))
    except Exception as exc:
        _fail(describe_exception(exc))
    typer.echo(render_message(message))


JsonOption = Annotated[bool, typer.Option("--json", help="Print the documented JSON object instead of text.")]


@app.command()
def why(
    target: Annotated[
        list[str], typer.Argument(help="Execution ARN, console URL, machine/execution, execution, or latest <machine>.")
    ],
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Why an execution failed: the chain to the log line that explains it, the error class, what to do."""
    import json

    from bot.diagnosis.model import diagnosis_json
    from bot.diagnosis.runner import diagnose
    from bot.errors import describe_exception
    from bot.render.diagnosis import render_diagnosis
    from bot.render.terminal import render_message
    from bot.services import Services

    try:
        diagnosis = diagnose(target, Services(_load_settings(config)))
    except Exception as exc:
        message = str(exc) if isinstance(exc, ConfigError) else describe_exception(exc)
        if json_output:  # scripts read stdout: the failure is a JSON object there too
            typer.echo(json.dumps({"error": message, "execution": " ".join(target)}, indent=2))
        _fail(message, 2 if isinstance(exc, ConfigError) else 1)
    if json_output:
        typer.echo(json.dumps(diagnosis_json(diagnosis), indent=2))
    else:
        typer.echo(render_message(render_diagnosis(diagnosis), show_urls=True))


@app.command()
def explain(
    history: Annotated[Path, typer.Option("--history", help="Saved `aws stepfunctions get-execution-history` output.")],
    describe: Annotated[
        Path | None, typer.Option("--describe", help="Saved `aws stepfunctions describe-execution` output.")
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Diagnose offline from saved JSON (hops that need live AWS are listed as not followed).

    A file that is not the saved output it should be gets one line naming it, and exit code 2.
    """
    import json

    from bot.diagnosis.model import diagnosis_json
    from bot.diagnosis.offline import SavedFileError, diagnose_saved, load_saved
    from bot.errors import describe_exception
    from bot.render.diagnosis import render_diagnosis
    from bot.render.terminal import render_message

    def refuse(message: str) -> NoReturn:
        if json_output:  # as `why --json`: scripts read stdout, so the failure is a JSON object there too
            typer.echo(json.dumps({"error": message, "history": str(history)}, indent=2))
        _fail(message, 2)

    settings = _settings(config)
    try:
        saved_describe, events = load_saved(history, describe)
    except SavedFileError as exc:
        refuse(str(exc))
    try:
        diagnosis = diagnose_saved(saved_describe, events, settings.project, settings.aws_region or "us-east-1")
    except Exception as exc:  # a shape the checks let through: still one line, never a traceback
        files = f"{history}" + (f" and {describe}" if describe else "")
        refuse(f"cannot diagnose the execution saved in {files}: {describe_exception(exc)}")
    if json_output:
        typer.echo(json.dumps(diagnosis_json(diagnosis), indent=2))
    else:
        typer.echo(render_message(render_diagnosis(diagnosis), show_urls=True))


@app.command("classify")
def classify_command(json_output: JsonOption = False) -> None:
    """Classify an error message read from stdin: category, confidence, transient, fingerprint, next steps."""
    import json

    from bot.diagnosis.classify import classify_text
    from bot.diagnosis.model import Diagnosis
    from bot.diagnosis.remediation import remediate

    text = sys.stdin.read()
    if not text.strip():
        _fail(
            "nothing on stdin: pipe an error message in, e.g. `echo 'Task timed out after 3.00 seconds' | etl-doctor "
            "classify`",
            2,
        )
    result = classify_text(text)
    stand_in = Diagnosis(
        execution_arn="",
        status="FAILED",
        cause_summary=text[:2000],
        category=result.category,
        transient=result.transient,
    )
    steps = remediate(stand_in)
    document: dict[str, object] = {
        "category": result.category,
        "confidence": round(result.confidence, 2),
        "transient": result.transient,
        "fingerprint": result.fingerprint,
        "title": result.title,
        "reasons": list(result.reasons),
        "conflicts": list(result.conflicts),
        "remediation": steps,
    }
    if json_output:
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(
        f"{result.title}  [{result.category}, {result.confidence:.0%}{', transient' if result.transient else ''}]"
    )
    typer.echo(f"fingerprint {result.fingerprint}")
    for reason in result.reasons:
        typer.echo(f"  because {reason}")
    for conflict in result.conflicts:
        typer.echo(f"  ! {conflict}")
    for index, step in enumerate(steps, 1):
        typer.echo(f"{index}. {step}")


@app.command()
def logs(
    target: Annotated[list[str], typer.Argument(help="Execution (as for `why`), ECS task ARN, or log-group:stream.")],
    grep: Annotated[str | None, typer.Option(help="Only lines containing this text (filtered server-side).")] = None,
    since: Annotated[str | None, typer.Option(help="How far back, e.g. 30m, 6h, 2d.")] = None,
    lines: Annotated[int, typer.Option(help="How many lines at most.")] = 50,
    config: ConfigOption = None,
) -> None:
    """The log lines of the failed work (found like `why`), or of a task or stream: tail or matches."""
    from bot.diagnosis.logs_lookup import parse_logs_args
    from bot.diagnosis.runner import find_logs
    from bot.errors import describe_exception
    from bot.services import Services

    words = [*target]
    words += ["--grep", grep] if grep else []
    words += ["--since", since] if since else []
    words += ["--lines", str(lines)]
    settings = _settings(config)
    try:
        result = find_logs(parse_logs_args(words), Services(settings))
    except Exception as exc:
        _fail(describe_exception(exc))
    typer.echo(f"{result.group} › {result.stream}  ({len(result.lines)} lines)\n{result.url}")
    for line in result.lines:
        typer.echo(f"{line.timestamp:%Y-%m-%d %H:%M:%S} {line.message}")


SpecArgument = Annotated[
    str | None,
    typer.Argument(
        help="A partition (2025-02-18), a range (2025-02-01..2025-02-28) or `latest` "
        "(default: the latest complete partition).",
        show_default=False,
    ),
]


@app.command("kpi")
def kpi_command(
    name: Annotated[
        str | None, typer.Argument(help="The KPI (from etl-doctor.yml), or `list`.", show_default=False)
    ] = None,
    spec: SpecArgument = None,
    all_kpis: Annotated[
        bool, typer.Option("--all", help="Every KPI, then every check (for cron or a schedule).")
    ] = False,
    post: Annotated[
        bool, typer.Option("--post", help="With --all: post to Slack and raise alerts (needs SLACK_BOT_TOKEN).")
    ] = False,
    json_output: JsonOption = False,
    chart: Annotated[Path | None, typer.Option("--chart", help="Save the chart (PNG) to this file.")] = None,
    config: ConfigOption = None,
) -> None:
    """Reconcile a KPI between source and warehouse: exit 0 within tolerance, 1 breach, 2 usage or config error."""
    from bot.commands import UsageError, parse_kpi_args

    if all_kpis:
        if name is not None or chart is not None:
            _fail("--all runs every KPI: give no KPI name and no --chart", 2)
        _kpi_all(post=post, json_output=json_output, config=config)
        return
    if post:
        _fail("--post goes with --all (a single run prints its result here)", 2)
    if name is None:
        _fail("name a KPI (`etl-doctor kpi list` shows them), or give --all", 2)
    try:
        kpi_name, spec = parse_kpi_args([name] if spec is None else [name, spec])
    except UsageError as exc:
        _fail(exc.message, 2)
    settings = _settings(config)
    if kpi_name is None:
        _print_list(settings, "kpi", json_output)
        return
    report = _kpi_run(settings, kpi_name, spec)
    if chart is not None:
        from bot.kpi.chart import render_chart

        try:
            chart.write_bytes(render_chart(report))
        except OSError as exc:
            _fail(f"cannot write the chart to {chart}: {exc.strerror or exc}")
        typer.echo(f"chart saved to {chart}", err=True)
    if json_output:
        import json

        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        from bot.render.kpi import kpi_report_renderable

        _stdout().print(kpi_report_renderable(report))
    raise typer.Exit(1 if report.breached else 0)


@app.command("check")
def check_command(
    name: Annotated[str, typer.Argument(help="The check (from etl-doctor.yml), or `list`.", show_default=False)],
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run a data-quality check: exit 0 passed, 1 failed, 2 usage or config error."""
    from bot.commands import UsageError, parse_kpi_args
    from bot.errors import describe_exception
    from bot.kpi.model import KpiError
    from bot.kpi.service import validate_request

    try:
        check_name, _spec = parse_kpi_args([name], "check")
    except UsageError as exc:
        _fail(exc.message, 2)
    settings = _settings(config)
    if check_name is None:
        _print_list(settings, "check", json_output)
        return
    try:
        validate_request(settings.project, "check", check_name)
        with _progress_console().status(f"check {check_name}…"):
            result = _kpi_services(settings).kpi_service.check(check_name, trigger="cli")
    except KpiError as exc:
        _fail(str(exc), 2)
    except Exception as exc:
        _fail(describe_exception(exc))
    if json_output:
        import json

        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        from bot.render.kpi import check_result_renderable

        _stdout().print(check_result_renderable(result))
    raise typer.Exit(0 if result.passed else 1)


def _kpi_run(settings: Settings, name: str, spec: str | None) -> KpiReport:
    from bot.errors import describe_exception
    from bot.kpi.model import KpiError
    from bot.kpi.service import validate_request

    try:
        validate_request(settings.project, "kpi", name, spec)
        with _progress(f"Reconciling {name} {spec or '(latest complete partition)'}") as progress:
            return _kpi_services(settings).kpi_service.run(name, spec, trigger="cli", progress=progress)
    except KpiError as exc:
        _fail(str(exc), 2)
    except Exception as exc:
        _fail(describe_exception(exc))


def _kpi_all(*, post: bool, json_output: bool, config: Path | None) -> None:
    from bot.app import build_kpi_service
    from bot.errors import describe_exception

    settings = _settings(config)
    if not settings.project.kpis and not settings.project.checks:
        _fail(f"{settings.config_file}: no KPIs or checks are defined (kpis:, checks:)", 2)
    services = _kpi_services(settings)
    try:
        service = build_kpi_service(settings, services, post=post)
        with _progress("Reconciling every KPI") as progress:
            summary = service.run_all(post=post, progress=progress)
    except ConfigError as exc:
        _fail(str(exc), 2)
    except Exception as exc:
        _fail(describe_exception(exc))
    finally:
        services.close()
    if json_output:
        import json

        typer.echo(json.dumps(summary.to_json(), indent=2))
    else:
        from bot.render.kpi import run_all_renderable

        _stdout().print(run_all_renderable(summary))
    raise typer.Exit(summary.exit_code)


def _print_list(settings: Settings, kind: str, json_output: bool) -> None:
    project = settings.project
    if json_output:
        import json

        if kind == "kpi":
            document: list[dict[str, object]] = [
                {
                    "kpi": name,
                    **project.kpis[name].model_dump(mode="json", include={"description", "aggregate", "column"}),
                }
                for name in sorted(project.kpis)
            ]
        else:
            document = [
                {
                    "check": name,
                    **project.checks[name].model_dump(mode="json", include={"description", "connection", "threshold"}),
                }
                for name in sorted(project.checks)
            ]
        typer.echo(json.dumps(document, indent=2))
        return
    from bot.render.kpi import kpi_list_renderable

    _stdout().print(kpi_list_renderable(project, kind))


def _kpi_services(settings: Settings) -> Services:
    from bot.services import Services

    return Services(settings)


def _stdout() -> Console:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)  # long lines (SQL) are not cut; the terminal wraps them
    return console if console.is_terminal else Console(highlight=False, soft_wrap=True, width=120)


def _progress_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str], None]]:
    """The engine's progress on stderr: a spinner on a terminal, plain lines otherwise (never on stdout)."""
    console = _progress_console()
    if not console.is_terminal:
        yield lambda message: console.print(f"… {message}", markup=False)
        return
    with console.status(title) as status:
        yield lambda message: status.update(f"{title}: {message}")


@app.command()
def demo(
    keep_going: Annotated[bool, typer.Option(help="Keep the sandbox running after the tour (Ctrl-C stops).")] = False,
) -> None:
    """Tour etl-doctor on the embedded sandbox (moto, a Slack emulator, SQLite): no AWS or Slack account."""
    from bot.sandbox.tour import run_tour

    sys.exit(run_tour(keep_running=keep_going))


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations to DATABASE_URL (PostgreSQL needs this once per release; SQLite upgrades itself)."""
    from bot.store.db import Store

    store = Store(_settings().database_url)
    before = store.current_revision()
    store.upgrade(revision)
    typer.echo(f"{store.display_url}: {before or '(empty)'} → {store.current_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Show the store's revision and the one this version needs."""
    from bot.store.db import Store

    store = Store(_settings().database_url)
    current, head = store.current_revision(), store.head_revision()
    state = "up to date" if current == head else "run `etl-doctor db upgrade`"
    typer.echo(f"{store.display_url}: at {current or '(empty)'}, needs {head} ({state})")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the environment and the project file; print what etl-doctor will use (secrets masked)."""
    from pydantic import SecretStr

    from bot.redact import redact

    settings = _settings(config)
    for field, variables in env_var_names().items():
        value = getattr(settings, field)
        if value is None:
            shown = "(not set)"
        elif isinstance(value, SecretStr):
            shown = "(set, hidden)"
        else:
            shown = redact(str(value))
        typer.echo(f"{variables[0]:<26} {shown}")
    project = settings.project
    source = settings.config_file if settings.config_file.exists() else f"{settings.config_file} (not found)"
    typer.echo(f"\nproject file: {source}")
    typer.echo(f"default_channel: {project.default_channel or '(not set)'}")
    typer.echo(f"pipelines: {', '.join(sorted(project.pipelines)) or '(none)'}")
    topics = ", ".join(t.arn + (" (raw delivery)" if t.raw_message_delivery else "") for t in project.sns_topics)
    typer.echo(f"sns_topics: {topics or '(none: /sns confirms no subscription)'}")
    routes = "; ".join(
        f"{'/'.join(r.severities) or 'any severity'} of {'/'.join(r.pipelines) or 'any pipeline'} → {r.channel}"
        for r in project.alerts.routes
    )
    typer.echo(f"alert routes: {routes or '(none)'}; grouping window {project.alerts.group_window_minutes} min")
    connections = ", ".join(
        f"{name} ({config.url.get_secret_value().split(':', 1)[0]})"
        for name, config in sorted(project.connections.items())
    )
    typer.echo(f"connections: {connections or '(none)'}")
    kpis = ", ".join(
        f"{name} ({' → '.join(layer.name for layer in kpi.layers)})" for name, kpi in sorted(project.kpis.items())
    )
    typer.echo(f"kpis: {kpis or '(none)'}")
    typer.echo(f"checks: {', '.join(sorted(project.checks)) or '(none)'}")


@sns_app.command("verify")
def sns_verify(
    message: Annotated[Path, typer.Argument(help="A saved SNS HTTP(S) message (the JSON body SNS posted).")],
    cert_file: Annotated[
        Path | None,
        typer.Option("--cert-file", help="PEM certificate to use instead of fetching SigningCertURL (still checked)."),
    ] = None,
) -> None:
    """Check a saved SNS message's signature and certificate URL: prints `valid` or why not (exit 0 / 1).

    The message's age is not checked (a saved message may be years old); `/sns` bounds it.
    """
    from bot.alerts.sns import verify_file

    reason = verify_file(message, cert_file)
    if reason is None:
        typer.echo("valid")
        return
    typer.echo(f"invalid: {reason}")
    raise typer.Exit(1)


@alerts_app.command("preview")
def alerts_preview(
    payload: Annotated[
        Path, typer.Argument(help="A saved payload: SNS envelope, EventBridge event, CloudWatch alarm message, text.")
    ],
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show the alert a payload becomes and the Slack message that would be posted (nothing is posted)."""
    import json

    from bot.alerts.model import IncidentView
    from bot.alerts.normalize import normalise, payload_kind
    from bot.alerts.routing import channel_for, route
    from bot.render.alerts import render_alert
    from bot.render.terminal import render_message

    settings = _settings(config)
    try:
        body = payload.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {payload}: {exc.strerror or exc}")
    alert = route(normalise(body), settings.project)
    channel = channel_for(alert, settings.project)
    if json_output:
        document = {"payload_kind": payload_kind(body), "channel": channel, "alert": alert.to_json()}
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(f"payload: {payload_kind(body)} → {alert.source} alert, {alert.status}, severity {alert.severity}")
    typer.echo(f"pipeline: {alert.pipeline or '(none)'} · error class: {alert.category or '-'}")
    typer.echo(f"fingerprint: {alert.fingerprint}")
    typer.echo(f"channel: {channel or '(none: set default_channel in etl-doctor.yml)'}\n")
    if alert.status == "failing":
        typer.echo(render_message(render_alert(IncidentView(alert=alert)), show_urls=True))
    elif alert.status == "resolved":
        typer.echo(f"resolves open alerts with key {alert.resolve_key} (updates their message, adds ✅)")
    else:
        typer.echo(f"noted in the thread of an open alert with key {alert.resolve_key}, else only recorded")


@alerts_app.command("pending")
def alerts_pending(limit: Annotated[int, typer.Option(help="Show at most this many.")] = 50) -> None:
    """The backlog: alerts stored but not yet in Slack (waiting, or refused by Slack), oldest first."""
    from bot.alerts.model import Alert
    from bot.store.db import Store, StoreSchemaError

    settings = _settings()
    try:
        store = Store(settings.database_url)
        store.ensure_schema()
        with store.transaction() as uow:
            counts = uow.alerts.counts_by_status()
            rows = uow.alerts.backlog(limit=limit)
    except StoreSchemaError as exc:
        _fail(str(exc))
    waiting, failed = counts.get("received", 0), counts.get("undeliverable", 0)
    typer.echo(f"{waiting} waiting to be posted, {failed} undeliverable, {counts.get('posted', 0)} posted")
    for row in rows:
        alert = Alert.from_json(row.payload["alert"])
        state = "waiting" if row.status == "received" else "UNDELIVERABLE"
        error = f" — {row.last_error}" if row.last_error else ""
        typer.echo(f"#{row.id} {row.received_at:%Y-%m-%d %H:%M:%S} {state} {row.channel or '-'} {alert.title}{error}")


def main() -> None:
    """Console-script entry point."""
    app()

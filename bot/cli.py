"""`etl-doctor` command line: serve, db, config, pipelines, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from bot import __version__
from bot.config import ConfigError, Settings, env_var_names, load_settings

app = typer.Typer(
    name="etl-doctor",
    help="Tells on-call why an AWS ETL pipeline failed and what to do next (Slack bot and CLI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Incident store schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Project file (default: $ETL_DOCTOR_CONFIG or ./etl-doctor.yml).")
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _settings(config: Path | None = None) -> Settings:
    try:
        return load_settings(config_file=config) if config is not None else load_settings()
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


def main() -> None:
    """Console-script entry point."""
    app()

"""Messages etl-doctor sends: help, usage errors, failures, pipeline overview (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.aws.console import execution_url, state_machine_url
from bot.commands import COMMAND, SUBCOMMANDS, Subcommand, UsageError
from bot.pipelines import PipelineStatus
from bot.render.blocks import context, escape, header, link, section
from bot.render.limits import finish_message

Message = dict[str, Any]

STATUS_ICONS = {
    "FAILED": ":red_circle:",
    "TIMED_OUT": ":red_circle:",
    "ABORTED": ":black_circle:",
    "RUNNING": ":large_blue_circle:",
    "PENDING_REDRIVE": ":large_blue_circle:",
    "SUCCEEDED": ":large_green_circle:",
}


def render_help(subcommands: Sequence[Subcommand] = SUBCOMMANDS) -> Message:
    """The `/etl help` message: every subcommand with one line of help and an example."""
    lines = [
        f"*`{escape(sub.synopsis)}`*  {escape(sub.summary)}"
        + (f"  e.g. `{escape(sub.examples[0])}`" if sub.examples else "")
        for sub in subcommands
    ]
    blocks = [
        header("etl-doctor"),
        section("Why did the pipeline fail, and what now? Subcommands:"),
        section("\n".join(lines)),
        context(
            f"Details and examples: `{COMMAND} help {escape('<subcommand>')}` · in a channel, mention "
            "@etl-doctor with a subcommand and it answers in the thread"
        ),
    ]
    text = "etl-doctor subcommands: " + ", ".join(sub.name for sub in subcommands)
    return finish_message(blocks, text)


def render_subcommand_help(subcommand: Subcommand) -> Message:
    """`/etl help <subcommand>`: synopsis, summary and examples."""
    examples = "\n".join(f"`{escape(example)}`" for example in subcommand.examples)
    blocks = [
        section(f"*`{escape(subcommand.synopsis)}`*\n{escape(subcommand.summary)}"),
        section(f"Examples:\n{examples}") if examples else context("No arguments."),
    ]
    return finish_message(blocks, f"{subcommand.synopsis}: {subcommand.summary}")


def render_usage_error(error: UsageError) -> Message:
    """What a bad `/etl` command gets back: what was wrong and how to say it."""
    if error.subcommand is not None:
        usage = f"Usage: `{escape(error.subcommand.synopsis)}`"
        examples = error.subcommand.examples
        if examples:
            usage += "\nFor example: " + ", ".join(f"`{escape(example)}`" for example in examples)
    else:
        usage = "Subcommands: " + ", ".join(f"`{sub.name}`" for sub in SUBCOMMANDS)
    blocks = [
        section(f":warning: {escape(error.message)}"),
        section(usage),
        context(f"`{COMMAND} help` lists everything."),
    ]
    return finish_message(blocks, f"{error.message}. {usage}")


def render_error(summary: str, ref: str) -> Message:
    """A failure report for the user, with the reference that is also in the logs."""
    text = f"etl-doctor hit an error: {summary} (ref {ref})"
    blocks = [section(f":x: {escape(text)}"), context(f"Operators can find `ref={ref}` in etl-doctor's logs.")]
    return finish_message(blocks, text)


def render_warning(text: str) -> Message:
    """An expected problem with the request (not found, still running…), said plainly; no error reference."""
    return finish_message([section(f":warning: {escape(text)}")], text)


def render_pipelines(statuses: Sequence[PipelineStatus], *, region: str, now: datetime) -> Message:
    """The `/etl pipelines` overview: one line per pipeline with its latest execution."""
    if not statuses:
        example = (
            "```pipelines:\n  policies-etl:\n"
            "    state_machine_arn: arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl\n"
            '    channel: "#etl-alerts"```'
        )
        blocks = [section("No pipelines are configured yet. Add them to `etl-doctor.yml`:\n" + example)]
        return finish_message(blocks, "No pipelines are configured yet.")
    blocks = [header(f"Pipelines ({len(statuses)})")]
    failing = 0
    for status in statuses:
        name = link(state_machine_url(status.state_machine_arn, region), status.name)
        latest = status.latest
        if status.problem is not None:
            line = f":warning: *{name}*  {escape(status.problem)}"
        elif latest is None:
            line = f":white_circle: *{name}*  never ran"
        else:
            failing += latest.status in {"FAILED", "TIMED_OUT", "ABORTED"}
            icon = STATUS_ICONS.get(latest.status, ":white_circle:")
            run = link(execution_url(latest.execution_arn, region), latest.name)
            when = _when(latest.start_date, latest.stop_date, now)
            line = f"{icon} *{name}*  {latest.status} {run}  {when}"
        detail = [escape(status.description)] if status.description else []
        if status.channel:
            detail.append(f"alerts to {status.channel}")
        blocks.append(section(line + ("\n" + " · ".join(detail) if detail else "")))
    blocks.append(context(f"Region {region} · checked {now:%H:%M} UTC"))
    summary = f"{len(statuses)} pipelines, {failing} failing" if failing else f"{len(statuses)} pipelines"
    return finish_message(blocks, summary)


def _when(start: datetime, stop: datetime | None, now: datetime) -> str:
    started = f"started {start:%Y-%m-%d %H:%M} UTC ({_ago(now - start)})"
    if stop is None:
        return started
    seconds = max(0, int((stop - start).total_seconds()))
    took = f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
    return f"{started}, ran {took}"


def _ago(delta: Any) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"

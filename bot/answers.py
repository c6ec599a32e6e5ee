"""Answer a parsed `/etl` command with a message (the same answer in Slack and on the terminal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.commands import Invocation, find
from bot.pipelines import pipeline_statuses
from bot.render.messages import render_help, render_pipelines, render_subcommand_help
from bot.services import Services

Message = dict[str, Any]


def _help(invocation: Invocation, services: Services) -> Message:
    if invocation.args:
        subcommand = find(invocation.args[0].lower())
        if subcommand is not None:
            return render_subcommand_help(subcommand)
    return render_help()


def _pipelines(invocation: Invocation, services: Services) -> Message:
    region = services.aws.region
    statuses = pipeline_statuses(services.settings.project, services.stepfunctions, region)
    return render_pipelines(statuses, region=region, now=services.clock())


# The diagnosis stack is imported when first used: it is not needed to ack (cold starts count toward 3 s).


def _why(invocation: Invocation, services: Services) -> Message:
    from bot.diagnosis.runner import diagnose
    from bot.render.diagnosis import render_diagnosis

    return render_diagnosis(diagnose(invocation.args, services))


def _logs(invocation: Invocation, services: Services) -> Message:
    from bot.diagnosis.logs_lookup import parse_logs_args
    from bot.diagnosis.runner import find_logs
    from bot.render.logs import render_logs

    return render_logs(find_logs(parse_logs_args(invocation.args), services))


def _act(kind: str) -> Callable[[Invocation, Services], Message]:
    def act(invocation: Invocation, services: Services) -> Message:
        from bot.actions.model import ActionError
        from bot.diagnosis.targets import parse_target, resolve_target
        from bot.render.actions import render_outcome

        if invocation.actor is None:
            raise ActionError(f"`{kind}` needs to know who asks: use it from Slack")
        arn = resolve_target(parse_target(invocation.args), services.settings.project, services.stepfunctions)
        outcome = services.actions.request(kind, invocation.actor, execution_arn=arn)  # type: ignore[arg-type]
        return render_outcome(outcome)

    return act


def _dlq(invocation: Invocation, services: Services) -> Message:
    from bot.actions.dlq import dlq_config, list_dlqs, parse_dlq_args, replay
    from bot.actions.model import ActionError
    from bot.aws.sqs import SqsGateway
    from bot.render.actions import render_outcome
    from bot.render.dlq import render_dlq_listing, render_replay_report

    mode, queue, message_id, everything = parse_dlq_args(invocation.args)
    queues = services.settings.project.dlq
    sqs = SqsGateway(services.aws.client("sqs"))
    if mode == "list":
        return render_dlq_listing(list_dlqs(queue, queues, sqs, now=services.clock()))
    assert queue is not None
    config = dlq_config(queue, queues)
    if invocation.actor is None:
        raise ActionError("`dlq replay` needs to know who asks: use it from Slack")
    refusal = services.actions.authorize("dlq_replay", config.pipeline, invocation.actor, target=queue)
    if refusal is not None:
        return render_outcome(refusal)
    report = replay(queue, queues, sqs, services.aws.stepfunctions, message_id=message_id, all_messages=everything)
    services.actions.record(
        invocation.actor,
        "dlq_replay",
        queue,
        "done" if report.failed == 0 else "failed",
        config.pipeline,
        parameters={"message_id": message_id, "all": everything, "replayed": report.replayed, "failed": report.failed},
    )
    return render_replay_report(report)


def _audit(invocation: Invocation, services: Services) -> Message:
    from bot.commands import parse_audit_args
    from bot.render.actions import render_audit

    pipeline, limit = parse_audit_args(invocation.args)
    with services.store.transaction() as uow:
        records = uow.audit.recent(pipeline=pipeline, limit=limit)
    return render_audit(records, pipeline=pipeline)


def _kpi(invocation: Invocation, services: Services) -> Message:
    from bot.commands import parse_kpi_args
    from bot.render.kpi import render_kpi_list, render_kpi_report

    name, spec = parse_kpi_args(invocation.args)
    if name is None:
        return render_kpi_list(services.settings.project, _last_runs(services, "kpi"))
    user = invocation.actor.user_id if invocation.actor is not None else None
    trigger = "slack" if invocation.actor is not None else "cli"
    return render_kpi_report(services.kpi_service.run(name, spec, trigger=trigger, requested_by=user))


def _check(invocation: Invocation, services: Services) -> Message:
    from bot.commands import parse_kpi_args
    from bot.render.kpi import render_check_list, render_check_result

    name, _spec = parse_kpi_args(invocation.args, "check")
    if name is None:
        return render_check_list(services.settings.project, _last_runs(services, "check"))
    user = invocation.actor.user_id if invocation.actor is not None else None
    trigger = "slack" if invocation.actor is not None else "cli"
    return render_check_result(services.kpi_service.check(name, trigger=trigger, requested_by=user))


def _last_runs(services: Services, kind: str) -> dict[str, Any]:
    """The latest run of each KPI or check; the list is still shown when the store cannot say."""
    import logging

    from bot.errors import describe_exception

    project = services.settings.project
    if not (project.kpis if kind == "kpi" else project.checks):
        return {}
    try:
        return dict(services.kpi_service.last_runs(kind))
    except Exception as exc:
        logging.getLogger(__name__).warning("could not read the latest %s runs: %s", kind, describe_exception(exc))
        return {}


def precheck(invocation: Invocation, services: Services) -> Message | None:
    """Problems found without doing the work (an undefined KPI or check, a partition of the wrong grain).

    Cheap (etl-doctor.yml only), so the ack can answer them at once.

    Returns:
        A warning message, or None when the command may run.
    """
    if invocation.subcommand.name not in {"kpi", "check"}:
        return None
    from bot.commands import parse_kpi_args
    from bot.kpi.model import KpiError
    from bot.kpi.service import validate_request
    from bot.render.messages import render_warning

    name, spec = parse_kpi_args(invocation.args, invocation.subcommand.name)
    if name is None:
        return None
    try:
        validate_request(services.settings.project, invocation.subcommand.name, name, spec)
    except KpiError as error:
        return render_warning(str(error))
    return None


ANSWERS: dict[str, Callable[[Invocation, Services], Message]] = {
    "help": _help,
    "why": _why,
    "logs": _logs,
    "pipelines": _pipelines,
    "retry": _act("retry"),
    "redrive": _act("redrive"),
    "dlq": _dlq,
    "kpi": _kpi,
    "check": _check,
    "audit": _audit,
}


def answer(invocation: Invocation, services: Services) -> Message:
    """Do the work a subcommand asks for and return the message to show.

    Args:
        invocation: A parsed command (see `bot.commands.parse`).
        services: Clients and stores.

    Returns:
        A Block Kit message (``blocks`` and fallback ``text``).
    """
    return ANSWERS[invocation.subcommand.name](invocation, services)

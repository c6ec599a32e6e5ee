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


ANSWERS: dict[str, Callable[[Invocation, Services], Message]] = {
    "help": _help,
    "why": _why,
    "logs": _logs,
    "pipelines": _pipelines,
    "retry": _act("retry"),
    "redrive": _act("redrive"),
    "dlq": _dlq,
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

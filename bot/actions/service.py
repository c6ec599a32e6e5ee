"""Retry, redrive, ack and snooze: permission-checked, confirmed, idempotent, audited, followed to the end."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.actions.model import (
    ACTIVE,
    DONE,
    LABEL,
    PERMISSION,
    REOPENABLE,
    SNOOZES,
    UNTIL_RESOLVED,
    WAITING,
    ActionError,
    ActionKind,
    Outcome,
)
from bot.actions.plans import PlanError, RetryPlan, plan_backfill, plan_retry, redrive_refusal, retry_name
from bot.actions.policy import Actor, Policy
from bot.alerts.dispatch import Chat, ChatError
from bot.aws.errors import describe_aws_error
from bot.aws.stepfunctions import ExecutionNotFoundError, StepFunctionsGateway
from bot.config import ProjectConfig
from bot.errors import UserFacingError
from bot.render.actions import render_approval_request, render_thread_note
from bot.store.db import Store
from bot.store.models import ActionRequest, Incident

logger = logging.getLogger(__name__)
_PARTITION_LABEL = re.compile(r"^\d{4}(-\d{2}(-\d{2}( \d{2})?)?)?$")


class ActionService:
    """The workflow behind the Retry, Redrive, Ack and Snooze buttons and `/etl retry|redrive`.

    Args:
        store: The incident store (requests, incidents, audit).
        stepfunctions: Step Functions (describe, start, redrive).
        project: etl-doctor.yml (retry resources, two-person rule).
        policy: Who may do what.
        clock: Current UTC time.
        refresh_parent: Re-renders an incident's parent message (after ack, snooze, resolution).
        chat: Slack, for the notes this service posts in the alert's thread (started, ended, approval asked).
        after_success: Called when a started run succeeded (a backfill re-checks its KPI); what it returns is
            posted in the same thread.
    """

    def __init__(
        self,
        store: Store,
        stepfunctions: StepFunctionsGateway,
        project: ProjectConfig,
        policy: Policy,
        *,
        clock: Callable[[], datetime],
        refresh_parent: Callable[[str], object] = lambda _incident_id: None,
        chat: Chat | None = None,
        after_success: Callable[[ActionRequest], str | None] = lambda _request: None,
    ) -> None:
        self._store = store
        self._sfn = stepfunctions
        self._project = project
        self._policy = policy
        self._clock = clock
        self._refresh_parent = refresh_parent
        self._chat = chat
        self._after_success = after_success

    # ------------------------------------------------------------------ request → confirm → (approve) → run

    def request(
        self,
        kind: ActionKind,
        actor: Actor,
        *,
        incident_id: str | None = None,
        execution_arn: str | None = None,
        thread_ts: str | None = None,
    ) -> Outcome:
        """Check permission, preflight, and return the confirmation to show (nothing runs yet)."""
        incident = self._incident(incident_id) if incident_id else None
        arn = execution_arn or (incident.execution_arn if incident else None)
        if not arn:
            raise ActionError("this alert names no Step Functions execution to act on")
        machine = arn.replace(":execution:", ":stateMachine:", 1).rsplit(":", 1)[0]
        pipeline = self._project.pipeline_for_state_machine(machine)
        permission = PERMISSION[kind]
        decision = self._policy.check(permission, pipeline, actor)
        if not decision.allowed:
            self._audit(actor, kind, arn, "refused", pipeline, incident_id, detail=decision.reason)
            return Outcome("refused", decision.reason)
        key = f"{kind}:{arn}"
        with self._store.transaction() as uow:
            existing = uow.action_requests.by_key(key)
        if existing is not None and existing.status not in REOPENABLE:
            return self._existing(existing, kind, actor)  # no AWS call: twenty clicks cost one preflight
        try:
            source = self._sfn.describe_execution(arn)
        except ExecutionNotFoundError as exc:
            raise ActionError(str(exc)) from None
        parameters: dict[str, Any]
        details: tuple[str, ...]
        if kind == "redrive":
            refusal = redrive_refusal(source, self._sfn.state_machine_type(source.state_machine_arn), self._clock())
            if refusal:
                self._audit(actor, kind, arn, "refused", pipeline, incident_id, detail=f"preflight: {refusal}")
                return Outcome(
                    "refused",
                    f"Cannot redrive: {refusal}. A Retry starts it again from the beginning.",
                    offer_retry=incident_id or arn,
                )
            parameters = {"execution_arn": arn, "redrive_attempt": source.redrive_count + 1}
            details = (
                f"Redrive `{source.name}` of `{source.state_machine_arn.rsplit(':', 1)[-1]}`: AWS re-runs it from the "
                "failed state, keeping what succeeded (redrive "
                f"{source.redrive_count + 1}).",
            )
        else:
            resources = None
            if kind == "retry_more":
                config = self._project.pipelines.get(pipeline or "")
                resources = config.retry_resources if config else None
                if resources is None:
                    raise ActionError(f"`{pipeline}` has no retry_resources in etl-doctor.yml; use Retry")
            try:
                plan = plan_retry(source, resources)
            except PlanError as exc:
                raise ActionError(str(exc)) from None
            parameters = _plan_parameters(plan)
            details = (
                f"Start `{plan.name}` of `{plan.state_machine_arn.rsplit(':', 1)[-1]}` with "
                + ("the same input as" if not plan.changes else "the input of")
                + f" `{source.name}`.",
                *plan.changes,
            )
        return self._open(
            key,
            kind,
            arn,
            actor,
            pipeline=pipeline,
            incident_id=incident_id or (incident.id if incident else None),
            thread_ts=thread_ts,
            parameters=parameters,
            details=details,
        )

    def request_backfill(self, kpi: str, partition: str, actor: Actor, *, thread_ts: str | None = None) -> Outcome:
        """Ask to re-run a KPI's pipeline for one differing partition (confirmed, permission-checked, audited).

        Raises:
            ActionError: The KPI names no pipeline or `rerun_input`, or the partition is not a partition label.
        """
        config = self._project.kpis.get(kpi)
        if config is None or config.pipeline is None or config.rerun_input is None:
            raise ActionError(f"KPI `{kpi}` has no pipeline and rerun_input in etl-doctor.yml to backfill with")
        if not _PARTITION_LABEL.match(partition):
            raise ActionError(f"`{partition[:40]}` is not a partition")
        pipeline = config.pipeline
        machine = self._project.pipelines[pipeline].state_machine_arn
        decision = self._policy.check(PERMISSION["backfill"], pipeline, actor)
        target = f"{machine}#{partition}"
        if not decision.allowed:
            self._audit(actor, "backfill", target, "refused", pipeline, None, detail=decision.reason)
            return Outcome("refused", decision.reason)
        now = self._clock()
        try:
            plan = plan_backfill(kpi, partition, machine, config.rerun_input, now)
        except PlanError as exc:
            raise ActionError(str(exc)) from None
        parameters = {**_plan_parameters(plan), "kpi": kpi, "partition": partition}
        details = (f"Start `{plan.name}` of `{_short(machine)}` to reload {partition} for KPI `{kpi}`.", *plan.changes)
        key = f"backfill:{kpi}:{partition}:{now.date().isoformat()}"
        return self._open(
            key,
            "backfill",
            target,
            actor,
            pipeline=pipeline,
            incident_id=None,
            thread_ts=thread_ts,
            parameters=parameters,
            details=details,
        )

    def _open(
        self,
        key: str,
        kind: ActionKind,
        target: str,
        actor: Actor,
        *,
        pipeline: str | None,
        incident_id: str | None,
        thread_ts: str | None,
        parameters: dict[str, Any],
        details: tuple[str, ...],
    ) -> Outcome:
        """Open (or reopen) the one request for ``key`` awaiting confirmation, or say it already exists."""
        now = self._clock()
        with self._store.transaction() as uow:
            request, created = uow.action_requests.open(
                idempotency_key=key,
                action=kind,
                target=target,
                requested_by=actor.user_id,
                at=now,
                status="awaiting_confirmation",
                pipeline=pipeline,
                incident_id=incident_id,
                channel=actor.channel_id,
                thread_ts=thread_ts,
                parameters={**parameters, "details": list(details)},
            )
            if not created and request.status in REOPENABLE:
                previous = request.parameters.get("name")
                if kind != "redrive" and previous and request.result.get("execution_arn"):
                    # AWS refuses a name whose execution has closed: the next attempt gets the next number
                    bumped, planned = retry_name(str(previous)), str(parameters["name"])
                    arn_base = str(parameters["new_execution_arn"]).rsplit(":", 1)[0]
                    parameters = {**parameters, "name": bumped, "new_execution_arn": f"{arn_base}:{bumped}"}
                    details = tuple(line.replace(f"`{planned}`", f"`{bumped}`") for line in details)
                uow.action_requests.reopen(
                    request.id,
                    at=now,
                    status="awaiting_confirmation",
                    requested_by=actor.user_id,
                    parameters={**parameters, "details": list(details)},
                    channel=actor.channel_id,
                    thread_ts=thread_ts or request.thread_ts,
                )
                uow.session.refresh(request)
            elif not created:
                return self._existing(request, kind, actor)
        self._audit(actor, kind, target, "requested", pipeline, request.incident_id, parameters=parameters)
        return Outcome("confirm", f"{LABEL[kind]}?", request, details)

    def _existing(self, request: ActionRequest, kind: ActionKind, actor: Actor) -> Outcome:
        """The answer when the same action on the same target was already asked for."""
        name = _short(request.target)
        if request.status in ACTIVE + DONE:
            new = _short(request.result.get("execution_arn", request.target))
            by = f"<@{request.requested_by}>"
            return Outcome(
                "info", f"{LABEL[kind]} of `{name}` was already done by {by}: `{new}` is {request.status}.", request
            )
        if request.requested_by != actor.user_id:
            waiting = "their confirmation" if request.status == "awaiting_confirmation" else "a second person"
            return Outcome(
                "info",
                f"<@{request.requested_by}> already asked to {LABEL[kind].lower()} `{name}`; waiting for {waiting}.",
                request,
            )
        if request.status == "awaiting_approval":
            return Outcome("info", "Your request is waiting for a second person to approve it.", request)
        return Outcome("confirm", f"{LABEL[kind]}?", request, tuple(request.parameters.get("details", ())))

    def confirm(self, request_id: str, actor: Actor) -> Outcome:
        """The requester confirmed: run it, or ask a second person under the two-person rule."""
        request = self._request(request_id)
        if request.requested_by != actor.user_id:
            return Outcome("info", f"Only <@{request.requested_by}> can confirm their request.", request)
        decision = self._policy.check(PERMISSION[request.action], request.pipeline, actor)
        if not decision.allowed:
            self._close(request, "refused", actor, decision.reason)
            return Outcome("refused", decision.reason, request)
        if self._policy.needs_second_person(request.pipeline):
            with self._store.transaction() as uow:
                moved = uow.action_requests.transition(
                    request.id, ("awaiting_confirmation",), "awaiting_approval", at=self._clock()
                )
            if not moved:
                return self._already(request)
            self._audit(actor, request.action, request.target, "approval_asked", request.pipeline, request.incident_id)
            approval = Outcome(
                "approval",
                f"Waiting for a second person: `{request.pipeline}` is under the two-person rule.",
                self._request(request.id),
                tuple(request.parameters.get("details", ())),
                thread=f"{actor.mention} asks to {LABEL[request.action].lower()} `{_short(request.target)}`; "
                "a different person allowed to do it must approve.",
            )
            self._post(request, render_approval_request(approval))
            return approval
        return self._run(request, actor, ("awaiting_confirmation",))

    def approve(self, request_id: str, actor: Actor) -> Outcome:
        """A second person approved: check them, then run."""
        request = self._request(request_id)
        if request.requested_by == actor.user_id:
            return Outcome("info", "The two-person rule needs a different person to approve.", request)
        decision = self._policy.check(PERMISSION[request.action], request.pipeline, actor)
        if not decision.allowed:
            self._audit(
                actor,
                "approve",
                request.target,
                "refused",
                request.pipeline,
                request.incident_id,
                detail=decision.reason,
            )
            return Outcome("refused", decision.reason, request)
        return self._run(request, actor, ("awaiting_approval",), approval=True)

    def reject(self, request_id: str, actor: Actor) -> Outcome:
        """A second person (or the requester) turned the request down."""
        request = self._request(request_id)
        decision = self._policy.check(PERMISSION[request.action], request.pipeline, actor)
        if not decision.allowed and request.requested_by != actor.user_id:
            return Outcome("refused", decision.reason, request)
        with self._store.transaction() as uow:
            moved = uow.action_requests.transition(
                request.id, WAITING, "rejected", at=self._clock(), decided_by=actor.user_id
            )
        if not moved:
            return self._already(request)
        self._audit(actor, "reject", request.target, "rejected", request.pipeline, request.incident_id)
        text = f"{actor.mention} rejected the {LABEL[request.action].lower()} of `{_short(request.target)}`."
        self._post(request, render_thread_note(f":no_entry_sign: {text}"))
        return Outcome("done", text, request, thread=f":no_entry_sign: {text}")

    def cancel(self, request_id: str, actor: Actor) -> Outcome:
        """The requester changed their mind."""
        request = self._request(request_id)
        if request.requested_by != actor.user_id:
            return Outcome("info", f"Only <@{request.requested_by}> can cancel their request.", request)
        with self._store.transaction() as uow:
            moved = uow.action_requests.transition(request.id, WAITING, "cancelled", at=self._clock())
        if not moved:
            return self._already(request)
        self._audit(actor, request.action, request.target, "cancelled", request.pipeline, request.incident_id)
        return Outcome("done", "Cancelled; nothing was started.", request)

    def _run(
        self, request: ActionRequest, actor: Actor, from_statuses: tuple[str, ...], *, approval: bool = False
    ) -> Outcome:
        with self._store.transaction() as uow:
            moved = uow.action_requests.transition(
                request.id, from_statuses, "running", at=self._clock(), decided_by=actor.user_id
            )
        if not moved:
            return self._already(request)
        if approval:  # recorded only for the approval that took effect
            self._audit(actor, "approve", request.target, "approved", request.pipeline, request.incident_id)
        label = LABEL[request.action]
        try:
            if request.action == "redrive":
                # one token per attempt: a repeat of this attempt cannot redrive twice, a later attempt can
                attempt = int(request.parameters.get("redrive_attempt", 1))
                redriven = self._sfn.redrive_execution(request.target, client_token=f"{request.id}-{attempt}")
                result = {"execution_arn": request.target, "redrive_date": redriven.isoformat()}
                summary = f"redrove `{_short(request.target)}`"
            else:
                started_arn, _ = self._sfn.start_execution(
                    request.parameters["state_machine_arn"], request.parameters["name"], request.parameters["input"]
                )
                result = {"execution_arn": started_arn}
                summary = f"started `{_short(started_arn)}`"
        except Exception as exc:
            reason = _aws_reason(exc)
            with self._store.transaction() as uow:
                uow.action_requests.transition(
                    request.id, ("running",), "failed", at=self._clock(), result={"error": reason}
                )
            self._audit(
                actor, request.action, request.target, "failed", request.pipeline, request.incident_id, detail=reason
            )
            text = f":x: {label} of `{_short(request.target)}` failed: {reason}"
            self._post(request, render_thread_note(text))
            return Outcome("failed", text, self._request(request.id), thread=text)
        with self._store.transaction() as uow:
            uow.action_requests.transition(request.id, ("running",), "started", at=self._clock(), result=result)
        self._audit(
            actor, request.action, request.target, "started", request.pipeline, request.incident_id, parameters=result
        )
        by = f" (approved by {actor.mention})" if actor.user_id != request.requested_by else ""
        text = f":arrow_forward: <@{request.requested_by}> {summary} ({label}){by}. I'll post here when it ends."
        self._post(request, render_thread_note(text))
        return Outcome("started", text, self._request(request.id), thread=text)

    # ------------------------------------------------------------------ following the new run

    def follow(self) -> list[Outcome]:
        """Check started runs; for each that ended, mark it, and on success resolve its alert."""
        with self._store.transaction() as uow:
            started = uow.action_requests.with_status("started")
        outcomes = []
        for request in started:
            arn = request.result.get("execution_arn", request.target)
            try:
                run = self._sfn.describe_execution(arn)
            except Exception as exc:  # keep following the others; this one is retried next time
                logger.warning("could not follow %s: %s", arn, _aws_reason(exc))
                continue
            if run.status in {"RUNNING", "PENDING_REDRIVE"}:
                continue
            status = "succeeded" if run.status == "SUCCEEDED" else "failed"
            with self._store.transaction() as uow:
                if not uow.action_requests.transition(
                    request.id, ("started",), status, at=self._clock(), result={**request.result, "status": run.status}
                ):
                    continue
                resolved = False
                if status == "succeeded" and request.incident_id:
                    resolved = uow.incidents.resolve(
                        request.incident_id, self._clock(), by=f"execution {run.name} SUCCEEDED"
                    )
            icon = ":white_check_mark:" if status == "succeeded" else ":x:"
            detail = f": {run.error} {run.cause or ''}".rstrip() if run.error else ""
            text = f"{icon} `{run.name}` ({LABEL[request.action]}) {run.status}{detail[:300]}"
            self._post(request, render_thread_note(text))
            if resolved and request.incident_id:
                self._refresh_parent(request.incident_id)
            if status == "succeeded":
                self._follow_up(request)
            outcomes.append(Outcome("done", text, request, thread=text, extra={"resolved": resolved}))
        return outcomes

    def _follow_up(self, request: ActionRequest) -> None:
        """What comes after a success (a KPI re-check after a backfill), posted in the request's thread."""
        try:
            note = self._after_success(request)
        except Exception:
            logger.exception("follow-up of %s failed", request.id)
            note = f":warning: the follow-up of {LABEL[request.action].lower()} `{_short(request.target)}` failed"
        if note:
            self._post(request, render_thread_note(note))

    # ------------------------------------------------------------------ ack and snooze

    def acknowledge(self, incident_id: str, actor: Actor, *, undo: bool = False) -> Outcome:
        """Ack (or un-ack) an alert; the parent message says who and when."""
        incident = self._incident(incident_id)
        decision = self._policy.check("ack", incident.pipeline, actor)
        action = "unack" if undo else "ack"
        if not decision.allowed:
            self._audit(
                actor, action, _target(incident), "refused", incident.pipeline, incident.id, detail=decision.reason
            )
            return Outcome("refused", decision.reason)
        now = self._clock()
        with self._store.transaction() as uow:
            uow.incidents.set_ack(incident.id, None if undo else actor.user_id, None if undo else now)
        self._audit(actor, action, _target(incident), "done", incident.pipeline, incident.id)
        self._refresh_parent(incident.id)
        return Outcome("done", "Un-acked." if undo else f"Acked by {actor.mention} at {now:%H:%M} UTC.")

    def snooze(self, incident_id: str, actor: Actor, duration: str | None) -> Outcome:
        """Snooze repeats for ``1h``/``4h``/``24h``/``resolved`` (None: un-snooze)."""
        incident = self._incident(incident_id)
        decision = self._policy.check("snooze", incident.pipeline, actor)
        action = "unsnooze" if duration is None else "snooze"
        if not decision.allowed:
            self._audit(
                actor, action, _target(incident), "refused", incident.pipeline, incident.id, detail=decision.reason
            )
            return Outcome("refused", decision.reason)
        if duration is not None and duration not in SNOOZES:
            raise ActionError(f"snooze for {', '.join(SNOOZES)}, not {duration!r}")
        now = self._clock()
        span = SNOOZES.get(duration or "")
        until = None if duration is None else (UNTIL_RESOLVED if span is None else now + span)
        with self._store.transaction() as uow:
            uow.incidents.set_snooze(incident.id, None if until is None else actor.user_id, until)
        self._audit(
            actor, action, _target(incident), "done", incident.pipeline, incident.id, parameters={"for": duration}
        )
        self._refresh_parent(incident.id)
        if until is None:
            return Outcome("done", "Un-snoozed: repeats are posted again.")
        shown = "until resolved" if until == UNTIL_RESOLVED else f"until {until:%H:%M} UTC"
        return Outcome("done", f"Snoozed {shown}: repeats are stored and counted, not posted.")

    # ------------------------------------------------------------------ for other actions (DLQ replay)

    def authorize(self, action: str, pipeline: str | None, actor: Actor, *, target: str) -> Outcome | None:
        """None when ``actor`` may act; else the refusal to show (and the refusal is audited)."""
        decision = self._policy.check(action, pipeline, actor)
        if decision.allowed:
            return None
        self._audit(actor, action, target, "refused", pipeline, None, detail=decision.reason)
        return Outcome("refused", decision.reason)

    def record(
        self,
        actor: Actor,
        action: str,
        target: str,
        outcome: str,
        pipeline: str | None,
        *,
        parameters: dict[str, Any] | None = None,
        detail: str = "",
    ) -> None:
        """Append an audit row for an action done elsewhere."""
        self._audit(actor, action, target, outcome, pipeline, None, parameters=parameters, detail=detail)

    # ------------------------------------------------------------------ plumbing

    def _post(self, request: ActionRequest, message: dict[str, Any]) -> None:
        if self._chat is None or not request.channel:
            return
        try:
            self._chat.post(request.channel, message, thread_ts=request.thread_ts)
        except ChatError as exc:  # the action itself stands; the audit has it
            logger.warning("could not post to %s: %s", request.channel, exc)

    def _incident(self, incident_id: str) -> Incident:
        with self._store.transaction() as uow:
            incident = uow.incidents.get(incident_id)
        if incident is None:
            raise ActionError("this alert is no longer in etl-doctor's store")
        return incident

    def _request(self, request_id: str) -> ActionRequest:
        with self._store.transaction() as uow:
            request = uow.action_requests.get(request_id)
        if request is None:
            raise ActionError("this request is no longer in etl-doctor's store")
        return request

    def _already(self, request: ActionRequest) -> Outcome:
        current = self._request(request.id)
        by = f" by <@{current.decided_by}>" if current.decided_by else ""
        return Outcome("info", f"This request is already {current.status.replace('_', ' ')}{by}.", current)

    def _close(self, request: ActionRequest, status: str, actor: Actor, reason: str) -> None:
        with self._store.transaction() as uow:
            uow.action_requests.transition(request.id, WAITING, status, at=self._clock())
        self._audit(actor, request.action, request.target, status, request.pipeline, request.incident_id, detail=reason)

    def _audit(
        self,
        actor: Actor,
        action: str,
        target: str,
        outcome: str,
        pipeline: str | None,
        incident_id: str | None,
        *,
        detail: str = "",
        parameters: dict[str, Any] | None = None,
    ) -> None:
        with self._store.transaction() as uow:
            uow.audit.append(
                actor=actor.user_id,
                action=action,
                target=target,
                outcome=outcome,
                at=self._clock(),
                pipeline=pipeline,
                incident_id=incident_id,
                parameters=parameters,
                detail=detail,
                slack_link=actor.message_link,
            )


def _plan_parameters(plan: RetryPlan) -> dict[str, Any]:
    return {
        "state_machine_arn": plan.state_machine_arn,
        "name": plan.name,
        "input": plan.execution_input,
        "changes": list(plan.changes),
        "new_execution_arn": plan.new_execution_arn,
    }


def _target(incident: Incident) -> str:
    return incident.execution_arn or incident.title


def _short(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def _aws_reason(exc: BaseException) -> str:
    described = describe_aws_error(exc)
    if described:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "ExecutionAlreadyExists":
            return "an execution with that name already exists with a different input (AWS: ExecutionAlreadyExists)"
        if code == "ExecutionLimitExceeded":
            return "the account's limit of open executions is reached (AWS: ExecutionLimitExceeded); try later"
        return described
    if isinstance(exc, UserFacingError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

"""ActionService against real servers: the store on SQLite and PostgreSQL, AWS through the replay endpoint
(StartExecution / RedriveExecution with AWS's semantics, in front of moto) and Slack through the emulator.

The recorded `ecs_oom` scenario serves the FAILED execution policies-etl/run-2025-02-18 (rebased to an hour
ago, so the 14-day redrive window is open). The service's clock is fixed a moment after `load`. Concurrency
is real: threads released together by a `threading.Barrier`, and `AwsReplay.slow_down` keeps AWS calls in
flight long enough for them to overlap.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.actions.model import UNTIL_RESOLVED, ActionError, Outcome
from bot.actions.policy import Actor, Policy
from bot.actions.service import ActionService
from bot.aws.clients import AwsClients
from bot.aws.stepfunctions import StepFunctionsGateway
from bot.config import ProjectConfig, Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.moto_server import SANDBOX_CREDENTIALS
from bot.sandbox.slack_emulator import SlackEmulator
from bot.services import Services
from bot.store.db import Store
from bot.store.models import ActionRecord, ActionRequest, Incident
from handlers.slack_chat import SlackChat
from tests.support.kpi_files import make_world

T = TypeVar("T")

PREFIX = "arn:aws:states:us-east-1:123456789012"
MACHINE = f"{PREFIX}:stateMachine:policies-etl"
RUN = "run-2025-02-18"
ARN = f"{PREFIX}:execution:policies-etl:{RUN}"
RETRY_NAME = f"{RUN}-retry-1"
RETRY_ARN = f"{PREFIX}:execution:policies-etl:{RETRY_NAME}"
CHANNEL = "#etl-alerts"
TITLE = f"policies-etl: execution {RUN} FAILED"
ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
APPROVERS = tuple(f"U0APPROVER{i:02d}" for i in range(20))
ONCALL = "S0ONCALL"
ALREADY = re.compile(r"This request is already (running|started) by <@(U0[A-Z0-9]+)>\.")


def project(
    *,
    two_person: bool = False,
    retry_resources: dict[str, Any] | None = None,
    retry_users: tuple[str, ...] = (ALICE, BOB, *APPROVERS),
) -> ProjectConfig:
    """etl-doctor.yml: retry/redrive granted to ``retry_users`` on policies-etl, ack/snooze to the on-call group."""
    pipeline: dict[str, Any] = {"state_machine_arn": MACHINE}
    if retry_resources is not None:
        pipeline["retry_resources"] = retry_resources
    return ProjectConfig.model_validate(
        {
            "default_channel": CHANNEL,
            "pipelines": {"policies-etl": pipeline},
            "permissions": [
                {"actions": ["retry", "redrive"], "pipelines": ["policies-etl"], "users": list(retry_users)},
                {"actions": ["ack", "snooze"], "usergroups": [ONCALL]},
            ],
            "two_person_rule": ["policies-etl"] if two_person else [],
        }
    )


class Directory:
    """The on-call user group, without Slack."""

    def members(self, usergroup_id: str) -> frozenset[str]:
        return frozenset({CAROL}) if usergroup_id == ONCALL else frozenset()


@dataclass
class World:
    store: Store
    replay: AwsReplay
    aws: AwsClients
    emulator: SlackEmulator
    slack: WebClient
    now: datetime
    channel_id: str
    parent_ts: str
    refreshed: list[str] = field(default_factory=list)

    def service(self, config: ProjectConfig | None = None, *, aws: AwsClients | None = None) -> ActionService:
        config = config or project()
        return ActionService(
            self.store,
            StepFunctionsGateway((aws or self.aws).stepfunctions),
            config,
            Policy(config, Directory()),
            clock=lambda: self.now,
            refresh_parent=self.refreshed.append,
            chat=SlackChat(self.slack),
        )

    def actor(self, user: str) -> Actor:
        return Actor(user, channel_id=self.channel_id, channel_name="etl-alerts")

    def ask(self, service: ActionService, user: str = ALICE, kind: str = "retry", arn: str = ARN) -> Outcome:
        return service.request(kind, self.actor(user), execution_arn=arn, thread_ts=self.parent_ts)  # type: ignore[arg-type]

    def open_incident(self, arn: str = ARN) -> str:
        with self.store.transaction() as uow:
            incident, created = uow.incidents.record_occurrence(
                fingerprint=f"sfn-failed:{arn}",
                title=TITLE,
                at=self.now,
                pipeline="policies-etl",
                execution_arn=arn,
                error_class="oom",
            )
            uow.incidents.set_slack_thread(incident.id, self.channel_id, self.parent_ts)
        assert created
        return incident.id

    def incident(self, incident_id: str) -> Incident:
        with self.store.transaction() as uow:
            found = uow.incidents.get(incident_id)
        assert found is not None
        return found

    def request_row(self, request_id: str) -> ActionRequest:
        with self.store.transaction() as uow:
            found = uow.action_requests.get(request_id)
        assert found is not None
        return found

    def request_rows(self) -> list[ActionRequest]:
        with self.store.transaction() as uow:
            return list(uow.session.scalars(select(ActionRequest)))

    def audit(self) -> list[ActionRecord]:
        """Every audit row, oldest first."""
        with self.store.transaction() as uow:
            return list(uow.session.scalars(select(ActionRecord).order_by(ActionRecord.id)))

    def audit_summary(self) -> list[tuple[str, str, str]]:
        return [(r.actor, r.action, r.outcome) for r in self.audit()]

    def thread(self) -> list[str]:
        """The texts of the replies in the alert's thread."""
        return [m["text"] for m in self.emulator.thread(CHANNEL, self.parent_ts)[1:]]

    def start(self, name: str, execution_input: dict[str, Any]) -> str:
        """StartExecution through boto3 and the replay (another actor than etl-doctor)."""
        started = self.aws.stepfunctions.start_execution(
            stateMachineArn=MACHINE, name=name, input=json.dumps(execution_input)
        )
        return str(started["executionArn"])

    def describe(self, arn: str) -> dict[str, Any]:
        return dict(self.aws.stepfunctions.describe_execution(executionArn=arn))


@pytest.fixture
def world(
    store: Store,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
    slack_emulator: SlackEmulator,
) -> World:
    load("ecs_oom")
    slack = WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url)
    parent = slack.chat_postMessage(channel=CHANNEL, text=TITLE)
    replay.reset_calls()
    return World(
        store=store,
        replay=replay,
        aws=replay_aws,
        emulator=slack_emulator,
        slack=slack,
        now=datetime.now(UTC).replace(microsecond=0),
        channel_id=str(parent["channel"]),
        parent_ts=str(parent["ts"]),
    )


def concurrently(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..count-1)`` on ``count`` threads released together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread is stuck"
    if errors:
        raise errors[0]
    return results


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recorded_input(world: World) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(world.describe(ARN)["input"])
    return loaded


# ---------------------------------------------------------------- concurrency


def test_twenty_concurrent_requests_for_one_retry_open_one_request(world: World) -> None:
    service = world.service()
    outcomes = concurrently(20, lambda index: world.ask(service, APPROVERS[index]))

    # the one whose row won gets the confirmation; the others are told who already asked (no second preflight
    # once the row exists, so fewer than 20 DescribeExecution calls)
    kinds = [outcome.kind for outcome in outcomes]
    assert kinds.count("confirm") == 1 and kinds.count("info") == 19
    assert all("already asked to retry" in o.text for o in outcomes if o.kind == "info")
    ids = {outcome.request.id for outcome in outcomes if outcome.request is not None}
    (row,) = world.request_rows()
    assert ids == {row.id}
    assert (row.idempotency_key, row.status, row.action, row.target) == (
        f"retry:{ARN}",
        "awaiting_confirmation",
        "retry",
        ARN,
    )
    assert row.requested_by in APPROVERS
    assert row.parameters["name"] == RETRY_NAME
    assert world.replay.started_executions() == []
    assert world.replay.call_counts()["states:StartExecution"] == 0
    audit = world.audit()  # one request, one "requested" row: the repeats change nothing
    assert [(r.actor, r.action, r.target, r.outcome, r.pipeline) for r in audit] == [
        (row.requested_by, "retry", ARN, "requested", "policies-etl")
    ]


def test_twenty_concurrent_confirms_start_exactly_one_execution(world: World) -> None:
    service = world.service()
    asked = world.ask(service)
    assert asked.kind == "confirm" and asked.request is not None
    request_id = asked.request.id
    world.replay.slow_down("StartExecution", 0.5)

    outcomes = concurrently(20, lambda _index: service.confirm(request_id, world.actor(ALICE)))

    assert Counter(outcome.kind for outcome in outcomes) == Counter({"started": 1, "info": 19})
    for outcome in outcomes:
        if outcome.kind == "info":
            assert ALREADY.fullmatch(outcome.text), outcome.text
    (started,) = [outcome for outcome in outcomes if outcome.kind == "started"]
    assert f"started `{RETRY_NAME}`" in started.text
    assert world.replay.call_counts()["states:StartExecution"] == 1
    assert world.replay.in_flight_peak("StartExecution") == 1
    (execution,) = world.replay.started_executions()
    assert (execution["name"], execution["status"]) == (RETRY_NAME, "RUNNING")
    assert json.loads(execution["input"]) == recorded_input(world)
    row = world.request_row(request_id)
    assert (row.status, row.decided_by, row.result) == ("started", ALICE, {"execution_arn": RETRY_ARN})
    assert [text for text in world.thread() if f"started `{RETRY_NAME}`" in text] == [started.text]
    assert world.audit_summary() == [(ALICE, "retry", "requested"), (ALICE, "retry", "started")]


def test_twenty_concurrent_approvals_start_exactly_one_execution(world: World) -> None:
    service = world.service(project(two_person=True))
    asked = world.ask(service)
    assert asked.request is not None
    request_id = asked.request.id
    waiting = service.confirm(request_id, world.actor(ALICE))
    assert waiting.kind == "approval", waiting.text
    assert waiting.text == "Waiting for a second person: `policies-etl` is under the two-person rule."
    assert world.request_row(request_id).status == "awaiting_approval"
    (approval_message,) = [
        m for m in world.emulator.thread(CHANNEL, world.parent_ts)[1:] if "must approve" in m["text"]
    ]
    buttons = {
        e["action_id"]: e["value"] for b in approval_message["blocks"] if b["type"] == "actions" for e in b["elements"]
    }
    assert buttons == {"etl.approve": request_id, "etl.reject": request_id}
    assert world.replay.started_executions() == []
    world.replay.slow_down("StartExecution", 0.5)

    outcomes = concurrently(20, lambda index: service.approve(request_id, world.actor(APPROVERS[index])))

    assert Counter(outcome.kind for outcome in outcomes) == Counter({"started": 1, "info": 19})
    winner = APPROVERS[next(index for index, outcome in enumerate(outcomes) if outcome.kind == "started")]
    started = next(outcome for outcome in outcomes if outcome.kind == "started")
    assert started.text.endswith(f"(approved by <@{winner}>). I'll post here when it ends.")
    for outcome in outcomes:
        if outcome.kind == "info":
            match = ALREADY.fullmatch(outcome.text)
            assert match is not None and match[2] == winner, outcome.text
    assert world.replay.call_counts()["states:StartExecution"] == 1
    assert len(world.replay.started_executions()) == 1
    row = world.request_row(request_id)
    assert (row.status, row.requested_by, row.decided_by) == ("started", ALICE, winner)
    assert [(r.actor, r.outcome) for r in world.audit() if r.action == "retry" and r.outcome == "started"] == [
        (winner, "started")
    ]


def test_concurrent_follows_report_an_ended_run_once(world: World) -> None:
    service = world.service()
    asked = world.ask(service)
    assert asked.request is not None
    assert service.confirm(asked.request.id, world.actor(ALICE)).kind == "started"
    world.replay.finish_execution(RETRY_ARN, "SUCCEEDED")

    reports = concurrently(10, lambda _index: service.follow())

    assert sum(len(report) for report in reports) == 1
    assert len([text for text in world.thread() if "(Retry) SUCCEEDED" in text]) == 1
    assert world.request_row(asked.request.id).status == "succeeded"


# ---------------------------------------------------------------- two-person rule


def test_two_person_rule_refuses_self_approval_and_outsiders_and_a_rejection_ends_it(world: World) -> None:
    service = world.service(project(two_person=True))
    asked = world.ask(service)
    assert asked.request is not None
    request_id = asked.request.id
    assert service.confirm(request_id, world.actor(ALICE)).kind == "approval"

    own = service.approve(request_id, world.actor(ALICE))
    assert (own.kind, own.text) == ("info", "The two-person rule needs a different person to approve.")
    outsider = service.approve(request_id, world.actor(MALLORY))
    assert outsider.kind == "refused"
    assert outsider.text.startswith("<@U0MALLORY> may not `retry` on `policies-etl`")
    assert service.reject(request_id, world.actor(MALLORY)).kind == "refused"
    assert world.request_row(request_id).status == "awaiting_approval"

    rejected = service.reject(request_id, world.actor(BOB))
    assert rejected.kind == "done"
    assert rejected.text == f"<@U0BOB> rejected the retry of `{RUN}`."
    row = world.request_row(request_id)
    assert (row.status, row.decided_by) == ("rejected", BOB)
    assert f":no_entry_sign: <@U0BOB> rejected the retry of `{RUN}`." in world.thread()
    late = service.confirm(request_id, world.actor(ALICE))
    assert (late.kind, late.text) == ("info", "This request is already rejected by <@U0BOB>.")
    assert world.replay.started_executions() == []
    assert world.replay.call_counts()["states:StartExecution"] == 0

    audit = world.audit()
    assert [(r.actor, r.action, r.outcome) for r in audit] == [
        (ALICE, "retry", "requested"),
        (ALICE, "retry", "approval_asked"),
        (MALLORY, "approve", "refused"),
        (BOB, "reject", "rejected"),
    ]
    refused = audit[2]
    assert refused.target == ARN and "may not `retry`" in refused.detail


def test_an_approval_of_a_request_no_longer_waiting_is_not_audited_as_approved(world: World) -> None:
    service = world.service(project(two_person=True))
    asked = world.ask(service)
    assert asked.request is not None
    request_id = asked.request.id
    assert service.confirm(request_id, world.actor(ALICE)).kind == "approval"
    assert service.reject(request_id, world.actor(BOB)).kind == "done"

    late = service.approve(request_id, world.actor(APPROVERS[0]))

    assert (late.kind, late.text) == ("info", "This request is already rejected by <@U0BOB>.")
    assert world.replay.started_executions() == []
    # the approval changed nothing: the audit trail must not say that APPROVERS[0] approved it
    assert (APPROVERS[0], "approve", "approved") not in world.audit_summary()


# ---------------------------------------------------------------- AWS errors


def test_execution_already_exists_fails_the_request_with_a_clear_reason(world: World) -> None:
    other = world.start(RETRY_NAME, {"business_date": "2025-02-17", "pipeline": "policies-etl"})
    assert other == RETRY_ARN
    service = world.service()
    asked = world.ask(service)
    assert asked.request is not None

    failed = service.confirm(asked.request.id, world.actor(ALICE))

    assert failed.kind == "failed"
    assert failed.text == (
        f":x: Retry of `{RUN}` failed: an execution with that name already exists with a different input "
        "(AWS: ExecutionAlreadyExists)"
    )
    row = world.request_row(asked.request.id)
    assert row.status == "failed"
    assert "ExecutionAlreadyExists" in row.result["error"]
    (execution,) = world.replay.started_executions()  # only the one started beforehand
    assert json.loads(execution["input"])["business_date"] == "2025-02-17"
    assert failed.text in world.thread()
    last = world.audit()[-1]
    assert (last.actor, last.action, last.target, last.outcome) == (ALICE, "retry", ARN, "failed")
    assert "ExecutionAlreadyExists" in last.detail


def test_unreachable_aws_fails_the_request_and_it_can_be_asked_again(world: World) -> None:
    good = world.service()
    unreachable = AwsClients(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        credentials=SANDBOX_CREDENTIALS,
        max_attempts=1,
    )
    broken = world.service(aws=unreachable)
    asked = world.ask(good)
    assert asked.request is not None
    request_id = asked.request.id

    failed = broken.confirm(request_id, world.actor(ALICE))

    assert failed.kind == "failed"
    assert failed.text.startswith(f":x: Retry of `{RUN}` failed: could not reach AWS at http://127.0.0.1:")
    assert failed.text.endswith("(connection failed)")
    row = world.request_row(request_id)
    assert row.status == "failed" and row.result["error"].startswith("could not reach AWS")
    assert world.replay.call_counts()["states:StartExecution"] == 0
    assert failed.text in world.thread()
    failure = world.audit()[-1]
    assert (failure.action, failure.outcome) == ("retry", "failed")
    assert failure.detail.startswith("could not reach AWS")

    again = world.ask(good)
    assert again.kind == "confirm" and again.request is not None
    assert again.request.id == request_id
    reopened = world.request_row(request_id)
    assert (reopened.status, reopened.result, reopened.decided_by) == ("awaiting_confirmation", {}, None)
    started = good.confirm(request_id, world.actor(ALICE))
    assert started.kind == "started", started.text
    (execution,) = world.replay.started_executions()
    assert execution["name"] == RETRY_NAME
    assert world.request_row(request_id).status == "started"
    assert world.audit_summary() == [
        (ALICE, "retry", "requested"),
        (ALICE, "retry", "failed"),
        (ALICE, "retry", "requested"),
        (ALICE, "retry", "started"),
    ]


def test_a_permission_withdrawn_before_the_confirmation_refuses_and_closes_the_request(world: World) -> None:
    granted = world.service()
    withdrawn = world.service(project(retry_users=(BOB,)))
    asked = world.ask(granted)
    assert asked.request is not None

    refused = withdrawn.confirm(asked.request.id, world.actor(ALICE))

    assert refused.kind == "refused"
    assert refused.text.startswith("<@U0ALICE> may not `retry` on `policies-etl`")
    assert world.request_row(asked.request.id).status == "refused"
    assert world.replay.started_executions() == []
    last = world.audit()[-1]
    assert (last.actor, last.action, last.outcome) == (ALICE, "retry", "refused")
    assert "may not `retry`" in last.detail
    # a refusal is not final: asked again (with the grant back), it is re-opened and runs
    again = world.ask(granted)
    assert again.kind == "confirm" and again.request is not None and again.request.id == asked.request.id
    assert granted.confirm(asked.request.id, world.actor(ALICE)).kind == "started"


def test_cancel_by_the_requester_only_and_nothing_runs_after(world: World) -> None:
    service = world.service()
    asked = world.ask(service)
    assert asked.request is not None
    request_id = asked.request.id

    other = service.cancel(request_id, world.actor(BOB))
    assert (other.kind, other.text) == ("info", "Only <@U0ALICE> can cancel their request.")
    not_theirs = service.confirm(request_id, world.actor(BOB))
    assert (not_theirs.kind, not_theirs.text) == ("info", "Only <@U0ALICE> can confirm their request.")
    cancelled = service.cancel(request_id, world.actor(ALICE))
    assert (cancelled.kind, cancelled.text) == ("done", "Cancelled; nothing was started.")
    late = service.confirm(request_id, world.actor(ALICE))
    assert (late.kind, late.text) == ("info", "This request is already cancelled.")
    assert world.request_row(request_id).status == "cancelled"
    assert world.replay.started_executions() == []
    assert world.audit_summary() == [(ALICE, "retry", "requested"), (ALICE, "retry", "cancelled")]


# ---------------------------------------------------------------- redrive


def test_a_redrive_of_a_succeeded_execution_is_refused_and_offers_a_retry(world: World) -> None:
    succeeded = world.start("run-ok", {"business_date": "2025-02-19"})
    world.replay.finish_execution(succeeded, "SUCCEEDED", output='{"rows": 42}')
    service = world.service()

    refused = world.ask(service, kind="redrive", arn=succeeded)

    assert refused.kind == "refused"
    assert "SUCCEEDED" in refused.text
    assert refused.text == (
        "Cannot redrive: `run-ok` SUCCEEDED; there is nothing to redrive. A Retry starts it again from the beginning."
    )
    assert refused.offer_retry == succeeded
    assert world.request_rows() == []
    assert world.replay.call_counts()["states:RedriveExecution"] == 0
    (record,) = world.audit()
    assert (record.actor, record.action, record.target, record.outcome) == (ALICE, "redrive", succeeded, "refused")
    assert record.detail == "preflight: `run-ok` SUCCEEDED; there is nothing to redrive"


def test_a_redrive_runs_once_and_its_client_token_is_the_request_id(world: World) -> None:
    service = world.service()
    asked = world.ask(service, kind="redrive")
    assert asked.kind == "confirm" and asked.request is not None
    assert asked.details == (
        f"Redrive `{RUN}` of `policies-etl`: AWS re-runs it from the failed state, keeping what succeeded (redrive 1).",
    )
    request_id = asked.request.id

    done = service.confirm(request_id, world.actor(ALICE))

    assert done.kind == "started" and f"redrove `{RUN}`" in done.text
    described = world.describe(ARN)
    assert (described["status"], described["redriveCount"]) == ("RUNNING", 1)
    (call,) = [c for c in world.replay.calls if c.operation == "RedriveExecution"]
    assert call.params["clientToken"] == f"{request_id}-1"  # the request id and the attempt
    row = world.request_row(request_id)
    assert row.result["execution_arn"] == ARN
    first_date = datetime.fromisoformat(row.result["redrive_date"])

    # the same request again: the service does not call AWS, and AWS itself would not redrive twice
    again = service.confirm(request_id, world.actor(ALICE))
    assert (again.kind, again.text) == ("info", "This request is already started by <@U0ALICE>.")
    repeated = StepFunctionsGateway(world.aws.stepfunctions).redrive_execution(ARN, client_token=f"{request_id}-1")
    assert repeated == first_date
    assert world.describe(ARN)["redriveCount"] == 1
    assert world.replay.call_counts()["states:RedriveExecution"] == 2
    # asked again while the redriven run is RUNNING: the request says so, without another AWS call
    calls = world.replay.call_counts()["states:DescribeExecution"]
    running = world.ask(service, BOB, kind="redrive")
    assert running.kind == "info" and running.text.endswith(f"`{RUN}` is started.")
    assert world.replay.call_counts()["states:DescribeExecution"] == calls
    assert world.request_row(request_id).status == "started"
    assert world.audit_summary() == [
        (ALICE, "redrive", "requested"),
        (ALICE, "redrive", "started"),
    ]


def test_a_second_redrive_after_the_first_failed_again_really_redrives(world: World) -> None:
    service = world.service()
    first = world.ask(service, kind="redrive")
    assert first.request is not None
    assert service.confirm(first.request.id, world.actor(ALICE)).kind == "started"
    world.replay.finish_execution(ARN, "FAILED", error="States.TaskFailed", cause="OutOfMemoryError again")
    (ended,) = service.follow()
    assert world.request_row(first.request.id).status == "failed"
    assert "FAILED" in ended.text

    second = world.ask(service, kind="redrive")
    assert second.kind == "confirm", second.text
    assert second.details[0].endswith("(redrive 2).")
    redriven = service.confirm(first.request.id, world.actor(ALICE))

    assert redriven.kind == "started", redriven.text
    described = world.describe(ARN)
    # AWS must have redriven it a second time: RUNNING again, redriveCount 2
    assert (described["status"], described["redriveCount"]) == ("RUNNING", 2)


# ---------------------------------------------------------------- retry with more memory


def test_retry_with_more_memory_raises_the_configured_path_to_the_maximum(world: World) -> None:
    source = world.start("run-mem", {"business_date": "2025-02-18", "resources": {"memory": 4096, "cpu": 1024}})
    world.replay.finish_execution(
        source, "FAILED", error="States.TaskFailed", cause="OutOfMemoryError: Container killed due to memory usage"
    )
    plain = world.service()
    with pytest.raises(
        ActionError, match=re.escape("`policies-etl` has no retry_resources in etl-doctor.yml; use Retry")
    ):
        world.ask(plain, kind="retry_more", arn=source)
    service = world.service(project(retry_resources={"memory_path": "$.resources.memory", "maximum": 8192}))

    asked = world.ask(service, kind="retry_more", arn=source)

    assert asked.kind == "confirm" and asked.request is not None
    assert asked.details == (
        "Start `run-mem-retry-1-mem` of `policies-etl` with the input of `run-mem`.",
        "`$.resources.memory`: 4096 → 8192 (the configured maximum)",
    )
    assert any("4096 → 8192" in line for line in asked.details)
    assert world.replay.call_counts()["states:StartExecution"] == 1  # only the source, started above
    started = service.confirm(asked.request.id, world.actor(ALICE))
    assert started.kind == "started" and "(Retry with more memory)" in started.text
    execution = world.replay.started_executions()[-1]
    assert execution["name"].endswith("-retry-1-mem")
    assert execution["executionArn"] == f"{PREFIX}:execution:policies-etl:run-mem-retry-1-mem"
    assert json.loads(execution["input"]) == {"business_date": "2025-02-18", "resources": {"memory": 8192, "cpu": 1024}}
    assert world.request_row(asked.request.id).result == {"execution_arn": execution["executionArn"]}


# ---------------------------------------------------------------- following the new run


def _retry_for_incident(world: World, service: ActionService) -> tuple[str, str]:
    incident_id = world.open_incident()
    asked = service.request("retry", world.actor(ALICE), incident_id=incident_id, thread_ts=world.parent_ts)
    assert asked.kind == "confirm" and asked.request is not None
    assert asked.request.incident_id == incident_id
    assert service.confirm(asked.request.id, world.actor(ALICE)).kind == "started"
    return incident_id, asked.request.id


def test_follow_resolves_the_incident_when_the_retry_succeeds(world: World) -> None:
    service = world.service()
    incident_id, request_id = _retry_for_incident(world, service)
    assert service.follow() == []  # still RUNNING
    assert world.request_row(request_id).status == "started"

    world.replay.finish_execution(RETRY_ARN, "SUCCEEDED", output='{"rows": 1200}')
    (ended,) = service.follow()

    assert ended.extra == {"resolved": True}
    assert ended.text == f":white_check_mark: `{RETRY_NAME}` (Retry) SUCCEEDED"
    row = world.request_row(request_id)
    assert (row.status, row.result) == ("succeeded", {"execution_arn": RETRY_ARN, "status": "SUCCEEDED"})
    incident = world.incident(incident_id)
    assert (incident.status, incident.resolved_at) == ("resolved", world.now)
    assert incident.details["resolved_by"] == f"execution {RETRY_NAME} SUCCEEDED"
    assert world.refreshed == [incident_id]
    assert ended.text in world.thread()
    assert service.follow() == []
    again = world.ask(service, BOB)
    assert (again.kind, again.text) == (
        "info",
        f"Retry of `{RUN}` was already done by <@U0ALICE>: `{RETRY_NAME}` is succeeded.",
    )
    audit = world.audit()
    assert [(r.action, r.outcome, r.incident_id) for r in audit] == [
        ("retry", "requested", incident_id),
        ("retry", "started", incident_id),
    ]
    assert audit[-1].parameters == {"execution_arn": RETRY_ARN}


def test_follow_marks_a_failed_retry_and_leaves_the_incident_open(world: World) -> None:
    service = world.service()
    incident_id, request_id = _retry_for_incident(world, service)
    world.replay.finish_execution(RETRY_ARN, "FAILED", error="States.TaskFailed", cause="OutOfMemoryError")

    (ended,) = service.follow()

    assert ended.extra == {"resolved": False}
    assert ended.text == f":x: `{RETRY_NAME}` (Retry) FAILED: States.TaskFailed OutOfMemoryError"
    row = world.request_row(request_id)
    assert (row.status, row.result["status"]) == ("failed", "FAILED")
    incident = world.incident(incident_id)
    assert (incident.status, incident.resolved_at) == ("open", None)
    assert "resolved_by" not in incident.details
    assert world.refreshed == []
    assert ended.text in world.thread()


def test_a_retry_asked_again_after_the_retry_failed_starts_a_new_execution(world: World) -> None:
    service = world.service()
    _incident_id, request_id = _retry_for_incident(world, service)
    world.replay.finish_execution(RETRY_ARN, "FAILED", error="States.TaskFailed", cause="OutOfMemoryError")
    service.follow()
    assert world.request_row(request_id).status == "failed"

    again = world.ask(service)
    assert again.kind == "confirm" and again.request is not None, again.text
    assert again.request.id == request_id
    assert again.details[0] == f"Start `{RUN}-retry-2` of `policies-etl` with the same input as `{RUN}`."
    restarted = service.confirm(request_id, world.actor(ALICE))

    # the failed retry-1 exists (FAILED) and AWS keeps its name for 90 days: a second attempt needs a new one
    assert restarted.kind == "started", restarted.text
    names = [execution["name"] for execution in world.replay.started_executions()]
    assert names == [RETRY_NAME, f"{RUN}-retry-2"]
    assert world.request_row(request_id).result == {"execution_arn": f"{PREFIX}:execution:policies-etl:{RUN}-retry-2"}


# ---------------------------------------------------------------- ack and snooze


def test_acknowledge_and_unacknowledge(world: World) -> None:
    service = world.service()
    incident_id = world.open_incident()

    acked = service.acknowledge(incident_id, world.actor(CAROL))
    assert (acked.kind, acked.text) == ("done", f"Acked by <@U0CAROL> at {world.now:%H:%M} UTC.")
    incident = world.incident(incident_id)
    assert (incident.acked_by, incident.acked_at) == (CAROL, world.now)

    refused = service.acknowledge(incident_id, world.actor(MALLORY), undo=True)
    assert refused.kind == "refused" and refused.text.startswith("<@U0MALLORY> may not `ack` on `policies-etl`")
    assert service.acknowledge(incident_id, world.actor(ALICE)).kind == "refused"  # retry is no ack grant
    assert world.incident(incident_id).acked_by == CAROL

    undone = service.acknowledge(incident_id, world.actor(CAROL), undo=True)
    assert (undone.kind, undone.text) == ("done", "Un-acked.")
    incident = world.incident(incident_id)
    assert (incident.acked_by, incident.acked_at) == (None, None)
    assert world.refreshed == [incident_id, incident_id]

    audit = world.audit()
    assert [(r.actor, r.action, r.outcome) for r in audit] == [
        (CAROL, "ack", "done"),
        (MALLORY, "unack", "refused"),
        (ALICE, "ack", "refused"),
        (CAROL, "unack", "done"),
    ]
    assert {(r.target, r.incident_id, r.pipeline) for r in audit} == {(ARN, incident_id, "policies-etl")}
    assert "may not `ack`" in audit[1].detail and "may not `ack`" in audit[2].detail
    assert audit[0].detail == "" and audit[3].detail == ""


def test_snooze_for_an_hour_until_resolved_and_unsnooze(world: World) -> None:
    service = world.service()
    incident_id = world.open_incident()

    hour = service.snooze(incident_id, world.actor(CAROL), "1h")
    until = world.now + timedelta(hours=1)
    assert (hour.kind, hour.text) == (
        "done",
        f"Snoozed until {until:%H:%M} UTC: repeats are stored and counted, not posted.",
    )
    incident = world.incident(incident_id)
    assert (incident.snoozed_by, incident.snoozed_until) == (CAROL, until)

    refused = service.snooze(incident_id, world.actor(MALLORY), None)
    assert refused.kind == "refused" and "may not `snooze`" in refused.text
    assert world.incident(incident_id).snoozed_until == until
    with pytest.raises(ActionError, match="snooze for 1h, 4h, 24h, resolved, not '2d'"):
        service.snooze(incident_id, world.actor(CAROL), "2d")

    resolved = service.snooze(incident_id, world.actor(CAROL), "resolved")
    assert resolved.text.startswith("Snoozed until resolved")
    assert world.incident(incident_id).snoozed_until == UNTIL_RESOLVED

    woken = service.snooze(incident_id, world.actor(CAROL), None)
    assert (woken.kind, woken.text) == ("done", "Un-snoozed: repeats are posted again.")
    incident = world.incident(incident_id)
    assert (incident.snoozed_by, incident.snoozed_until) == (None, None)

    audit = world.audit()
    assert [(r.actor, r.action, r.outcome, r.parameters) for r in audit] == [
        (CAROL, "snooze", "done", {"for": "1h"}),
        (MALLORY, "unsnooze", "refused", {}),
        (CAROL, "snooze", "done", {"for": "resolved"}),
        (CAROL, "unsnooze", "done", {"for": None}),
    ]
    assert "may not `snooze`" in audit[1].detail
    assert world.refreshed == [incident_id] * 3


# ---------------------------------------------------------------- the audit trail


def test_the_audit_trail_only_ever_grows_and_says_who_did_what_to_which_target(world: World) -> None:
    service = world.service()
    incident_id = world.open_incident()
    snapshots: list[list[tuple[Any, ...]]] = []

    def snapshot() -> None:
        snapshots.append(
            [(r.id, r.at, r.actor, r.action, r.target, r.outcome, r.detail, dict(r.parameters)) for r in world.audit()]
        )

    steps: list[Callable[[], Any]] = [
        lambda: world.ask(service, MALLORY),
        lambda: world.ask(service, ALICE),
        lambda: service.confirm(world.request_rows()[0].id, world.actor(ALICE)),
        lambda: service.acknowledge(incident_id, world.actor(CAROL)),
        lambda: service.snooze(incident_id, world.actor(MALLORY), "4h"),
        lambda: service.authorize("dlq_replay", "policies-etl", world.actor(ALICE), target="policies-dlq"),
        lambda: service.record(world.actor(ALICE), "dlq_replay", "policies-dlq", "done", "policies-etl"),
    ]
    for step in steps:
        step()
        snapshot()

    for before, after in itertools.pairwise(snapshots):
        assert after[: len(before)] == before  # earlier rows are unchanged
        assert len(after) == len(before) + 1  # each step appended exactly one row
    rows = world.audit()
    assert [(r.actor, r.action, r.outcome) for r in rows] == [
        (MALLORY, "retry", "refused"),
        (ALICE, "retry", "requested"),
        (ALICE, "retry", "started"),
        (CAROL, "ack", "done"),
        (MALLORY, "snooze", "refused"),
        (ALICE, "dlq_replay", "refused"),
        (ALICE, "dlq_replay", "done"),
    ]
    assert [r.target for r in rows] == [ARN, ARN, ARN, ARN, ARN, "policies-dlq", "policies-dlq"]
    for row in rows:
        assert row.at == world.now
        assert row.slack_link == world.channel_id
        assert bool(row.detail) == (row.outcome == "refused"), (row.action, row.outcome, row.detail)
    assert "<@U0MALLORY> may not `retry`" in rows[0].detail
    assert "nobody may `dlq_replay` on `policies-etl` yet" in rows[5].detail


# ---------------------------------------------------------------- KPI backfill


def _with_kpi(config: ProjectConfig, rerun_input: str | None = '{"business_date": "{partition}"}') -> ProjectConfig:
    data = config.model_dump(mode="json", exclude_none=True)
    data["connections"] = {"warehouse": {"url": "sqlite://"}}
    kpi: dict[str, Any] = {
        "column": "premium",
        "keys": ["policy_id"],
        "partition": {"column": "policy_date"},
        "layers": [
            {"name": "source", "connection": "warehouse", "table": "policies"},
            {"name": "fact", "connection": "warehouse", "table": "fact_policies"},
        ],
        "pipeline": "policies-etl",
    }
    if rerun_input is not None:
        kpi["rerun_input"] = rerun_input
    data["kpis"] = {"premium_amount": kpi}
    return ProjectConfig.model_validate(data)


def test_a_kpi_backfill_is_permission_checked_confirmed_once_and_audited(world: World) -> None:
    service = world.service(_with_kpi(project()))

    refused = service.request_backfill("premium_amount", "2025-02-18", world.actor(MALLORY))
    assert refused.kind == "refused"
    assert world.replay.call_counts().get("states:StartExecution", 0) == 0

    asked = service.request_backfill("premium_amount", "2025-02-18", world.actor(ALICE), thread_ts=world.parent_ts)
    again = service.request_backfill("premium_amount", "2025-02-18", world.actor(ALICE), thread_ts=world.parent_ts)
    assert asked.kind == "confirm" and asked.request is not None
    assert again.request is not None and again.request.id == asked.request.id  # a double click: one request
    name = f"backfill-premium_amount-2025-02-18-{world.now:%Y%m%dT%H%M}"
    assert asked.details == (
        f"Start `{name}` of `policies-etl` to reload 2025-02-18 for KPI `premium_amount`.",
        'input: `{"business_date": "2025-02-18"}`',
    )
    started = concurrently(5, lambda _i: service.confirm(asked.request.id, world.actor(ALICE)))  # type: ignore[union-attr]

    assert sorted(outcome.kind for outcome in started).count("started") == 1
    (execution,) = world.replay.started_executions()
    assert execution["name"] == name
    assert json.loads(execution["input"]) == {"business_date": "2025-02-18"}
    assert world.audit_summary() == [
        (MALLORY, "backfill", "refused"),
        (ALICE, "backfill", "requested"),
        (ALICE, "backfill", "started"),
    ]


def test_a_kpi_backfill_needs_a_pipeline_input_and_a_real_partition(world: World) -> None:
    without_input = world.service(_with_kpi(project(), rerun_input=None))
    with pytest.raises(ActionError, match="has no pipeline and rerun_input"):
        without_input.request_backfill("premium_amount", "2025-02-18", world.actor(ALICE))
    service = world.service(_with_kpi(project()))
    with pytest.raises(ActionError, match="is not a partition"):
        service.request_backfill("premium_amount", "2025-02-18'; DROP TABLE x;--", world.actor(ALICE))
    assert world.request_rows() == []


@pytest.mark.parametrize(
    ("repaired", "note"),
    [
        (
            False,
            ":x: KPI `premium_amount` 2025-02-06 after the backfill: still out of tolerance "
            "(source 1,325.00, target 1,219.50, diff -105.50, -7.96%)",
        ),
        (
            True,
            ":white_check_mark: KPI `premium_amount` 2025-02-06 after the backfill: within tolerance "
            "(source 1,325.00, target 1,325.00, no difference)",
        ),
    ],
)
def test_a_succeeded_backfill_rechecks_its_kpi_and_says_so_in_the_thread(
    world: World, tmp_path: Path, make_settings: Callable[..., Settings], repaired: bool, note: str
) -> None:
    root = make_world(tmp_path)  # the target lacks P-0005 of 2025-02-06
    config = (root / "etl-doctor.yml").read_text(encoding="utf-8")
    config += f"""
pipelines:
  policies-etl: {{state_machine_arn: "{MACHINE}"}}
permissions:
  - {{actions: [retry], pipelines: [policies-etl], users: [{ALICE}]}}
"""
    config = config.replace(
        "    tolerance: {relative: 0.001}\n",
        "    tolerance: {relative: 0.001}\n    pipeline: policies-etl\n"
        '    rerun_input: \'{"business_date": "{partition}"}\'\n',
    )
    services = Services(make_settings(config), aws=world.aws, store=world.store, clock=lambda: world.now)
    services.attach_slack(SlackChat(world.slack), Directory())
    actions = services.actions
    asked = actions.request_backfill("premium_amount", "2025-02-06", world.actor(ALICE), thread_ts=world.parent_ts)
    assert asked.request is not None and actions.confirm(asked.request.id, world.actor(ALICE)).kind == "started"
    (execution,) = world.replay.started_executions()

    if repaired:  # what the re-run pipeline would have loaded
        with sqlite3.connect(root / "dst.db") as db:
            db.execute("INSERT INTO policies VALUES ('P-0005', '2025-02-06', '105.50')")
    world.replay.finish_execution(execution["executionArn"], "SUCCEEDED", output="{}")
    (ended,) = actions.follow()

    assert ended.kind == "done"
    assert world.thread()[-1] == note
    with world.store.transaction() as uow:
        (run,) = uow.kpi_runs.latest("premium_amount")
        assert (run.trigger, run.requested_by, run.status) == ("backfill", ALICE, "ok" if repaired else "breach")

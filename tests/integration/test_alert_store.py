"""Alert intake and dispatch against the real store (SQLite and PostgreSQL) and the Slack emulator."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient

from bot.alerts.dispatch import NO_CHANNEL, AlertDispatcher
from bot.alerts.intake import AlertIntake
from bot.alerts.model import Alert, Enrichment
from bot.alerts.normalize import normalise
from bot.config import ProjectConfig
from bot.sandbox.slack_emulator import SlackEmulator
from bot.store.db import Store
from handlers.slack_chat import SlackChat
from tests.support.alerts import MACHINE, fixture, sfn_event

T0 = datetime(2025, 2, 18, 3, 12, tzinfo=UTC)
PROJECT = ProjectConfig.model_validate(
    {
        "default_channel": "#etl-alerts",
        "pipelines": {"policies-etl": {"state_machine_arn": MACHINE}},
        "alerts": {"group_window_minutes": 30},
    }
)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def failed(name: str, at: datetime = T0) -> Alert:
    return normalise(sfn_event("FAILED", name, at=at))


def test_repeats_group_into_one_incident_and_different_failures_do_not(store: Store) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    first = intake.accept(failed("run-1"))
    second = intake.accept(failed("run-2", T0 + timedelta(minutes=5)))
    other = intake.accept(normalise(fixture("sfn_failed_lambda.json")).with_changes(occurred_at=T0))
    assert first.new_incident and not second.new_incident
    assert first.incident_id == second.incident_id != other.incident_id
    with store.transaction() as uow:
        incident = uow.incidents.get(first.incident_id or "")
        assert incident is not None
        assert incident.occurrences == 2
        assert incident.last_seen_at == T0 + timedelta(minutes=5)
        assert incident.pipeline == "policies-etl" and incident.error_class == "out_of_memory"
        assert [a.status for a in uow.alerts.pending()] == ["received"] * 3


def test_a_failure_after_a_quiet_window_opens_a_new_thread(store: Store) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    first = intake.accept(failed("run-1"))
    later = intake.accept(failed("run-2", T0 + timedelta(minutes=31)))
    assert later.new_incident and later.incident_id != first.incident_id
    with store.transaction() as uow:
        old = uow.incidents.get(first.incident_id or "")
        assert old is not None and old.status == "expired"


def test_a_redelivery_changes_nothing(store: Store) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    event = sfn_event("FAILED", "run-1", at=T0)
    assert intake.accept(normalise(event), event).outcome == "stored"
    again = intake.accept(normalise(event), event)
    assert again.outcome == "duplicate"
    with store.transaction() as uow:
        assert [i.occurrences for i in uow.incidents.list_since(T0 - timedelta(days=1))] == [1]


def test_success_resolves_only_the_incidents_of_its_state_machine(store: Store) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    ours = intake.accept(failed("run-1"))
    theirs = intake.accept(
        normalise(sfn_event("FAILED", "x", machine="arn:aws:states:us-east-1:123456789012:stateMachine:claims-etl"))
    )
    result = intake.accept(normalise(sfn_event("SUCCEEDED", "run-2", at=T0 + timedelta(minutes=9))))
    assert result.resolved == (ours.incident_id,)
    with store.transaction() as uow:
        resolved = uow.incidents.get(ours.incident_id or "")
        open_one = uow.incidents.get(theirs.incident_id or "")
        assert resolved is not None and resolved.status == "resolved"
        assert resolved.details["resolved_by"] == "execution run-2 SUCCEEDED"
        assert open_one is not None and open_one.resolved_at is None
    # nothing left to resolve: the next success is only recorded
    quiet = intake.accept(normalise(sfn_event("SUCCEEDED", "run-3")))
    assert quiet.resolved == () and not quiet.to_post


def test_insufficient_data_is_recorded_or_noted_in_the_open_alarm(store: Store) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    insufficient, alarm = fixture("alarm_insufficient.json"), fixture("alarm_alarm.json")
    alone = intake.accept(normalise(insufficient))
    assert not alone.to_post
    opened = intake.accept(normalise(alarm))
    insufficient.update(AlarmName=alarm["AlarmName"], AlarmArn=alarm["AlarmArn"])  # the same alarm, later
    noted = intake.accept(normalise(insufficient))
    assert noted.to_post and noted.incident_id == opened.incident_id


def test_concurrent_deliveries_of_one_failure_make_one_incident(store: Store) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def deliver(index: int) -> None:
        try:
            barrier.wait()
            intake.accept(failed(f"run-{index}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.transaction() as uow:
        (incident,) = uow.incidents.list_since(T0 - timedelta(days=1))
        assert incident.occurrences == 12


def test_dispatch_posts_parent_batches_repeats_and_counts(store: Store, slack_emulator: SlackEmulator) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    for index in range(5):
        intake.accept(failed(f"run-{index}", T0 + timedelta(minutes=index)))
    chat = SlackChat(WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))
    report = AlertDispatcher(store, chat, clock=Clock()).drain()
    assert (report.parents, report.replies, report.alerts_done) == (1, 1, 5)
    (parent, reply) = slack_emulator.messages("#etl-alerts")
    assert parent["text"] == "policies-etl: execution run-0 FAILED (×5)"
    assert reply["thread_ts"] == parent["ts"] and "4 more occurrences" in reply["text"]
    with store.transaction() as uow:
        assert uow.alerts.pending() == [] and uow.alerts.counts_by_status() == {"posted": 5}


def test_an_alert_with_nowhere_to_go_is_kept_as_undeliverable(store: Store, slack_emulator: SlackEmulator) -> None:
    intake = AlertIntake(store, ProjectConfig(), Clock())
    intake.accept(failed("run-1"))
    chat = SlackChat(WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))
    report = AlertDispatcher(store, chat, clock=Clock()).drain()
    assert report.undeliverable == 1
    with store.transaction() as uow:
        (row,) = uow.alerts.backlog()
        assert row.status == "undeliverable" and row.last_error == NO_CHANNEL


def test_only_one_dispatcher_drains_at_a_time(store: Store, slack_emulator: SlackEmulator) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    intake.accept(failed("run-1"))
    chat = SlackChat(WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))
    first, second = AlertDispatcher(store, chat, clock=Clock()), AlertDispatcher(store, chat, clock=Clock())
    assert first._take_lease()
    assert not second.drain().complete
    assert slack_emulator.calls("chat.postMessage") == []
    first._release_lease()
    assert second.drain().parents == 1


def test_enrichment_updates_the_parent_and_a_failed_diagnosis_says_so(
    store: Store, slack_emulator: SlackEmulator
) -> None:
    intake = AlertIntake(store, PROJECT, Clock())
    intake.accept(failed("run-1"))
    chat = SlackChat(WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))

    def enricher(arn: str) -> Enrichment:
        assert arn.endswith(":run-1")
        return Enrichment(category="out_of_memory", title="Out of memory (exit 137)", next_step="Raise memory")

    dispatcher = AlertDispatcher(store, chat, clock=Clock(), enricher=enricher)
    (incident_id,) = dispatcher.drain().enrich_queued
    dispatcher.enrich(incident_id)
    (parent,) = slack_emulator.messages("#etl-alerts")
    assert "Out of memory (exit 137)" in str(parent["blocks"]) and "Raise memory" in str(parent["blocks"])

    def broken(arn: str) -> Enrichment:
        raise RuntimeError("AccessDenied on states:GetExecutionHistory")

    intake.accept(normalise(fixture("sfn_failed_lambda.json")))
    failing = AlertDispatcher(store, chat, clock=Clock(), enricher=broken)
    (other,) = failing.drain().enrich_queued
    assert failing.enrich(other) == Enrichment(verdict="diagnosis failed: AccessDenied on states:GetExecutionHistory")


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel"])
def test_a_permanent_slack_refusal_marks_the_alert_undeliverable(
    store: Store, slack_emulator: SlackEmulator, error: str
) -> None:
    project = ProjectConfig.model_validate({"default_channel": "#etl-alerts"})
    AlertIntake(store, project, Clock()).accept(failed("run-1"))
    chat = SlackChat(WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))
    slack_emulator.fail_next("chat.postMessage", error)
    report = AlertDispatcher(store, chat, clock=Clock()).drain()
    assert report.undeliverable == 1
    with store.transaction() as uow:
        (row,) = uow.alerts.backlog()
        assert row.last_error == error

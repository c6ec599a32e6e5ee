"""Store round-trips on SQLite and on a real PostgreSQL server (each test runs on both)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bot.store.db import Store, StoreSchemaError
from bot.store.models import Base

T0 = datetime(2025, 2, 18, 3, 12, tzinfo=UTC)


def test_migrations_build_exactly_the_models_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert store.current_revision() == store.head_revision()


def test_downgrade_then_upgrade_round_trips(store: Store) -> None:
    store.downgrade("base")
    assert store.current_revision() is None
    store.upgrade()
    assert store.current_revision() == store.head_revision()


def test_incident_round_trip_and_grouping(store: Store) -> None:
    with store.transaction() as uow:
        incident, created = uow.incidents.record_occurrence(
            fingerprint="policies-etl|LoadFactPolicies|out_of_memory",
            title="policies-etl failed at LoadFactPolicies — out of memory (exit 137)",
            at=T0,
            pipeline="policies-etl",
            error_class="out_of_memory",
            execution_arn="arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-1",
            details={"exit_code": 137, "state": "LoadFactPolicies"},
        )
        incident_id = incident.id
    assert created
    with store.transaction() as uow:
        again, created_again = uow.incidents.record_occurrence(
            fingerprint="policies-etl|LoadFactPolicies|out_of_memory", title="same", at=T0 + timedelta(minutes=5)
        )
        _earlier, _ = uow.incidents.record_occurrence(
            fingerprint="policies-etl|LoadFactPolicies|out_of_memory", title="same", at=T0 - timedelta(minutes=5)
        )
    assert not created_again
    assert again.id == incident_id
    with store.transaction() as uow:
        loaded = uow.incidents.get(incident_id)
        assert loaded is not None
        assert loaded.occurrences == 3
        assert loaded.first_seen_at == T0
        assert loaded.last_seen_at == T0 + timedelta(minutes=5)  # an older occurrence does not move it back
        assert loaded.last_seen_at.tzinfo is UTC
        assert loaded.details == {"exit_code": 137, "state": "LoadFactPolicies"}
        uow.incidents.set_slack_thread(incident_id, "C0ETLALERTS", "1739848320.000100")
    with store.transaction() as uow:
        loaded = uow.incidents.get(incident_id)
        assert loaded is not None and (loaded.slack_channel, loaded.slack_ts) == ("C0ETLALERTS", "1739848320.000100")


def test_resolved_incident_lets_a_new_one_open(store: Store) -> None:
    with store.transaction() as uow:
        first, _ = uow.incidents.record_occurrence(fingerprint="fp", title="t", at=T0)
    with store.transaction() as uow:
        assert uow.incidents.resolve(first.id, T0 + timedelta(hours=1))
        assert not uow.incidents.resolve(first.id, T0 + timedelta(hours=2))  # already resolved
    with store.transaction() as uow:
        second, created = uow.incidents.record_occurrence(fingerprint="fp", title="t", at=T0 + timedelta(hours=3))
    assert created and second.id != first.id
    with store.transaction() as uow:
        recent = uow.incidents.list_since(T0)
        assert [incident.id for incident in recent] == [second.id, first.id]


def test_concurrent_occurrences_make_one_incident(store: Store) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    created_flags: list[bool] = []

    def worker() -> None:
        try:
            barrier.wait()
            with store.transaction() as uow:
                _, created = uow.incidents.record_occurrence(fingerprint="storm", title="t", at=T0)
            created_flags.append(created)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert created_flags.count(True) == 1
    with store.transaction() as uow:
        incident = uow.incidents.find_open("storm")
        assert incident is not None and incident.occurrences == 8


def test_alerts_are_deduplicated_by_delivery_id(store: Store) -> None:
    with store.transaction() as uow:
        first = uow.alerts.add(dedupe_key="sns:95df01b4-ee98-5cb9-9903-4c221d41eb5e", source="sns", received_at=T0)
        duplicate = uow.alerts.add(dedupe_key="sns:95df01b4-ee98-5cb9-9903-4c221d41eb5e", source="sns", received_at=T0)
        other = uow.alerts.add(dedupe_key="eventbridge:6a7e8feb", source="eventbridge", received_at=T0, subject="x")
    assert first is not None and other is not None
    assert duplicate is None
    with store.transaction() as uow:
        assert [alert.dedupe_key for alert in uow.alerts.pending()] == [first.dedupe_key, other.dedupe_key]
        uow.alerts.mark_posted(first.id, "1739848320.000200")
    with store.transaction() as uow:
        assert [alert.id for alert in uow.alerts.pending()] == [other.id]


def test_audit_log_appends_and_lists_newest_first(store: Store) -> None:
    with store.transaction() as uow:
        for index, outcome in enumerate(["requested", "refused", "succeeded"]):
            uow.audit.append(
                actor="U0ONCALL",
                action="redrive",
                target="arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-1",
                outcome=outcome,
                at=T0 + timedelta(seconds=index),
                pipeline="policies-etl" if index else "claims-etl",
                parameters={"memory": 8192},
            )
    with store.transaction() as uow:
        assert [record.outcome for record in uow.audit.recent()] == ["succeeded", "refused", "requested"]
        assert [record.outcome for record in uow.audit.recent(pipeline="policies-etl", limit=1)] == ["succeeded"]
        assert uow.audit.recent()[0].parameters == {"memory": 8192}
    assert not hasattr(uow.audit, "update") and not hasattr(uow.audit, "delete")


def test_kpi_run_keeps_exact_decimals(store: Store) -> None:
    with store.transaction() as uow:
        run = uow.kpi_runs.start(kpi="premium_amount", started_at=T0, partition_from="2025-02-18", trigger="slack")
        uow.kpi_runs.finish(
            run.id,
            finished_at=T0 + timedelta(seconds=4),
            status="breach",
            source_value=Decimal("1204331.50"),
            target_value=Decimal("1190002.10"),
            diff=Decimal("-14329.40"),
            relative_diff=Decimal("-0.011898324011283"),
            within_tolerance=False,
            result={"partitions": ["2025-02-18"]},
        )
    with store.transaction() as uow:
        (loaded,) = uow.kpi_runs.latest("premium_amount")
        assert loaded.source_value == Decimal("1204331.50")
        assert str(loaded.relative_diff) == "-0.011898324011283"
        assert loaded.within_tolerance is False
        assert loaded.result == {"partitions": ["2025-02-18"]}
    with store.transaction() as uow, pytest.raises(KeyError):
        uow.kpi_runs.finish(99999, finished_at=T0, status="ok")


def test_failed_transaction_is_rolled_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as uow:
        uow.incidents.record_occurrence(fingerprint="rollback", title="t", at=T0)
        raise RuntimeError("boom")
    with store.transaction() as uow:
        assert uow.incidents.find_open("rollback") is None


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"), store.transaction() as uow:
        uow.incidents.record_occurrence(fingerprint="naive", title="t", at=datetime(2025, 2, 18))


def test_schema_check_on_an_empty_database(database_url: str) -> None:
    store = Store(database_url)
    try:
        if store.is_sqlite:
            store.ensure_schema()  # SQLite upgrades itself
            assert store.current_revision() == store.head_revision()
        else:
            with pytest.raises(StoreSchemaError, match=r"run `etl-doctor db upgrade`"):
                store.ensure_schema()
            store.upgrade()
            store.ensure_schema()
    finally:
        store.dispose()


def test_schema_newer_than_the_code_is_reported(store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreSchemaError, match="newer than this etl-doctor knows"):
        store.ensure_schema(auto_upgrade=False)


def test_event_receipts_let_each_event_through_once(store: Store) -> None:
    with store.transaction() as uow:
        assert uow.event_receipts.first_delivery("Ev08MFMKH6", T0)
    with store.transaction() as uow:
        assert not uow.event_receipts.first_delivery("Ev08MFMKH6", T0 + timedelta(minutes=1))  # Slack's retry
        assert uow.event_receipts.first_delivery("Ev08MFMKH7", T0 + timedelta(minutes=1))
    with store.transaction() as uow:  # receipts older than a day are forgotten
        assert uow.event_receipts.first_delivery("Ev08MFMKH6", T0 + timedelta(days=2))

"""KpiService over the real engine and store: runs recorded, scheduled posts, alerts grouped by `kpi:<name>`.

Source and target are two SQLite files with a known injected difference; the store runs on SQLite and
on PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.alerts.service import AlertService
from bot.config import Settings
from bot.kpi.engine import KpiEngine
from bot.kpi.model import KpiError
from bot.kpi.service import KpiService
from bot.sandbox.slack_emulator import SlackEmulator
from bot.services import Services
from bot.store.db import Store
from handlers.slack_chat import SlackChat

START = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
MISSING = ("P-0005", "P-0017", "P-0023")  # all of 2025-02-06
CHANGED = "P-0030"  # 2025-02-01: 130.50 in the source, 1.00 in the target


def make_world(root: Path, *, negative: int = 0) -> dict[str, Path]:
    """policies(policy_id, policy_date, premium): 60 rows over 2025-02-01..06; the target lacks 3, changes 1."""
    paths = {"src": root / "src.db", "dst": root / "dst.db"}
    for side, path in paths.items():
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE policies (policy_id TEXT PRIMARY KEY, policy_date TEXT, premium NUMERIC)")
            rows = []
            for i in range(60):
                policy = f"P-{i:04d}"
                if side == "dst" and policy in MISSING:
                    continue
                premium = "1.00" if side == "dst" and policy == CHANGED else f"{100 + i}.50"
                rows.append((policy, f"2025-02-{1 + i % 6:02d}", premium))
            rows += [(f"N-{i}", "2025-02-01", "-1.00") for i in range(negative if side == "src" else 0)]
            db.executemany("INSERT INTO policies VALUES (?, ?, ?)", rows)
    return paths


def project_yaml(paths: dict[str, Path], *, extra_kpis: str = "") -> str:
    return f"""
default_channel: "#etl-alerts"
alerts:
  group_window_minutes: 1440
connections:
  src: {{url: "sqlite:///{paths["src"]}"}}
  dst: {{url: "sqlite:///{paths["dst"]}"}}
kpis:
  premium_amount:
    description: Written premium per policy date
    aggregate: sum
    column: premium
    keys: [policy_id]
    partition: {{column: policy_date, grain: day}}
    tolerance: {{relative: 0.001}}
    channel: "#data-quality"
    layers:
      - {{name: src.policies, connection: src, table: policies}}
      - {{name: dst.policies, connection: dst, table: policies}}
{extra_kpis}
checks:
  no_negative_premiums:
    description: Premiums are never negative
    connection: src
    sql: SELECT count(*) FROM policies WHERE premium < 0
"""


BROKEN_KPI = """
  policy_count:
    aggregate: count
    keys: [policy_id]
    partition: {column: policy_date}
    layers:
      - {name: src.policies, connection: src, table: policies}
      - {name: gone.policies, connection: dst, table: no_such_table}
"""


class Clock:
    """An hour passes between calls to `tick`."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(hours=1)


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    return make_world(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def build(
    store: Store,
    make_settings: Callable[..., Settings],
    world: dict[str, Path],
    clock: Clock,
    slack_emulator: SlackEmulator,
) -> Callable[..., tuple[KpiService, Services, SlackChat]]:
    def make(*, extra_kpis: str = "", chat: bool = True, alerts: bool = True) -> tuple[KpiService, Services, SlackChat]:
        settings = make_settings(project_yaml(world, extra_kpis=extra_kpis))
        services = Services(settings, store=store, clock=clock)
        slack = SlackChat(WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))
        service = KpiService(
            store,
            KpiEngine(settings.project, clock=clock),
            settings.project,
            chat=slack if chat else None,
            alerts=AlertService(services, None) if alerts else None,
            clock=clock,
        )
        return service, services, slack

    return make


def test_a_breach_is_found_and_recorded(build: Callable[..., Any], store: Store) -> None:
    service, _services, _chat = build()
    steps: list[str] = []
    report = service.run(
        "premium_amount", "2025-02-01..2025-02-06", trigger="slack", requested_by="U0ONCALL", progress=steps.append
    )
    assert report.breached
    assert [row.partition for row in report.differing] == ["2025-02-01", "2025-02-06"]
    assert report.keys is not None
    assert sorted(s.key["policy_id"] for s in report.keys.missing.sample) == list(MISSING)
    assert [s.key["policy_id"] for s in report.keys.changed.sample] == [CHANGED]
    assert steps, "the engine reports progress"
    with store.transaction() as uow:
        (run,) = uow.kpi_runs.latest("premium_amount")
        assert (run.status, run.trigger, run.requested_by) == ("breach", "slack", "U0ONCALL")
        assert (run.partition_from, run.partition_to) == ("2025-02-01", "2025-02-06")
        assert run.source_value == report.source_value and run.target_value == report.target_value
        assert run.within_tolerance is False and run.finished_at is not None
        assert run.result == json.loads(json.dumps(report.to_json()))


def test_a_clean_range_is_ok(build: Callable[..., Any], store: Store) -> None:
    service, _services, _chat = build()
    report = service.run("premium_amount", "2025-02-02..2025-02-05")
    assert report.within_tolerance and report.diff == Decimal(0)
    with store.transaction() as uow:
        assert uow.kpi_runs.latest("premium_amount")[0].status == "ok"


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("nope", None, "KPI `nope` is not defined; known: premium_amount"),
        ("premium_amount", "2025-02", "`2025-02` is not a day partition"),
        ("premium_amount", "2025-02-18'; DROP TABLE policies;--", "is not a day partition"),
    ],
)
def test_errors_are_recorded_too(
    build: Callable[..., Any], store: Store, world: dict[str, Path], name: str, spec: str | None, message: str
) -> None:
    service, _services, _chat = build()
    with pytest.raises(KpiError) as raised:
        service.run(name, spec)
    assert message in str(raised.value)
    with store.transaction() as uow:
        (run,) = uow.kpi_runs.latest(name)
        assert run.status == "error" and message in (run.error or "")
    with sqlite3.connect(world["src"]) as db:
        assert db.execute("SELECT count(*) FROM policies").fetchone() == (60,)  # still there


def test_checks_are_recorded_as_check_runs(build: Callable[..., Any], store: Store) -> None:
    service, _services, _chat = build()
    result = service.check("no_negative_premiums", trigger="slack", requested_by="U1")
    assert result.passed and result.violations == 0
    with store.transaction() as uow:
        (run,) = uow.kpi_runs.latest("check:no_negative_premiums")
        assert (run.status, run.requested_by, run.result["passed"]) == ("ok", "U1", True)
    with pytest.raises(KpiError, match="not defined"):
        service.check("nope")


def test_schedule_posts_breaches_and_groups_their_alerts(
    build: Callable[..., Any], store: Store, clock: Clock, slack_emulator: SlackEmulator
) -> None:
    service, _services, _chat = build(extra_kpis=BROKEN_KPI)
    first = service.run_all(post=True)
    assert [(o.label, o.status) for o in first.outcomes] == [
        ("kpi policy_count", "error"),
        ("kpi premium_amount", "breach"),
        ("check no_negative_premiums", "ok"),
    ]
    assert first.exit_code == 2  # one KPI could not run; the others still did
    assert "no_such_table" in (first.outcomes[0].error or "")
    # no alert channel here (the alerts are stored, not posted): the breach goes to the KPI's channel
    (posted,) = [m for m in slack_emulator.messages("#data-quality") if m.get("thread_ts", m["ts"]) == m["ts"]]
    assert posted["text"].startswith("KPI premium_amount 2025-02-06: Out of tolerance")
    (upload,) = slack_emulator.uploaded_files()
    assert upload["content"].startswith(b"\x89PNG\r\n\x1a\n") and upload["thread_ts"] == posted["ts"]
    clock.tick()
    second = service.run_all(post=True)
    assert second.outcomes[1].status == "breach"
    with store.transaction() as uow:
        incident = uow.incidents.find_open("kpi:premium_amount")
        assert incident is not None and incident.occurrences == 2  # repeats group in one thread
        assert incident.error_class == "data_quality_assertion"
        assert uow.incidents.find_open("kpi:policy_count") is not None  # could not run: raised too
        assert uow.incidents.find_open("check:no_negative_premiums") is None
        assert len(uow.kpi_runs.latest("premium_amount")) == 2


def test_recovery_resolves_the_alert(
    build: Callable[..., Any], store: Store, world: dict[str, Path], clock: Clock, slack_emulator: SlackEmulator
) -> None:
    service, _services, _chat = build()
    service.run_all(post=True)
    with sqlite3.connect(world["dst"]) as db:
        db.executemany(
            "INSERT INTO policies VALUES (?, '2025-02-06', ?)", [(p, f"{100 + int(p[2:])}.50") for p in MISSING]
        )
    clock.tick()
    summary = service.run_all(post=True)
    assert summary.outcomes[0].status == "ok" and summary.outcomes[0].alerted
    assert summary.exit_code == 0
    assert len(slack_emulator.calls("chat.postMessage")) == 1  # `post: breach` (the default): a good run is not
    with store.transaction() as uow:
        assert uow.incidents.find_open("kpi:premium_amount") is None


def test_failed_check_posts_and_alerts(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path, clock: Clock, slack_emulator: SlackEmulator
) -> None:
    (tmp_path / "w").mkdir()
    world = make_world(tmp_path / "w", negative=3)
    settings = make_settings(project_yaml(world))
    services = Services(settings, store=store, clock=clock)
    chat = SlackChat(WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))
    service = KpiService(
        store,
        KpiEngine(settings.project),
        settings.project,
        chat=chat,
        alerts=AlertService(services, None),
        clock=clock,
    )
    summary = service.run_all(post=True)
    check = summary.outcomes[-1]
    assert (check.status, check.posted_to, check.alerted) == ("failed", slack_emulator.channel_id("#etl-alerts"), True)
    assert summary.exit_code == 1
    assert slack_emulator.messages("#etl-alerts")[-1]["text"] == (
        "Check no_negative_premiums failed: 3 violating rows (threshold 0)"
    )
    with store.transaction() as uow:
        assert uow.incidents.find_open("check:no_negative_premiums") is not None


def test_without_post_nothing_is_posted_or_alerted(
    build: Callable[..., Any], store: Store, slack_emulator: SlackEmulator
) -> None:
    service, _services, _chat = build()
    summary = service.run_all(post=False)
    assert summary.exit_code == 1 and not any(o.alerted for o in summary.outcomes)
    assert slack_emulator.calls("chat.postMessage") == []
    with store.transaction() as uow:
        assert uow.incidents.find_open("kpi:premium_amount") is None
        assert uow.kpi_runs.latest("premium_amount")[0].trigger == "schedule"


def test_slack_run_keeps_a_progress_message_and_shares_the_chart(
    build: Callable[..., Any], store: Store, slack_emulator: SlackEmulator
) -> None:
    service, _services, chat = build()
    channel = slack_emulator.channel_id("#etl-alerts")
    run = service.run_in_chat(chat, channel, "premium_amount", "2025-02-01..2025-02-06", requested_by="U0ONCALL")
    assert run.delivered and run.chart_uploaded and run.report is not None and run.report.breached
    (posted,) = slack_emulator.calls("chat.postMessage")
    assert posted.args["text"].startswith("Reconciling premium_amount")
    updates = [call.args["text"] for call in slack_emulator.calls("chat.update")]
    assert updates[0].startswith("Reconciling premium_amount")  # progress, throttled to ~1/s
    assert updates[-1].startswith("KPI premium_amount 2025-02-01..2025-02-06: Out of tolerance")
    (message,) = [m for m in slack_emulator.messages(channel) if m["ts"] == run.ts]
    assert message["text"] == updates[-1]  # the progress message became the answer
    assert slack_emulator.uploaded_files()[0]["thread_ts"] == run.ts
    failed = service.run_in_chat(chat, channel, "premium_amount", "2025-13-01")
    assert failed.delivered and failed.error is not None
    assert (
        slack_emulator.calls("chat.update")[-1]
        .args["text"]
        .startswith("Could not reconcile premium_amount: `2025-13-01`")
    )

"""The `kpi` Lambda function (serverless.yml): an EventBridge schedule runs every KPI and check, posts, alerts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.slack_emulator import SlackEmulator
from handlers import lambda_kpi
from tests.support.kpi_files import make_world

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def scheduled_event() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "aws" / "eventbridge_scheduled_event.json").read_text())
    return loaded


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_emulator: SlackEmulator) -> Iterator[Path]:
    root = make_world(tmp_path, negative=2)
    for name, value in {
        "ETL_DOCTOR_CONFIG": str(root / "etl-doctor.yml"),
        "DATABASE_URL": f"sqlite:///{root / 'store.db'}",
        "SLACK_BOT_TOKEN": slack_emulator.bot_token,
        "SLACK_API_URL": slack_emulator.api_url,
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lambda_kpi, "_state", None)  # a cold start
    yield root
    if lambda_kpi._state is not None:
        lambda_kpi._state[1].close()


def test_the_hourly_schedule_posts_breaches_in_their_alert_threads_and_records_every_run(
    world: Path, scheduled_event: dict[str, Any], slack_emulator: SlackEmulator
) -> None:
    answer = lambda_kpi.handler(scheduled_event, None)

    assert answer["exit_code"] == 1
    assert [(o["kind"], o["name"], o["status"]) for o in answer["outcomes"]] == [
        ("kpi", "premium_amount", "breach"),
        ("check", "no_negative_premiums", "failed"),
    ]
    parents = [m for m in slack_emulator.messages("#etl-alerts") if m.get("thread_ts", m["ts"]) == m["ts"]]
    assert sorted(m["text"] for m in parents) == [
        "KPI premium_amount out of tolerance",
        "check no_negative_premiums failed",
    ]
    kpi_alert = next(m for m in parents if m["text"].startswith("KPI"))
    replies = [m["text"] for m in slack_emulator.thread("#etl-alerts", kpi_alert["ts"])[1:]]
    assert any(text.startswith("KPI premium_amount 2025-02-06: Out of tolerance") for text in replies)
    with sqlite3.connect(world / "store.db") as db:
        runs = db.execute('SELECT kpi, "trigger", status FROM kpi_runs ORDER BY id').fetchall()
    assert runs == [("premium_amount", "schedule", "breach"), ("check:no_negative_premiums", "schedule", "failed")]


def test_without_a_slack_token_the_schedule_only_records(
    world: Path, scheduled_event: dict[str, Any], slack_emulator: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    answer = lambda_kpi.handler(scheduled_event, None)

    assert answer["exit_code"] == 1 and slack_emulator.messages("#etl-alerts") == []
    with sqlite3.connect(world / "store.db") as db:
        assert db.execute("SELECT COUNT(*) FROM kpi_runs").fetchone() == (2,)

"""`/etl kpi` and `/etl check` end to end: signed slash commands → the bot (HTTP) → SQLite source and target →
the Slack emulator (progress message, chat.update, the result, the chart through files_upload_v2)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.commands import ACTION_BACKFILL
from bot.config import Settings
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, block_actions, interactive_body, post, signed_request
from bot.services import Services
from tests.conftest import SIGNING_SECRET
from tests.support.bot import BotUnderTest, running_bot
from tests.support.kpi_files import project_yaml, write_policies

CHANNEL = "C0ETLALERTS"  # where the emulated slash commands are typed
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INJECTION = "2025-02-18'; DROP TABLE policies;--"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    return write_policies(tmp_path)


@pytest.fixture
def bot(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator, world: dict[str, Path]
) -> Iterator[BotUnderTest]:
    head = f"""
pipelines:
  policies-etl:
    state_machine_arn: {MACHINE}
permissions:
  - actions: [retry]
    pipelines: [policies-etl]
    users: [U0ONCALL]
"""
    kpi_extra = """    description: Written premium per policy date
    pipeline: policies-etl
    rerun_input: '{"date": "{partition}"}'
"""
    project = project_yaml(world, kpi_extra=kpi_extra, head=head)
    settings = make_settings(project, SLACK_API_URL=slack_emulator.api_url, ETL_DOCTOR_HTTP_HOST="127.0.0.1", PORT=0)
    with running_bot(settings, Services(settings), slack_emulator) as running:
        yield running


def _finished(emulator: SlackEmulator, timeout: float = 30.0) -> dict[str, Any]:
    """The one file shared once the reconciliation is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [f for f in emulator.uploaded_files() if f["completed"]]
        if files:
            return files[0]
        time.sleep(0.05)
    raise AssertionError(f"no chart was shared; calls: {[c.method for c in emulator.calls()]}")


def test_kpi_posts_progress_then_the_result_and_the_chart(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    result = bot.requests.slash("kpi premium_amount 2025-02-01..2025-02-06", responses=0)
    assert result.status == 200 and result.ack_ms < 3000
    chart = _finished(slack_emulator)
    (progress,) = slack_emulator.calls("chat.postMessage")
    assert progress.args["channel"] == CHANNEL
    assert progress.args["text"] == "Reconciling premium_amount: starting…"
    updates = [call.args["text"] for call in slack_emulator.calls("chat.update")]
    assert updates[0].startswith("Reconciling premium_amount: ")  # an engine step, shown as it happens
    assert updates[-1].startswith("KPI premium_amount 2025-02-01..2025-02-06: Out of tolerance: target is 105.50 below")
    message, shared = slack_emulator.messages(CHANNEL)  # the result, and the chart as a reply in its thread
    assert shared["thread_ts"] == message["ts"] and shared["files"][0]["id"] == chart["id"]
    shown = json.dumps(message["blocks"], ensure_ascii=False)
    assert "policy_id=P-0005" in shown and "missing in target" in shown
    assert "src.policies → dst.policies: 1 row lost" in shown
    assert chart["content"].startswith(PNG_MAGIC) and chart["filename"].endswith(".png")
    assert (chart["channel"], chart["thread_ts"]) == (CHANNEL, message["ts"])  # in the result's thread
    with bot.services.store.transaction() as uow:
        (run,) = uow.kpi_runs.latest("premium_amount")
        assert (run.status, run.trigger, run.requested_by) == ("breach", "slack", "U0ONCALL")


def test_unknown_kpi_is_answered_in_the_ack(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    result = bot.requests.slash("kpi nope", responses=0)
    assert result.ack is not None and result.ack["response_type"] == "ephemeral"
    assert result.ack["text"] == "KPI `nope` is not defined; known: premium_amount"
    time.sleep(0.3)
    assert slack_emulator.calls("chat.postMessage") == []


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (f"kpi premium_amount {INJECTION}", "unbalanced quotes in the command"),
        ('kpi premium_amount "2025-02-18; DROP TABLE policies;--"', "is not a partition: give a partition like"),
        ("kpi premium_amount 2025-02", "`2025-02` is not a day partition"),
        ("kpi 'pol icies'", "is not a KPI name"),
    ],
)
def test_bad_partitions_and_names_are_usage_answers(
    bot: BotUnderTest, slack_emulator: SlackEmulator, world: dict[str, Path], text: str, answer: str
) -> None:
    result = bot.requests.slash(text, responses=0)
    assert result.ack is not None and answer in result.ack["text"]
    assert "Traceback" not in json.dumps(result.ack)
    with sqlite3.connect(world["src"]) as db:
        assert db.execute("SELECT count(*) FROM policies").fetchone() == (60,)  # the table is intact


def test_not_in_channel_answers_through_the_response_url(bot: BotUnderTest, slack_emulator: SlackEmulator) -> None:
    slack_emulator.fail_next("chat.postMessage", "not_in_channel")
    (answer,) = bot.requests.slash("kpi premium_amount 2025-02-01..2025-02-06", wait=30).responses
    assert answer["response_type"] == "in_channel"
    assert answer["text"].startswith("KPI premium_amount 2025-02-01..2025-02-06: Out of tolerance")


def test_kpi_list_and_check(bot: BotUnderTest) -> None:
    (listing,) = bot.requests.slash("kpi list").responses
    assert listing["text"] == "1 KPIs: premium_amount"
    result = bot.requests.slash("check no_negative_premiums")
    assert result.ack is not None and result.ack["text"].startswith(":mag: Running check")
    (check,) = result.responses
    assert check["response_type"] == "in_channel"
    assert check["text"] == "Check no_negative_premiums passed: 0 violating rows (threshold 0)"
    unknown = bot.requests.slash("check nope", responses=0)
    assert unknown.ack is not None and unknown.ack["text"] == "check `nope` is not defined; known: no_negative_premiums"
    (checks,) = bot.requests.slash("check list").responses
    assert checks["text"] == "1 checks: no_negative_premiums"


def test_backfill_button_asks_to_confirm_a_rerun_of_the_partition(
    bot: BotUnderTest, slack_emulator: SlackEmulator
) -> None:
    bot.requests.slash("kpi premium_amount 2025-02-01..2025-02-06", responses=0)
    _finished(slack_emulator)
    message = slack_emulator.messages(CHANNEL)[0]
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["text"]["text"], b["value"]) for b in buttons] == [("Backfill 2025-02-06", "premium_amount|2025-02-06")]
    for user, expected in (("U0MALLORY", ":no_entry:"), ("U0ONCALL", ":question: *Backfill?*")):
        key = f"backfill-{user}"
        payload = block_actions(
            ACTION_BACKFILL,
            buttons[0]["value"],
            user_id=user,
            message_ts=message["ts"],
            response_url=slack_emulator.response_url(key),
        )
        body, headers = signed_request(interactive_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
        assert post(bot.requests.events_url, body, headers)[0] == 200
        deadline = time.monotonic() + 15
        while not (answers := [c for c in slack_emulator.calls("response_url") if c.key == key]):
            assert time.monotonic() < deadline, "no answer to the Backfill button"
            time.sleep(0.05)
        (answer,) = answers
        assert answer.args["response_type"] == "ephemeral"
        assert answer.args["blocks"][0]["text"]["text"].startswith(expected)

"""`etl-doctor kpi` and `etl-doctor check` as a user runs them (subprocesses), against SQLite source and target."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.sandbox.slack_emulator import SlackEmulator
from tests.support.kpi_files import make_world

EXE = shutil.which("etl-doctor", path=str(Path(sys.executable).parent)) or "etl-doctor"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DOCUMENTED_KEYS = [
    "kpi", "description", "aggregate", "partition_range", "source", "target", "diff", "relative_diff",
    "within_tolerance", "tolerance", "partitions_compared", "partitions", "series", "keys", "layers",
    "first_divergent_layer", "divergent_layers", "hints", "backfill", "queries_run", "bytes_fetched",
    "rows_fetched", "elapsed_ms", "warnings",
]  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Path:
    return make_world(tmp_path)


def run(world: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "ETL_DOCTOR_CONFIG": str(world / "etl-doctor.yml"),
        "DATABASE_URL": f"sqlite:///{world / 'store.db'}",
        "AWS_REGION": "us-east-1",
        **env,
    }
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, env=environ, cwd=world, timeout=120, check=False
    )


def _rows(world: Path) -> int:
    with sqlite3.connect(world / "src.db") as db:
        return int(db.execute("SELECT count(*) FROM policies").fetchone()[0])


def test_breach_exits_1_with_the_answer_on_stdout_and_progress_on_stderr(world: Path) -> None:
    result = run(world, "kpi", "premium_amount", "2025-02-01..2025-02-06", "--chart", "chart.png")
    assert result.returncode == 1, result.stderr
    assert "KPI premium_amount · 2025-02-01..2025-02-06: Out of tolerance: target is 105.50 below source" in (
        result.stdout
    )
    assert "missing   policy_id=P-0005" in result.stdout
    assert "first divergence: src.policies → dst.policies: 1 row lost" in result.stdout
    assert "partitions: 1 of 6 differ" in result.stderr and "1 of 6 differ" not in result.stdout
    assert (world / "chart.png").read_bytes().startswith(PNG_MAGIC)
    assert "Traceback" not in result.stderr


def test_json_is_the_documented_object_and_nothing_else(world: Path) -> None:
    result = run(world, "kpi", "premium_amount", "--json")  # the latest complete partition: 2025-02-06
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)  # progress never reaches stdout
    assert list(document) == DOCUMENTED_KEYS
    assert document["partition_range"] == {"from": "2025-02-06", "to": "2025-02-06", "grain": "day"}
    assert (document["source"]["value"], document["target"]["value"]) == ("1325.000000", "1219.500000")
    assert document["within_tolerance"] is False
    assert document["keys"]["missing"] == {"count": 1, "sample": [{"key": {"policy_id": "P-0005"}}]}
    assert document["first_divergent_layer"]["text"] == "src.policies → dst.policies: 1 row lost"
    assert result.stderr.strip(), "progress goes to stderr"


def test_within_tolerance_exits_0_and_every_run_is_recorded(world: Path) -> None:
    assert run(world, "kpi", "premium_amount", "2025-02-01..2025-02-05").returncode == 0
    assert run(world, "kpi", "premium_amount", "latest", "--json").returncode == 1
    with sqlite3.connect(world / "store.db") as db:
        rows = db.execute("SELECT status, trigger FROM kpi_runs ORDER BY id").fetchall()
    assert rows == [("ok", "cli"), ("breach", "cli")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("kpi", "nope"), "error: KPI `nope` is not defined; known: premium_amount"),
        (("kpi", "premium_amount", "2025-02-18'; DROP TABLE policies;--"), "is not a partition"),
        (("kpi", "premium_amount", "2025-02"), "`2025-02` is not a day partition"),
        (("kpi",), "name a KPI"),
        (("kpi", "premium_amount", "--post"), "--post goes with --all"),
        (("kpi", "--all", "--post"), "SLACK_BOT_TOKEN is required"),
        (("check", "nope"), "error: check `nope` is not defined; known: no_negative_premiums"),
    ],
)
def test_usage_and_config_errors_exit_2(world: Path, args: tuple[str, ...], message: str) -> None:
    result = run(world, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert _rows(world) == 60


def test_lists_and_checks(tmp_path: Path) -> None:
    world = make_world(tmp_path, negative=2)
    listing = run(world, "kpi", "list")
    assert listing.returncode == 0 and "premium_amount  sum(premium)  day" in listing.stdout
    assert json.loads(run(world, "check", "list", "--json").stdout) == [
        {"check": "no_negative_premiums", "description": "", "connection": "src", "threshold": 0}
    ]
    failed = run(world, "check", "no_negative_premiums", "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["violations"] == 2


def test_all_without_post_prints_a_summary(world: Path) -> None:
    result = run(world, "kpi", "--all")
    assert result.returncode == 1, result.stderr
    assert "1 KPI, 1 check: 1 out of tolerance" in result.stdout
    summary = json.loads(run(world, "kpi", "--all", "--json").stdout)
    assert [(o["name"], o["status"]) for o in summary["outcomes"]] == [
        ("premium_amount", "breach"),
        ("no_negative_premiums", "ok"),
    ]


def _top_level(emulator: SlackEmulator) -> list[dict[str, object]]:
    return [m for m in emulator.messages("#etl-alerts") if m.get("thread_ts", m["ts"]) == m["ts"]]


def test_all_with_post_posts_the_breach_its_chart_and_an_alert(world: Path, slack_emulator: SlackEmulator) -> None:
    result = run(
        world, "kpi", "--all", "--post", SLACK_BOT_TOKEN="xoxb-sandbox-token", SLACK_API_URL=slack_emulator.api_url
    )
    assert result.returncode == 1, result.stderr
    (alert,) = _top_level(slack_emulator)  # one post in the channel: the alert
    assert "KPI premium_amount out of tolerance" in alert["text"]  # the alert, grouped by kpi:<name>
    report = slack_emulator.thread("#etl-alerts", alert["ts"])[1]  # the report, in the alert's thread
    assert report["text"].startswith("KPI premium_amount 2025-02-06: Out of tolerance")
    (chart,) = slack_emulator.uploaded_files()
    assert chart["completed"] and chart["content"].startswith(PNG_MAGIC) and chart["thread_ts"] == alert["ts"]

    again = run(
        world, "kpi", "--all", "--post", SLACK_BOT_TOKEN="xoxb-sandbox-token", SLACK_API_URL=slack_emulator.api_url
    )  # the next hour's scheduled run, still breached
    assert again.returncode == 1, again.stderr
    assert [m["ts"] for m in _top_level(slack_emulator)] == [alert["ts"]]
    reports = [m for m in slack_emulator.thread("#etl-alerts", alert["ts"]) if "Out of tolerance" in m["text"]]
    assert len(reports) == 2
    with sqlite3.connect(world / "store.db") as db:
        assert db.execute("SELECT fingerprint, occurrences FROM incidents").fetchall() == [("kpi:premium_amount", 2)]

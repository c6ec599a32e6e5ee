"""KPI answers as Slack messages, terminal tables and a chart: goldens from hand-built reports, and the limits."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bot.config import ProjectConfig
from bot.kpi.chart import chart_filename, render_chart
from bot.kpi.model import (
    Backfill,
    CheckResult,
    Divergence,
    Hint,
    KeyDiff,
    KeySample,
    KeySet,
    KpiReport,
    LayerValue,
    PartitionRange,
    PartitionRow,
)
from bot.kpi.service import Outcome, RunAllSummary, ThrottledProgress
from bot.render.kpi import (
    check_result_renderable,
    fmt_bytes,
    fmt_number,
    fmt_percent,
    fmt_tolerance,
    kpi_list_renderable,
    kpi_report_renderable,
    render_check_list,
    render_check_result,
    render_kpi_failed,
    render_kpi_list,
    render_kpi_progress,
    render_kpi_report,
    run_all_renderable,
    to_text,
)
from bot.render.limits import MESSAGE_BLOCKS_MAX, SECTION_TEXT_MAX
from bot.render.terminal import render_message
from tests.support.golden import assert_golden

D = Decimal
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(day: int, source: str | None, target: str | None, status: str = "match", rows: tuple[int, int] = (0, 0)):
    src_rows, tgt_rows = rows if rows != (0, 0) else (1000, 1000 if status == "match" else 990)
    return PartitionRow(
        partition=f"2025-02-{day:02d}",
        source=None if source is None else D(source),
        target=None if target is None else D(target),
        source_rows=src_rows,
        target_rows=tgt_rows,
        status=status,  # type: ignore[arg-type]
    )


def breach_report() -> KpiReport:
    """The design's example: premium_amount on 2025-02-18, 143 policies lost between s3_raw and ods."""
    series = [_row(day, "40000.00", "40000.00") for day in range(1, 18)]
    series.append(_row(18, "1204331.500000", "1190002.100000", "differs", (10_000, 9_857)))
    series.append(_row(19, "41000.00", None, "missing_in_target", (1000, 0)))
    partitions = [row for row in series if row.partition >= "2025-02-17"]
    keys = KeyDiff(
        missing=KeySet(
            143,
            (
                KeySample({"policy_id": "P-000101"}, source={"premium": "120.50"}),
                KeySample({"policy_id": "P-000102"}, source={"premium": "99.00"}),
            ),
        ),
        extra=KeySet(1, (KeySample({"policy_id": "P-999999"}, target={"premium": "5.00"}),)),
        changed=KeySet(
            2,
            (
                KeySample(
                    {"policy_id": "P-000007"},
                    source={"premium": "120.50", "status": "active"},
                    target={"premium": "12.05", "status": "active"},
                ),
                KeySample({"policy_id": "P-000008"}, source={"premium": None}, target={"premium": "0.00"}),
            ),
        ),
        duplicates=KeySet(1, (KeySample({"policy_id": "P-000042"}, source_count=1, target_count=2),)),
    )
    return KpiReport(
        kpi="premium_amount",
        description="Written premium per policy date",
        aggregate="sum(premium)",
        range=PartitionRange("2025-02-17", "2025-02-19", "day"),
        source_layer="oracle.policies",
        target_layer="fact_policies",
        source_value=D("1285331.500000"),
        target_value=D("1230002.100000"),
        diff=D("-55329.400000"),
        relative_diff=D("-0.043047"),
        within_tolerance=False,
        tolerance={"absolute": None, "relative": "0.001"},
        partitions=partitions,
        partitions_compared=3,
        series=series,
        keys=keys,
        layers=[
            LayerValue("oracle.policies", "oracle", D("1245331.50"), 11_000),
            LayerValue("s3_raw.policies", "athena", D("1245331.50"), 11_000),
            LayerValue("ods_policies", "redshift", D("1230002.10"), 10_857),
            LayerValue("fact_policies", "redshift", D("1230002.10"), 10_857),
        ],
        divergences=[
            Divergence("s3_raw.policies", "ods_policies", D("-15329.40"), 143),
            Divergence("ods_policies", "fact_policies", D("1000.00"), -1),
        ],
        hints=[
            Hint(
                "glue_partition",
                "Partition dt=2025-02-19 is not in the Glue Data Catalog (late-arriving data?)",
                "ALTER TABLE spectrum.policies ADD IF NOT EXISTS PARTITION (dt='2025-02-19')\n"
                "LOCATION 's3://raw/policies/dt=2025-02-19/';",
            ),
            Hint("duplicates", "1 key appears more than once in fact_policies: a join fans out rows"),
        ],
        backfill=[
            Backfill(
                "sql",
                "Reload the missing policies of 2025-02-18 into ods_policies",
                sql="INSERT INTO ods_policies SELECT * FROM s3_raw.policies WHERE policy_date = '2025-02-18'\n"
                "AND policy_id NOT IN (SELECT policy_id FROM ods_policies WHERE policy_date = '2025-02-18');",
            ),
            Backfill(
                "rerun",
                "Re-run policies-etl for 2025-02-19",
                pipeline="policies-etl",
                input='{"date": "2025-02-19"}',
                partition="2025-02-19",
            ),
        ],
        queries_run=14,
        bytes_fetched=48_213,
        rows_fetched=310,
        elapsed_ms=1_840,
        warnings=["ods_policies: partition column is a timestamp; compared by day"],
    )


def ok_report() -> KpiReport:
    series = [_row(day, "100", "100") for day in range(1, 8)]
    return KpiReport(
        kpi="policy_count",
        description="",
        aggregate="count",
        range=PartitionRange("2025-02-07", "2025-02-07", "day"),
        source_layer="src",
        target_layer="dw",
        source_value=D("100"),
        target_value=D("100"),
        diff=D("0"),
        relative_diff=D("0"),
        within_tolerance=True,
        tolerance={"absolute": "2", "relative": None},
        partitions=[series[-1]],
        partitions_compared=1,
        series=series,
        keys=None,
        layers=[LayerValue("src", "a", D("100"), 100), LayerValue("dw", "b", D("100"), 100)],
        queries_run=3,
        bytes_fetched=512,
        rows_fetched=3,
        elapsed_ms=120,
    )


PROJECT = ProjectConfig.model_validate(
    {
        "default_channel": "#etl-alerts",
        "connections": {"oracle": {"url": "sqlite:///a.db"}, "redshift": {"url": "sqlite:///b.db"}},
        "kpis": {
            "premium_amount": {
                "description": "Written premium per policy date",
                "aggregate": "sum",
                "column": "premium",
                "keys": ["policy_id"],
                "partition": {"column": "policy_date"},
                "tolerance": {"relative": "0.001"},
                "channel": "#data-quality",
                "layers": [
                    {"name": "oracle.policies", "connection": "oracle", "table": "policies"},
                    {"name": "fact_policies", "connection": "redshift", "table": "fact_policies"},
                ],
            },
            "policy_count": {
                "aggregate": "count",
                "keys": ["policy_id"],
                "partition": {"column": "policy_date", "grain": "month"},
                "post": "always",
                "layers": [
                    {"name": "src", "connection": "oracle", "table": "policies"},
                    {"name": "dw", "connection": "redshift", "table": "policies"},
                ],
            },
        },
        "checks": {
            "no_negative_premiums": {
                "description": "Premiums are never negative",
                "connection": "oracle",
                "sql": "SELECT count(*) FROM policies WHERE premium < 0",
            }
        },
    }
)


# ------------------------------------------------------------------------------------------------ goldens


def test_breach_report_golden() -> None:
    message = render_kpi_report(breach_report())
    assert_golden("kpi_breach.json", message)
    assert_golden("kpi_breach.txt", render_message(message) + "\n")


def test_breach_report_terminal_golden() -> None:
    assert_golden("kpi_breach_terminal.txt", to_text(kpi_report_renderable(breach_report())))


def test_ok_report_golden() -> None:
    message = render_kpi_report(ok_report())
    assert_golden("kpi_ok.json", message)
    assert_golden("kpi_ok_terminal.txt", to_text(kpi_report_renderable(ok_report())))


def test_list_golden() -> None:
    assert_golden("kpi_list.json", render_kpi_list(PROJECT))
    assert_golden("kpi_list_terminal.txt", to_text(kpi_list_renderable(PROJECT)))
    assert_golden("check_list.json", render_check_list(PROJECT))


def test_check_result_golden() -> None:
    failed = CheckResult("no_negative_premiums", "Premiums are never negative", "oracle", 12, 0, 35)
    assert_golden("check_failed.json", render_check_result(failed))
    assert_golden("check_failed_terminal.txt", to_text(check_result_renderable(failed)))


def test_run_all_summary_terminal_golden() -> None:
    summary = RunAllSummary(
        [
            Outcome("kpi", "policy_count", "ok", report=ok_report()),
            Outcome("kpi", "premium_amount", "breach", report=breach_report(), posted_to="C0DATAQ", alerted=True),
            Outcome("kpi", "claims_amount", "error", error="KPI database `oracle` failed: connection refused"),
            Outcome(
                "check",
                "no_negative_premiums",
                "failed",
                check=CheckResult("no_negative_premiums", "", "oracle", 12, 0),
                post_error="no channel: set checks.no_negative_premiums.channel or default_channel in etl-doctor.yml",
            ),
        ]
    )
    assert summary.exit_code == 2
    assert summary.headline == "3 KPIs, 1 check: 1 out of tolerance, 1 failed, 1 could not run"
    assert_golden("kpi_run_all_terminal.txt", to_text(run_all_renderable(summary)))
    document = json.loads(json.dumps(summary.to_json()))
    assert (document["ok"], document["breaches"], document["failed"], document["errors"]) == (1, 1, 1, 1)


# ------------------------------------------------------------------------------------------------ content


def test_report_says_what_on_call_needs_first() -> None:
    message = render_kpi_report(breach_report())
    text = json.dumps(message, ensure_ascii=False)
    assert message["text"] == (
        "KPI premium_amount 2025-02-17..2025-02-19: Out of tolerance: target is 55,329.40 below source "
        "(-4.3%, tolerance ±0.1%); first divergence s3_raw.policies → ods_policies: 143 rows lost"
    )
    assert "*Source* `oracle.policies`\\n1,285,331.50" in text
    assert "policy_id=P-000007: premium 120.50 → 12.05" in text  # changed keys show source → target
    assert "policy_id=P-000008: premium NULL → 0" in text
    assert "…and 141 more missing" in text
    assert "missing in target" in text  # a partition one side lacks is never "no difference"
    assert "```ALTER TABLE spectrum.policies" in text  # SQL in code blocks
    assert "14 queries · 47.1 KB fetched · 310 rows · 1.84 s" in text


def test_ok_report_is_short() -> None:
    message = render_kpi_report(ok_report())
    assert message["text"] == "KPI policy_count 2025-02-07: Within tolerance (0%, tolerance ±2)"
    assert "Differing partitions" not in json.dumps(message)


def test_huge_report_stays_within_block_kit_limits() -> None:
    report = breach_report()
    many = [_row(1 + i % 28, "1", "2", "differs") for i in range(5000)]
    sample = tuple(KeySample({"policy_id": f"P-{i}" * 30}, source={"premium": "9" * 500}) for i in range(200))
    report.partitions, report.partitions_compared = many, 5000
    report.keys = KeyDiff(missing=KeySet(10**6, sample), changed=KeySet(10**6, sample), complete=False, note="cap")
    report.hints = [Hint("x", "h" * 5000, "SELECT " + "x, " * 3000) for _ in range(60)]
    report.backfill = [Backfill("sql", "b" * 4000, sql="y" * 9000) for _ in range(60)]
    report.layers = [LayerValue(f"layer{i}", "c", D(i), i) for i in range(300)]
    report.warnings = ["w" * 4000] * 20
    message = render_kpi_report(report)
    assert len(message["blocks"]) <= MESSAGE_BLOCKS_MAX
    for block in message["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_TEXT_MAX
            assert block["text"]["text"].count("```") % 2 == 0  # a cut never leaves a code block open
    text = json.dumps(message, ensure_ascii=False)
    assert "…and 4,990 more" in text
    assert "counts are lower bounds" in text


def test_user_text_is_escaped() -> None:
    report = ok_report()
    report.description = "<!channel> & <https://evil|click>"
    text = json.dumps(render_kpi_report(report))
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp;" in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1204331.500000", "1,204,331.50"),
        ("143.000", "143"),
        ("-14329.4", "-14,329.40"),
        ("0.001234", "0.001234"),
        ("-0.000", "0"),
        (None, "—"),
    ],
)
def test_numbers(value: str | None, shown: str) -> None:
    assert fmt_number(None if value is None else D(value)) == shown


def test_percent_tolerance_and_bytes() -> None:
    assert fmt_percent(D("-0.0119")) == "-1.19%"
    assert fmt_percent(D("0.001")) == "+0.1%"
    assert fmt_percent(D("0.0000012")) == "+0.00012%"
    assert fmt_percent(D("0")) == "0%"
    assert fmt_tolerance({"relative": "0.001", "absolute": "100"}) == "±0.1% or ±100"
    assert fmt_tolerance({"relative": None, "absolute": None}) == "exact"
    assert fmt_bytes(512) == "512 B" and fmt_bytes(1536) == "1.5 KB"


def test_progress_and_failure_messages() -> None:
    progress = render_kpi_progress("premium_amount", "2025-02-18", "partitions: 2 of 28 differ")
    assert render_message(progress) == ("⌛ Reconciling `premium_amount` 2025-02-18…\n  partitions: 2 of 28 differ")
    failed = render_kpi_failed("premium_amount", None, "KPI database `oracle` failed: timeout")
    assert failed["text"] == "Could not reconcile premium_amount: KPI database `oracle` failed: timeout"


def test_empty_lists_explain_how_to_add_one() -> None:
    assert render_kpi_list(ProjectConfig())["text"] == "No KPIs are defined yet."
    assert render_check_list(ProjectConfig())["text"] == "No checks are defined yet."


# ------------------------------------------------------------------------------------------------ chart


def test_chart_is_a_png_of_the_series() -> None:
    png = render_chart(breach_report())
    assert png.startswith(PNG_MAGIC)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (990, 572)  # 9 x 5.2 inches at 110 dpi
    assert chart_filename(breach_report()) == "premium_amount_2025-02-17_2025-02-19.png"


def test_chart_without_partitions_still_draws() -> None:
    report = ok_report()
    report.series, report.partitions = [], []
    assert render_chart(report).startswith(PNG_MAGIC)


# ------------------------------------------------------------------------------------------------ progress


def test_progress_is_throttled_and_never_raises() -> None:
    now = [0.0]
    sent: list[str] = []
    progress = ThrottledProgress(sent.append, interval=1.0, clock=lambda: now[0])
    for step, at in (("a", 0.0), ("b", 0.5), ("c", 0.9), ("d", 1.2), ("e", 1.3), ("f", 3.0)):
        now[0] = at
        progress(step)
    assert sent == ["a", "d", "f"] and progress.dropped == 3

    def broken(_message: str) -> None:
        raise RuntimeError("Slack is down")

    ThrottledProgress(broken)("step")  # logged, not raised


def test_sql_in_code_blocks_keeps_its_asterisks_on_the_terminal() -> None:
    report = ok_report()
    report.hints = [Hint("duplicates", "dupes", "SELECT k, COUNT(*) FROM t GROUP BY k HAVING COUNT(*) > 1")]
    assert "    SELECT k, COUNT(*) FROM t GROUP BY k HAVING COUNT(*) > 1" in render_message(render_kpi_report(report))

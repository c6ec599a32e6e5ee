"""`make demo`'s tour runs by itself and shows each capability."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.tour import run_tour


def test_tour_shows_commands_an_alert_story_and_refused_forgeries(tmp_path: Path) -> None:
    lines: list[str] = []
    assert run_tour(out=lines.append, output_dir=tmp_path) == 0
    output = "\n".join(lines)
    assert "`/etl pipelines`  Configured pipelines with their latest execution" in output
    assert "policies-etl  FAILED run-2025-02-18" in output  # the recorded ECS failure
    assert "claims-etl  SUCCEEDED run-2025-02-18" in output
    assert "billing-etl  never ran" in output
    assert "`frobnicate` is not an etl-doctor subcommand" in output
    assert "policies-etl failed at LoadFactPolicies" in output
    assert "4. container `loader` — exit 137 · OutOfMemoryError: Container killed due to memory usage" in output
    assert "java.lang.OutOfMemoryError: Java heap space" in output
    assert "3 matching `OutOfMemoryError`" in output
    assert "HTTP 401 (rejected)" in output
    # the alert story: posted, enriched, a repeat in the thread, resolved, a tampered message refused
    assert "policies-etl: execution run-2025-02-18 FAILED" in output
    assert "Next step: task definition `policies-loader:14` gives the task 4096 MiB" in output
    assert "1 more occurrence (×2 in all)" in output
    assert "Resolved — policies-etl: execution run-2025-02-18 FAILED" in output
    assert "Resolved by execution run-2025-02-18 SUCCEEDED" in output
    assert "HTTP 403: " in output and "signature does not match" in output
    # actions: a denied click, a redrive confirmed and run, an ack, a DLQ replay, the audit trail
    assert "@U0MALLORY may not `retry` on `policies-etl`" in output
    assert "Redrive `run-2025-02-18` of `policies-etl`" in output and "[ Confirm ]  [ Cancel ]" in output
    assert "@U0ALICE redrove `run-2025-02-18` (Redrive)" in output
    assert "acked by @U0CAROL" in output
    assert "`run-2025-02-18` (Redrive) SUCCEEDED" in output
    assert "3 waiting" in output and "Replayed 3 of 3 messages from `policies-dlq` to `policies-etl-input`" in output
    assert "@U0ALICE dlq_replay `policies-dlq` done" in output
    # the KPI story: a breach localized to its partition, keys and layer, with hints, a backfill and the chart
    assert "/etl kpi premium_amount 2025-02-18" in output
    assert "✗ Out of tolerance: target is 14,329.40 below source (-1.19%, tolerance ±0.1%)" in output
    assert "2025-02-18  1,204,331.50  1,190,002.10  -14,329.40  2,047/1,904" in output
    assert "Keys: 143 missing in target · 0 extra in target · 0 changed" in output
    assert "First divergence: s3_raw.policies → ods_policies: 143 rows lost" in output
    assert "Partition dt=2025-02-18 of `raw.policies` (s3_raw.policies) is not in the Glue Data Catalog" in output
    assert "ALTER TABLE raw.policies ADD IF NOT EXISTS PARTITION (dt='2025-02-18')" in output
    assert "Re-run policies-etl for 2025-02-18" in output and 'input `{"date": "2025-02-18"}`' in output
    chart = tmp_path / "premium_amount_2025-02-18.png"
    assert f"chart saved to {chart}" in output
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert "✗ Check `no_negative_premiums` failed: 3 violating rows (threshold 0)" in output
    assert "Tour finished" in output

"""`make demo`'s tour runs by itself and shows each capability."""

from __future__ import annotations

from bot.sandbox.tour import run_tour


def test_tour_shows_help_pipelines_usage_and_a_refused_forgery() -> None:
    lines: list[str] = []
    assert run_tour(out=lines.append) == 0
    output = "\n".join(lines)
    assert "`/etl pipelines`  Configured pipelines with their latest execution" in output
    assert "policies-etl  FAILED run-2025-02-18" in output
    assert "claims-etl  SUCCEEDED run-2025-02-18" in output
    assert "billing-etl  never ran" in output
    assert "`frobnicate` is not an etl-doctor subcommand" in output
    assert "HTTP 401 (rejected)" in output
    assert "Tour finished" in output

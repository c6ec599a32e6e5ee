"""The offline diagnosis (`etl-doctor explain`) on every recorded scenario: no AWS, same failed state."""

from __future__ import annotations

import json

import pytest

from bot.config import ProjectConfig
from bot.diagnosis.offline import diagnose_saved, load_saved
from tests.conftest import EXECUTIONS, SCENARIOS


@pytest.mark.parametrize("name", SCENARIOS)
def test_offline_diagnosis_names_the_failed_state(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scenario = json.loads((EXECUTIONS / name / "scenario.json").read_text())
    expected = scenario["expected"]
    stops = {arn: rec["describe"]["stopDate"] for arn, rec in scenario["executions"].items()}
    children = {e["executionArn"] for run in scenario.get("map_runs", {}).values() for e in run["executions"]}
    top = max((arn for arn in stops if arn not in children), key=lambda arn: (stops[arn], -len(arn)))
    recorded = scenario["executions"][top]
    (tmp_path / "h.json").write_text(json.dumps({"events": recorded["history"]}))
    (tmp_path / "d.json").write_text(json.dumps(recorded["describe"]))
    describe, events = load_saved(tmp_path / "h.json", tmp_path / "d.json")
    diagnosis = diagnose_saved(describe, events, ProjectConfig(), "us-east-1")
    assert diagnosis.status == "FAILED"
    # offline, a failure inside a child execution or map run stops at the parent's state
    acceptable = {expected["failed_state"], expected.get("map_state"), expected.get("parent_failed_state")}
    assert diagnosis.failed_state in acceptable, diagnosis.failed_state
    followed = [hop for hop in diagnosis.hops if not hop.followed]
    if diagnosis.integration in {"ecs", "lambda", "glue", "batch", "child", "distributed_map"}:
        assert followed and followed[0].detail == "not followed (offline)"
    assert diagnosis.remediation

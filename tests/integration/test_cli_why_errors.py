"""Failures of `etl-doctor why` and `etl-doctor explain` are answers: JSON with --json, one line, no traceback.

Run as a user runs them: subprocesses of the installed console script.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bot.sandbox.aws_replay import AwsReplay
from tests.conftest import EXECUTIONS
from tests.integration.test_cli import _aws_env as aws_env
from tests.integration.test_cli import run

MISSING = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-1999-01-01"
T = "2025-02-18T03:00:00Z"


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error: …` line on stderr (and no traceback)."""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line.removeprefix("error: ")


# ------------------------------------------------------------------ why --json


def test_why_json_of_a_missing_execution_is_an_error_object(tmp_path: Path, replay: AwsReplay) -> None:
    result = run("why", MISSING, "--json", cwd=tmp_path, env=aws_env(replay))
    assert result.returncode == 1
    message = f"execution {MISSING} not found in us-east-1"
    assert json.loads(result.stdout) == {"error": message, "execution": MISSING}
    assert one_error_line(result) == message


def test_why_json_of_a_target_that_is_no_execution(tmp_path: Path, replay: AwsReplay) -> None:
    result = run("why", "https://example.com/nothing", "--json", cwd=tmp_path, env=aws_env(replay))
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["execution"] == "https://example.com/nothing"
    assert document["error"].startswith("that link does not name a Step Functions execution")


def test_why_json_with_a_bad_configuration_exits_2(tmp_path: Path, replay: AwsReplay) -> None:
    (tmp_path / "etl-doctor.yml").write_text("pipelines:\n  p:\n    state_machine_arn: nope\n", encoding="utf-8")
    result = run("why", "latest", "p", "--json", cwd=tmp_path, env=aws_env(replay))
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["execution"] == "latest p"
    assert document["error"].startswith("etl-doctor.yml: pipelines.p.state_machine_arn: not a Step Functions")


def test_why_without_json_prints_nothing_on_stdout_on_error(tmp_path: Path, replay: AwsReplay) -> None:
    result = run("why", MISSING, cwd=tmp_path, env=aws_env(replay))
    assert result.returncode == 1 and result.stdout == ""
    assert one_error_line(result) == f"execution {MISSING} not found in us-east-1"


# ------------------------------------------------------------------ explain with files that are not what they should be


STARTED = {"id": 1, "type": "ExecutionStarted", "timestamp": T, "executionStartedEventDetails": {"input": "{}"}}
FAILED = {"id": 2, "type": "ExecutionFailed", "timestamp": T, "previousEventId": 1}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[1, 2]", "is not `get-execution-history` output: event #1 is not an object"),
        ('{"executions": []}', "is not `get-execution-history` output (no events; expected"),
        ('{"events": []}', "is not `get-execution-history` output (no events"),
        ('{"events": {"id": 1}}', "is not `get-execution-history` output (no events"),
        (json.dumps({"events": [{"id": 1, "timestamp": T}]}), "event #1 has no `type`"),
        (json.dumps({"events": [STARTED | {"id": None}]}), "event #1 has no numeric `id`"),
        (json.dumps({"events": [STARTED, FAILED | {"previousEventId": "one"}]}),
         "event #2 has a `previousEventId` that is not a number"),
        (json.dumps({"events": [STARTED | {"timestamp": {"at": 3}}]}), "`timestamp` is not a time: {\"at\": 3}"),
        (json.dumps({"events": [STARTED | {"timestamp": "yesterday"}]}), '`timestamp` is not a time: "yesterday"'),
        (json.dumps({"events": [STARTED | {"executionStartedEventDetails": "oops"}]}),
         "event #1 has a `executionStartedEventDetails` that is not an object"),
        (json.dumps({"events": [STARTED, FAILED | {"executionFailedEventDetails": {"error": 5, "cause": []}}]}),
         "event #2 has a `executionFailedEventDetails.error` that is not a text"),
        ('{"events": [', "is not JSON: Expecting value (line 1, column 13)"),
    ],
)  # fmt: skip
def test_explain_names_the_file_and_what_is_wrong(tmp_path: Path, content: str, expected: str) -> None:
    saved = tmp_path / "history.json"
    saved.write_text(content, encoding="utf-8")
    result = run("explain", "--history", str(saved), "--json", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert str(saved) in line and expected in line, line
    assert json.loads(result.stdout) == {"error": line, "history": str(saved)}  # as why --json
    plain = run("explain", "--history", str(saved), cwd=tmp_path)
    assert plain.returncode == 2 and plain.stdout == ""


def test_explain_of_a_binary_file_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "image.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (tmp_path / "folder").mkdir()
    for path, expected in [
        (tmp_path / "image.json", "is not a text file (UTF-8 JSON expected)"),
        (tmp_path / "folder", "cannot read"),
        (tmp_path / "nope.json", "cannot read"),
    ]:
        result = run("explain", "--history", str(path), cwd=tmp_path)
        assert result.returncode == 2
        line = one_error_line(result)
        assert str(path) in line and expected in line, line


def _recorded(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    scenario = json.loads((EXECUTIONS / "glue_failed" / "scenario.json").read_text())
    (recorded,) = scenario["executions"].values()
    (tmp_path / "history.json").write_text(json.dumps({"events": recorded["history"]}))
    return tmp_path / "history.json", dict(recorded["describe"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (None, "is not `describe-execution` output (expected a JSON object)"),
        ({"status": 42}, "is not `describe-execution` output: `status` is not a text"),
        ({"status": "EXPLODED"}, "`status` 'EXPLODED' is not an execution status"),
        ({"startDate": "yesterday"}, '`startDate` is not a time: "yesterday"'),
        ({"redriveCount": "two"}, "`redriveCount` is not a number"),
    ],
)
def test_explain_names_a_malformed_describe_file(
    tmp_path: Path, change: dict[str, object] | None, expected: str
) -> None:
    history, describe = _recorded(tmp_path)
    saved = tmp_path / "describe.json"
    saved.write_text(json.dumps([describe] if change is None else describe | change))
    result = run("explain", "--history", str(history), "--describe", str(saved), cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert str(saved) in line and expected in line, line


def test_explain_of_a_history_cut_before_its_end(tmp_path: Path) -> None:
    history, describe = _recorded(tmp_path)
    events = json.loads(history.read_text())["events"]
    history.write_text(json.dumps({"events": [e for e in events if e["type"] != "ExecutionFailed"]}))
    (tmp_path / "describe.json").write_text(json.dumps(describe))
    result = run("explain", "--history", str(history), "--describe", str(tmp_path / "describe.json"), cwd=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"{history} has no ExecutionFailed event although {tmp_path / 'describe.json'} says FAILED: save the "
        "history's newest events (`get-execution-history --reverse-order`)"
    )


def test_explain_says_the_state_definition_was_not_read(tmp_path: Path) -> None:
    history, _describe = _recorded(tmp_path)
    document = json.loads(run("explain", "--history", str(history), "--json", cwd=tmp_path).stdout)
    assert any(note.startswith("state definition not read (offline)") for note in document["notes"])
    assert document["retry_audit"] == [] and document["definition_snippet"] is None
    text = run("explain", "--history", str(history), cwd=tmp_path).stdout
    assert "i state definition not read (offline)" in text

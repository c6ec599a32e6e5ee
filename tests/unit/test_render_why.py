"""The `/etl why` answer's buttons and evidence links (`bot.render.diagnosis`, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.diagnosis.model import Diagnosis, EvidenceLine
from bot.render.diagnosis import render_diagnosis
from bot.render.limits import MESSAGE_BLOCKS_MAX, SECTION_TEXT_MAX
from bot.render.terminal import render_message

ARN = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18"
EXPRESS = "arn:aws:states:us-east-1:123456789012:express:policies-etl:run-2025-02-18:5b4a3c2d-1e0f"
START = datetime(2025, 2, 18, 3, 41, 2, tzinfo=UTC)
STREAM = "ecs/loader/5f1c9e0b"


def url(second: int) -> str:
    return f"https://console.example/logs/{STREAM}?start={second}"


def lines(count: int, *, message: str = "INFO working", every: int = 1) -> list[EvidenceLine]:
    return [
        EvidenceLine(START + timedelta(seconds=i * every), f"#{i} {message}", "/ecs/policies-etl", STREAM, url(i))
        for i in range(count)
    ]


def failed(**fields: Any) -> Diagnosis:
    defaults: dict[str, Any] = {
        "execution_arn": ARN,
        "status": "FAILED",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl",
        "failed_state": "LoadFactPolicies",
        "category": "out_of_memory",
        "title": "Out of memory",
    }
    return Diagnosis(**(defaults | fields))


def buttons(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (element["text"]["text"], element["action_id"], element.get("value", ""))
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def evidence_title(message: dict[str, Any]) -> str:
    (first, *_rest) = [
        b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "```" in b["text"]["text"]
    ]
    return str(first.split("\n", 1)[0])


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_a_failed_standard_execution_offers_logs_retry_and_redrive_with_its_arn(status: str) -> None:
    assert buttons(render_diagnosis(failed(status=status))) == [
        ("Logs", "etl.logs", ARN),
        ("Retry", "etl.retry", ARN),
        ("Redrive", "etl.redrive", ARN),
    ]


def test_an_express_execution_cannot_be_redriven() -> None:
    assert [b[0] for b in buttons(render_diagnosis(failed(execution_arn=EXPRESS)))] == ["Logs", "Retry"]


def test_an_offline_diagnosis_offers_no_action() -> None:
    offline = failed(execution_arn="(from a saved history)")
    assert [b[0] for b in buttons(render_diagnosis(offline))] == ["Logs"]


@pytest.mark.parametrize("status", ["SUCCEEDED", "RUNNING"])
def test_nothing_to_diagnose_has_no_buttons(status: str) -> None:
    message = render_diagnosis(failed(status=status, verdict=f"`run-42` of `policies-etl` {status}"))
    assert buttons(message) == []


def test_the_evidence_title_links_the_stream_and_the_time_range() -> None:
    message = render_diagnosis(failed(evidence=lines(12, every=2)))
    assert evidence_title(message) == (
        f"*Evidence* (12 lines, <{url(0)}|{STREAM}> 03:41:02\N{EN DASH}<{url(11)}|03:41:24>)"
    )
    text = render_message(message, show_urls=True)
    assert f"Evidence (12 lines, {STREAM} ({url(0)}) 03:41:02\N{EN DASH}03:41:24 ({url(11)}))" in text


def test_the_root_exception_line_is_linked_in_a_context_line() -> None:
    evidence = lines(5)
    root = EvidenceLine(START + timedelta(seconds=9), "Caused by: java.lang.OutOfMemoryError: Java heap space",
                        "/ecs/policies-etl", STREAM, "https://console.example/logs/root")  # fmt: skip
    message = render_diagnosis(
        failed(evidence=[*evidence, root, *lines(2)], root_exception="java.lang.OutOfMemoryError: Java heap space")
    )
    contexts = [e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert (
        f":round_pushpin: root exception logged at <https://console.example/logs/root|03:41:11> in `{STREAM}`"
        in contexts
    )


def test_no_root_exception_line_no_context_line() -> None:
    message = render_diagnosis(failed(evidence=lines(3), root_exception="java.lang.IllegalStateException: x"))
    assert not any("root exception logged" in str(block) for block in message["blocks"])


def test_when_not_all_evidence_fits_the_latest_lines_are_shown_and_the_rest_counted() -> None:
    long = lines(60, message="E" * 400)
    message = render_diagnosis(failed(evidence=long))
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "```" in b["text"]["text"]]
    assert len(sections) == 3
    assert all(len(text) <= SECTION_TEXT_MAX and text.count("```") % 2 == 0 for text in sections)
    assert sections[-1].rsplit("\n", 1)[-1].startswith("03:42:01 #59 ")  # the last line (the failure) is shown
    shown = sum(text.count("\n") + 1 - (1 if index == 0 else 0) for index, text in enumerate(sections))
    assert evidence_title(message).startswith(f"*Evidence* ({shown} lines, {60 - shown} earlier not shown, ")


def test_next_steps_are_escaped_for_mrkdwn() -> None:
    message = render_diagnosis(failed(remediation=["Check `repo/<image>` & its tag", "Retry"]))
    (steps,) = [b["text"]["text"] for b in message["blocks"] if b.get("text", {}).get("text", "").startswith("*What")]
    assert "1. Check `repo/&lt;image&gt;` &amp; its tag" in steps


def test_huge_links_do_not_break_the_limits() -> None:
    huge = "https://console.example/" + "x" * 5000
    evidence = [EvidenceLine(START, "Caused by: java.lang.Error: e", "/g", "s" * 600, huge) for _ in range(40)]
    message = render_diagnosis(failed(evidence=evidence, root_exception="java.lang.Error: e"))
    assert len(message["blocks"]) <= MESSAGE_BLOCKS_MAX
    for block in message["blocks"]:
        for text in [block.get("text", {}).get("text", ""), *(e.get("text", "") for e in block.get("elements", []))]:
            assert len(text) <= SECTION_TEXT_MAX
            assert huge not in text  # too long to link: shown as plain labels

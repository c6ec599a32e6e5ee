from datetime import UTC, datetime

import pytest

from bot.aws.stepfunctions import ExecutionSummary
from bot.commands import SUBCOMMANDS, UsageError, find, parse
from bot.pipelines import PipelineStatus
from bot.render.blocks import button, escape, header, section
from bot.render.limits import MESSAGE_BLOCKS_MAX, SECTION_TEXT_MAX, clamp, finish_message
from bot.render.messages import render_error, render_help, render_pipelines, render_usage_error
from bot.render.terminal import render_message
from tests.support.golden import assert_golden

NOW = datetime(2025, 2, 18, 3, 30, tzinfo=UTC)
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:"


def _statuses() -> list[PipelineStatus]:
    failed = ExecutionSummary(
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18",
        state_machine_arn=SM + "policies-etl",
        name="run-2025-02-18",
        status="FAILED",
        start_date=datetime(2025, 2, 18, 3, 0, tzinfo=UTC),
        stop_date=datetime(2025, 2, 18, 3, 12, tzinfo=UTC),
    )
    return [
        PipelineStatus("billing-etl", SM + "billing-etl", "", "#etl-alerts", None),
        PipelineStatus("ledger-etl", SM + "ledger-etl", "", None, None, problem="state machine not found in us-east-1"),
        PipelineStatus("policies-etl", SM + "policies-etl", "Oracle → Redshift <fact>", "#etl-alerts", failed),
    ]


def test_help_golden() -> None:
    message = render_help()
    text = render_message(message)
    assert all(f"e.g. `{sub.examples[0]}`" in text for sub in SUBCOMMANDS if sub.examples)  # an example each
    assert_golden("help.json", message)
    assert_golden("help.txt", render_message(message) + "\n")


def test_usage_error_golden() -> None:
    with pytest.raises(UsageError) as raised:
        parse("pipelines now")
    assert_golden("usage_error.json", render_usage_error(raised.value))


def test_pipelines_golden() -> None:
    message = render_pipelines(_statuses(), region="us-east-1", now=NOW)
    assert_golden("pipelines.json", message)
    assert_golden("pipelines.txt", render_message(message) + "\n")
    assert message["text"] == "3 pipelines, 1 failing"


def test_pipelines_without_configuration_explains_how() -> None:
    message = render_pipelines([], region="us-east-1", now=NOW)
    assert "etl-doctor.yml" in message["blocks"][0]["text"]["text"]


def test_aws_text_is_escaped_for_mrkdwn() -> None:
    text = render_pipelines(_statuses(), region="us-east-1", now=NOW)["blocks"][3]["text"]["text"]
    assert "Oracle → Redshift &lt;fact&gt;" in text


def test_error_message_carries_the_reference() -> None:
    message = render_error("AWS denied ListExecutions", "a1b2c3")
    assert message["text"] == "etl-doctor hit an error: AWS denied ListExecutions (ref a1b2c3)"


def test_subcommand_help_lists_examples() -> None:
    subcommand = find("help")
    assert subcommand is not None
    text = render_message(__import__("bot.render.messages", fromlist=["x"]).render_subcommand_help(subcommand))
    assert "/etl help pipelines" in text


# ------------------------------------------------------------------ limits, enforced in one place


def test_section_text_is_clamped_to_3000() -> None:
    block = section("x" * 5000)
    assert len(block["text"]["text"]) == SECTION_TEXT_MAX
    assert block["text"]["text"].endswith("…")


def test_clamp_keeps_code_fences_balanced() -> None:
    clamped = clamp("```" + "y" * 4000 + "```", 100)
    assert len(clamped) <= 100
    assert clamped.count("```") % 2 == 0


def test_header_and_button_limits() -> None:
    assert len(header("h" * 400)["text"]["text"]) == 150
    element = button("b" * 100, "a" * 300, value="v")
    assert len(element["text"]["text"]) == 75
    assert len(element["action_id"]) == 255
    with pytest.raises(ValueError, match="2,000"):
        button("ok", "id", value="v" * 2001)


def test_message_over_50_blocks_says_how_many_were_left_out() -> None:
    message = finish_message([section(str(i)) for i in range(60)], "t")
    assert len(message["blocks"]) == MESSAGE_BLOCKS_MAX
    assert message["blocks"][-1]["elements"][0]["text"].startswith("11 more block(s) left out")


def test_fallback_text_is_never_empty() -> None:
    assert finish_message([], "")["text"] == " "


def test_escape() -> None:
    assert escape("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"


def test_diagnosis_render_stays_within_limits_whatever_the_input() -> None:
    from bot.diagnosis.model import Diagnosis, EvidenceLine, Hop
    from bot.render.diagnosis import render_diagnosis

    huge = "x" * 50_000
    diagnosis = Diagnosis(
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:m:" + "e" * 80,
        status="FAILED",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m",
        failed_state="S" * 300,
        error="E" * 300,
        cause_summary=huge,
        hops=[Hop("state", f"state-{i}", huge[:500]) for i in range(200)],
        root_exception="java.lang.RuntimeException: " + huge,
        app_frames=[huge] * 10,
        evidence=[EvidenceLine(NOW, huge, "/g", "s", "https://example.com") for _ in range(500)],
        resource_notes=[huge] * 5,
        remediation=[huge] * 4,
        definition_snippet=huge,
        notes=[huge] * 20,
        category="unknown",
        title="T" * 500,
    )
    message = render_diagnosis(diagnosis)
    assert len(message["blocks"]) <= MESSAGE_BLOCKS_MAX
    for block in message["blocks"]:
        if block["type"] in {"section", "header"}:
            limit = SECTION_TEXT_MAX if block["type"] == "section" else 150
            assert len(block["text"]["text"]) <= limit
            assert block["text"]["text"].count("```") % 2 == 0  # code blocks are never left open
    assert len(message["text"]) <= 40_000

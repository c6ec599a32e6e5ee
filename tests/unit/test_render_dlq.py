"""`/etl dlq` rendering (pure): listings and replay reports stay within Block Kit's limits and read well."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block

from bot.actions.dlq import (
    EXCERPT_MAX,
    DlqConfig,
    DlqListing,
    DlqMessage,
    DlqTarget,
    ReplayOutcome,
    ReplayReport,
    excerpt,
)
from bot.render.dlq import render_dlq_listing, render_replay_report
from bot.render.limits import MESSAGE_BLOCKS_MAX, MESSAGE_TEXT_MAX, SECTION_TEXT_MAX
from bot.render.terminal import render_message

NOW = datetime(2025, 2, 18, 6, 30, tzinfo=UTC)
QUEUES = "https://sqs.us-east-1.amazonaws.com/123456789012/"
POLICIES = DlqConfig(
    queue_url=QUEUES + "policies-dlq",
    pipeline="policies-etl",
    description="Policy loads <Oracle → Redshift>",
    target=DlqTarget(queue_url=QUEUES + "policies-etl-input"),
)
CLAIMS = DlqConfig(
    queue_url=QUEUES + "claims-dlq",
    target=DlqTarget(state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:claims-etl"),
)


def _valid(message: dict[str, Any]) -> None:
    """Every block parses and validates with slack_sdk (its length limits), and the message fits."""
    assert 0 < len(message["blocks"]) <= MESSAGE_BLOCKS_MAX
    assert 0 < len(message["text"]) <= MESSAGE_TEXT_MAX
    for raw in message["blocks"]:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
        if raw["type"] == "section":
            assert len(raw["text"]["text"]) <= SECTION_TEXT_MAX


def _message(index: int, body: str, **extra: Any) -> DlqMessage:
    return DlqMessage(
        message_id=f"{index:08x}-1b2c-4d5e-8f90-a1b2c3d4e5f6",
        receipt_handle="handle",
        body=body,
        sent_at=NOW - timedelta(hours=3, minutes=index),
        receive_count=2,
        attributes={"SentTimestamp": "0"},
        excerpt=excerpt(body),
        **extra,
    )


def test_ten_messages_of_100_kb_fit() -> None:
    bodies = [json.dumps({"policy": index, "rows": ["<&>" * 40] * 850}) for index in range(10)]
    assert all(len(body) > 100_000 for body in bodies)
    messages = sorted((_message(i, body) for i, body in enumerate(bodies)), key=lambda m: m.sent_at or NOW)
    listing = DlqListing("policies", POLICIES, 120, 3, timedelta(hours=3, minutes=9), messages, timedelta(days=4))

    message = render_dlq_listing([listing])

    _valid(message)
    shown = render_message(message)
    assert all(m.message_id[:8] in shown for m in messages)
    assert all(len(m.excerpt) == EXCERPT_MAX and m.excerpt.endswith("…") for m in messages)
    head = message["blocks"][0]["text"]["text"]
    assert head.startswith("*policies* — Policy loads &lt;Oracle → Redshift&gt;\n120 waiting, 3 in flight")
    assert "oldest of those read 3 h · retention 4 days" in head
    # Escaped text is cut between entities, never inside one.
    lines = [
        line
        for block in message["blocks"][1:]
        if block["type"] == "section"
        for line in block["text"]["text"].split("\n")
    ]
    assert len(lines) == 10 and all(line.endswith(("&gt;…", "&amp;…", "&lt;…", "…")) for line in lines)
    assert all(not line.rstrip("…").endswith(("&", "&l", "&lt", "&a", "&am", "&amp", "&g", "&gt")) for line in lines)
    assert '• `00000009` 3 h old, received 2× — {"policy": 9, ' in lines[0].replace("&quot;", '"')
    footer = render_message({"blocks": message["blocks"][-1:]})
    assert "pipeline policies-etl · 110 more not shown" in footer
    assert "/etl dlq replay policies <message-id>|--all` sends them back to `policies-etl-input`" in footer
    assert message["text"] == "1 dead-letter queue: 120 messages waiting"


def test_empty_queue_and_unreadable_queue() -> None:
    empty = DlqListing("claims", CLAIMS, 0, 0, None, [])
    broken = DlqListing("orders", CLAIMS, 0, 0, None, [], problem="AWS GetQueueAttributes failed: <denied>")

    message = render_dlq_listing([empty, broken])

    _valid(message)
    assert message["blocks"][0]["text"]["text"] == "*claims*\nempty"
    assert message["blocks"][1]["type"] == "divider"
    assert (
        message["blocks"][2]["text"]["text"]
        == "*orders*\n:warning: could not read it: AWS GetQueueAttributes failed: &lt;denied&gt;"
    )
    assert "replay" not in render_message(message)
    assert message["text"] == "2 dead-letter queues: 0 messages waiting"


def test_state_machine_target_and_lambda_error_attribute() -> None:
    message = _message(1, "reload P-10", message_attributes={"ErrorMessage": "Task timed out after 900 s"})
    listing = DlqListing("claims", CLAIMS, 1, 0, timedelta(minutes=12), [message])

    rendered = render_message(render_dlq_listing([listing]))

    assert "1 waiting · oldest 12 min" in rendered
    assert "— reload P-10 (error: Task timed out after 900 s)" in rendered
    assert "sends them back to `claims-etl` (a new Step Functions execution each)" in rendered


def test_no_configured_queues() -> None:
    message = render_dlq_listing([])
    _valid(message)
    assert "`dlq:` in etl-doctor.yml" in message["blocks"][0]["text"]["text"]


def test_report_with_failures() -> None:
    outcomes = [
        ReplayOutcome("aaaaaaaa-0000-0000-0000-000000000001", True, "sent to policies-etl-input as n-1, deleted"),
        ReplayOutcome("aaaaaaaa-0000-0000-0000-000000000002", True, "sent to policies-etl-input as n-2, deleted"),
        ReplayOutcome(
            "aaaaaaaa-0000-0000-0000-000000000003",
            False,
            "send failed: AWS SendMessage failed: KMS.DisabledException: key <k> is disabled; left in the queue",
        ),
        ReplayOutcome(
            "aaaaaaaa-0000-0000-0000-000000000004",
            False,
            "sent to policies-etl-input as n-4, but could not delete: AWS denied DeleteMessage (AccessDenied): no. "
            "Check the IAM role etl-doctor runs as. — it may be replayed twice",
        ),
    ]
    report = ReplayReport("policies", outcomes, target="policies-etl-input")
    assert (report.replayed, report.failed) == (2, 2)

    message = render_replay_report(report)

    _valid(message)
    assert message["blocks"][0]["text"]["text"] == (
        ":warning: Replayed 2 of 4 messages from `policies` to `policies-etl-input`"
    )
    failures = message["blocks"][1]["text"]["text"].split("\n")
    assert failures == [
        "• `aaaaaaaa-0000-0000-0000-000000000003` — send failed: AWS SendMessage failed: KMS.DisabledException: "
        "key &lt;k&gt; is disabled; left in the queue",
        "• `aaaaaaaa-0000-0000-0000-000000000004` — sent to policies-etl-input as n-4, but could not delete: AWS "
        "denied DeleteMessage (AccessDenied): no. Check the IAM role etl-doctor runs as. — it may be replayed twice",
    ]
    assert message["text"] == "Replayed 2 of 4 messages from policies to policies-etl-input; 2 failed"


def test_report_of_a_capped_run_with_a_thousand_failures_fits() -> None:
    reason = "send failed: AWS StartExecution failed: InvalidExecutionInput: " + "x" * 400 + "; left in the queue"
    outcomes = [ReplayOutcome(f"{index:08x}-0000-0000-0000-000000000000", False, reason) for index in range(1000)]
    report = ReplayReport("claims", outcomes, target="claims-etl", note="stopped after 1,000 messages")

    message = render_replay_report(report)

    _valid(message)
    assert message["blocks"][0]["text"]["text"].startswith(":x: Replayed 0 of 1000 messages")
    assert "more failure(s) not shown" in render_message(message)
    assert message["blocks"][-1]["elements"][0]["text"] == "stopped after 1,000 messages"


def test_single_success_shows_where_it_went_and_empty_replay() -> None:
    one = ReplayReport(
        "claims",
        [ReplayOutcome("m-1", True, "started execution arn:…:claims-etl:dlq-replay-m-1, deleted")],
        "claims-etl",
    )
    message = render_replay_report(one)
    _valid(message)
    assert (
        message["blocks"][0]["text"]["text"]
        == ":white_check_mark: Replayed 1 of 1 message from `claims` to `claims-etl`"
    )
    assert "started execution" in message["blocks"][1]["elements"][0]["text"]

    nothing = render_replay_report(ReplayReport("claims", [], "claims-etl"))
    assert nothing["text"] == "Nothing to replay: `claims` returned no messages."


def test_excerpt() -> None:
    assert excerpt('{\n  "a": 1,\n  "b": [1, 2]\n}') == '{"a": 1, "b": [1, 2]}'
    assert excerpt("line one\n\n\tline\x00two") == "line one line\ufffdtwo"
    assert excerpt("{not json") == "{not json"
    cut = excerpt("word " * 200)
    assert len(cut) == EXCERPT_MAX and cut.endswith("…")
    assert "hunter2" not in excerpt("jdbc://etl:hunter2@db.internal/policies")

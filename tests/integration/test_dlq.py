"""`/etl dlq` against a moto server over HTTP: list without consuming, replay to a queue or a state machine.

Where moto differs from SQS (and how the tests cope):
- moto returns visible messages in send order on every ReceiveMessage, where SQS samples its servers on a
  short poll; so peeking with VisibilityTimeout=0 always reads the same first messages, and `find` only
  reaches message 20 because it holds the ones it skipped until the scan ends (the test checks both).
- moto's ChangeMessageVisibility(0) makes a message visible one millisecond later (it compares
  ``now > visible_at``), so counts are read after a short pause.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.actions.dlq import (
    FAILURES_IN_A_ROW_MAX,
    DlqConfig,
    DlqTarget,
    DlqUsageError,
    list_dlq,
    list_dlqs,
    parse_dlq_args,
    replay,
)
from bot.aws.clients import AwsClients
from bot.aws.sqs import SqsGateway
from bot.render.dlq import render_dlq_listing, render_replay_report
from bot.sandbox.world import ROLE_ARN


def _queues(aws: AwsClients, *, fifo: bool = False, redrive: bool = True) -> tuple[str, str]:
    """A source queue and its dead-letter queue (the source redrives to it after one receive)."""
    sqs = aws.client("sqs")
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"policies-dlq{suffix}", Attributes=attributes)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source_attributes = dict(attributes)
    if redrive:
        source_attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    source = sqs.create_queue(QueueName=f"policies-etl-input{suffix}", Attributes=source_attributes)["QueueUrl"]
    return source, dlq


def _config(dlq: str, **target: str) -> dict[str, DlqConfig]:
    return {
        "policies": DlqConfig(
            queue_url=dlq, pipeline="policies-etl", target=DlqTarget(**target), description="Policy loads"
        ),
        "claims": DlqConfig(queue_url=dlq + "-claims", target=DlqTarget(queue_url=dlq + "-x")),
    }


def _counts(aws: AwsClients, url: str) -> tuple[int, int]:
    time.sleep(0.01)  # moto: a released message is visible 1 ms later
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _drain(aws: AwsClients, url: str) -> list[dict[str, Any]]:
    """Every message of a queue (consumed)."""
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=300,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return found
        found += batch


def _fill(aws: AwsClients, dlq: str, count: int) -> list[str]:
    sqs = aws.client("sqs")
    return [
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"policy": index}))["MessageId"] for index in range(count)
    ]


def test_listing_counts_ages_and_excerpts_without_consuming(aws: AwsClients) -> None:
    source, dlq = _queues(aws)
    sqs = aws.client("sqs")
    bodies = [
        '{\n  "policy_id": "P-1001",\n  "error": "FK violation",\n  "password": "hunter2"\n}',
        "plain   text\nbody",
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=source, MessageBody=body)
    # The way real messages get there: received once (and not deleted), then moved by the redrive policy.
    sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10).get("Messages", []) == []
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody="{}",
        MessageAttributes={"ErrorMessage": {"DataType": "String", "StringValue": "Task timed out"}},
    )
    queues = _config(dlq, queue_url=source)
    gateway = SqsGateway(sqs)
    now = datetime.now(UTC) + timedelta(hours=3)

    first = list_dlq("policies", queues, gateway, now=now)
    assert first.approximate_count == 3 and first.in_flight == 0
    assert first.oldest_age is not None and timedelta(hours=3) <= first.oldest_age < timedelta(hours=3, minutes=1)
    assert first.retention == timedelta(days=4)
    excerpts = {message.excerpt for message in first.messages}
    (compacted,) = [e for e in excerpts if "P-1001" in e]
    assert compacted.startswith('{"policy_id": "P-1001", "error": "FK violation", "password": ')
    assert "hunter2" not in compacted and "[redacted]" in compacted  # bot.redact masks secrets
    assert "plain text body" in excerpts
    (lambda_style,) = [m for m in first.messages if m.body == "{}"]
    assert lambda_style.message_attributes == {"ErrorMessage": "Task timed out"}
    assert all(m.sent_at is not None and m.sent_at.tzinfo is UTC for m in first.messages)

    second = list_dlq("policies", queues, gateway, now=now)
    assert [m.message_id for m in second.messages] == [m.message_id for m in first.messages]
    assert second.approximate_count == 3 and _counts(aws, dlq) == (3, 0)
    # Peeking is a receive: each listing adds one to every message's receive count (a single ReceiveMessage,
    # since the queue's count says how many to expect).
    assert [m.receive_count for m in second.messages] == [m.receive_count + 1 for m in first.messages]

    text = render_dlq_listing([second])["blocks"][0]["text"]["text"]
    assert "3 waiting" in text and "oldest 3 h" in text


def test_listing_respects_the_limit_and_reports_unreadable_queues(aws: AwsClients) -> None:
    source, dlq = _queues(aws)
    _fill(aws, dlq, 15)
    queues = _config(dlq, queue_url=source)  # "claims" points at a queue that does not exist
    listings = list_dlqs(None, queues, SqsGateway(aws.client("sqs")), now=datetime.now(UTC), limit=10)
    claims, policies = listings
    assert claims.name == "claims" and claims.problem is not None and "GetQueueAttributes" in claims.problem
    assert policies.problem is None and policies.approximate_count == 15 and len(policies.messages) == 10
    assert _counts(aws, dlq) == (15, 0)


def test_replay_one_message_by_id(aws: AwsClients) -> None:
    source, dlq = _queues(aws)
    sqs = aws.client("sqs")
    attributes = {
        "tenant": {"DataType": "String", "StringValue": "acme"},
        "attempt": {"DataType": "Number", "StringValue": "3"},
        "digest": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    }
    wanted = sqs.send_message(QueueUrl=dlq, MessageBody='{"policy": "P-7"}', MessageAttributes=attributes)
    other = _fill(aws, dlq, 1)

    report = replay(
        "policies",
        _config(dlq, queue_url=source),
        SqsGateway(sqs),
        None,
        message_id=wanted["MessageId"],
        all_messages=False,
    )

    (outcome,) = report.outcomes
    assert outcome.ok and report.replayed == 1 and report.failed == 0
    assert outcome.detail.startswith("sent to policies-etl-input as ") and outcome.detail.endswith(", deleted")
    (arrived,) = _drain(aws, source)
    assert arrived["Body"] == '{"policy": "P-7"}'
    assert {
        name: value.get("StringValue", value.get("BinaryValue")) for name, value in arrived["MessageAttributes"].items()
    } == {
        "tenant": "acme",
        "attempt": "3",
        "digest": b"\x00\x01",
    }
    remaining = _drain(aws, dlq)
    assert [m["MessageId"] for m in remaining] == other
    summary = render_replay_report(report)["blocks"][0]["text"]["text"]
    assert summary == ":white_check_mark: Replayed 1 of 1 message from `policies` to `policies-etl-input`"


def test_replay_by_short_id_finds_a_message_behind_the_first_ten(aws: AwsClients) -> None:
    """moto always returns the first visible messages first: `find` must hold the ones it skips to get further."""
    source, dlq = _queues(aws)
    ids = _fill(aws, dlq, 25)
    gateway = SqsGateway(aws.client("sqs"))

    report = replay(
        "policies", _config(dlq, queue_url=source), gateway, None, message_id=ids[19][:8], all_messages=False
    )

    assert [o.message_id for o in report.outcomes] == [ids[19]] and report.outcomes[0].ok
    assert [json.loads(m["Body"]) for m in _drain(aws, source)] == [{"policy": 19}]
    assert _counts(aws, dlq) == (24, 0)  # the 20 skipped on the way are visible again at once


def test_replay_all_of_25(aws: AwsClients) -> None:
    source, dlq = _queues(aws)
    _fill(aws, dlq, 25)

    report = replay(
        "policies",
        _config(dlq, queue_url=source),
        SqsGateway(aws.client("sqs")),
        None,
        message_id=None,
        all_messages=True,
    )

    assert report.replayed == 25 and report.failed == 0 and report.note is None
    assert sorted(json.loads(m["Body"])["policy"] for m in _drain(aws, source)) == list(range(25))
    assert _counts(aws, dlq) == (0, 0)
    assert render_replay_report(report)["text"] == "Replayed 25 of 25 messages from policies to policies-etl-input"


def test_replay_all_of_an_empty_queue(aws: AwsClients) -> None:
    source, dlq = _queues(aws)
    report = replay(
        "policies",
        _config(dlq, queue_url=source),
        SqsGateway(aws.client("sqs")),
        None,
        message_id=None,
        all_messages=True,
    )
    assert report.outcomes == [] and "Nothing to replay" in render_replay_report(report)["text"]


def _state_machine(aws: AwsClients) -> str:
    definition = {"StartAt": "Load", "States": {"Load": {"Type": "Pass", "End": True}}}
    return str(
        aws.stepfunctions.create_state_machine(
            name="policies-etl", definition=json.dumps(definition), roleArn=ROLE_ARN
        )["stateMachineArn"]
    )


def test_replay_to_a_state_machine(aws: AwsClients) -> None:
    _, dlq = _queues(aws, redrive=False)
    sqs = aws.client("sqs")
    arn = _state_machine(aws)
    json_id = sqs.send_message(QueueUrl=dlq, MessageBody='{"policy": "P-9", "date": "2025-02-18"}')["MessageId"]
    text_id = sqs.send_message(QueueUrl=dlq, MessageBody="reload P-10")["MessageId"]

    report = replay(
        "policies",
        _config(dlq, state_machine_arn=arn),
        SqsGateway(sqs),
        aws.stepfunctions,
        message_id=None,
        all_messages=True,
    )

    assert report.replayed == 2 and report.target == "policies-etl"
    assert all(o.detail.startswith("started execution arn:aws:states:") for o in report.outcomes)
    executions = aws.stepfunctions.list_executions(stateMachineArn=arn)["executions"]
    inputs = {
        e["name"]: aws.stepfunctions.describe_execution(executionArn=e["executionArn"])["input"] for e in executions
    }
    assert inputs == {
        f"dlq-replay-{json_id}": '{"policy": "P-9", "date": "2025-02-18"}',
        f"dlq-replay-{text_id}": json.dumps({"message": "reload P-10"}),
    }
    assert _counts(aws, dlq) == (0, 0)


def test_a_message_replayed_before_meets_execution_already_exists(aws: AwsClients) -> None:
    _, dlq = _queues(aws, redrive=False)
    sqs = aws.client("sqs")
    arn = _state_machine(aws)
    message_id = sqs.send_message(QueueUrl=dlq, MessageBody='{"policy": "P-9"}')["MessageId"]
    aws.stepfunctions.start_execution(stateMachineArn=arn, name=f"dlq-replay-{message_id}", input='{"other": 1}')

    report = replay(
        "policies",
        _config(dlq, state_machine_arn=arn),
        SqsGateway(sqs),
        aws.stepfunctions,
        message_id=message_id,
        all_messages=False,
    )

    (outcome,) = report.outcomes
    assert not outcome.ok
    assert outcome.detail.startswith("send failed: ExecutionAlreadyExists: this message was replayed before")
    assert outcome.detail.endswith("; left in the queue")
    assert _counts(aws, dlq) == (1, 0)


def test_a_failing_target_leaves_the_message_where_it_was(aws: AwsClients, moto: Any) -> None:
    _, dlq = _queues(aws, redrive=False)
    message_id = _fill(aws, dlq, 1)[0]
    missing = f"{moto.endpoint_url}/123456789012/no-such-queue"

    report = replay(
        "policies",
        _config(dlq, queue_url=missing),
        SqsGateway(aws.client("sqs")),
        None,
        message_id=message_id,
        all_messages=False,
    )

    (outcome,) = report.outcomes
    assert not outcome.ok and report.failed == 1
    assert outcome.detail.startswith("send failed: AWS SendMessage failed: ")
    assert "does not exist" in outcome.detail and outcome.detail.endswith("; left in the queue")
    assert _counts(aws, dlq) == (1, 0)
    message = render_replay_report(report)
    assert message["text"].endswith("; 1 failed")
    assert message_id in message["blocks"][1]["text"]["text"]


def test_replay_all_stops_when_the_target_keeps_failing(aws: AwsClients, moto: Any) -> None:
    _, dlq = _queues(aws, redrive=False)
    _fill(aws, dlq, 15)
    queues = _config(dlq, queue_url=f"{moto.endpoint_url}/123456789012/no-such-queue")

    report = replay("policies", queues, SqsGateway(aws.client("sqs")), None, message_id=None, all_messages=True)

    assert report.replayed == 0 and report.failed == FAILURES_IN_A_ROW_MAX
    assert report.note == f"stopped after {FAILURES_IN_A_ROW_MAX} failures in a row; the rest were not tried"
    assert _counts(aws, dlq) == (15, 0)  # the failed ones were released when the run ended


class _DeleteFails(SqsGateway):
    def delete(self, url: str, receipt_handle: str) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no sqs:DeleteMessage"}}, "DeleteMessage")


def test_sent_but_not_deleted_is_not_a_success(aws: AwsClients) -> None:
    source, dlq = _queues(aws)
    message_id = _fill(aws, dlq, 1)[0]

    report = replay(
        "policies",
        _config(dlq, queue_url=source),
        _DeleteFails(aws.client("sqs")),
        None,
        message_id=message_id,
        all_messages=False,
    )

    (outcome,) = report.outcomes
    assert not outcome.ok and report.replayed == 0
    assert outcome.detail.startswith("sent to policies-etl-input as ")
    assert "but could not delete: AWS denied DeleteMessage (AccessDenied)" in outcome.detail
    assert outcome.detail.endswith("— it may be replayed twice")
    assert len(_drain(aws, source)) == 1
    assert _counts(aws, dlq) == (0, 1)  # still in the DLQ, hidden until its visibility timeout ends


def test_unknown_queue_and_message(aws: AwsClients) -> None:
    source, dlq = _queues(aws)
    _fill(aws, dlq, 3)
    queues = _config(dlq, queue_url=source)
    gateway = SqsGateway(aws.client("sqs"))

    with pytest.raises(DlqUsageError, match=r"^DLQ `orders` is not configured; known: claims, policies$"):
        list_dlq("orders", queues, gateway, now=datetime.now(UTC))
    with pytest.raises(DlqUsageError, match="known: claims, policies"):
        replay("orders", queues, gateway, None, message_id=None, all_messages=True)
    with pytest.raises(DlqUsageError, match="no dead-letter queues are configured"):
        list_dlqs(None, {}, gateway, now=datetime.now(UTC))
    with pytest.raises(
        DlqUsageError, match=r"^message m-1 is not in policies-dlq \(it may have been replayed or expired\)$"
    ):
        replay("policies", queues, gateway, None, message_id="m-1", all_messages=False)
    assert _counts(aws, dlq) == (3, 0)  # the messages read while looking are visible again


def test_fifo_dlq_to_fifo_target_keeps_the_group(aws: AwsClients) -> None:
    source, dlq = _queues(aws, fifo=True, redrive=False)
    sqs = aws.client("sqs")
    for index, group in enumerate(["policy-P-1", "policy-P-1", "policy-P-2"]):
        sqs.send_message(
            QueueUrl=dlq, MessageBody=f'{{"step": {index}}}', MessageGroupId=group, MessageDeduplicationId=f"d{index}"
        )

    report = replay(
        "policies", _config(dlq, queue_url=source), SqsGateway(sqs), None, message_id=None, all_messages=True
    )

    assert report.replayed == 3
    arrived = _drain(aws, source)
    assert [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in arrived] == [
        ('{"step": 0}', "policy-P-1"),
        ('{"step": 1}', "policy-P-1"),
        ('{"step": 2}', "policy-P-2"),
    ]
    originals = {o.message_id for o in report.outcomes}
    assert {m["Attributes"]["MessageDeduplicationId"] for m in arrived} == originals


def test_config_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="set exactly one of queue_url, state_machine_arn"):
        DlqTarget()
    with pytest.raises(ValueError, match="set exactly one of queue_url, state_machine_arn"):
        DlqTarget(queue_url="https://q", state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m")
    with pytest.raises(ValueError, match="round in a loop"):
        DlqConfig(queue_url="https://q/dlq", target=DlqTarget(queue_url="https://q/dlq"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ("list", None, None, False)),
        (["policies"], ("list", "policies", None, False)),
        (["replay", "policies", "--all"], ("replay", "policies", None, True)),
        (["replay", "policies", "0f1e2d3c"], ("replay", "policies", "0f1e2d3c", False)),
    ],
)
def test_parse_dlq_args(args: list[str], expected: tuple[str, str | None, str | None, bool]) -> None:
    assert parse_dlq_args(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["policies", "claims"],
        ["--all"],
        ["replay"],
        ["replay", "--all"],
        ["replay", "policies"],
        ["replay", "policies", "m-1", "--all"],
        ["replay", "policies", "--force"],
    ],
)
def test_parse_dlq_args_rejects(args: list[str]) -> None:
    with pytest.raises(
        DlqUsageError, match=r"usage: /etl dlq \[queue\] \| /etl dlq replay <queue> <message-id>\|--all$"
    ):
        parse_dlq_args(args)

"""Tests of alert normalisation on recorded/documented AWS payloads (tests/fixtures/alerts/SOURCES.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.model import EXCERPT_MAX, Alert
from bot.alerts.normalize import EMPTY_MESSAGE, UNRECOGNISED, normalise, payload_kind

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"

POLICIES_SM = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"
POLICIES_ALARM = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:policies-etl-executions-failed"
TOPIC = "arn:aws:sns:us-east-1:123456789012:etl-doctor-alerts"
ECS_CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/etl"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


def from_fixture(name: str, **kwargs: Any) -> Alert:
    return normalise((FIXTURES / name).read_bytes(), **kwargs)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_every_fixture_is_listed_in_sources() -> None:
    listed = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt"))
    assert len(files) >= 27
    assert [name for name in files if f"`{name}`" not in listed] == []


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt")))
def test_every_fixture_normalises_in_all_input_forms(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    alert = normalise(raw)
    assert normalise(raw.decode("utf-8")) == alert
    if name.endswith(".json"):
        assert normalise(json.loads(raw)) == alert
    assert alert.title
    assert len(alert.summary) <= EXCERPT_MAX
    assert alert.occurred_at is None or alert.occurred_at.utcoffset() is not None
    assert alert.pipeline is None and alert.category is None and alert.fingerprint is None
    assert all(isinstance(v, str) for v in (*alert.resources.values(), *alert.details.values()))
    assert Alert.from_json(json.loads(json.dumps(alert.to_json()))) == alert


# ------------------------------------------------------------------------------------------ Step Functions


def test_sfn_failed_with_ecs_oom_cause() -> None:
    alert = from_fixture("sfn_failed.json")
    assert (alert.source, alert.status, alert.severity) == ("stepfunctions", "failing", "error")
    assert alert.kind == "Step Functions execution FAILED"
    assert alert.title == "policies-etl: execution run-2025-02-18 FAILED"
    assert alert.resource == "policies-etl"
    assert alert.resources == {
        "state_machine_arn": POLICIES_SM,
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18",
        "execution_name": "run-2025-02-18",
    }
    assert alert.error == "States.TaskFailed"
    assert alert.cause is not None and alert.cause.startswith('{"Attachments"')
    assert alert.exit_code == 137
    assert alert.summary == (
        "Essential container in task exited — loader: OutOfMemoryError: Container killed due to memory usage (exit 137)"
    )
    assert alert.resolve_key == f"sfn:{POLICIES_SM}"
    assert alert.occurred_at == datetime(2025, 2, 18, 3, 12, 11, 574000, tzinfo=UTC)  # stopDate
    assert (alert.region, alert.account) == ("us-east-1", "123456789012")
    assert alert.subject == "Step Functions Execution Status Change"
    assert alert.delivery_id == "315c1398-40ff-a850-213b-158f73e60175"
    assert alert.details == {"status": "FAILED", "redrive_count": "0"}


def test_sfn_failed_with_lambda_error_cause() -> None:
    alert = from_fixture("sfn_failed_lambda.json")
    assert alert.status == "failing"
    assert alert.error == "KeyError"
    assert alert.summary == "KeyError: 'Records'"
    assert alert.exit_code is None
    assert alert.resolve_key == "sfn:arn:aws:states:us-east-1:123456789012:stateMachine:documents-etl"
    assert alert.title == "documents-etl: execution landing-2025-02-18T0520 FAILED"


def test_sfn_failed_with_glue_job_run_cause() -> None:
    alert = from_fixture("sfn_failed_glue.json")
    assert alert.summary == (
        "AnalysisException: Path does not exist: "
        "s3://sfc-notifications-on-pipeline-fail-datasets/domain=ASCWDS/dataset=workplace"
    )
    assert alert.exit_code is None
    assert alert.occurred_at == datetime(2022, 7, 25, 10, 9, 38, 921000, tzinfo=UTC)


def test_sfn_failed_old_event_without_error_cause_or_redrive() -> None:
    alert = from_fixture("sfn_failed_old.json")
    assert (alert.status, alert.severity) == ("failing", "error")
    assert alert.error is None and alert.cause is None and alert.exit_code is None
    assert alert.summary == ""
    assert alert.details == {"status": "FAILED"}
    assert alert.occurred_at == datetime(2019, 2, 26, 23, 52, 31, 881000, tzinfo=UTC)  # 1551225151881
    assert alert.resolve_key == f"sfn:{POLICIES_SM}"


@pytest.mark.parametrize(
    ("name", "status", "severity", "shown"),
    [
        ("sfn_timed_out.json", "failing", "error", "TIMED_OUT"),
        ("sfn_aborted.json", "failing", "error", "ABORTED"),
        ("sfn_succeeded.json", "resolved", "info", "SUCCEEDED"),
    ],
)
def test_sfn_terminal_statuses(name: str, status: str, severity: str, shown: str) -> None:
    alert = from_fixture(name)
    assert (alert.status, alert.severity) == (status, severity)
    assert alert.title.endswith(f" {shown}")
    assert alert.kind == f"Step Functions execution {shown}"
    assert alert.resolve_key == f"sfn:{POLICIES_SM}"
    assert alert.details["status"] == shown


@pytest.mark.parametrize("status", ["RUNNING", "PENDING_REDRIVE"])
def test_sfn_running_and_pending_redrive_are_info(status: str) -> None:
    event = load("sfn_failed.json")
    event["detail"].update(status=status, stopDate=None, error=None, cause=None, redriveCount=1)
    alert = normalise(event)
    assert (alert.status, alert.severity) == ("info", "info")
    assert alert.occurred_at == utc(2025, 2, 18, 3, 12, 11)  # no stopDate: the event time
    assert alert.details == {"status": status, "redrive_count": "1"}


def test_sfn_null_redrive_count_and_plain_text_cause() -> None:
    event = load("sfn_failed.json")
    event["detail"].update(
        redriveCount=None, error="States.Runtime", cause="An error occurred while executing the state 'Load'."
    )
    alert = normalise(event)
    assert alert.details == {"status": "FAILED"}
    assert alert.summary == "An error occurred while executing the state 'Load'."
    assert alert.exit_code is None


# ------------------------------------------------------------------------------------------------- alarms


def test_alarm_in_alarm() -> None:
    alert = from_fixture("alarm_alarm.json")
    assert (alert.source, alert.kind, alert.status, alert.severity) == (
        "cloudwatch_alarm",
        "CloudWatch alarm",
        "failing",
        "error",
    )
    assert alert.title == "policies-etl-executions-failed: ALARM (was OK)"
    assert alert.summary.startswith("Threshold Crossed: 1 out of the last 1 datapoints [1.0 (18/02/25 03:10:00)]")
    assert alert.resolve_key == f"alarm:{POLICIES_ALARM}"
    assert alert.resources == {
        "alarm_name": "policies-etl-executions-failed",
        "alarm_arn": POLICIES_ALARM,
        "state_machine_arn": POLICIES_SM,
    }
    assert alert.details["metric"] == "AWS/States ExecutionsFailed"
    assert alert.details["threshold"] == "1"
    assert alert.details["old_state"] == "OK"
    assert alert.details["region_name"] == "US East (N. Virginia)"
    assert (alert.region, alert.account) == ("us-east-1", "123456789012")  # region from the ARN, not the display name
    assert alert.occurred_at == datetime(2025, 2, 18, 3, 15, 42, 817000, tzinfo=UTC)
    assert alert.error is None and alert.exit_code is None


def test_alarm_ok_resolves_the_same_key() -> None:
    alarm, ok = from_fixture("alarm_alarm.json"), from_fixture("alarm_ok.json")
    assert (ok.status, ok.severity) == ("resolved", "info")
    assert ok.resolve_key == alarm.resolve_key
    assert ok.details["old_state"] == "ALARM"


def test_alarm_insufficient_data_is_info() -> None:
    alert = from_fixture("alarm_insufficient.json")
    assert (alert.status, alert.severity) == ("info", "info")
    assert alert.summary == "Insufficient Data: 1 datapoint was unknown."
    assert alert.details["metric"] == "PoliciesETL/KPI PremiumDiscrepancyPct"
    assert alert.details["threshold"] == "0.5"
    assert alert.resolve_key == "alarm:arn:aws:cloudwatch:us-east-1:123456789012:alarm:policies-etl-kpi-discrepancy"


def test_alarm_metric_math_uses_the_expression_and_sev1_is_critical() -> None:
    alert = from_fixture("alarm_metric_math.json")
    assert (alert.status, alert.severity) == ("failing", "critical")
    assert alert.details["metric"] == "100*ABS(m1-m2)/m2"
    assert alert.details["threshold"] == "0.5"
    assert "state_machine_arn" not in alert.resources


@pytest.mark.parametrize(
    ("name", "description", "severity"),
    [
        ("policies-critical-failures", None, "critical"),
        ("policies-etl-p1", None, "critical"),
        ("policies-etl", "SEV-1 page the on-call", "critical"),
        ("policies-etl-step1-failures", "p10 latency", "error"),
        ("policies-etl", "informational", "error"),
    ],
)
def test_alarm_critical_keywords(name: str, description: str | None, severity: str) -> None:
    message = load("alarm_alarm.json")
    message.update(AlarmName=name, AlarmDescription=description)
    assert normalise(message).severity == severity


def test_alarm_without_arn_resolves_by_name() -> None:
    message = load("alarm_alarm.json")
    del message["AlarmArn"]
    alert = normalise(message)
    assert alert.resolve_key == "alarm:policies-etl-executions-failed"
    assert alert.region is None
    assert alert.account == "123456789012"


def test_alarm_eventbridge_event() -> None:
    alert = from_fixture("alarm_eventbridge.json")
    sns = from_fixture("alarm_alarm.json")
    assert (alert.source, alert.status, alert.severity) == ("cloudwatch_alarm", "failing", "error")
    assert alert.resolve_key == sns.resolve_key
    assert alert.resources == sns.resources
    assert alert.summary == sns.summary
    assert alert.details["metric"] == "AWS/States ExecutionsFailed"
    assert alert.details["threshold"] == "1"  # from state.reasonData
    assert alert.details["old_state"] == "OK"
    assert alert.occurred_at == datetime(2025, 2, 18, 3, 15, 42, 989000, tzinfo=UTC)
    assert alert.subject == "CloudWatch Alarm State Change"
    assert alert.delivery_id == "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92"


def test_alarm_eventbridge_metric_math_event() -> None:
    alert = from_fixture("alarm_eventbridge_metric_math.json")
    assert alert.status == "failing"
    assert alert.title == "TotalNetworkTrafficTooHigh: ALARM (was INSUFFICIENT_DATA)"
    assert alert.details["metric"] == "SUM(METRICS())"
    assert alert.details["threshold"] == "10000"
    assert alert.resolve_key == "alarm:arn:aws:cloudwatch:us-east-1:123456789012:alarm:TotalNetworkTrafficTooHigh"


# ---------------------------------------------------------------------------------------------------- ECS


def test_ecs_task_stopped_oom() -> None:
    alert = from_fixture("ecs_task_stopped_oom.json")
    assert (alert.source, alert.status, alert.severity) == ("ecs", "failing", "error")
    assert alert.exit_code == 137
    assert alert.error == "exit 137"
    assert alert.summary == (
        "Essential container in task exited — loader: OutOfMemoryError: Container killed due to memory usage (exit 137)"
    )
    assert alert.resource == "policies-loader"
    assert alert.resources == {
        "cluster_arn": ECS_CLUSTER,
        "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/etl/5f1c9e0b2a7d4c3e9b8a6f4d2c1e0a97",
        "task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/policies-loader:14",
        "container": "loader",
    }
    assert alert.resolve_key == "ecs:etl/policies-loader"
    assert alert.occurred_at == datetime(2025, 2, 18, 3, 12, 10, 335000, tzinfo=UTC)  # stoppedAt
    assert alert.details["stop_code"] == "EssentialContainerExited"


def test_ecs_task_failed_to_start() -> None:
    alert = from_fixture("ecs_task_failed_to_start.json")
    assert (alert.status, alert.severity) == ("failing", "error")
    assert alert.exit_code is None
    assert alert.error == "TaskFailedToStart"
    assert alert.summary.startswith("CannotPullContainerError: pull image manifest has been retried 5 time(s)")
    assert alert.summary.count("CannotPullContainerError") == 1  # the container reason repeats the stop reason
    assert alert.resources["container"] == "transform"
    assert alert.resolve_key == "ecs:etl/claims-transform"


def test_ecs_task_stopped_with_exit_zero_is_info() -> None:
    alert = from_fixture("ecs_task_stopped_ok.json")
    assert (alert.status, alert.severity) == ("info", "info")
    assert alert.error is None and alert.exit_code is None
    assert "container" not in alert.resources
    assert alert.resolve_key == "ecs:etl/policies-loader"


@pytest.mark.parametrize(
    "reason",
    [
        "OutOfMemoryError: Container killed due to memory usage",
        "ResourceInitializationError: unable to pull secrets or registry auth",
    ],
)
def test_ecs_stop_reason_markers_fail_without_exit_code(reason: str) -> None:
    event = load("ecs_task_stopped_ok.json")
    for container in event["detail"]["containers"]:
        container.pop("exitCode")
    event["detail"]["stoppedReason"] = reason
    alert = normalise(event)
    assert alert.status == "failing"
    assert alert.error == "EssentialContainerExited"
    assert alert.summary == reason


def test_ecs_running_task_is_info() -> None:
    event = load("ecs_task_stopped_oom.json")
    event["detail"]["lastStatus"] = "RUNNING"
    alert = normalise(event)
    assert (alert.status, alert.severity) == ("info", "info")
    assert alert.kind == "ECS task RUNNING"


# --------------------------------------------------------------------------------------------------- Glue


@pytest.mark.parametrize(
    ("name", "status", "severity", "summary"),
    [
        ("glue_failed.json", "failing", "error", "should be given assume role permissions for Glue Service."),
        ("glue_timeout.json", "failing", "error", "Job run timed out"),
        ("glue_stopped.json", "failing", "warning", "Job run stopped"),
        ("glue_succeeded.json", "resolved", "info", "Job run succeeded"),
    ],
)
def test_glue_job_state_change(name: str, status: str, severity: str, summary: str) -> None:
    alert = from_fixture(name)
    assert (alert.source, alert.status, alert.severity) == ("glue", status, severity)
    assert summary in alert.summary
    assert alert.resolve_key == "glue:policies-curate"
    assert alert.resource == "policies-curate"
    assert alert.resources["glue_job"] == "policies-curate"
    assert alert.resources["glue_job_run_id"].startswith("jr_")
    assert alert.subject == "Glue Job State Change"


def test_glue_failed_time_and_ids() -> None:
    alert = from_fixture("glue_failed.json")
    assert alert.occurred_at == utc(2017, 9, 7, 6, 2, 3)
    assert alert.delivery_id == "abcdef01-1234-5678-9abc-def012345678"
    assert alert.title == "policies-curate: Glue job run FAILED"


# -------------------------------------------------------------------------------------------------- Batch


def test_batch_failed() -> None:
    alert = from_fixture("batch_failed.json")
    assert (alert.source, alert.status, alert.severity) == ("batch", "failing", "error")
    assert alert.exit_code == 1
    assert alert.error == "exit 1"
    assert "Essential container in task exited" in alert.summary
    assert alert.resolve_key == "batch:etl-standard/publish-outputs"
    assert alert.resources == {
        "batch_job_id": "5ce9a71e-2f18-4dd1-b9ac-9d3618774d3f",
        "batch_job_name": "publish-outputs",
        "batch_job_queue": "arn:aws:batch:us-east-1:123456789012:job-queue/etl-standard",
    }
    assert alert.occurred_at == datetime(2025, 2, 18, 6, 42, 19, 348000, tzinfo=UTC)  # stoppedAt
    assert alert.details["log_stream"] == "publish-outputs/default/7c7cd09e-33c0-44f5-919a-2f66e0b8e995"


def test_batch_succeeded_resolves_the_same_key() -> None:
    alert = from_fixture("batch_succeeded.json")
    assert (alert.status, alert.severity) == ("resolved", "info")
    assert alert.exit_code is None and alert.error is None
    assert alert.resolve_key == from_fixture("batch_failed.json").resolve_key


# ---------------------------------------------------------------------------------------------------- SNS


def test_sns_envelope_unwraps_the_alarm_and_keeps_message_id_and_topic() -> None:
    alert = from_fixture("sns_envelope_wrapping_alarm.json")
    inner = from_fixture("alarm_alarm.json")
    assert alert.delivery_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
    assert alert.resources == {**inner.resources, "topic_arn": TOPIC}
    assert alert.subject == 'ALARM: "policies-etl-executions-failed" in US East (N. Virginia)'
    assert alert.with_changes(resources=inner.resources, subject="", delivery_id=None) == inner


def test_eventbridge_event_inside_an_http_sns_envelope() -> None:
    envelope = load("sns_envelope_wrapping_alarm.json")
    envelope.pop("Subject")  # EventBridge → SNS sends no Subject
    envelope["Message"] = (FIXTURES / "sfn_failed.json").read_text(encoding="utf-8")
    alert = normalise(json.dumps(envelope))
    assert alert.source == "stepfunctions"
    assert alert.exit_code == 137
    assert alert.delivery_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"  # the SNS MessageId, not the event id
    assert alert.subject == "Step Functions Execution Status Change"
    assert alert.resources["topic_arn"] == TOPIC
    assert payload_kind(envelope) == "sns"


def test_eventbridge_event_inside_a_lambda_sns_record() -> None:
    alert = from_fixture("sns_lambda_records_ecs.json")
    assert (alert.source, alert.status) == ("ecs", "failing")
    assert alert.exit_code == 2
    assert alert.resources["container"] == "app"
    assert alert.resources["topic_arn"] == "arn:aws:sns:eu-central-1:111111111111:ecs_events_test202011"
    assert alert.resolve_key == "ecs:test/example-api-v1"
    assert alert.delivery_id == "3c886339-b6b9-5995-a678-3995b0d8d0f9"
    assert alert.subject == "ECS Task State Change"  # Subject is null in the record


def test_sns_envelope_of_plain_text_is_generic_with_topic() -> None:
    envelope = load("sns_envelope_wrapping_alarm.json")
    envelope.update(Subject="Nightly load", Message="load failed: disk full")
    alert = normalise(envelope)
    assert (alert.source, alert.title, alert.summary) == ("generic", "Nightly load", "load failed: disk full")
    assert alert.delivery_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
    assert alert.resources == {"topic_arn": TOPIC}


def test_sns_envelope_with_parameters_overriding() -> None:
    alert = from_fixture("sns_envelope_wrapping_alarm.json", subject="mine", delivery_id="d-1")
    assert (alert.subject, alert.delivery_id) == ("mine", "d-1")


def test_sns_inside_sns_is_unwrapped_a_bounded_number_of_times() -> None:
    payload: Any = load("alarm_alarm.json")
    for level in range(2):
        payload = {"Type": "Notification", "MessageId": f"m{level}", "TopicArn": TOPIC, "Message": json.dumps(payload)}
    assert normalise(payload).source == "cloudwatch_alarm"
    for level in range(5):
        payload = {"Type": "Notification", "MessageId": f"n{level}", "TopicArn": TOPIC, "Message": json.dumps(payload)}
    assert normalise(payload).source == "generic"


# ----------------------------------------------------------------------------------- subject, delivery id


def test_subject_override_and_default_for_eventbridge() -> None:
    assert from_fixture("glue_failed.json").subject == "Glue Job State Change"
    assert from_fixture("glue_failed.json", subject="FAILED: curate").subject == "FAILED: curate"
    assert from_fixture("alarm_alarm.json", subject='ALARM: "x"').subject == 'ALARM: "x"'


def test_delivery_id_override() -> None:
    assert from_fixture("sfn_failed.json").delivery_id == "315c1398-40ff-a850-213b-158f73e60175"
    assert from_fixture("sfn_failed.json", delivery_id="sns-1").delivery_id == "sns-1"
    assert from_fixture("alarm_alarm.json").delivery_id is None
    assert from_fixture("alarm_alarm.json", delivery_id="sns-2").delivery_id == "sns-2"
    assert from_fixture("generic_text.txt", delivery_id="sns-3").delivery_id == "sns-3"


# ------------------------------------------------------------------------------------------------ generic


def test_generic_text() -> None:
    alert = from_fixture("generic_text.txt")
    assert (alert.source, alert.status, alert.severity) == ("generic", "failing", "warning")
    assert alert.title == "Nightly reconciliation for policies-etl did not finish"
    assert "psycopg.OperationalError" in alert.summary
    assert alert.resolve_key is None and alert.occurred_at is None


def test_generic_json_is_pretty_printed() -> None:
    alert = from_fixture("generic_json.json")
    assert (alert.source, alert.title) == ("generic", UNRECOGNISED)
    assert alert.summary.startswith('{\n  "Type": "SubscriptionConfirmation",')
    assert payload_kind((FIXTURES / "generic_json.json").read_bytes()) == "generic"


def test_unknown_eventbridge_source_is_generic_titled_by_detail_type() -> None:
    alert = from_fixture("generic_eventbridge_health.json")
    assert (alert.source, alert.title, alert.subject) == ("generic", "AWS Health Event", "AWS Health Event")
    assert '"eventTypeCode": "AWS_ELASTICLOADBALANCING_API_ISSUE"' in alert.summary
    assert alert.occurred_at == utc(2016, 6, 5, 6, 27, 57)
    assert alert.delivery_id is None


def test_generic_title_uses_the_first_line_cut_at_150() -> None:
    alert = normalise("\n\n   " + "x" * 400 + "\nsecond line")
    assert alert.title == "x" * 149 + "…"
    assert normalise("some text", subject="Subject wins").title == "Subject wins"


@pytest.mark.parametrize("payload", [b"", "", "   \n\t ", {}, b"\xef\xbb\xbf"])
def test_empty_payloads_still_alert(payload: Any) -> None:
    alert = normalise(payload)
    assert alert.source == "generic" and alert.status == "failing"
    if payload == {}:
        assert alert.summary == "{}"
    else:
        assert alert.summary == EMPTY_MESSAGE
    assert alert.title == UNRECOGNISED


def test_non_utf8_bytes_are_replaced_not_fatal() -> None:
    alert = normalise(b"job \xff\xfe failed \x80 badly")
    assert alert.source == "generic"
    assert alert.summary == "job \ufffd\ufffd failed \ufffd badly"
    event = (FIXTURES / "glue_failed.json").read_bytes().replace(b"Glue_Role", b"Glue_\xffRole")
    assert normalise(event).source == "glue"


def test_invalid_json_is_text() -> None:
    alert = normalise('{"AlarmName": "x", ')
    assert alert.source == "generic"
    assert alert.summary == '{"AlarmName": "x",'
    assert alert.title == '{"AlarmName": "x",'


def test_huge_json_excerpt_is_bounded() -> None:
    document = {"records": [{"id": i, "payload": "y" * 200} for i in range(5000)]}
    alert = normalise(json.dumps(document))
    assert len(alert.summary) == EXCERPT_MAX
    assert alert.summary.endswith("…")
    assert alert.summary.startswith('{\n  "records": [\n    {\n      "id": 0,')


def test_huge_text_excerpt_is_bounded() -> None:
    alert = normalise("line\n" * 100_000)
    assert len(alert.summary) == EXCERPT_MAX and alert.summary.endswith("…")


def test_deeply_nested_json_never_raises() -> None:
    text = "[" * 100_000 + "]" * 100_000  # deeper than the JSON parser allows: shown as text
    alert = normalise(text)
    assert alert.source == "generic" and len(alert.summary) <= EXCERPT_MAX
    nested: Any = {}
    for _ in range(5_000):  # deeper than the encoder recurses: a placeholder, not an exception
        nested = {"a": nested}
    alert = normalise(nested)
    assert alert.source == "generic" and 0 < len(alert.summary) <= EXCERPT_MAX
    moderately: Any = "leaf"
    for _ in range(200):
        moderately = [moderately]
    assert normalise(json.dumps(moderately)).summary.startswith("[\n  [\n    [")


def test_malformed_known_shapes_fall_back_instead_of_raising() -> None:
    broken: list[Any] = [
        {"source": "aws.states", "detail-type": "Step Functions Execution Status Change", "detail": "oops"},
        {"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": {"containers": "x", "lastStatus": 5}},
        {"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {"attempts": [None, 3]}},
        {"AlarmName": ["x"], "NewStateValue": None, "Trigger": {"Metrics": "x"}},
        {"Type": "Notification", "Message": None, "MessageId": 7},
        {"Records": [{"Sns": {"Type": "Notification", "Message": 12}}]},
        {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "detail": {"state": []}},
        [1, 2, 3],
        12345,
        None,
    ]
    for payload in broken:
        alert = normalise(payload)
        assert isinstance(alert, Alert)
        assert alert.title


# -------------------------------------------------------------------------------------------- payload_kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sfn_failed.json", "eventbridge:aws.states"),
        ("alarm_eventbridge.json", "eventbridge:aws.cloudwatch"),
        ("ecs_task_stopped_oom.json", "eventbridge:aws.ecs"),
        ("glue_failed.json", "eventbridge:aws.glue"),
        ("batch_failed.json", "eventbridge:aws.batch"),
        ("generic_eventbridge_health.json", "eventbridge:aws.health"),
        ("alarm_alarm.json", "cloudwatch_alarm"),
        ("sns_envelope_wrapping_alarm.json", "sns"),
        ("sns_lambda_records_ecs.json", "sns"),
        ("generic_json.json", "generic"),
        ("generic_text.txt", "generic"),
    ],
)
def test_payload_kind(name: str, kind: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    assert payload_kind(raw) == kind
    assert payload_kind(raw.decode("utf-8")) == kind


def test_payload_kind_never_raises() -> None:
    assert payload_kind(b"\xff\xfe") == "generic"
    assert payload_kind("") == "generic"
    assert payload_kind({}) == "generic"
    assert payload_kind(None) == "generic"  # type: ignore[arg-type]

"""`etl-doctor sns verify`, `alerts preview` and `alerts pending`, run as a user runs them (a subprocess).

`sns verify` is checked against real AWS-signed notifications (tests/fixtures/sns, see its SOURCES.md) with
the certificate each SigningCertURL served, and against tampered copies of them. `alerts preview` is run on
every payload in tests/fixtures/alerts. `alerts pending` reads a SQLite store filled through `AlertIntake`.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.intake import AlertIntake
from bot.alerts.normalize import normalise
from bot.config import ProjectConfig
from bot.store.db import Store
from tests.integration.test_cli import run
from tests.support.alerts import FIXTURES, MACHINE, fixture, sfn_event

SNS = Path(__file__).resolve().parents[1] / "fixtures" / "sns"
RUBY_CERT = SNS / "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
JAVA_CERT = SNS / "SimpleNotificationService-bb750dd426d95ee9390147a5624348ee.pem"
REAL = [
    ("aws_sdk_ruby_notification_v1.json", RUBY_CERT, "1"),
    ("aws_sdk_ruby_notification_v2.json", RUBY_CERT, "2"),
    ("aws_sdk_java_v2_notification_subject_v1.json", JAVA_CERT, "1"),
]
ALGORITHM = {"1": "SHA1withRSA", "2": "SHA256withRSA"}


def real(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SNS / name).read_text(encoding="utf-8"))
    return loaded


def later_timestamp(text: str) -> str:
    moment = datetime.fromisoformat(text) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr, result.stderr


# ---------------------------------------------------------------- sns verify


@pytest.mark.parametrize(("name", "cert", "version"), REAL, ids=[r[0] for r in REAL])
def test_sns_verify_accepts_real_aws_signed_notifications(name: str, cert: Path, version: str) -> None:
    assert real(name)["SignatureVersion"] == version
    result = run("sns", "verify", str(SNS / name), "--cert-file", str(cert))
    assert (result.returncode, result.stdout) == (0, "valid\n"), result.stderr
    assert result.stderr == ""


TAMPERS: dict[str, Callable[[dict[str, Any]], str]] = {}


def _tamper(name: str) -> Callable[[Callable[[dict[str, Any]], str]], Callable[[dict[str, Any]], str]]:
    def register(function: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
        TAMPERS[name] = function
        return function

    return register


def _bad_signature(document: dict[str, Any]) -> str:
    version = document["SignatureVersion"]
    return f"signature does not match (SignatureVersion {version}, {ALGORITHM[version]})"


@_tamper("message")
def _message(document: dict[str, Any]) -> str:
    document["Message"] += "!"
    return _bad_signature(document)


@_tamper("subject")  # changed on the Java message (which has one), added to the Ruby ones (which have none)
def _subject(document: dict[str, Any]) -> str:
    document["Subject"] = "a subject nobody signed"
    return _bad_signature(document)


@_tamper("timestamp")
def _timestamp(document: dict[str, Any]) -> str:
    document["Timestamp"] = later_timestamp(document["Timestamp"])
    return _bad_signature(document)


@_tamper("cert-host")
def _cert_host(document: dict[str, Any]) -> str:
    document["SigningCertURL"] = document["SigningCertURL"].replace("amazonaws.com/", "amazonaws.com.evil.example/")
    host = document["SigningCertURL"].split("/")[2]
    return f"SigningCertURL host {host} is not sns.<region>.amazonaws.com"


@_tamper("cert-http")
def _cert_http(document: dict[str, Any]) -> str:
    document["SigningCertURL"] = document["SigningCertURL"].replace("https://", "http://")
    return "SigningCertURL must use https, got http"


@_tamper("signature-missing")
def _signature_missing(document: dict[str, Any]) -> str:
    del document["Signature"]
    return "not an SNS message: missing field Signature"


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
@pytest.mark.parametrize(("name", "cert", "version"), REAL, ids=[r[0] for r in REAL])
def test_sns_verify_rejects_tampered_copies_with_the_reason(
    tmp_path: Path, name: str, cert: Path, version: str, tamper: str
) -> None:
    document = real(name)
    expected = TAMPERS[tamper](document)
    copy = tmp_path / name
    copy.write_text(json.dumps(document, indent=2), encoding="utf-8")
    result = run("sns", "verify", str(copy), "--cert-file", str(cert))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout == f"invalid: {expected}\n"


def test_sns_verify_rejects_a_copy_whose_signed_subject_was_removed(tmp_path: Path) -> None:
    document = real("aws_sdk_java_v2_notification_subject_v1.json")
    del document["Subject"]
    copy = tmp_path / "no-subject.json"
    copy.write_text(json.dumps(document), encoding="utf-8")
    result = run("sns", "verify", str(copy), "--cert-file", str(JAVA_CERT))
    assert (result.returncode, result.stdout) == (
        1,
        "invalid: signature does not match (SignatureVersion 1, SHA1withRSA)\n",
    )


def test_sns_verify_with_the_other_certificate_fails() -> None:
    result = run("sns", "verify", str(SNS / "aws_sdk_ruby_notification_v2.json"), "--cert-file", str(JAVA_CERT))
    assert result.returncode == 1
    assert result.stdout == "invalid: signature does not match (SignatureVersion 2, SHA256withRSA)\n"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello, not JSON", "not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"", "not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"\xff\xfe\x00binary", "not JSON: the body is not UTF-8 (invalid start byte at byte 0)"),
        (b'["Type", "Notification"]', "not an SNS message: a JSON object is expected, got list"),
        (b'{"Type": "Notification"}', "not an SNS message: missing field MessageId"),
        (b'{"Type": "Bogus"}', "not an SNS message: Type 'Bogus' is not one of Notification, "),
    ],
    ids=["text", "empty", "not-utf8", "array", "incomplete", "unknown-type"],
)
def test_sns_verify_of_a_file_that_is_not_an_sns_message_says_why(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "message.json"
    path.write_bytes(content)
    result = run("sns", "verify", str(path), "--cert-file", str(RUBY_CERT))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout.startswith(f"invalid: {reason}")


def test_sns_verify_of_deeply_nested_json_says_why_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text("[" * 50_000 + "]" * 50_000, encoding="utf-8")  # valid JSON, too deep for json.loads
    result = run("sns", "verify", str(path), "--cert-file", str(RUBY_CERT))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout.startswith("invalid: ")


def test_sns_verify_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    result = run("sns", "verify", str(missing), "--cert-file", str(RUBY_CERT))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout == f"invalid: cannot read {missing}: No such file or directory\n"


def test_sns_verify_with_a_missing_or_bad_certificate_file(tmp_path: Path) -> None:
    message = str(SNS / "aws_sdk_ruby_notification_v2.json")
    missing = tmp_path / "missing.pem"
    result = run("sns", "verify", message, "--cert-file", str(missing))
    no_traceback(result)
    assert (result.returncode, result.stdout) == (
        1,
        f"invalid: cannot read certificate file {missing}: No such file or directory\n",
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", encoding="utf-8")
    result = run("sns", "verify", message, "--cert-file", str(garbage))
    no_traceback(result)
    assert (result.returncode, result.stdout) == (
        1,
        f"invalid: certificate file {garbage} is not a PEM X.509 certificate\n",
    )


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A loopback TCP port that records every connection made to it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    connections: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, peer = server.accept()
            except OSError:
                continue
            connections.append(f"{peer[0]}:{peer[1]}")
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join(5)
    server.close()


def test_without_a_cert_file_the_url_is_checked_before_any_fetch(
    tmp_path: Path, listener: tuple[int, list[str]]
) -> None:
    port, connections = listener
    path = tmp_path / "message.json"
    # a host that is not SNS's: refused by the URL check (a fetch would have failed with "could not fetch")
    document = real("aws_sdk_ruby_notification_v2.json")
    document["SigningCertURL"] = (
        "https://certs.evil.example/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
    )
    path.write_text(json.dumps(document), encoding="utf-8")
    result = run("sns", "verify", str(path))
    no_traceback(result)
    assert (result.returncode, result.stdout) == (
        1,
        "invalid: SigningCertURL host certs.evil.example is not sns.<region>.amazonaws.com\n",
    )
    # a certificate URL on a listening loopback port: refused without a single connection to it
    for url in (f"https://127.0.0.1:{port}/cert.pem", f"http://127.0.0.1:{port}/cert.pem"):
        document["SigningCertURL"] = url
        path.write_text(json.dumps(document), encoding="utf-8")
        result = run("sns", "verify", str(path))
        no_traceback(result)
        assert result.returncode == 1
        assert result.stdout.startswith("invalid: SigningCertURL ")
    assert connections == []


# ---------------------------------------------------------------- alerts preview

# (payload kind, alert source) of each shape of payload
ALARM = ("cloudwatch_alarm", "cloudwatch_alarm")
ALARM_EVENT = ("eventbridge:aws.cloudwatch", "cloudwatch_alarm")
BATCH = ("eventbridge:aws.batch", "batch")
ECS = ("eventbridge:aws.ecs", "ecs")
GLUE = ("eventbridge:aws.glue", "glue")
SFN = ("eventbridge:aws.states", "stepfunctions")
GENERIC = ("generic", "generic")

# fixture → ((payload kind, alert source), status, Slack header for failing alerts)
PREVIEWS: dict[str, tuple[tuple[str, str], str, str | None]] = {
    "alarm_alarm.json": (ALARM, "failing", "policies-etl-executions-failed: ALARM (was OK)"),
    "alarm_eventbridge.json": (ALARM_EVENT, "failing", "policies-etl-executions-failed: ALARM (was OK)"),
    "alarm_eventbridge_metric_math.json": (
        ALARM_EVENT,
        "failing",
        "TotalNetworkTrafficTooHigh: ALARM (was INSUFFICIENT_DATA)",
    ),
    "alarm_insufficient.json": (ALARM, "info", None),
    "alarm_metric_math.json": (ALARM, "failing", "policies-etl-kpi-discrepancy-total: ALARM (was OK)"),
    "alarm_ok.json": (ALARM, "resolved", None),
    "batch_failed.json": (BATCH, "failing", "publish-outputs: Batch job FAILED (exit 1)"),
    "batch_succeeded.json": (BATCH, "resolved", None),
    "ecs_task_failed_to_start.json": (
        ECS,
        "failing",
        "claims-transform: task d729507e9c0946579ff8ed2eb86a603c STOPPED (TaskFailedToStart)",
    ),
    "ecs_task_stopped_ok.json": (ECS, "info", None),
    "ecs_task_stopped_oom.json": (
        ECS,
        "failing",
        "policies-loader: task 5f1c9e0b2a7d4c3e9b8a6f4d2c1e0a97 STOPPED (exit 137)",
    ),
    "generic_eventbridge_health.json": (("eventbridge:aws.health", "generic"), "failing", "AWS Health Event"),
    "generic_json.json": (GENERIC, "failing", "Unrecognised notification"),
    "generic_text.txt": (GENERIC, "failing", "Nightly reconciliation for policies-etl did not finish"),
    "glue_failed.json": (GLUE, "failing", "policies-curate: Glue job run FAILED"),
    "glue_stopped.json": (GLUE, "failing", "policies-curate: Glue job run STOPPED"),
    "glue_succeeded.json": (GLUE, "resolved", None),
    "glue_timeout.json": (GLUE, "failing", "policies-curate: Glue job run TIMEOUT"),
    "sfn_aborted.json": (SFN, "failing", "policies-etl: execution run-2019-02-26 ABORTED"),
    "sfn_failed.json": (SFN, "failing", "policies-etl: execution run-2025-02-18 FAILED"),
    "sfn_failed_glue.json": (
        SFN,
        "failing",
        "DataEngineeringPipeline: execution 680d6ef4-66af-eba4-8c4f-6549380eb9a5 FAILED",
    ),
    "sfn_failed_lambda.json": (SFN, "failing", "documents-etl: execution landing-2025-02-18T0520 FAILED"),
    "sfn_failed_old.json": (SFN, "failing", "policies-etl: execution run-2019-02-26 FAILED"),
    "sfn_succeeded.json": (SFN, "resolved", None),
    "sfn_timed_out.json": (SFN, "failing", "policies-etl: execution run-2019-02-26 TIMED_OUT"),
    "sns_envelope_wrapping_alarm.json": (
        ("sns", "cloudwatch_alarm"),
        "failing",
        "policies-etl-executions-failed: ALARM (was OK)",
    ),
    "sns_lambda_records_ecs.json": (
        ("sns", "ecs"),
        "failing",
        "example-api-v1: task a6eaf0150a4248dAA1bcbd688121014e STOPPED (exit 2)",
    ),
}


def test_every_alert_fixture_has_a_preview_case() -> None:
    assert set(PREVIEWS) == {p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt")}


def _assert_preview(stdout: str, kind: str, source: str, status: str, header: str | None) -> None:
    lines = stdout.splitlines()
    assert lines[0].startswith(f"payload: {kind} → {source} alert, {status}, severity ")
    assert lines[3] == "channel: (none: set default_channel in etl-doctor.yml)"
    if status == "failing":
        assert header is not None
        start = lines.index(header)
        assert lines[start + 1] == "═" * min(72, max(3, len(header)))  # rendered as a Slack header block
    elif status == "resolved":
        assert lines[-1].startswith("resolves open alerts with key ")
    else:
        assert lines[-1].startswith("noted in the thread of an open alert with key ")


@pytest.mark.parametrize("name", sorted(PREVIEWS))
def test_alerts_preview_of_every_fixture(tmp_path: Path, name: str) -> None:
    (kind, source), status, header = PREVIEWS[name]
    path = FIXTURES / name
    result = run("alerts", "preview", str(path), cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    _assert_preview(result.stdout, kind, source, status, header)

    as_json = run("alerts", "preview", "--json", str(path), cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["payload_kind"] == kind
    assert document["channel"] is None
    assert document["alert"]["source"] == source
    assert document["alert"]["status"] == status
    if header is not None:
        assert document["alert"]["title"] in header
        assert header.endswith(document["alert"]["title"])
        # the status line of the rendered message names the alert's kind
        lines = result.stdout.splitlines()
        assert document["alert"]["kind"] in lines[lines.index(header) + 2]


@pytest.mark.parametrize(
    ("content", "header"),
    [(b"", "Unrecognised notification"), (b"\xff\xfe\x00\x81binary payload\n", "binary payload")],
    ids=["empty", "not-utf8"],
)
def test_alerts_preview_of_an_empty_or_binary_file(tmp_path: Path, content: bytes, header: str) -> None:
    path = tmp_path / "payload.bin"
    path.write_bytes(content)
    result = run("alerts", "preview", str(path), cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0
    assert result.stdout.startswith("payload: generic → generic alert, failing, severity warning\n")
    assert header in result.stdout
    as_json = run("alerts", "preview", "--json", str(path), cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    alert = json.loads(as_json.stdout)["alert"]
    assert (alert["source"], alert["status"]) == ("generic", "failing")
    assert header in alert["title"]


def test_alerts_preview_of_a_critical_alarm_shows_a_symbol_not_an_emoji_code(tmp_path: Path) -> None:
    # alarm_metric_math's description says "Sev1": severity critical, whose Slack icon is :rotating_light:
    result = run("alerts", "preview", str(FIXTURES / "alarm_metric_math.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "severity critical" in result.stdout.splitlines()[0]
    lines = result.stdout.splitlines()
    status_line = lines[lines.index("policies-etl-kpi-discrepancy-total: ALARM (was OK)") + 2]
    assert status_line.endswith(" CloudWatch alarm")
    assert not status_line.startswith(":"), f"raw emoji code on the terminal: {status_line!r}"


PROJECT = f"""
default_channel: "#etl-alerts"
pipelines:
  policies-etl:
    state_machine_arn: {MACHINE}
    channel: "#policies-oncall"
  documents-etl:
    state_machine_arn: arn:aws:states:us-east-1:123456789012:stateMachine:documents-etl
"""


@pytest.mark.parametrize(
    ("name", "pipeline", "channel"),
    [
        ("sfn_failed.json", "policies-etl", "#policies-oncall"),  # by state machine, the pipeline's channel
        ("sfn_failed_lambda.json", "documents-etl", "#etl-alerts"),  # by state machine, default_channel
        ("glue_failed.json", None, "#etl-alerts"),  # no pipeline: default_channel
    ],
)
def test_alerts_preview_with_a_project_file_names_pipeline_and_channel(
    tmp_path: Path, name: str, pipeline: str | None, channel: str
) -> None:
    config = tmp_path / "project.yml"
    config.write_text(PROJECT, encoding="utf-8")
    result = run("alerts", "preview", "--config", str(config), str(FIXTURES / name), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith(f"pipeline: {pipeline or '(none)'} · error class: ")
    assert lines[3] == f"channel: {channel}"
    as_json = run("alerts", "preview", "--config", str(config), "--json", str(FIXTURES / name), cwd=tmp_path)
    document = json.loads(as_json.stdout)
    assert document["channel"] == channel
    assert document["alert"]["pipeline"] == pipeline
    if pipeline is not None:
        assert document["alert"]["fingerprint"].startswith(f"{pipeline}:")


def test_alerts_preview_of_a_missing_file_or_project_file(tmp_path: Path) -> None:
    result = run("alerts", "preview", str(tmp_path / "nothing.json"), cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot read {tmp_path / 'nothing.json'}: No such file or directory"
    result = run("alerts", "preview", "--config", str(tmp_path / "nope.yml"), str(FIXTURES / "sfn_failed.json"))
    no_traceback(result)
    assert result.returncode == 2
    assert str(tmp_path / "nope.yml") in result.stderr and "file not found" in result.stderr


# ---------------------------------------------------------------- alerts pending

RECEIVED_AT = datetime(2025, 2, 18, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def filled_store(tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """A SQLite store holding alerts stored by AlertIntake (no Slack): ids by name."""
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = Store(url)
    store.upgrade()
    project = ProjectConfig.model_validate(
        {"default_channel": "#etl-alerts", "pipelines": {"policies-etl": {"state_machine_arn": MACHINE}}}
    )
    moments = iter(RECEIVED_AT + timedelta(minutes=n) for n in range(100))
    intake = AlertIntake(store, project, clock=lambda: next(moments))
    ids: dict[str, int] = {}

    def accept(name: str, payload: dict[str, Any]) -> None:
        result = intake.accept(normalise(payload), payload)
        assert result.outcome == "stored" and result.alert_id is not None
        ids[name] = result.alert_id

    accept("sfn", sfn_event("FAILED", "run-1"))
    accept("glue", fixture("glue_failed.json"))
    accept("ecs", fixture("ecs_task_stopped_oom.json"))
    accept("batch", fixture("batch_failed.json"))
    accept("recorded", fixture("alarm_insufficient.json"))  # info, nothing open for it: only recorded
    with store.transaction() as uow:
        uow.alerts.record_attempt(ids["ecs"], "channel_not_found", give_up=True)
        uow.alerts.mark_posted(ids["batch"], "1739848400.000100")
    store.dispose()
    yield url, ids


def test_alerts_pending_lists_waiting_and_undeliverable_alerts(
    tmp_path: Path, filled_store: tuple[str, dict[str, int]]
) -> None:
    url, ids = filled_store
    result = run("alerts", "pending", env={"DATABASE_URL": url}, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "2 waiting to be posted, 1 undeliverable, 1 posted"
    assert lines[1:] == [
        f"#{ids['sfn']} 2025-02-18 03:15:00 waiting #etl-alerts policies-etl: execution run-1 FAILED",
        f"#{ids['glue']} 2025-02-18 03:16:00 waiting #etl-alerts policies-curate: Glue job run FAILED",
        f"#{ids['ecs']} 2025-02-18 03:17:00 UNDELIVERABLE #etl-alerts "
        "policies-loader: task 5f1c9e0b2a7d4c3e9b8a6f4d2c1e0a97 STOPPED (exit 137) — channel_not_found",
    ]


def test_alerts_pending_limit_shows_the_oldest_but_counts_all(
    tmp_path: Path, filled_store: tuple[str, dict[str, int]]
) -> None:
    url, ids = filled_store
    result = run("alerts", "pending", "--limit", "1", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "2 waiting to be posted, 1 undeliverable, 1 posted"
    assert len(lines) == 2 and lines[1].startswith(f"#{ids['sfn']} ")


def test_alerts_pending_on_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = run("alerts", "pending", env={"DATABASE_URL": url}, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0 waiting to be posted, 0 undeliverable, 0 posted\n"

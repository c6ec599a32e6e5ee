"""Routing, fingerprints and the alert messages (pure: no store, no Slack)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.alerts.model import Alert, Enrichment, IncidentView
from bot.alerts.normalize import normalise
from bot.alerts.routing import channel_for, route
from bot.config import ConfigError, ProjectConfig, load_settings
from bot.render.alerts import render_alert, render_repeats, render_resolution
from bot.render.limits import MESSAGE_BLOCKS_MAX, SECTION_TEXT_MAX
from bot.render.terminal import render_message
from tests.support.alerts import FIXTURES, MACHINE, fixture, sfn_event
from tests.support.golden import assert_golden

T0 = datetime(2025, 2, 18, 3, 12, tzinfo=UTC)
PROJECT = ProjectConfig.model_validate(
    {
        "default_channel": "#etl-alerts",
        "pipelines": {
            "policies-etl": {
                "state_machine_arn": MACHINE,
                "channel": "#policies",
                "resources": ["policies-loader", "policies-curate", "policies-etl-*"],
            },
            "billing-etl": {"state_machine_arn": MACHINE.replace("policies", "billing")},
        },
        "alerts": {
            "routes": [
                {"channel": "#etl-pager", "severities": ["critical"]},
                {"channel": "#billing-alerts", "pipelines": ["billing-etl"]},
            ]
        },
    }
)


def routed(payload: object) -> Alert:
    return route(normalise(payload), PROJECT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "pipeline"),
    [
        ("sfn_failed.json", "policies-etl"),
        ("ecs_task_stopped_oom.json", "policies-etl"),  # task family policies-loader
        ("glue_failed.json", "policies-etl"),  # job policies-curate
        ("alarm_alarm.json", "policies-etl"),  # alarm name policies-etl-*
        ("batch_failed.json", None),
        ("generic_text.txt", None),
    ],
)
def test_alerts_find_their_pipeline(name: str, pipeline: str | None) -> None:
    raw = fixture(name) if name.endswith(".json") else (FIXTURES / name).read_bytes()
    assert routed(raw).pipeline == pipeline


def test_fingerprints_group_runs_of_one_failure_and_separate_others() -> None:
    runs = {routed(sfn_event("FAILED", f"run-{day}")).fingerprint for day in range(5)}
    assert len(runs) == 1
    lambda_failure = fixture("sfn_failed_lambda.json")
    lambda_failure["detail"]["stateMachineArn"] = MACHINE
    assert routed(lambda_failure).fingerprint not in runs
    other_machine = routed(sfn_event("FAILED", "run-1", machine=MACHINE.replace("policies", "billing")))
    assert other_machine.fingerprint not in runs
    (fingerprint,) = runs
    assert fingerprint is not None and fingerprint.startswith("policies-etl:out_of_memory:")


def test_channels_follow_routes_then_pipeline_then_default() -> None:
    failed = routed(sfn_event())
    assert channel_for(failed, PROJECT) == "#policies"
    assert channel_for(failed.with_changes(severity="critical"), PROJECT) == "#etl-pager"
    billing = routed(sfn_event(machine=MACHINE.replace("policies", "billing")))
    assert channel_for(billing, PROJECT) == "#billing-alerts"
    assert channel_for(routed(b"something odd happened"), PROJECT) == "#etl-alerts"


def test_config_rejects_routes_to_unknown_pipelines_and_bad_topics(tmp_path: Path) -> None:
    path = tmp_path / "etl-doctor.yml"
    path.write_text("alerts:\n  routes:\n    - channel: '#x'\n      pipelines: [nope]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts.routes\[0\].pipelines: unknown pipeline 'nope'; known: none"):
        load_settings({"ETL_DOCTOR_CONFIG": str(path)})
    path.write_text("sns_topics: [not-an-arn]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sns_topics.0.arn: not an SNS topic ARN"):
        load_settings({"ETL_DOCTOR_CONFIG": str(path)})
    path.write_text(
        "sns_topics:\n  - arn:aws:sns:*:123456789012:etl-*\n"
        "  - arn: arn:aws:sns:us-east-1:1:raw\n    raw_message_delivery: true\n"
    )
    topics = load_settings({"ETL_DOCTOR_CONFIG": str(path)}).project.sns_topics
    assert [(t.arn, t.raw_message_delivery) for t in topics] == [
        ("arn:aws:sns:*:123456789012:etl-*", False),
        ("arn:aws:sns:us-east-1:1:raw", True),
    ]


def test_alert_message_golden() -> None:
    alert = routed(sfn_event("FAILED", "run-2025-02-18", at=T0, event_id="e1"))
    fresh = render_alert(IncidentView(alert=alert, first_seen_at=T0, last_seen_at=T0))
    assert_golden("alert_new.json", fresh)
    assert_golden("alert_new.txt", render_message(fresh, show_urls=True) + "\n")
    enriched = IncidentView(
        alert=alert,
        occurrences=13,
        first_seen_at=T0,
        last_seen_at=T0.replace(minute=41),
        enrichment=Enrichment(
            category="out_of_memory",
            title="Out of memory (exit 137)",
            failed_state="LoadFactPolicies",
            root_exception="java.lang.OutOfMemoryError: Java heap space",
            next_step="Raise the task's memory (4096 MiB now) or split the batch.",
        ),
    )
    assert_golden("alert_enriched.txt", render_message(render_alert(enriched), show_urls=True) + "\n")
    resolved = IncidentView(
        alert=alert,
        occurrences=13,
        last_seen_at=T0.replace(minute=41),
        status="resolved",
        resolved_at=T0.replace(hour=4),
        resolved_by="execution run-2025-02-18-retry-1 SUCCEEDED",
        enrichment=enriched.enrichment,
    )
    message = render_alert(resolved)
    assert message["text"].startswith("Resolved: ")
    assert not any(b["type"] == "actions" for b in message["blocks"])  # nothing to act on any more
    assert_golden("alert_resolved.txt", render_message(message, show_urls=True) + "\n")


def test_alert_messages_stay_within_block_kit_limits() -> None:
    huge = routed(sfn_event(cause="x" * 50_000, error="E" * 500))
    message = render_alert(IncidentView(alert=huge))
    assert len(message["blocks"]) <= MESSAGE_BLOCKS_MAX
    assert all(len(b.get("text", {}).get("text", "")) <= SECTION_TEXT_MAX for b in message["blocks"])
    repeats = render_repeats([huge] * 400, total=401)
    assert "…and 385 more" in repeats["blocks"][0]["text"]["text"]
    assert len(repeats["blocks"][0]["text"]["text"]) <= SECTION_TEXT_MAX
    reply = render_resolution(routed(sfn_event("SUCCEEDED", "run-9", at=T0)), resolved_by="execution run-9 SUCCEEDED")
    assert reply["text"] == ":white_check_mark: Resolved by execution run-9 SUCCEEDED at 2025-02-18 03:12 UTC"

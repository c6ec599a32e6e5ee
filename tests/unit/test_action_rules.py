"""Permission policy and action plans (pure: no store, no AWS, no Slack)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.actions.plans import PlanError, plan_retry, raise_memory, redrive_refusal, retry_name
from bot.actions.policy import Actor, Policy
from bot.aws.stepfunctions import ExecutionDescription
from bot.config import ProjectConfig, RetryResources

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"
NOW = datetime(2025, 2, 18, 4, 0, tzinfo=UTC)
PROJECT = ProjectConfig.model_validate(
    {
        "pipelines": {
            "policies-etl": {"state_machine_arn": MACHINE},
            "billing-etl": {"state_machine_arn": MACHINE.replace("policies", "billing")},
        },
        "permissions": [
            {"actions": ["retry", "redrive"], "pipelines": ["policies-etl"], "users": ["U0ALICE"]},
            {"actions": ["ack", "snooze"], "usergroups": ["S0ONCALL"]},
            {"actions": ["redrive"], "pipelines": ["billing-etl"], "users": ["U0BOB"], "channels": ["#etl-alerts"]},
        ],
        "two_person_rule": ["billing-etl"],
    }
)


class Directory:
    def __init__(self, groups: dict[str, set[str]]) -> None:
        self.groups = groups
        self.asked: list[str] = []

    def members(self, usergroup_id: str) -> frozenset[str]:
        self.asked.append(usergroup_id)
        return frozenset(self.groups.get(usergroup_id, set()))


def execution(
    name: str = "run-1", *, status: str = "FAILED", stopped: timedelta = timedelta(hours=1), **extra: object
) -> ExecutionDescription:
    values: dict[str, object] = {
        "executionArn": MACHINE.replace(":stateMachine:", ":execution:") + f":{name}",
        "stateMachineArn": MACHINE,
        "name": name,
        "status": status,
        "startDate": NOW - stopped - timedelta(minutes=10),
        "stopDate": NOW - stopped,
        "input": json.dumps({"business_date": "2025-02-18", "resources": {"memory": 4096, "cpu": 1024}}),
        "redriveStatus": "REDRIVABLE",
    }
    values.update(extra)
    return ExecutionDescription.from_api(values)


def test_grants_by_user_group_and_channel() -> None:
    policy = Policy(PROJECT, Directory({"S0ONCALL": {"U0CAROL"}}))
    assert policy.check("retry", "policies-etl", Actor("U0ALICE")).allowed
    refused = policy.check("retry", "policies-etl", Actor("U0CAROL"))
    assert not refused.allowed and "<@U0CAROL> may not `retry` on `policies-etl`" in refused.reason
    assert "permissions:" in refused.reason  # says where permissions are granted
    assert policy.check("ack", "claims-etl", Actor("U0CAROL")).allowed  # "*" pipelines by default
    nobody = policy.check("retry", "billing-etl", Actor("U0ALICE"))
    assert not nobody.allowed and nobody.reason.startswith("nobody may `retry` on `billing-etl` yet")
    wrong_channel = policy.check("redrive", "billing-etl", Actor("U0BOB", "C0RANDOM", "random"))
    assert not wrong_channel.allowed and "only from #etl-alerts" in wrong_channel.reason
    assert policy.check("redrive", "billing-etl", Actor("U0BOB", "C0ETL", "etl-alerts")).allowed
    assert policy.needs_second_person("billing-etl") and not policy.needs_second_person("policies-etl")


def test_with_no_permissions_configured_nothing_acts() -> None:
    policy = Policy(ProjectConfig(), Directory({}))
    for action in ("retry", "redrive", "ack", "snooze", "dlq_replay"):
        assert not policy.check(action, "policies-etl", Actor("U0ANYONE")).allowed


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run-1", "run-1-retry-1"),
        ("run-1-retry-1", "run-1-retry-2"),
        ("run-1-retry-9", "run-1-retry-10"),
        ("x" * 80, "x" * 72 + "-retry-1"),
    ],
)
def test_retry_names_are_deterministic(name: str, expected: str) -> None:
    assert retry_name(name) == expected
    assert len(retry_name(name)) <= 80


def test_retry_with_more_memory_doubles_within_the_maximum() -> None:
    resources = RetryResources(memory_path="$.resources.memory", maximum=6144)
    plan = plan_retry(execution(), resources)
    assert json.loads(plan.execution_input)["resources"] == {"memory": 6144, "cpu": 1024}
    assert plan.changes == ("`$.resources.memory`: 4096 → 6144 (the configured maximum)",)
    assert plan.name == "run-1-retry-1-mem"
    same = plan_retry(execution())
    assert same.execution_input == execution().input and same.changes == ()
    assert same.new_execution_arn.endswith(":execution:policies-etl:run-1-retry-1")


def test_memory_paths_that_do_not_fit_are_explained() -> None:
    with pytest.raises(PlanError, match=r"has no `\$\.resources\.ram`"):
        raise_memory('{"resources": {}}', RetryResources(memory_path="$.resources.ram", maximum=9000))
    with pytest.raises(PlanError, match="not JSON"):
        raise_memory("not json", RetryResources(memory_path="$.a", maximum=9000))
    with pytest.raises(PlanError, match="already 9000"):
        raise_memory('{"a": 9000}', RetryResources(memory_path="$.a", maximum=9000))
    assert raise_memory(
        '{"tasks": [{"memory": "2048"}]}', RetryResources(memory_path="$.tasks[0].memory", maximum=9000)
    ) == (
        '{"tasks":[{"memory":"4096"}]}',
        2048,
        4096,
    )


def test_redrive_preflight_says_exactly_why_not() -> None:
    assert redrive_refusal(execution(), "STANDARD", NOW) is None
    assert "EXPRESS workflow" in (redrive_refusal(execution(), "EXPRESS", NOW) or "")
    assert "SUCCEEDED" in (redrive_refusal(execution(status="SUCCEEDED"), "STANDARD", NOW) or "")
    assert "15 days ago" in (redrive_refusal(execution(stopped=timedelta(days=15)), "STANDARD", NOW) or "")
    assert "NOT_REDRIVABLE" in (redrive_refusal(execution(redriveStatus="NOT_REDRIVABLE"), "STANDARD", NOW) or "")
    assert "RUNNING" in (redrive_refusal(execution(status="RUNNING"), "STANDARD", NOW) or "")


def test_grants_can_name_environments_instead_of_pipelines() -> None:
    project = ProjectConfig.model_validate(
        {
            "pipelines": {
                "policies-etl": {"state_machine_arn": MACHINE, "environment": "prod"},
                "policies-etl-dev": {"state_machine_arn": MACHINE + "-dev", "environment": "dev"},
                "untagged": {"state_machine_arn": MACHINE + "-x"},
            },
            "permissions": [{"actions": ["retry"], "environments": ["dev"], "users": ["U0DEV"]}],
        }
    )
    policy = Policy(project, Directory({}))
    assert policy.check("retry", "policies-etl-dev", Actor("U0DEV")).allowed
    assert not policy.check("retry", "policies-etl", Actor("U0DEV")).allowed
    assert not policy.check("retry", "untagged", Actor("U0DEV")).allowed


def test_an_actor_links_to_the_message_it_clicked_in() -> None:
    assert Actor("U0A", "C0ETL", message_ts="1700000000.000100").message_link == (
        "https://slack.com/archives/C0ETL/p1700000000000100"
    )
    assert Actor("U0A", "C0ETL").message_link == "C0ETL"

"""Next steps (`bot.diagnosis.remediation`): two to four per category, naming what the diagnosis found."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.diagnosis.model import Diagnosis, EvidenceLine, Hop, RetryAdvice
from bot.diagnosis.remediation import MAX_STEPS, RULES, remediate

ARN = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl"
AT = datetime(2025, 2, 18, 3, 41, 20, tzinfo=UTC)
CATEGORIES = (
    "out_of_memory", "timeout", "throttling_or_rate_limit", "permission_denied", "missing_resource",
    "network_or_connectivity", "container_start_failure", "schema_or_type_mismatch", "data_quality_assertion",
    "code_bug", "dependency_or_import", "disk_full", "spot_or_capacity", "unknown",
)  # fmt: skip
ECS = {"task_definition": "policies-loader:14", "task_memory": 4096, "container": "loader", "image": ""}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/spark:3.5"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
RETRY = {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 3}


def diagnosis(category: str, cause: str = "", **fields: Any) -> Diagnosis:
    """A FAILED diagnosis of a live execution with only what the test gives it."""
    defaults: dict[str, Any] = {
        "execution_arn": ARN,
        "status": "FAILED",
        "state_machine_arn": MACHINE,
        "execution_name": "run-2025-02-18",
        "pipeline": "policies-etl",
        "failed_state": "LoadFactPolicies",
        "category": category,
        "cause_summary": cause or None,
    }
    return Diagnosis(**(defaults | fields))


def evidence(*messages: str, group: str = "/ecs/policies-etl", stream: str = "ecs/loader/4d5e") -> list[EvidenceLine]:
    return [EvidenceLine(AT, message, group, stream, "https://console.example/logs") for message in messages]


def joined(steps: list[str]) -> str:
    return "\n".join(steps)


def test_every_documented_category_has_rules() -> None:
    assert set(RULES) == set(CATEGORIES)


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_gives_two_to_four_steps_from_the_error_text_alone(category: str) -> None:
    # what `etl-doctor classify` has: a category and a text, no hops, no context
    bare = Diagnosis(execution_arn="", status="FAILED", category=category, cause_summary="something failed")
    assert 2 <= len(remediate(bare)) <= MAX_STEPS


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_stays_within_four_steps_with_everything_found(category: str) -> None:
    full = diagnosis(
        category,
        "Container killed: exec format error; no space left on device; AccessDenied when calling the PutObject "
        "operation; UnknownHostException: db.internal; No module named 'pyarrow'",
        integration="ecs",
        error="States.TaskFailed",
        root_exception="java.lang.RuntimeException: boom",
        app_frames=["at com.acme.Load.run(Load.java:42)"],
        evidence=evidence("ERROR boom", "ERROR again"),
        retry_audit=[
            RetryAdvice("LoadFactPolicies", ("States.TaskFailed",), False, RETRY),
            RetryAdvice("Other", ("States.TaskFailed",), False, RETRY),
        ],
        context={"ecs": ECS | {"image": IMAGE}, "container_images": [IMAGE], "container_secrets": [SECRET]},
    )
    steps = remediate(full)
    assert 2 <= len(steps) <= MAX_STEPS
    assert len(set(steps)) == len(steps)


def test_the_retry_audit_finding_is_kept_when_the_category_has_many_steps() -> None:
    advice = RetryAdvice("TransformClaims", ("States.TaskFailed",), False, RETRY)
    d = diagnosis(
        "container_start_failure",
        "CannotStartContainerError: exec /app/run: exec format error",
        retry_audit=[advice],
        context={"container_images": [IMAGE], "container_secrets": [SECRET]},
    )
    steps = remediate(d)
    assert len(steps) == MAX_STEPS
    assert steps[-1].startswith("`TransformClaims` has no Retry for `States.TaskFailed`")
    assert '"ErrorEquals": [\n      "States.TaskFailed"' in steps[-1]


def test_container_start_names_the_images_and_secrets_the_chase_found() -> None:
    d = diagnosis(
        "container_start_failure",
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): manifest unknown",
        integration="ecs",
        context={"container_images": [IMAGE], "container_secrets": [SECRET, "arn:aws:ssm:us-east-1:1:parameter/x"]},
    )
    text = joined(remediate(d))
    assert f"Check that `{IMAGE}` exists with that tag and the task execution role can pull it" in text
    assert "ecr:GetAuthorizationToken, ecr:BatchGetImage" in text
    assert f"Check that secrets `{SECRET}` and `arn:aws:ssm:us-east-1:1:parameter/x` exist" in text
    assert "the task execution role may read them" in text


def test_container_start_puts_the_secret_first_when_the_error_is_about_it() -> None:
    d = diagnosis(
        "container_start_failure",
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
        "unable to retrieve secret from asm: service call has been retried 1 time(s)",
        context={"container_images": [IMAGE], "container_secrets": [SECRET]},
    )
    steps = remediate(d)
    assert steps[0].startswith(f"Check that secret `{SECRET}` exists and the task execution role may read it")
    assert any(IMAGE in step for step in steps[1:])


def test_container_start_without_what_the_chase_found_stays_generic_or_uses_the_error() -> None:
    generic = remediate(diagnosis("container_start_failure", "CannotPullContainerError: unexpected status code"))
    assert generic[0].startswith("Check the image exists in the registry with that tag")
    assert any("the secrets and parameters of the task definition" in step for step in generic)
    named = remediate(
        diagnosis(
            "container_start_failure",
            "CannotPullContainerError: failed to resolve ref docker.io/acme/claims-transform:1.8.2: failed to do "
            'request: Head "https://registry-1.docker.io/v2/acme/claims-transform/manifests/1.8.2": dial tcp '
            "34.205.13.154:443: i/o timeout",
        )
    )
    assert named[0].startswith("The task's subnets need a route to `registry-1.docker.io`")
    assert "`docker.io/acme/claims-transform:1.8.2`" in named[1] and "repositoryCredentials" in named[1]


@pytest.mark.parametrize(
    ("cause", "host"),
    [
        ('EndpointConnectionError: Could not connect to the endpoint URL: "https://lambda.us-east-1.amazonaws.com/x"',
         "lambda.us-east-1.amazonaws.com"),
        ("could not start transaction: dial tcp 23.22.231.56:5439: connect: connection timed out",
         "23.22.231.56:5439"),
        ('could not connect to server: Operation timed out Is the server running on host "wh.example.com" (5.6.7.8)',
         "wh.example.com"),
    ],
)  # fmt: skip
def test_network_names_the_endpoint(cause: str, host: str) -> None:
    steps = remediate(diagnosis("network_or_connectivity", cause, transient=True))
    assert 2 <= len(steps) <= MAX_STEPS
    assert steps[0].startswith(f"If `{host}` was briefly unavailable")  # transient: retrying comes first
    assert f"security-group egress to `{host}`" in joined(steps)
    assert "`LoadFactPolicies`" in joined(steps)


def test_network_dns_failure_and_lambda_in_a_vpc() -> None:
    d = diagnosis(
        "network_or_connectivity",
        "Caused by: java.net.UnknownHostException: dynamodb.eu-west-2.amazonaws.com: nodename nor servname provided",
        context={"lambda": {"function": "rates-loader"}},
    )
    steps = remediate(d)
    assert steps[0].startswith("`dynamodb.eu-west-2.amazonaws.com` did not resolve")
    assert "Lambda `rates-loader` in a VPC has no internet access" in joined(steps)
    assert len(steps) == 3


def test_network_failure_before_the_task_started_checks_its_route_to_the_registry() -> None:
    d = diagnosis(
        "network_or_connectivity",
        "CannotPullContainerError: failed to do request: Head "
        '"https://registry-1.docker.io/v2/acme/claims-transform/manifests/1.8.2": dial tcp 34.205.13.154:443: i/o '
        "timeout",
        transient=True,
    )
    steps = remediate(d)
    assert steps[1].startswith("The task's subnets need a route to `registry-1.docker.io`: a NAT gateway")
    assert "VPC endpoints for ECR (`ecr.api`, `ecr.dkr`)" in steps[1]


def test_network_without_an_endpoint_in_the_error_still_gives_steps() -> None:
    steps = remediate(diagnosis("network_or_connectivity", "Caused by: java.net.ConnectException: Connection refused"))
    assert len(steps) == 2
    assert "the endpoint in the error" in steps[0]


def test_disk_full_names_the_function_and_the_path() -> None:
    d = diagnosis(
        "disk_full",
        "[Errno 28] No space left on device: write /tmp/extract/part-0001.csv: no space left on device",
        context={"lambda": {"function": "invoices-unzip"}},
    )
    steps = remediate(d)
    assert steps[0] == (
        "Raise Lambda `invoices-unzip`'s `EphemeralStorage` (/tmp: 512 MB by default, up to 10,240 MB)."
    )
    assert "(it failed writing `/tmp/extract/part-0001.csv`)" in steps[1]
    assert len(steps) == 3


def test_disk_full_on_ecs_names_the_task_definition() -> None:
    steps = remediate(diagnosis("disk_full", "java.io.IOException: No space left on device", context={"ecs": ECS}))
    assert steps[0].startswith("Raise the task's ephemeral storage in `policies-loader:14`")


def test_dependency_names_the_module_and_where_it_goes() -> None:
    glue = diagnosis(
        "dependency_or_import",
        "ModuleNotFoundError: No module named 'great_expectations'",
        context={"glue": {"job": "claims-transform"}},
    )
    steps = remediate(glue)
    assert steps[0] == (
        "`great_expectations` is missing or broken at run time: add it to Glue job `claims-transform`'s "
        "`--additional-python-modules` (Python) or `--extra-jars` (JVM)."
    )
    assert len(steps) == 3
    native = remediate(
        diagnosis(
            "dependency_or_import",
            "Unable to import module 'redshift_loader': /var/task/psycopg2/_psycopg.so: invalid ELF header",
            context={"lambda": {"function": "redshift-loader"}},
        )
    )
    assert native[0].startswith("`redshift_loader` is missing or broken at run time: add it to the deployment package")
    assert "Lambda `redshift-loader`" in native[0]
    assert native[1].startswith("A native library built for another platform")


def test_unknown_points_at_the_error_and_the_stream() -> None:
    d = diagnosis(
        "unknown",
        "Essential container in task exited",
        error="States.TaskFailed",
        evidence=evidence("starting", "exiting with 3"),
        context={"ecs": ECS},
    )
    steps = remediate(d)
    assert steps[0].startswith("No known pattern matched what `LoadFactPolicies` reported (`States.TaskFailed` ")
    assert steps[1].startswith("Read the lines of `ecs/loader/4d5e` in `/ecs/policies-etl` before 03:41:20")
    assert "(`/etl logs policies-etl/run-2025-02-18 --lines 200`)" in steps[1]
    assert "task definition `policies-loader:14`" in steps[2]


def test_unknown_without_logs_names_the_hop_that_was_not_followed() -> None:
    hop = Hop("ecs_task", "4d5e", "not followed: AccessDeniedException on DescribeTasks", followed=False)
    steps = remediate(diagnosis("unknown", "", error="States.TaskFailed", hops=[hop]))
    assert steps[1].startswith("The ecs task `4d5e` was not followed (not followed: AccessDeniedException")


def test_permission_with_an_action_only_names_the_role_and_the_action() -> None:
    d = diagnosis(
        "permission_denied",
        "AccessDeniedException: not authorized to perform dynamodb:PutItem",
        context={"lambda": {"function": "rates-loader"}},
    )
    steps = remediate(d)
    assert steps[0] == "The execution role of Lambda `rates-loader` lacks `dynamodb:PutItem`; grant it, then retry."
    assert "CloudTrail" in steps[-1]
    assert len(steps) == 2


def test_permission_on_a_secret_at_task_start_names_the_secret_and_the_kms_key() -> None:
    d = diagnosis(
        "permission_denied",
        "ResourceInitializationError: unable to pull secrets or registry auth: failed to fetch secret "
        f"{SECRET}-AbCdEf from secrets manager: AccessDeniedException: Access to KMS is not allowed "
        "(key arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab)",
        integration="ecs",
        stopped_at=AT,
    )
    steps = remediate(d)
    assert steps[0].startswith(f"The task execution role may not read `{SECRET}-AbCdEf`")
    assert steps[1].startswith("The KMS key `arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab` must allow it")
    assert "around 03:41 UTC" in steps[2]


def test_permission_denied_by_operation_on_an_sdk_integration_names_the_state_machine_role() -> None:
    d = diagnosis(
        "permission_denied",
        "An error occurred (AccessDenied) when calling the GetObject operation: Access Denied "
        "(s3://landing/policies/2025-02-18/part-0.parquet).",
        integration="s3",
    )
    (first, *_rest) = remediate(d)
    assert first.startswith("The state machine's execution role (it calls `s3` itself in `LoadFactPolicies`)")
    assert "denied `GetObject` on `s3://landing/policies/2025-02-18/part-0.parquet`:" in first


def test_out_of_memory_without_sizes_still_gives_two_steps() -> None:
    steps = remediate(diagnosis("out_of_memory", "Runtime exited with error: signal: killed"))
    assert steps[0].startswith("Give state `LoadFactPolicies` more memory")
    assert len(steps) == 2


def test_timeout_of_the_whole_execution() -> None:
    steps = remediate(diagnosis("timeout", "", status="TIMED_OUT", evidence=evidence("waiting for lock")))
    assert steps[0].startswith("The execution ran past the state machine's own `TimeoutSeconds`")
    assert "`TimeoutSeconds`/`HeartbeatSeconds` of `LoadFactPolicies`" in steps[1]
    assert "in the last lines of `ecs/loader/4d5e`" in steps[2]


def test_throttling_names_the_operation() -> None:
    d = diagnosis(
        "throttling_or_rate_limit",
        "An error occurred (ThrottlingException) when calling the StartExecution operation: Rate exceeded",
    )
    steps = remediate(d)
    assert steps[0].startswith("`StartExecution` was throttled")
    assert "calls `StartExecution`" in steps[-1]


def test_schema_names_the_column_and_the_redshift_table_of_errors() -> None:
    steps = remediate(
        diagnosis(
            "schema_or_type_mismatch",
            "AnalysisException: cannot resolve 'superstore.email' given input columns: [superstore.Cohort]",
        )
    )
    assert steps[0].startswith("Column `superstore.email` no longer matches what `LoadFactPolicies` expects")
    redshift = remediate(
        diagnosis("schema_or_type_mismatch", "Load into table 'fact_policies' failed. Check 'stl_load_errors'.")
    )
    assert redshift[2].startswith("Query `stl_load_errors`")


def test_missing_s3_object_lists_its_prefix() -> None:
    steps = remediate(
        diagnosis("missing_resource", "Path does not exist: s3://landing/policies/2025-02-18/part-0.parquet.")
    )
    assert steps[0].startswith("`s3://landing/policies/2025-02-18/part-0.parquet` does not exist (yet)")
    assert steps[-1] == "See what is there: `aws s3 ls s3://landing/policies/2025-02-18/`."


def test_code_bug_names_the_frame_and_what_may_have_changed() -> None:
    d = diagnosis(
        "code_bug",
        "",
        root_exception="KeyError: 'Records'",
        app_frames=['File "/var/task/scan.py", line 212, in lambda_handler'],
        context={"ecs": ECS | {"image": IMAGE}},
    )
    steps = remediate(d)
    assert steps[0] == (
        "A bug in the job's code: `KeyError: 'Records'` at `File \"/var/task/scan.py\", line 212, in lambda_handler`."
    )
    assert f"the image `{IMAGE}`" in steps[2]


def test_data_quality_quotes_the_assertion() -> None:
    steps = remediate(diagnosis("data_quality_assertion", "AssertionError: 143 rows with negative premium"))
    assert "(`AssertionError: 143 rows with negative premium`)" in steps[0]
    assert len(steps) == 3

"""`make package-lambda`'s artifact really runs: unzipped, imported with nothing else on sys.path, it loads the
project file it ships (as serverless.yml's ETL_DOCTOR_CONFIG names it), acks a signed `/etl help`, self-invokes
through boto3 (to a loopback Lambda endpoint), and the second invocation answers through response_url.

The artifact is built for this interpreter's Python version (the test must import it); the Makefile's
default targets the Lambda runtime's 3.12, which this machine cannot import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, form_body, signed_request, slash_command
from tests.conftest import SIGNING_SECRET
from tests.support.apigw import apigw_event
from tests.support.golden import HELP_TEXT
from tests.support.lambda_invoke import LoopbackLambda

ROOT = Path(__file__).resolve().parents[2]

# The project file shipped in the zip; its connection password comes from the function's environment.
PROJECT = """
default_channel: "#etl-alerts"
pipelines:
  policies-etl:
    state_machine_arn: arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl
connections:
  warehouse:
    url: postgresql://etl_doctor:${WAREHOUSE_PASSWORD}@warehouse.internal:5432/dw
"""

# Runs in a child interpreter started with -I -S: no site-packages, no PYTHONPATH, only the artifact.
RUNNER = """
import json, sys
sys.path[:0] = sys.argv[1:3]  # the function's code, then the runtime's boto3
from handlers.lambda_handler import handler
from bot.config import load_settings

class Context:
    function_name = "etl-doctor-slack"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:etl-doctor-slack"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

event = json.loads(sys.stdin.read())
outside = [m for m in sys.modules if m.split(".")[0] in ("site", "moto", "pytest")]
response = handler(event, Context())
pipelines = sorted(load_settings().project.pipelines)  # the file the handler loaded, read again
print(json.dumps({"response": response, "modules": outside, "path": sys.path, "pipelines": pipelines}))
"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lambda-build")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    zip_path = work / "etl-doctor-lambda.zip"
    project = work / "project.yml"
    project.write_text(PROJECT, encoding="utf-8")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_lambda.py"), "--python-version", version,
         "--output", str(zip_path), "--work-dir", str(work / "work"), "--config", str(project)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    unzipped = work / "unzipped"
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        archive.extractall(unzipped)
    assert "handlers/lambda_handler.py" in names
    assert "etl-doctor.yml" in names  # serverless.yml: ETL_DOCTOR_CONFIG: etl-doctor.yml
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    assert f"handlers/__pycache__/lambda_handler.{tag}.pyc" in names  # bytecode shipped (read-only /var/task)
    assert f"slack_bolt/__pycache__/__init__.{tag}.pyc" in names
    assert not any(name.startswith(("moto/", "pytest/", "tests/")) for name in names)
    return unzipped


# What every Lambda Python runtime puts on sys.path besides the function's code: boto3 and its own needs.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath")

# A KPI chart drawn inside the artifact (matplotlib as packaged: pruned fonts and data, no fontTools sources).
CHART_RUNNER = """
import sys
sys.path[:0] = sys.argv[1:3]
from decimal import Decimal
from bot.kpi.chart import render_chart
from bot.kpi.model import KpiReport, PartitionRange, PartitionRow
rows = [PartitionRow(f"2025-02-{d:02d}", Decimal(100 + d), Decimal(100 + d - (d == 18) * 7), 10, 10 - (d == 18),
                     "differs" if d == 18 else "match") for d in range(1, 19)]
report = KpiReport("premium_amount", "", "sum", PartitionRange("2025-02-18", "2025-02-18", "day"), "source", "target",
                   Decimal(118), Decimal(111), Decimal(-7), Decimal("-0.0593"), False, {}, series=rows)
png = render_chart(report)
outside = [m for m in sys.modules if m.split(".")[0] in ("site", "moto", "pytest")]
print(png[:8].hex(), len(png), outside)
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory standing in for the runtime's own packages: links to this environment's boto3 and its needs."""
    import boto3

    site_packages = Path(boto3.__file__).resolve().parents[1]
    directory = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PROVIDED:
        (directory / name).symlink_to(site_packages / name, target_is_directory=True)
    return directory


def test_artifact_fits_lambda_and_leaves_out_what_the_runtime_and_the_cli_bring(artifact: Path) -> None:
    unzipped = sum(path.stat().st_size for path in artifact.rglob("*") if path.is_file())
    assert unzipped < 250_000_000  # Lambda's limit for unzipped code (layers included)
    present = {path.name for path in artifact.iterdir()}
    assert present.isdisjoint({*RUNTIME_PROVIDED, "typer", "rich", "pygments", "lxml", "bs4"})
    assert {"matplotlib", "numpy", "redshift_connector", "sqlalchemy_redshift", "psycopg"} <= present


@pytest.mark.slow
def test_artifact_draws_the_kpi_chart(artifact: Path, runtime: Path) -> None:
    environ = {"PATH": os.environ.get("PATH", ""), "MPLCONFIGDIR": str(runtime.parent / "mpl")}  # /tmp on Lambda
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHART_RUNNER, str(artifact), str(runtime)],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    magic, size, outside = result.stdout.split(" ", 2)
    assert magic == "89504e470d0a1a0a" and int(size) > 10_000 and outside.strip() == "[]"


def _invoke(artifact: Path, event: dict[str, Any], environ: dict[str, str], runtime: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUNNER, str(artifact), str(runtime)],
        input=json.dumps(event), capture_output=True, text=True, env=environ, timeout=120, check=False,
        cwd=artifact,  # Lambda runs the function in its code directory, /var/task
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_artifact_acks_and_answers_help(
    artifact: Path, runtime: Path, slack_emulator: SlackEmulator, tmp_path: Path
) -> None:
    loopback = LoopbackLambda(lambda event, context: None).start()  # records the async self-invocation
    try:
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "SLACK_BOT_TOKEN": slack_emulator.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_emulator.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",  # Lambda sets both; botocore reads this one
            "AWS_ENDPOINT_URL": loopback.endpoint_url,  # boto3's Lambda client (Bolt's runner) honours it
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "LOG_FORMAT": "json",
            "ETL_DOCTOR_CONFIG": "etl-doctor.yml",  # as serverless.yml sets it
            "WAREHOUSE_PASSWORD": "p@ss:word",
        }
        payload = slash_command("help", response_url=slack_emulator.response_url("artifact"))
        body, headers = signed_request(form_body(payload), SIGNING_SECRET, content_type=FORM_CONTENT_TYPE)
        first = _invoke(artifact, apigw_event(body, headers), environ, runtime)
        assert first["response"]["statusCode"] == 200
        assert first["modules"] == []  # nothing from outside the artifact was importable
        assert first["pipelines"] == ["policies-etl"]  # the shipped project file was loaded
        assert all(not entry.endswith("site-packages") for entry in first["path"])
        (invocation,) = loopback.invocations
        assert invocation.invocation_type == "Event"
        assert invocation.payload["headers"]["x-slack-bolt-lazy-function-name"] == "run_etl"
        second = _invoke(artifact, invocation.payload, environ, runtime)  # what Lambda does with the async event
        assert second["response"]["statusCode"] == 200
        (posted,) = slack_emulator.wait_for("response_url")
        assert posted.key == "artifact"
        assert posted.args["text"] == HELP_TEXT
    finally:
        loopback.stop()

"""Cold start of the Lambda handler: module import time and the first signed `/etl help` ack.

Slack allows 3 s for the ack and a Lambda cold start counts toward it. This prints, over fresh
processes (median and worst of N):
  * import time of handlers.lambda_handler (wall clock, and `python -X importtime` cumulative);
  * the floor set by the libraries the ack path needs (slack_bolt's Lambda adapter, which imports
    boto3 for the self-invocation, and pydantic-settings), measured the same way in the same run;
  * the cold ack: import + build + verifying and acking a signed `/etl help`, including the
    self-invocation call (to a loopback Lambda endpoint) and Bolt's auth.test (to the Slack emulator);
  * with --artifact: import time from the unzipped `make package-lambda` zip with and without the
    precompiled bytecode it ships (Lambda's code directory is read-only: no .pyc can be written there).
Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.sandbox.slack_emulator import SlackEmulator  # noqa: E402
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, form_body, signed_request, slash_command  # noqa: E402
from tests.support.apigw import apigw_event  # noqa: E402
from tests.support.lambda_invoke import LoopbackLambda  # noqa: E402

SECRET = "bench-signing-secret"

COLD_ACK = """
import json, sys, time
t0 = time.perf_counter()
from handlers.lambda_handler import handler
t1 = time.perf_counter()
class Context:
    function_name = "etl-doctor-slack"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:etl-doctor-slack"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
response = handler(json.loads(sys.stdin.read()), Context())
t2 = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"import_ms": (t1 - t0) * 1000, "first_ack_ms": (t2 - t1) * 1000, "cold_ack_ms": (t2 - t0) * 1000}))
"""

IMPORT_WALL = "import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"


def _python(
    args: list[str], *, env: dict[str, str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, check=True
    )


def _importtime_ms(module: str, env: dict[str, str], cwd: Path | None = None) -> float:
    stderr = _python(["-X", "importtime", "-c", f"import {module}"], env=env, cwd=cwd).stderr
    for line in reversed(stderr.splitlines()):
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)", line)
        if match and match[2] == module:
            return int(match[1]) / 1000
    raise RuntimeError(f"no importtime line for {module}")


def _wall_ms(module: str, env: dict[str, str], prefix: list[str] | None = None, cwd: Path | None = None) -> float:
    return float(_python([*(prefix or []), "-c", IMPORT_WALL.format(module=module)], env=env, cwd=cwd).stdout)


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--artifact", action="store_true", help="also build the Lambda zip and time imports from it")
    args = parser.parse_args()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp")}
    _wall_ms("handlers.lambda_handler", env)  # warm the bytecode cache once, as a deployed package has it

    ours = [_wall_ms("handlers.lambda_handler", env) for _ in range(args.runs)]
    ours_importtime = [_importtime_ms("handlers.lambda_handler", env) for _ in range(args.runs)]
    floor_module = "slack_bolt.adapter.aws_lambda, pydantic_settings"
    floor = [float(_python(["-c", IMPORT_WALL.format(module=floor_module)], env=env).stdout) for _ in range(args.runs)]
    parts = {
        name: statistics.median(_wall_ms(name, env) for _ in range(args.runs))
        for name in ("slack_bolt", "boto3", "pydantic_settings", "sqlalchemy")
    }

    cold: list[dict[str, float]] = []
    with SlackEmulator() as slack, tempfile.TemporaryDirectory() as tmp:
        loopback = LoopbackLambda(lambda event, context: None).start()
        child_env = env | {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp}/store.db",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": loopback.endpoint_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "LOG_LEVEL": "WARNING",
        }
        for _ in range(args.runs):
            payload = slash_command("help", response_url=slack.response_url())
            body, headers = signed_request(form_body(payload), SECRET, content_type=FORM_CONTENT_TYPE)
            out = _python(["-c", COLD_ACK], env=child_env, stdin=json.dumps(apigw_event(body, headers))).stdout
            cold.append(json.loads(out.strip().splitlines()[-1]))
        loopback.stop()

    artifact: dict[str, float] = {}
    if args.artifact:
        artifact = _artifact_imports(args.runs)

    p50, worst = _stats(ours)
    it50, _ = _stats(ours_importtime)
    floor50, _ = _stats(floor)
    cold50, cold_worst = _stats([c["cold_ack_ms"] for c in cold])
    ack50, _ = _stats([c["first_ack_ms"] for c in cold])
    print(f"handler module import (wall)      p50 {p50:7.1f} ms   max {worst:7.1f} ms   ({args.runs} fresh processes)")
    print(f"handler module import (importtime) p50 {it50:7.1f} ms")
    print(
        f"floor: slack_bolt Lambda adapter + pydantic_settings p50 {floor50:7.1f} ms  (ours/floor {p50 / floor50:.2f}x)"
    )
    print(
        "  alone: "
        + "  ".join(f"{name} {ms:.0f} ms" for name, ms in parts.items())
        + "  (sqlalchemy is not imported on the ack path)"
    )
    print(
        f"cold ack (import + first /etl help ack) p50 {cold50:7.1f} ms   max {cold_worst:7.1f} ms   of Slack's 3000 ms"
    )
    print(f"  of which first request (build app, verify, auth.test, ack, self-invoke) p50 {ack50:.1f} ms")
    for name, value in artifact.items():
        print(f"artifact {name}: {value:.1f} ms")
    figures = {
        "import_ms_p50": f"{p50:.0f}",
        "import_ms_importtime": f"{it50:.0f}",
        "floor_ms_p50": f"{floor50:.0f}",
        "ratio_vs_floor": f"{p50 / floor50:.2f}",
        "cold_ack_ms_p50": f"{cold50:.0f}",
        "cold_ack_ms_max": f"{cold_worst:.0f}",
    }
    figures |= {f"artifact_{name}_ms": f"{value:.0f}" for name, value in artifact.items()}
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


def _artifact_imports(runs: int) -> dict[str, float]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        zip_path = work / "lambda.zip"
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "package_lambda.py"), "--python-version", version,
             "--output", str(zip_path), "--work-dir", str(work / "build"),
             "--config", str(ROOT / "examples" / "etl-doctor.yml")],  # shipped as a deploy would
            check=True, capture_output=True,
        )  # fmt: skip
        with_pyc, without_pyc = work / "with-pyc", work / "without-pyc"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(with_pyc)
            archive.extractall(without_pyc)
        for cache in list(without_pyc.rglob("__pycache__")):
            shutil.rmtree(cache)
        runtime = _runtime_packages(work / "runtime")
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}  # like read-only /var/task
        results = {}
        for name, directory in (("import_pyc", with_pyc), ("import_no_pyc", without_pyc)):
            path = f"{directory}{os.pathsep}{runtime}"  # the function's code, then the runtime's boto3
            results[name] = statistics.median(
                _wall_ms("handlers.lambda_handler", env | {"PYTHONPATH": path}, prefix=["-S"]) for _ in range(runs)
            )
        return results


def _runtime_packages(directory: Path) -> Path:
    """Stand-in for the Lambda runtime's own packages (the zip leaves them out): links to ours, bytecode included."""
    import boto3

    site_packages = Path(boto3.__file__).resolve().parents[1]
    directory.mkdir()
    for name in ("boto3", "botocore", "s3transfer", "jmespath"):  # scripts/package_lambda.py RUNTIME_PROVIDED
        (directory / name).symlink_to(site_packages / name, target_is_directory=True)
    return directory


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the Lambda artifact that serverless.yml deploys (package.artifact): a zip made with pip --target.

The zip holds etl-doctor and its runtime dependencies for the Lambda runtime's Python version and
platform (binary wheels only), without tests, console scripts, what the runtime provides (boto3), what only
the command line uses (typer, rich), redshift-connector's browser-login parsers (lxml, bs4), C sources, type
stubs and matplotlib's data for other output formats, with bytecode precompiled by a Python
of the target version (this one, python3.X on PATH, or --compile-with): /var/task is read-only on
Lambda, so shipped .pyc files are the only way to skip compiling every module on each cold start.

The project file (--config, default ./etl-doctor.yml) is validated and shipped at the zip's root as
etl-doctor.yml, the name serverless.yml's ETL_DOCTOR_CONFIG gives: the function's working directory is its
code directory, and a function whose named project file is missing refuses to start.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
DROP_DIRS = {"__pycache__", "tests", "test"}
DROP_TOP = {"bin"}
# Every Lambda Python runtime provides boto3 and what it needs; the function uses the runtime's copy.
RUNTIME_PROVIDED = {"boto3": "boto3", "botocore": "botocore", "s3transfer": "s3transfer", "jmespath": "jmespath"}
# The command line's (typer and rich); no handler imports them (tests/unit/test_architecture.py).
CLI_ONLY = {
    "typer": "typer",
    "rich": "rich",
    "pygments": "pygments",
    "markdown_it": "markdown_it_py",
    "mdurl": "mdurl",
    "shellingham": "shellingham",
}
# redshift-connector's browser/SAML identity-provider plugins parse HTML with these; a function has no browser.
IDP_ONLY = {"lxml": "lxml", "bs4": "beautifulsoup4", "soupsieve": "soupsieve"}
# C sources and headers, type stubs, and matplotlib's data for other backends (PNG charts need DejaVu Sans only).
DROP_SUFFIXES = {".c", ".h", ".pyi", ".pxd"}
DROP_DATA = (
    "matplotlib/mpl-data/sample_data",
    "matplotlib/mpl-data/fonts/afm",
    "matplotlib/mpl-data/fonts/pdfcorefonts",
)
# matplotlib's default font and its last-resort fallback; the other bundled fonts are for styles etl-doctor does not use
KEEP_FONTS = ("DejaVuSans", "LastResort", "LICENSE")
LIMIT_BYTES = 250_000_000  # Lambda: unzipped function code and layers together
PACKAGED_CONFIG = "etl-doctor.yml"  # serverless.yml: ETL_DOCTOR_CONFIG: etl-doctor.yml


class _AnyVariable(dict[str, str]):
    """An environment in which every ${VAR} is set: connection passwords are the function's, not the builder's."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return "placeholder"


def run(*command: str) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)  # noqa: S603 - our own pip invocation


def find_interpreter(python_version: str, explicit: str | None = None) -> str | None:
    """A Python of the target version to compile bytecode with: the given one, this one, or python3.X on PATH."""
    if explicit:
        return explicit
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python_version:
        return sys.executable
    found = shutil.which(f"python{python_version}")
    if found is None:
        return None
    probe = subprocess.run(  # noqa: S603 - checking the version of a python found on PATH
        [found, "-c", "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found if probe.stdout.strip() == python_version else None


def check_config(config: Path | None) -> None:
    """Stop the build when the project file the function will load is missing or invalid."""
    if config is None:
        return
    if not config.is_file():
        sys.exit(
            f"error: project file {config} not found. serverless.yml sets ETL_DOCTOR_CONFIG={PACKAGED_CONFIG}, so "
            "a function without it refuses to start: copy examples/etl-doctor.yml to ./etl-doctor.yml and edit it, "
            "pass --config PATH (make package-lambda LAMBDA_CONFIG=PATH), or --no-config if you remove "
            "ETL_DOCTOR_CONFIG from serverless.yml"
        )
    sys.path.insert(0, str(ROOT))
    from bot.config import ConfigError, load_project_file

    try:
        load_project_file(config, required=True, environ=_AnyVariable())
    except ConfigError as exc:
        sys.exit(f"error: {exc}")


def build(
    python_version: str,
    platform: str,
    output: Path,
    work: Path,
    compile_with: str | None = None,
    config: Path | None = None,
) -> Path:
    check_config(config)
    shutil.rmtree(work, ignore_errors=True)
    wheels, target = work / "wheels", work / "package"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("etl_doctor-*.whl")
    run(
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
        "--platform", platform, "--python-version", python_version, "--implementation", "cp",
        "--only-binary=:all:", str(wheel),
    )  # fmt: skip
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_dir() and (path.name in DROP_DIRS or (path.parent == target and path.name in DROP_TOP)):
            shutil.rmtree(path, ignore_errors=True)
    for package, distribution in {**RUNTIME_PROVIDED, **CLI_ONLY, **IDP_ONLY}.items():
        shutil.rmtree(target / package, ignore_errors=True)
        for metadata in target.glob(f"{distribution}-*.dist-info"):
            shutil.rmtree(metadata)
    for data in DROP_DATA:
        shutil.rmtree(target / data, ignore_errors=True)
    for font in (target / "matplotlib" / "mpl-data" / "fonts" / "ttf").glob("*"):
        if not font.name.startswith(KEEP_FONTS):
            font.unlink()
    for path in target.rglob("*"):
        if path.is_file() and path.suffix in DROP_SUFFIXES:
            path.unlink()
    if config is not None:
        shutil.copyfile(config, target / PACKAGED_CONFIG)
        print(f"project file {config} shipped as {PACKAGED_CONFIG}", flush=True)
    compiler = find_interpreter(python_version, compile_with)
    if compiler is not None:
        # unchecked-hash: valid whatever the files' timestamps become inside the zip
        run(compiler, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target))
    else:
        print(
            f"WARNING: no Python {python_version} found to precompile bytecode; the function will compile "
            "every module on each cold start (measured 2-3x slower import, see bench/README.md). "
            f"Install python{python_version} or pass --compile-with.",
            file=sys.stderr,
            flush=True,
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(target.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(target)), date_time=FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes(), compresslevel=9)
    unzipped = sum(path.stat().st_size for path in target.rglob("*") if path.is_file())
    print(f"{output}: {output.stat().st_size / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped (limit 250 MB)")
    if unzipped > LIMIT_BYTES:
        sys.exit(f"error: {unzipped / 1e6:.1f} MB unzipped is over Lambda's 250 MB limit; the deploy would fail")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default="3.12", help="Lambda runtime's Python (default 3.12)")
    parser.add_argument(
        "--platform",
        default="manylinux2014_x86_64",
        help="manylinux2014_x86_64 (x86_64) or manylinux2014_aarch64 (arm64)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "lambda" / "etl-doctor-lambda.zip")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "lambda" / "work")
    parser.add_argument("--compile-with", help="Python of the target version for bytecode (default: found on PATH)")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("etl-doctor.yml"),
        help=f"project file to ship as {PACKAGED_CONFIG} (default: ./etl-doctor.yml)",
    )
    parser.add_argument("--no-config", action="store_true", help="ship no project file")
    args = parser.parse_args()
    config = None if args.no_config else args.config
    build(args.python_version, args.platform, args.output, args.work_dir, args.compile_with, config)


if __name__ == "__main__":
    main()

"""Dependency direction (DESIGN.md): handlers → bot; only bot/app.py and bot/render/ know Slack's libraries."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLACK_LIBRARIES = {"slack_bolt", "slack_sdk"}
ALLOWED_SLACK = {Path("bot/app.py")}
ALLOWED_SLACK_DIRS = {Path("bot/render")}
ALLOWED_HANDLERS = {Path("bot/app.py")}  # the composition root registers handlers' listeners


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _bot_files() -> list[Path]:
    return sorted(path.relative_to(ROOT) for path in (ROOT / "bot").rglob("*.py"))


def test_bot_does_not_import_slack_libraries_outside_app_and_render() -> None:
    offenders = [
        f"{path}: {sorted(_imports(ROOT / path) & SLACK_LIBRARIES)}"
        for path in _bot_files()
        if path not in ALLOWED_SLACK
        and not any(parent in ALLOWED_SLACK_DIRS for parent in path.parents)
        and _imports(ROOT / path) & SLACK_LIBRARIES
    ]
    assert offenders == []


def test_bot_does_not_import_handlers() -> None:
    offenders = [
        str(path) for path in _bot_files() if path not in ALLOWED_HANDLERS and "handlers" in _imports(ROOT / path)
    ]
    assert offenders == []


def test_the_check_sees_imports(tmp_path: Path) -> None:
    # Guard against a checker that finds nothing: both spellings, and imports inside functions, are seen.
    sample = tmp_path / "sample.py"
    sample.write_text("import slack_sdk.web\ndef f():\n    from slack_bolt import App\n", encoding="utf-8")
    assert _imports(sample) == {"slack_sdk", "slack_bolt"}


def test_handlers_stay_thin() -> None:
    # Handlers parse, call bot, render and send; business rules live in bot/. A long handler module is a smell.
    for path in (ROOT / "handlers").glob("*.py"):
        code_lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(code_lines) < 150, f"{path.name} has {len(code_lines)} lines; move logic into bot/"


def test_lambda_cold_path_stays_light() -> None:
    # Importing the Lambda handler is on Slack's 3-second ack path: heavy modules must load only when used.
    import subprocess
    import sys

    heavy = [
        "sqlalchemy",
        "alembic",
        "typer",
        "rich",
        "moto",
        "matplotlib",
        "bot.diagnosis.chase",
        "bot.diagnosis.classify",
        "bot.kpi.engine",  # KPI work loads its stack (database drivers, matplotlib) when a KPI runs
        "bot.kpi.chart",
        "bot.kpi.model",  # with bot.render.kpi: about 10 ms, needed only once a KPI answer is rendered
        "bot.render.kpi",
        "bot.diagnosis.remediation",
        "bot.render.diagnosis",
    ]
    code = f"import sys, handlers.lambda_handler; print(','.join(sorted(m for m in {heavy!r} if m in sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == ""

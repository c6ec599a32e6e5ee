"""Golden-file assertions for rendered messages (regenerate with ETL_DOCTOR_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "blocks"


def assert_golden(name: str, actual: Any) -> None:
    """Compare ``actual`` with ``tests/fixtures/blocks/<name>``; .json files hold JSON, others text."""
    path = GOLDEN_DIR / name
    rendered = json.dumps(actual, indent=2, ensure_ascii=False) + "\n" if name.endswith(".json") else str(actual)
    if os.environ.get("ETL_DOCTOR_UPDATE_GOLDEN") == "1":
        path.write_text(rendered, encoding="utf-8")
        return
    assert path.exists(), f"golden file {path} missing; run with ETL_DOCTOR_UPDATE_GOLDEN=1 and review the diff"
    assert rendered == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


# The fallback text of `/etl help`, derived from the subcommand registry (what every transport must deliver).
from bot.commands import SUBCOMMANDS  # noqa: E402

HELP_TEXT = "etl-doctor subcommands: " + ", ".join(sub.name for sub in SUBCOMMANDS)

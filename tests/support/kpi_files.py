"""Two SQLite files with one injected gap and the etl-doctor.yml that reconciles them (CLI and Lambda tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def write_policies(root: Path, *, negative: int = 0) -> dict[str, Path]:
    """`src.db` and `dst.db`: policies(policy_id, policy_date, premium), 60 rows over 2025-02-01..06 (plus
    ``negative`` rows with a premium of -1 in the source); the target lacks P-0005 of 2025-02-06."""
    paths = {"src": root / "src.db", "dst": root / "dst.db"}
    for side, path in paths.items():
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE policies (policy_id TEXT PRIMARY KEY, policy_date TEXT, premium NUMERIC)")
            rows = [(f"P-{i:04d}", f"2025-02-{1 + i % 6:02d}", f"{100 + i}.50") for i in range(60)]
            rows += [(f"N-{i}", "2025-02-02", "-1") for i in range(negative)]
            db.executemany(
                "INSERT INTO policies VALUES (?, ?, ?)", [r for r in rows if side == "src" or r[0] != "P-0005"]
            )
    return paths


def project_yaml(paths: dict[str, Path], *, kpi_extra: str = "", head: str = "") -> str:
    """etl-doctor.yml reconciling ``premium_amount`` (sum, 0.1%) between the two files, and one check."""
    return f"""
default_channel: "#etl-alerts"
{head}
connections:
  src: {{url: "sqlite:///{paths["src"]}"}}
  dst: {{url: "sqlite:///{paths["dst"]}"}}
kpis:
  premium_amount:
    aggregate: sum
    column: premium
    keys: [policy_id]
    partition: {{column: policy_date, grain: day}}
    tolerance: {{relative: 0.001}}
{kpi_extra}    layers:
      - {{name: src.policies, connection: src, table: policies}}
      - {{name: dst.policies, connection: dst, table: policies}}
checks:
  no_negative_premiums:
    connection: src
    sql: SELECT count(*) FROM policies WHERE premium < 0
"""


def make_world(root: Path, *, negative: int = 0) -> Path:
    """Both files and `etl-doctor.yml` next to them; returns the directory."""
    (root / "etl-doctor.yml").write_text(project_yaml(write_policies(root, negative=negative)), encoding="utf-8")
    return root

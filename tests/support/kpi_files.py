"""Two SQLite files with one injected gap and the etl-doctor.yml that reconciles them (CLI and Lambda tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def make_world(root: Path, *, negative: int = 0) -> Path:
    """Two SQLite files (the target lacks P-0005 of 2025-02-06) and etl-doctor.yml; returns the directory."""
    for side in ("src", "dst"):
        with sqlite3.connect(root / f"{side}.db") as db:
            db.execute("CREATE TABLE policies (policy_id TEXT PRIMARY KEY, policy_date TEXT, premium NUMERIC)")
            rows = [(f"P-{i:04d}", f"2025-02-{1 + i % 6:02d}", f"{100 + i}.50") for i in range(60)]
            rows += [(f"N-{i}", "2025-02-02", "-1") for i in range(negative)]
            db.executemany(
                "INSERT INTO policies VALUES (?, ?, ?)", [r for r in rows if side == "src" or r[0] != "P-0005"]
            )
    (root / "etl-doctor.yml").write_text(
        f"""
default_channel: "#etl-alerts"
connections:
  src: {{url: "sqlite:///{root / "src.db"}"}}
  dst: {{url: "sqlite:///{root / "dst.db"}"}}
kpis:
  premium_amount:
    aggregate: sum
    column: premium
    keys: [policy_id]
    partition: {{column: policy_date, grain: day}}
    tolerance: {{relative: 0.001}}
    layers:
      - {{name: src.policies, connection: src, table: policies}}
      - {{name: dst.policies, connection: dst, table: policies}}
checks:
  no_negative_premiums:
    connection: src
    sql: SELECT count(*) FROM policies WHERE premium < 0
""",
        encoding="utf-8",
    )
    return root

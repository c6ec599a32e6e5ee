"""Accuracy of the rule-based classifier on the labelled corpus of real error messages.

Reads tests/fixtures/errors/corpus.yml, splits it into train and held-out by a hash of each id (the rule is
in tests/fixtures/errors/SOURCES.md), classifies every entry and prints one per-category table with n, precision
and recall for train and held-out side by side, then the misclassified held-out ids (the confusion list), then
the accuracy on the blind set (entries marked `blind: 2026-11-26`, collected after the rules and classified
before any rule change for them; their score at collection time is in SOURCES.md). Rules are tuned on train
only; held-out is the estimate of accuracy on errors nobody looked at while writing them.
Last line: key=value figures (accuracy_train accuracy_heldout n_train n_heldout categories n_blind accuracy_blind).

    .venv/bin/python bench/classify_accuracy.py            # both splits
    .venv/bin/python bench/classify_accuracy.py --only train   # while tuning rules: never look at held-out
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.diagnosis.classify import CATEGORIES, Classification, Signals, classify  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "errors" / "corpus.yml"
BLIND = "2026-11-26"  # the `blind:` mark of the entries collected that day, classified before any rule change for them
INTEGRATIONS = {"ecs", "lambda", "glue", "batch", "states"}


def split_of(entry_id: str) -> str:
    """``heldout`` for about 30% of ids (first 8 hex digits of sha256(id), as an integer, mod 100 < 30)."""
    return "heldout" if int(hashlib.sha256(entry_id.encode("utf-8")).hexdigest()[:8], 16) % 100 < 30 else "train"


def signals_of(entry: dict[str, Any]) -> Signals:
    context = entry.get("context")
    return Signals(
        texts=(entry["text"],),
        exit_code=entry.get("exit_code"),
        stop_code=entry.get("stop_code"),
        integration=context if context in INTEGRATIONS else None,
    )


def load() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    return entries


Rows = list[tuple[dict[str, Any], Classification]]


def figures(rows: Rows) -> dict[str, tuple[int, str, str]]:
    """Per category: (n, precision, recall), as printed ("-" when undefined)."""
    truth = Counter(entry["category"] for entry, _ in rows)
    predicted = Counter(result.category for _, result in rows)
    correct = Counter(entry["category"] for entry, result in rows if result.category == entry["category"])
    out = {}
    for category in CATEGORIES:
        n, p, c = truth[category], predicted[category], correct[category]
        out[category] = (n, f"{c / p:.2f}" if p else "-", f"{c / n:.2f}" if n else "-")
    return out


def accuracy_of(rows: Rows) -> float:
    return sum(1 for entry, result in rows if result.category == entry["category"]) / len(rows) if rows else 0.0


def table(rows: dict[str, Rows]) -> None:
    """One line per category: n, precision and recall for each reported split side by side."""
    splits = list(rows)
    per_split = {split: figures(rows[split]) for split in splits}
    head = "".join(f" | {split + ' n':>11} {'precision':>9} {'recall':>6}" for split in splits)
    print(f"\n  {'category':26}{head}")
    for category in CATEGORIES:
        cells = ""
        for split in splits:
            n, precision, recall = per_split[split][category]
            cells += f" | {n:>11} {precision:>9} {recall:>6}"
        print(f"  {category:26}{cells}")
    totals = "".join(f" | {len(rows[split]):>11} {'accuracy':>9} {accuracy_of(rows[split]):>6.3f}" for split in splits)
    print(f"  {'all':26}{totals}")


def confusions(rows: Rows, title: str) -> None:
    wrong = [(entry, result) for entry, result in rows if result.category != entry["category"]]
    print(f"\n{title} misclassified: {len(wrong)}")
    for entry, result in wrong:
        print(f"  {entry['id']:42} expected {entry['category']:26} got {result.category} ({result.confidence:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("train", "heldout"), help="report one split only")
    args = parser.parse_args()
    splits = [args.only] if args.only else ["train", "heldout"]
    rows: dict[str, Rows] = {"train": [], "heldout": []}
    for entry in load():
        rows[split_of(entry["id"])].append((entry, classify(signals_of(entry))))
    reported = {split: rows[split] for split in splits}
    table(reported)
    if args.only == "train":
        confusions(rows["train"], "train")
    if args.only in (None, "heldout"):
        confusions(rows["heldout"], "held-out")
    blind = [row for split in splits for row in rows[split] if row[0].get("blind") == BLIND]
    print(f"\nblind set collected on {BLIND} ({len(blind)} entries in the reported splits), classified now:")
    missed = [entry["id"] for entry, result in blind if result.category != entry["category"]]
    print(f"  accuracy {accuracy_of(blind):.3f}; misclassified: {', '.join(missed) or 'none'}")
    values = [f"accuracy_{split}={accuracy_of(rows[split]):.3f}" for split in splits]
    values += [f"n_{split}={len(rows[split])}" for split in ("train", "heldout")]
    values += [f"categories={len(CATEGORIES)}", f"n_blind={len(blind)}", f"accuracy_blind={accuracy_of(blind):.3f}"]
    print(" ".join(values))


if __name__ == "__main__":
    main()

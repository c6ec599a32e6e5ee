"""Accuracy of the rule-based classifier on the labelled corpus of real error messages.

Reads tests/fixtures/errors/corpus.yml, splits it into train and held-out by a hash of each id (the rule is
in tests/fixtures/errors/SOURCES.md), classifies every entry and prints, for each split, a per-category table
(n, precision, recall), then the misclassified held-out ids (the confusion list). Rules are tuned on train
only; held-out is the estimate of accuracy on errors nobody looked at while writing them.
Last line: key=value figures.

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


def table(rows: list[tuple[dict[str, Any], Classification]], title: str) -> float:
    print(f"\n{title}: {len(rows)} entries")
    print(f"  {'category':26} {'n':>4} {'predicted':>9} {'precision':>9} {'recall':>7}")
    truth = Counter(entry["category"] for entry, _ in rows)
    predicted = Counter(result.category for _, result in rows)
    correct = Counter(entry["category"] for entry, result in rows if result.category == entry["category"])
    for category in CATEGORIES:
        n, p, c = truth[category], predicted[category], correct[category]
        precision = f"{c / p:.2f}" if p else "-"
        recall = f"{c / n:.2f}" if n else "-"
        print(f"  {category:26} {n:>4} {p:>9} {precision:>9} {recall:>7}")
    accuracy = sum(correct.values()) / len(rows) if rows else 0.0
    print(f"  accuracy {accuracy:.3f}")
    return accuracy


def confusions(rows: list[tuple[dict[str, Any], Classification]], title: str) -> None:
    wrong = [(entry, result) for entry, result in rows if result.category != entry["category"]]
    print(f"\n{title} misclassified: {len(wrong)}")
    for entry, result in wrong:
        print(f"  {entry['id']:42} expected {entry['category']:26} got {result.category} ({result.confidence:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("train", "heldout"), help="report one split only")
    args = parser.parse_args()
    entries = load()
    rows = {"train": [], "heldout": []}  # type: dict[str, list[tuple[dict[str, Any], Classification]]]
    for entry in entries:
        rows[split_of(entry["id"])].append((entry, classify(signals_of(entry))))
    accuracy = {}
    for split in ("train", "heldout"):
        if args.only in (None, split):
            accuracy[split] = table(rows[split], split)
    if args.only == "train":
        confusions(rows["train"], "train")
    if args.only in (None, "heldout"):
        confusions(rows["heldout"], "held-out")
    figures = [f"accuracy_{split}={value:.3f}" for split, value in accuracy.items()]
    figures += [f"n_{split}={len(rows[split])}" for split in ("train", "heldout")]
    print(" ".join(figures) + f" categories={len(CATEGORIES)}")


if __name__ == "__main__":
    main()

"""Rule-based root-cause classification of ETL failure signals (rules are data in rules.yml)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

CATEGORIES: tuple[str, ...] = (
    "out_of_memory",
    "timeout",
    "throttling_or_rate_limit",
    "permission_denied",
    "missing_resource",
    "network_or_connectivity",
    "container_start_failure",
    "schema_or_type_mismatch",
    "data_quality_assertion",
    "code_bug",
    "dependency_or_import",
    "disk_full",
    "spot_or_capacity",
    "unknown",
)

UNKNOWN = "unknown"
_RULES_FILE = "rules.yml"
_CONFIDENCE_SCALE = 2.5  # score at which a lone, uncontested category reaches ~63% confidence
_MAX_CONFIDENCE = 0.99
_RUNNER_UP_RATIO = 0.75  # a runner-up this close to the winner is reported as a conflict
_LOW_MEMORY_PCT = 50.0
_HIGH_MEMORY_PCT = 80.0
_MAX_TEXT = 20_000  # characters of each text that are searched


@dataclass(frozen=True)
class Signals:
    """What is known about one failure, as gathered by the chase.

    Attributes:
        texts: Error name, cause, stopped reason, root exception… in any order: what identifies the failure. They
            are searched by the rules and hashed into the fingerprint.
        error_name: The Step Functions error, e.g. ``States.Timeout`` or ``Lambda.TooManyRequestsException``.
        exit_code: The failing container's exit code.
        stop_code: The ECS ``stopCode`` (TaskFailedToStart, EssentialContainerExited, SpotInterruption…).
        memory_peak_pct: Container Insights peak memory utilisation near the failure, 0-100.
        integration: Where the work ran: ``ecs``, ``lambda``, ``glue``, ``batch``, ``states``…
        log_texts: Log evidence lines (the few lines read from the failing task's log stream). Searched by the
            rules like ``texts``, but NOT hashed into the fingerprint: log lines carry whatever the job printed
            around the failure (progress, row counts, a different last line on every run), so the same failure
            must keep its fingerprint whichever lines were read.
    """

    texts: tuple[str, ...] = ()
    error_name: str | None = None
    exit_code: int | None = None
    stop_code: str | None = None
    memory_peak_pct: float | None = None
    integration: str | None = None
    log_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    """The verdict on one failure.

    Attributes:
        category: One of :data:`CATEGORIES`.
        confidence: 0..1; a single weak phrase is about 0.4, exit 137 with OOM text about 0.95.
        transient: Whether retrying as is is likely to work (an opinion per category, from rules.yml).
        fingerprint: 16 hex characters identifying the failure across runs (see :func:`fingerprint`).
        title: A short human title, e.g. "Out of memory (exit 137)".
        reasons: The signals that matched, human-readable.
        conflicts: Signals that disagree with the verdict, human-readable.
    """

    category: str
    confidence: float
    transient: bool
    fingerprint: str
    title: str
    reasons: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class _Observed:
    """Signals prepared for matching."""

    blob: str
    error_name: str
    exit_code: int | None
    stop_code: str | None
    memory_peak_pct: float | None
    integration: str | None


@dataclass(frozen=True)
class _Rule:
    """One scoring rule: all of its matchers must match for it to score ``weight`` for ``category``."""

    id: str
    category: str
    weight: float
    label: str
    text: re.Pattern[str] | None = None
    unless: re.Pattern[str] | None = None
    error_name: re.Pattern[str] | None = None
    exit_codes: frozenset[int] = frozenset()
    stop_codes: frozenset[str] = frozenset()
    integrations: frozenset[str] = frozenset()
    memory_peak_at_least: float | None = None
    memory_peak_below: float | None = None
    sigkill: bool = False

    def matches(self, seen: _Observed) -> bool:
        """Whether every matcher of the rule matches the observed signals."""
        checks: list[Callable[[], bool]] = []
        if self.text is not None:
            text = self.text
            checks.append(lambda: text.search(seen.blob) is not None)
        if self.error_name is not None:
            name = self.error_name
            checks.append(lambda: bool(seen.error_name) and name.search(seen.error_name) is not None)
        if self.exit_codes:
            checks.append(lambda: seen.exit_code in self.exit_codes)
        if self.stop_codes:
            checks.append(lambda: (seen.stop_code or "").lower() in self.stop_codes)
        if self.integrations:
            checks.append(lambda: (seen.integration or "").lower() in self.integrations)
        if self.memory_peak_at_least is not None:
            low = self.memory_peak_at_least
            checks.append(lambda: seen.memory_peak_pct is not None and seen.memory_peak_pct >= low)
        if self.memory_peak_below is not None:
            high = self.memory_peak_below
            checks.append(lambda: seen.memory_peak_pct is not None and seen.memory_peak_pct < high)
        if self.unless is not None:
            unless = self.unless
            checks.append(lambda: unless.search(seen.blob) is None)
        return bool(checks) and all(check() for check in checks)


@dataclass(frozen=True)
class _CategoryMeta:
    title: str
    transient: bool


@dataclass(frozen=True)
class _RuleSet:
    threshold: float
    categories: Mapping[str, _CategoryMeta]
    rules: tuple[_Rule, ...]


def _regex(rule_id: str, key: str, value: Any) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"rule {rule_id}: {key} must be a non-empty string")
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"rule {rule_id}: {key} is not a valid regex: {exc}") from exc


def _strings(rule_id: str, key: str, value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"rule {rule_id}: {key} must be a list of strings")
    return frozenset(item.lower() for item in value)


def _ints(rule_id: str, key: str, value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        raise ValueError(f"rule {rule_id}: {key} must be a list of integers")
    return frozenset(value)


def _number(rule_id: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"rule {rule_id}: {key} must be a number")
    return float(value)


_RULE_KEYS = frozenset(
    {
        "id",
        "category",
        "weight",
        "label",
        "text",
        "unless",
        "error_name",
        "exit_code",
        "stop_code",
        "integration",
        "memory_peak_at_least",
        "memory_peak_below",
        "sigkill",
    }
)


def _parse_rule(raw: Any, index: int) -> _Rule:
    if not isinstance(raw, dict):
        raise ValueError(f"rule #{index} is not a mapping")
    rule_id = str(raw.get("id") or f"#{index}")
    unknown_keys = set(raw) - _RULE_KEYS
    if unknown_keys:
        raise ValueError(f"rule {rule_id}: unknown keys {sorted(unknown_keys)}")
    category = raw.get("category")
    if category not in CATEGORIES or category == UNKNOWN:
        raise ValueError(f"rule {rule_id}: category must be one of the categories (not unknown), got {category!r}")
    weight = _number(rule_id, "weight", raw.get("weight"))
    if weight is None or weight <= 0:
        raise ValueError(f"rule {rule_id}: weight must be a positive number")
    sigkill = raw.get("sigkill", False)
    if not isinstance(sigkill, bool):
        raise ValueError(f"rule {rule_id}: sigkill must be true or false")
    rule = _Rule(
        id=rule_id,
        category=category,
        weight=weight,
        label=str(raw.get("label") or rule_id),
        text=_regex(rule_id, "text", raw.get("text")),
        unless=_regex(rule_id, "unless", raw.get("unless")),
        error_name=_regex(rule_id, "error_name", raw.get("error_name")),
        exit_codes=_ints(rule_id, "exit_code", raw.get("exit_code")),
        stop_codes=_strings(rule_id, "stop_code", raw.get("stop_code")),
        integrations=_strings(rule_id, "integration", raw.get("integration")),
        memory_peak_at_least=_number(rule_id, "memory_peak_at_least", raw.get("memory_peak_at_least")),
        memory_peak_below=_number(rule_id, "memory_peak_below", raw.get("memory_peak_below")),
        sigkill=sigkill,
    )
    positive = (
        rule.text,
        rule.error_name,
        rule.exit_codes,
        rule.stop_codes,
        rule.memory_peak_at_least,
        rule.memory_peak_below,
    )
    if not any(matcher is not None and matcher != frozenset() for matcher in positive):
        raise ValueError(f"rule {rule_id}: needs at least one matcher")
    return rule


def _parse_rules(document: str) -> _RuleSet:
    """Parse and validate a rules document (the format of rules.yml).

    Args:
        document: YAML text.

    Returns:
        The validated rule set.

    Raises:
        ValueError: When the document does not follow the format.
    """
    raw = yaml.safe_load(document)
    if not isinstance(raw, dict):
        raise ValueError("the rules document must be a mapping")
    threshold = _number("document", "threshold", raw.get("threshold"))
    if threshold is None or threshold <= 0:
        raise ValueError("threshold must be a positive number")
    raw_categories = raw.get("categories")
    if not isinstance(raw_categories, dict) or set(raw_categories) != set(CATEGORIES):
        raise ValueError(f"categories must list exactly {', '.join(CATEGORIES)}")
    categories: dict[str, _CategoryMeta] = {}
    for name, meta in raw_categories.items():
        if (
            not isinstance(meta, dict)
            or not isinstance(meta.get("title"), str)
            or not isinstance(meta.get("transient"), bool)
        ):
            raise ValueError(f"category {name}: needs a string title and a boolean transient")
        categories[name] = _CategoryMeta(title=meta["title"], transient=meta["transient"])
    raw_rules = raw.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ValueError("rules must be a non-empty list")
    rules = tuple(_parse_rule(item, index) for index, item in enumerate(raw_rules))
    ids = [rule.id for rule in rules]
    duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if duplicates:
        raise ValueError(f"duplicate rule ids: {duplicates}")
    return _RuleSet(threshold=threshold, categories=categories, rules=rules)


@lru_cache(maxsize=1)
def _rules() -> _RuleSet:
    return _parse_rules(resources.files("bot.diagnosis").joinpath(_RULES_FILE).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- fingerprint

_PROTECTED = re.compile(
    r"(?:exit(?:ed)? (?:with )?(?:code|status)(?: is)?:? ?|errno:? ?|status code:? ?|error code:? ?|http/\d\.\d "
    r"|error #|sqlstate:? ?)-?\d+"
)


def _if_digit(match: re.Match[str], placeholder: str, *, letter: bool = False) -> str:
    """``placeholder`` when the matched run has a digit (and, with ``letter``, a letter), else the run."""
    run = match.group(0)
    has_digit = any(char.isdigit() for char in run)
    has_letter = not letter or any("a" <= char <= "z" for char in run)
    return placeholder if has_digit and has_letter else run


_Replacement = str | Callable[[re.Match[str]], str]
_SEGMENT = r"[^\s/\"'`,;:()\[\]{}\x00]+"
_PATH = rf"(?<![^\s\"'`=(\[{{,;:])(?:[^=\s/\"'`,;:()\[\]{{}}\x00]+)?(?:/{_SEGMENT}){{2,}}"
_NORMALISERS: tuple[tuple[re.Pattern[str], _Replacement], ...] = (
    (re.compile(r"\barn:aws[\w-]*:[^\s\"'`,;)\]}]+"), "<arn>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'`,;)\]}]+"), "<uri>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (
        re.compile(
            r"\d{2,4}[-/]\d{2}[-/]\d{2}(?:[t ,]+\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:z|[+-]\d{2}:?\d{2})?( utc)?)?"
        ),
        "<ts>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (
        re.compile(
            r"(request[ _-]?id|requestid|x-amz-request-id|extended request id|host ?id|x-amz-id-2|"
            r"aws_request_id|run[ _-]?id|task[ _-]?id|job[ _-]?id|execution[ _-]?id)([\"':= ]+)[^\s\"',;)]+"
        ),
        r"\1\2<id>",
    ),
    (re.compile(r"\bip-\d+-\d+-\d+-\d+[\w.-]*"), "<host>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:i|eni|sg|subnet|vpc|ami|vol|snap|jr|j|r|sir|fl|nat|igw|rtb)-[0-9a-f]{6,}\b"), "<id>"),
    # Unquoted file-system paths and object keys: two or more `/segment`s, after an optional relative first segment
    # (`/tmp/run-<ts>/part-00017.csv`, `models/staging/orders.yml`), starting at the start of the text or after a
    # space, quote, `=`, `:`, `,` or bracket. Placeholders already put in (`<ts>`) belong to the segment. A segment
    # cannot contain `/`, so each start position fails or succeeds in one pass: linear time.
    (re.compile(_PATH), "<path>"),
    # Runs are matched once and checked by a function (a lookahead per position is quadratic on long runs).
    (re.compile(r"(?<![0-9a-z])(?:0x)?[0-9a-f]{8,}(?![0-9a-z])"), lambda m: _if_digit(m, "<hex>")),
    (re.compile(r"(?<![a-z0-9+/])[a-z0-9+/]{20,}={0,2}"), lambda m: _if_digit(m, "<token>", letter=True)),
    (re.compile(r"(['\"`])[^'\"`\n]*(?:\d|<[a-z]+>|/)[^'\"`\n]*\1"), r"\1<v>\1"),
    (re.compile(r"(['\"`])[^'\"`\n]{48,}\1"), r"\1<v>\1"),
    (re.compile(r"\d{4,}"), "<n>"),
    (re.compile(r"(?<![a-z_])\d+(?:\.\d+)*"), "<n>"),
)
_WHITESPACE = re.compile(r"\s+")
_SENTINEL = re.compile("\x00([a-z]+)\x00")  # letters only: the number normalisers must not touch it


def _letters(index: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "ba": a digit-free tag for a protected span."""
    tag = ""
    while True:
        index, rest = divmod(index, 26)
        tag = chr(ord("a") + rest) + tag
        if not index:
            return tag


def normalise(text: str) -> str:
    """Reduce an error text to its stable part: what stays the same when the same failure happens again.

    Removes (replaces with placeholders) ARNs, URLs and S3 URIs, UUIDs, timestamps, IP addresses, host names,
    AWS resource ids, request/run/task ids, unquoted file-system paths and object keys (two or more
    ``/segment`` parts), hex strings, tokens, quoted values that vary (with digits, ids or paths, or long ones)
    and numbers. Exit codes, errno values and HTTP status codes are kept: they change the meaning. The result
    is lower-case with collapsed whitespace.

    Args:
        text: An error message, a log line, a cause.

    Returns:
        The normalised text.
    """
    lowered = text.lower()
    kept: dict[str, str] = {}

    def protect(match: re.Match[str]) -> str:
        tag = _letters(len(kept))
        kept[tag] = match.group(0)
        return f"\x00{tag}\x00"

    work = _PROTECTED.sub(protect, lowered)
    for pattern, replacement in _NORMALISERS:
        work = pattern.sub(replacement, work)
    work = _SENTINEL.sub(lambda match: kept.get(match.group(1), ""), work)
    return _WHITESPACE.sub(" ", work).strip()


def fingerprint(text: str) -> str:
    """A 16-hex-character id of a failure: the same failure on another day, task or account gets the same one.

    Args:
        text: An error message (or several joined by newlines).

    Returns:
        The first 16 hex digits of the SHA-256 of :func:`normalise` ``(text)``.
    """
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- classification


def _observe(signals: Signals) -> _Observed:
    parts = [text[:_MAX_TEXT] for text in (*signals.texts, *signals.log_texts) if text]
    if signals.error_name:
        parts.insert(0, signals.error_name)
    return _Observed(
        blob="\n".join(parts),
        error_name=signals.error_name or "",
        exit_code=signals.exit_code,
        stop_code=signals.stop_code,
        memory_peak_pct=signals.memory_peak_pct,
        integration=signals.integration,
    )


def _strength(score: float) -> float:
    return 1.0 - math.exp(-score / _CONFIDENCE_SCALE)


def _title(template: str, signals: Signals) -> str:
    return template.format(
        exit=f" (exit {signals.exit_code})" if signals.exit_code is not None else "",
        error=f" ({signals.error_name})" if signals.error_name else "",
        stop=f" ({signals.stop_code})" if signals.stop_code else "",
    )


def _fingerprint_of(signals: Signals) -> str:
    # log_texts are deliberately left out: see Signals.
    parts = ([signals.error_name] if signals.error_name else []) + [text for text in signals.texts if text]
    return fingerprint("\n".join(parts))


def _killed_not_oom(signals: Signals, matched: list[_Rule]) -> bool:
    """Whether out_of_memory rests only on a kill (exit 137, "signal: killed") that the memory metrics contradict.

    Exit code 137 means SIGKILL: the memory limit is the usual sender, but a stop, a health check or a timeout
    sends it too. With a peak below the low threshold and no text about memory, the kill is not evidence of OOM.
    """
    peak = signals.memory_peak_pct
    oom_rules = [rule for rule in matched if rule.category == "out_of_memory"]
    return peak is not None and peak < _LOW_MEMORY_PCT and bool(oom_rules) and all(rule.sigkill for rule in oom_rules)


def _kill_note(signals: Signals) -> str:
    peak = signals.memory_peak_pct or 0.0
    killed = "exit code 137" if signals.exit_code == 137 else "the kill signal (SIGKILL)"
    return (
        f"{killed} suggests OOM but memory peaked at {peak:.0f}%: killed by something else (SIGKILL from a stop, "
        "a health check or a timeout?), so not classified as out of memory"
    )


def _memory_conflicts(signals: Signals, category: str, matched: list[_Rule]) -> tuple[list[str], float]:
    """Exit code 137 (SIGKILL) against the text and the memory metrics, when the kill was not set aside."""
    conflicts: list[str] = []
    factor = 1.0
    peak = signals.memory_peak_pct
    oom_rules = [rule for rule in matched if rule.category == "out_of_memory"]
    text_agrees = any(not rule.sigkill and rule.memory_peak_at_least is None for rule in oom_rules)
    if category == "out_of_memory":
        if peak is not None and peak < _LOW_MEMORY_PCT:
            conflicts.append(
                f"the text says out of memory but memory peaked at {peak:.0f}% "
                "(a short spike between samples, or a per-process limit below the container's)"
            )
            factor *= 0.8
        elif signals.exit_code == 137 and not text_agrees and (peak is None or peak < _HIGH_MEMORY_PCT):
            conflicts.append(
                "exit code 137 means SIGKILL: usually the memory limit, but no OOM message or memory metric confirms it"
            )
            factor *= 0.7
    elif signals.exit_code == 137 and category != UNKNOWN:
        conflicts.append(
            f"exit code 137 (SIGKILL) although the signals point at {category}: "
            "the kill probably came from a stop or timeout, not the memory limit"
        )
    return conflicts, factor


def classify(signals: Signals) -> Classification:
    """Classify one failure into a root-cause category.

    Each rule of rules.yml whose matchers all match scores its weight for its category; the highest total
    wins, below the threshold the result is ``unknown``. Confidence grows with the winning score and shrinks
    with the margin over the runner-up and with conflicts (exit 137 against the text, close runners-up). When
    out_of_memory rests only on a kill (exit 137) and memory peaked below the low threshold, it is set aside:
    the next-best category wins, else ``unknown``, and a conflict says why.

    Args:
        signals: What is known about the failure.

    Returns:
        The classification.
    """
    ruleset = _rules()
    seen = _observe(signals)
    matched = [rule for rule in ruleset.rules if rule.matches(seen)]
    conflicts: list[str] = []
    set_aside = _killed_not_oom(signals, matched)
    if set_aside:
        matched = [rule for rule in matched if rule.category != "out_of_memory"]
        conflicts.append(_kill_note(signals))
    scores: dict[str, float] = {}
    for rule in matched:
        scores[rule.category] = scores.get(rule.category, 0.0) + rule.weight
    ranked = sorted(scores.items(), key=lambda item: (-item[1], CATEGORIES.index(item[0])))
    best_category, best = ranked[0] if ranked else (UNKNOWN, 0.0)
    runner_category, runner = ranked[1] if len(ranked) > 1 else (UNKNOWN, 0.0)
    reasons: list[str]
    if best < ruleset.threshold:
        category = UNKNOWN
        weak = [rule.label for rule in matched]
        if weak:
            reasons = [f"only weak signals: {', '.join(weak)}"]
        elif set_aside:
            reasons = ["the only signal was a kill (SIGKILL), which the memory metrics contradict"]
        else:
            reasons = ["no known failure signature matched"]
        confidence = 0.0
    else:
        category = best_category
        reasons = [rule.label for rule in matched if rule.category == category]
        margin = (best - runner) / best
        confidence = _strength(best) * (0.5 + 0.5 * margin)
        if runner >= ruleset.threshold and runner >= _RUNNER_UP_RATIO * best:
            runner_reasons = "; ".join(rule.label for rule in matched if rule.category == runner_category)
            conflicts.append(f"also looks like {runner_category} ({runner:g} vs {best:g}): {runner_reasons}")
        if not set_aside:
            memory_conflicts, factor = _memory_conflicts(signals, category, matched)
            conflicts += memory_conflicts
            confidence *= factor
    meta = ruleset.categories[category]
    return Classification(
        category=category,
        confidence=round(min(confidence, _MAX_CONFIDENCE), 3),
        transient=meta.transient,
        fingerprint=_fingerprint_of(signals),
        title=_title(meta.title, signals),
        reasons=tuple(reasons),
        conflicts=tuple(conflicts),
    )


_SIGNAL_TYPES: dict[str, tuple[type, ...]] = {
    "error_name": (str,),
    "exit_code": (int,),
    "stop_code": (str,),
    "memory_peak_pct": (int, float),
    "integration": (str,),
}


def classify_text(text: str, **signals: object) -> Classification:
    """Classify one error text, with optional other signals (``exit_code=137``, ``error_name=...``…).

    Args:
        text: The error message.
        **signals: Any other field of :class:`Signals` except ``texts`` and ``log_texts``.

    Returns:
        The classification.

    Raises:
        TypeError: For an unknown signal or a value of the wrong type.
    """
    values: dict[str, Any] = {}
    for name, value in signals.items():
        allowed = _SIGNAL_TYPES.get(name)
        if allowed is None:
            raise TypeError(f"unknown signal {name!r}; expected one of {', '.join(_SIGNAL_TYPES)}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            raise TypeError(f"signal {name!r} must be {' or '.join(kind.__name__ for kind in allowed)}, got {value!r}")
        values[name] = float(value) if isinstance(value, int | float) and name == "memory_peak_pct" else value
    return classify(Signals(texts=(text,), **values))

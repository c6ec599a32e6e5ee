"""The `/etl` subcommands: names, one-line help, usage, examples, and argument parsing (pure)."""

from __future__ import annotations

import html
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.actions.policy import Actor

COMMAND = "/etl"
ACTION_LOGS = "etl.logs"  # the Logs button on a diagnosis or an alert
ACTION_WHY = "etl.why"  # the Why button on an alert: the diagnosis in the thread
ACTION_ALERT_LOGS = "etl.alert_logs"  # the Logs button on an alert: the log lines in the thread
# Buttons that act carry an opaque id (an incident or a request); the server re-reads and re-checks it.
# Retry and Redrive on a `/etl why` answer carry the execution ARN: a click is `/etl retry|redrive <ARN>`.
ACTION_RETRY = "etl.retry"
ACTION_RETRY_MORE = "etl.retry_more"
ACTION_REDRIVE = "etl.redrive"
ACTION_ACK = "etl.ack"
ACTION_UNACK = "etl.unack"
ACTION_SNOOZE = "etl.snooze"  # a select: option values are "<incident id>:<1h|4h|24h|resolved>"
ACTION_UNSNOOZE = "etl.unsnooze"
ACTION_CONFIRM = "etl.confirm"
ACTION_CANCEL = "etl.cancel"
ACTION_APPROVE = "etl.approve"
ACTION_REJECT = "etl.reject"
ACTION_BACKFILL = "etl.backfill"  # on a KPI answer: "<kpi>|<partition>", re-checked against etl-doctor.yml on click


@dataclass(frozen=True)
class Subcommand:
    """One `/etl` subcommand as the help text describes it.

    Attributes:
        name: The word after `/etl`.
        summary: One line of help.
        usage: Argument synopsis, e.g. ``"<execution>"``.
        examples: Full example invocations.
        min_args: Fewest arguments accepted.
        max_args: Most arguments accepted.
        in_channel: Answer visibly to the channel (diagnoses are shared); otherwise only to the sender.
        progress: Shown at once, before slow work, with ``{args}`` replaced by the arguments.
    """

    name: str
    summary: str
    usage: str = ""
    examples: tuple[str, ...] = ()
    min_args: int = 0
    max_args: int = 0
    in_channel: bool = False
    progress: str | None = None

    @property
    def synopsis(self) -> str:
        """``/etl name usage``."""
        return f"{COMMAND} {self.name} {self.usage}".rstrip()


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        name="help",
        summary="List the subcommands, or explain one.",
        usage="[subcommand]",
        examples=("/etl help", "/etl help pipelines"),
        max_args=1,
    ),
    Subcommand(
        name="why",
        summary="Why an execution failed: the chain to the log line that explains it, the error class, what to do.",
        usage="<execution ARN | console URL | state-machine/execution | execution | latest <state-machine>>",
        examples=(
            "/etl why latest policies-etl",
            "/etl why policies-etl/run-2025-02-18",
            "/etl why arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18",
        ),
        min_args=1,
        max_args=2,
        in_channel=True,
        progress=":mag: Diagnosing `{args}`: following the execution to its logs…",
    ),
    Subcommand(
        name="logs",
        summary="The log lines of the failed work (found like `why`), or of a task or stream: tail or matches.",
        usage="<execution | ECS task ARN | log-group:stream> [--grep TEXT] [--since 30m] [--lines N]",
        examples=(
            "/etl logs latest policies-etl",
            "/etl logs policies-etl/run-2025-02-18 --grep OutOfMemory",
            "/etl logs /ecs/policies-etl:ecs/loader/4d5e6f --lines 100",
        ),
        min_args=1,
        max_args=8,
        progress=":scroll: Reading logs for `{args}`…",
    ),
    Subcommand(
        name="pipelines",
        summary="Configured pipelines with their latest execution and a console link.",
        examples=("/etl pipelines",),
    ),
    Subcommand(
        name="retry",
        summary="Start a failed execution again with the same input (you confirm first; permission needed).",
        usage="<execution ARN | console URL | state-machine/execution | execution | latest <state-machine>>",
        examples=("/etl retry latest policies-etl", "/etl retry policies-etl/run-2025-02-18"),
        min_args=1,
        max_args=2,
    ),
    Subcommand(
        name="redrive",
        summary="Redrive a failed execution from the state that failed (checked first; you confirm).",
        usage="<execution ARN | console URL | state-machine/execution | execution | latest <state-machine>>",
        examples=("/etl redrive latest policies-etl",),
        min_args=1,
        max_args=2,
    ),
    Subcommand(
        name="dlq",
        summary="Messages waiting in the dead-letter queues (not consumed); `replay` sends them back.",
        usage="[queue] | replay <queue> <message-id>|--all",
        examples=("/etl dlq", "/etl dlq policies-dlq", "/etl dlq replay policies-dlq --all"),
        max_args=3,
        progress=":inbox_tray: Reading the dead-letter queues…",
    ),
    Subcommand(
        name="kpi",
        summary="Reconcile a KPI between source and warehouse: the gap, the partitions, keys and layer where it "
        "starts, a chart.",
        usage="<name> [partition | from..to | latest] | list",
        examples=(
            "/etl kpi list",
            "/etl kpi premium_amount",
            "/etl kpi premium_amount 2025-02-18",
            "/etl kpi premium_amount 2025-02-01..2025-02-28",
        ),
        min_args=1,
        max_args=2,
        in_channel=True,
    ),
    Subcommand(
        name="check",
        summary="Run a data-quality check (a query counting rows that break a rule) against its threshold.",
        usage="<name> | list",
        examples=("/etl check list", "/etl check no_negative_premiums"),
        min_args=1,
        max_args=1,
        in_channel=True,
        progress=":mag: Running check `{args}`…",
    ),
    Subcommand(
        name="audit",
        summary="Who asked for which action, and what came of it (newest first).",
        usage="[pipeline] [--limit N]",
        examples=("/etl audit", "/etl audit policies-etl --limit 50"),
        max_args=3,
    ),
)

_BY_NAME = {sub.name: sub for sub in SUBCOMMANDS}
_SLACK_LINK = re.compile(r"<([^|>]+)(?:\|[^>]*)?>")
_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>")


class UsageError(Exception):
    """The command text cannot be run; ``message`` says why and shows usage.

    Attributes:
        message: What was wrong, for the user.
        subcommand: The subcommand the user meant, when known (its usage is shown).
    """

    def __init__(self, message: str, subcommand: Subcommand | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.subcommand = subcommand


@dataclass(frozen=True)
class Invocation:
    """A parsed `/etl` command, and who typed it where (for actions; None on the command line)."""

    subcommand: Subcommand
    args: tuple[str, ...]
    actor: Actor | None = None


def find(name: str) -> Subcommand | None:
    """Return the subcommand called ``name``, or None."""
    return _BY_NAME.get(name)


def parse(text: str) -> Invocation:
    """Parse the text after `/etl` (as Slack sends it: HTML-escaped, links in angle brackets).

    An empty text means `help`.

    Raises:
        UsageError: Unknown subcommand, wrong number of arguments, or unbalanced quotes.
    """
    cleaned = _SLACK_LINK.sub(r"\1", html.unescape(text or "")).strip()
    try:
        words = shlex.split(cleaned)
    except ValueError:
        raise UsageError("unbalanced quotes in the command") from None
    if not words:
        return Invocation(_BY_NAME["help"], ())
    name, args = words[0].lower(), tuple(words[1:])
    subcommand = _BY_NAME.get(name)
    if subcommand is None:
        raise UsageError(f"`{name}` is not an etl-doctor subcommand{_suggestion(name)}")
    if not subcommand.min_args <= len(args) <= subcommand.max_args:
        expected = _expected_args(subcommand)
        raise UsageError(f"`{subcommand.name}` takes {expected}, got {len(args)}", subcommand)
    if subcommand.name == "help" and args and args[0].lower() not in _BY_NAME:
        raise UsageError(f"there is no subcommand `{args[0]}` to explain{_suggestion(args[0])}", subcommand)
    _check_arguments(subcommand, args)
    return Invocation(subcommand, args)


def _check_arguments(subcommand: Subcommand, args: tuple[str, ...]) -> None:
    """Validate arguments that need no AWS call, so mistakes are answered in the ack."""
    from bot.actions.dlq import DlqUsageError, parse_dlq_args
    from bot.diagnosis.logs_lookup import LogsUsageError, parse_logs_args
    from bot.diagnosis.targets import TargetError, parse_target

    try:
        if subcommand.name in {"why", "retry", "redrive"}:
            parse_target(args)
        elif subcommand.name == "audit":
            parse_audit_args(args)
        elif subcommand.name == "dlq":
            parse_dlq_args(args)
        elif subcommand.name in {"kpi", "check"}:
            parse_kpi_args(args, subcommand.name)
        elif subcommand.name == "logs":
            query = parse_logs_args(args)
            if not _is_stream_or_task(query.target):
                parse_target(query.target)
    except (TargetError, LogsUsageError, DlqUsageError) as error:
        raise UsageError(str(error), subcommand) from None


def parse_audit_args(args: tuple[str, ...]) -> tuple[str | None, int]:
    """``[pipeline] [--limit N]`` → (pipeline, limit).

    Raises:
        UsageError: A bad or out-of-range limit.
    """
    pipeline: str | None = None
    limit = 20
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "--limit":
            value = words.pop(0) if words else ""
            if not value.isdigit() or not 1 <= int(value) <= 200:
                raise UsageError("`--limit` takes a number from 1 to 200", _BY_NAME["audit"])
            limit = int(value)
        elif pipeline is None and not word.startswith("--"):
            pipeline = word
        else:
            raise UsageError(f"unexpected `{word}`", _BY_NAME["audit"])
    return pipeline, limit


_KPI_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,79}$")  # bot.kpi.definitions.NAME, kept import-free here
_LABEL = r"\d{4}(?:-\d{2}(?:-\d{2}(?:[ T]\d{2})?)?)?"
_PARTITION_SPEC = re.compile(rf"^(?:latest|{_LABEL}(?:\.\.{_LABEL})?)$")
SPEC_HELP = "a partition like `2025-02-18`, a range like `2025-02-01..2025-02-28`, or `latest`"


def parse_kpi_args(args: tuple[str, ...] | list[str], kind: str = "kpi") -> tuple[str | None, str | None]:
    """``<name> [spec] | list`` → (name, spec); name None means `list`. Only the shape is checked here.

    Whether the KPI exists and the partition fits its grain is checked against etl-doctor.yml later.

    Args:
        args: The words after `kpi` or `check`.
        kind: ``kpi`` (a name and an optional partition spec) or ``check`` (a name only).

    Raises:
        UsageError: A name or partition that cannot be one (the text is never echoed unbounded).
    """
    subcommand = _BY_NAME[kind]
    words = list(args)
    if not words or len(words) > (2 if kind == "kpi" else 1):
        raise UsageError(f"`{kind}` takes {_expected_args(subcommand)}, got {len(words)}", subcommand)
    name = words[0]
    if name.lower() == "list":
        if len(words) > 1:
            raise UsageError(f"`{kind} list` takes no arguments", subcommand)
        return None, None
    what = "KPI" if kind == "kpi" else "check"
    if not _KPI_NAME.fullmatch(name):
        raise UsageError(
            f"`{_shown(name)}` is not a {what} name (a letter, then letters, digits, '.', '_' or '-')", subcommand
        )
    spec = words[1].strip() if len(words) > 1 else None
    if spec is not None and not _PARTITION_SPEC.fullmatch(spec):
        raise UsageError(f"`{_shown(spec)}` is not a partition: give {SPEC_HELP}", subcommand)
    return name, spec


def _shown(text: str, limit: int = 40) -> str:
    cleaned = text.replace("`", "'").replace("\n", " ")
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


def _is_stream_or_task(args: tuple[str, ...]) -> bool:
    first = args[0] if args else ""
    return first.startswith("arn:aws:ecs:") or (":" in first and not first.startswith(("arn:", "http")))


def strip_mention(text: str) -> str:
    """The command in an app mention: ``"<@U0BOT> pipelines"`` → ``"pipelines"``."""
    return _MENTION.sub("", text or "", count=1).strip()


def _expected_args(subcommand: Subcommand) -> str:
    low, high = subcommand.min_args, subcommand.max_args
    if high == 0:
        return "no arguments"
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


def _suggestion(word: str) -> str:
    import difflib

    close = difflib.get_close_matches(word.lower(), list(_BY_NAME), n=1, cutoff=0.6)
    return f" — did you mean `{close[0]}`?" if close else ""

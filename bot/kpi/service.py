"""KPI runs as etl-doctor does them: every run recorded, results posted to Slack, breaches raised as alerts.

The engine (`bot.kpi.engine.KpiEngine`) computes; this module decides what happens around it:

- `KpiService.run` / `KpiService.check` record a `kpi_runs` row before the work and finish it after,
  whatever happens (``ok``, ``breach``/``failed`` or ``error`` with the reason);
- `KpiService.run_in_chat` is `/etl kpi`: a progress message updated as the engine reports its steps
  (at most about once a second), replaced by the result, with the chart uploaded in its thread;
- `KpiService.run_all` is the schedule: every KPI and check, posted to its channel on a breach (or
  always, per KPI), a breach raised as an alert with fingerprint ``kpi:<name>`` (``check:<name>``) so
  repeats group in one thread, and a recovery resolving it. One KPI failing never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bot.errors import describe_exception
from bot.kpi.model import CheckResult, KpiError, KpiReport, Progress, no_progress, unknown_name_message

if TYPE_CHECKING:
    from bot.alerts.model import Alert
    from bot.alerts.service import AlertService
    from bot.config import ProjectConfig
    from bot.kpi.engine import KpiEngine
    from bot.render.kpi import LastRun
    from bot.store.db import Store

logger = logging.getLogger(__name__)

Status = Literal["ok", "breach", "failed", "error"]
CHECK_PREFIX = "check:"  # checks are recorded in kpi_runs as `check:<name>`
SOURCE_KPI = "kpi"  # Alert.source of KPI and check alerts
PROGRESS_INTERVAL = 1.0  # seconds between progress updates of a Slack message (chat.update is ~1/s)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class KpiChat(Protocol):
    """The Slack calls KPI answers need (implemented over slack_sdk by the handlers)."""

    def post(self, channel: str, message: dict[str, Any], *, thread_ts: str | None = None) -> tuple[str, str]:
        """Post a message; return (channel id, ts)."""

    def update(self, channel: str, ts: str, message: dict[str, Any]) -> None:
        """Replace a message."""

    def upload(self, channel: str, content: bytes, *, filename: str, title: str, thread_ts: str | None = None) -> None:
        """Share a file in a channel (or a thread), the `files_upload_v2` way."""


class ThrottledProgress:
    """A progress sink that passes at most one message per ``interval`` seconds on, and never raises.

    The first message goes at once; later ones within the interval are dropped (the next one sent
    shows the newest step). A failure to send is logged: progress must not stop the work.
    """

    def __init__(
        self,
        send: Callable[[str], None],
        *,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()
        self.sent: list[str] = []
        self.dropped = 0

    def __call__(self, message: str) -> None:
        """Send ``message`` unless one was sent less than ``interval`` seconds ago."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self._interval:
                self.dropped += 1
                return
            self._last = now
        try:
            self._send(message)
            self.sent.append(message)
        except Exception as exc:
            logger.warning("could not show progress %r: %s", message, describe_exception(exc))


@dataclass
class Outcome:
    """What happened to one KPI or check in a scheduled run.

    Attributes:
        kind: ``kpi`` or ``check``.
        name: Its name in etl-doctor.yml.
        status: ``ok``, ``breach`` (a KPI out of tolerance), ``failed`` (a check over its threshold) or
            ``error`` (it could not run; ``error`` says why).
        report: The reconciliation, for a KPI that ran.
        check: The result, for a check that ran.
        error: Why it could not run.
        posted_to: The channel the result was posted to.
        post_error: Why it was not posted although it should have been.
        alerted: It was raised (or resolved) as an alert.
        pending_post: What to post once the alerts are out: (channel setting, message, setting name).
    """

    kind: Literal["kpi", "check"]
    name: str
    status: Status
    report: KpiReport | None = None
    check: CheckResult | None = None
    error: str | None = None
    posted_to: str | None = None
    post_error: str | None = None
    alerted: bool = False
    pending_post: tuple[str | None, dict[str, Any], str] | None = None

    @property
    def label(self) -> str:
        """``kpi premium_amount`` or ``check no_negative_premiums``."""
        return f"{self.kind} {self.name}"

    @property
    def detail(self) -> str:
        """One line: the verdict, the violations, or the error."""
        from bot.render.kpi import fmt_percent, fmt_signed

        if self.error is not None:
            return self.error
        if self.report is not None:
            report = self.report
            text = f"{report.range.label}: diff {fmt_signed(report.diff)} ({fmt_percent(report.relative_diff)})"
            if report.first_divergence is not None:
                text += f"; first divergence {report.first_divergence.text}"
            return text
        if self.check is not None:
            return f"{self.check.violations:,} violating rows (threshold {self.check.threshold:,})"
        return ""

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape (`etl-doctor kpi --all --json`)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "error": self.error,
            "posted_to": self.posted_to,
            "post_error": self.post_error,
            "alerted": self.alerted,
            "result": (
                self.report.to_json()
                if self.report is not None
                else self.check.to_json()
                if self.check is not None
                else None
            ),
        }


@dataclass
class RunAllSummary:
    """Every outcome of one scheduled run, in order (KPIs by name, then checks by name)."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        """How many outcomes have one of these statuses."""
        return sum(1 for outcome in self.outcomes if outcome.status in statuses)

    @property
    def exit_code(self) -> int:
        """2 when anything could not run, else 1 when anything breached or failed, else 0."""
        if self.count("error"):
            return 2
        return 1 if self.count("breach", "failed") else 0

    @property
    def headline(self) -> str:
        """``3 KPIs, 1 check: 1 breach, 1 error`` or ``… all within tolerance``."""
        kpis = sum(1 for o in self.outcomes if o.kind == "kpi")
        checks = len(self.outcomes) - kpis
        what = f"{kpis} KPI{'s' if kpis != 1 else ''}, {checks} check{'s' if checks != 1 else ''}"
        problems = [
            f"{n} {label}"
            for n, label in (
                (self.count("breach"), "out of tolerance"),
                (self.count("failed"), "failed"),
                (self.count("error"), "could not run"),
            )
            if n
        ]
        return f"{what}: " + (", ".join(problems) if problems else "all passed")

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape (`etl-doctor kpi --all --json`)."""
        return {
            "ok": self.count("ok"),
            "breaches": self.count("breach"),
            "failed": self.count("failed"),
            "errors": self.count("error"),
            "exit_code": self.exit_code,
            "outcomes": [outcome.to_json() for outcome in self.outcomes],
        }


@dataclass(frozen=True)
class ChatRun:
    """How `/etl kpi` went in Slack.

    Attributes:
        report: The reconciliation (None when it could not run).
        delivered: The answer is in the channel (the progress message became the result or the reason).
            When False, the caller answers another way (e.g. the command's response_url).
        channel: The channel id of the progress/result message.
        ts: Its timestamp.
        chart_uploaded: The chart was shared in the message's thread.
        error: Why it could not run (a `KpiError`'s message).
    """

    report: KpiReport | None
    delivered: bool
    channel: str | None = None
    ts: str | None = None
    chart_uploaded: bool = False
    error: str | None = None


def _number(value: Decimal | None, *, sign: bool = False) -> str:
    """A value with its significant decimals (at least two): 1,325.00, -105.50, 0.125."""
    number = value if value is not None else Decimal(0)
    exponent = int(number.normalize().as_tuple().exponent)
    places = max(2, -exponent)
    return format(number.quantize(Decimal(1).scaleb(-places)), "+,f" if sign else ",f")


def _shown(report: KpiReport) -> str:
    diff = "no difference" if not report.diff else f"diff {_number(report.diff, sign=True)}"
    relative = f", {report.relative_diff * 100:+.2f}%" if report.diff and report.relative_diff is not None else ""
    return f"source {_number(report.source_value)}, target {_number(report.target_value)}, {diff}{relative}"


def split_spec(spec: str | None) -> tuple[str | None, str | None]:
    """``2025-02-01..2025-02-28`` → (from, to); one partition → (it, it); None or ``latest`` → (None, None)."""
    if spec is None or spec.strip().lower() == "latest":
        return None, None
    first, _, last = spec.strip().partition("..")
    return first[:64], (last or first)[:64]


def validate_request(project: ProjectConfig, kind: str, name: str, spec: str | None = None) -> None:
    """Check a KPI or check request against etl-doctor.yml before any database is touched.

    Raises:
        KpiError: The name is not defined, or the partition does not fit the KPI's grain.
    """
    defined: dict[str, Any] = dict(project.kpis) if kind == "kpi" else dict(project.checks)
    if name not in defined:
        raise KpiError(unknown_name_message(kind, name, list(defined)))
    if kind == "kpi" and spec is not None and spec.strip().lower() != "latest":
        from bot.kpi.partitions import parse_range

        parse_range(spec, project.kpis[name].partition.grain)


class KpiService:
    """Runs KPIs and checks for Slack, the command line and the schedule, and records every run.

    Args:
        store: The incident store (``kpi_runs``).
        engine: Computes reconciliations and checks.
        project: etl-doctor.yml (KPIs, checks, channels).
        chat: Slack, for scheduled posts (None: nothing is posted).
        alerts: The alert pipeline, for scheduled breaches (None: no alerts are raised).
        clock: Current UTC time.
    """

    def __init__(
        self,
        store: Store,
        engine: KpiEngine,
        project: ProjectConfig,
        *,
        chat: KpiChat | None = None,
        alerts: AlertService | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._engine = engine
        self._project = project
        self._chat = chat
        self._alerts = alerts
        self._clock = clock

    # ------------------------------------------------------------------------------------------- one run

    def run(
        self,
        name: str,
        spec: str | None = None,
        *,
        trigger: str = "cli",
        requested_by: str | None = None,
        progress: Progress = no_progress,
    ) -> KpiReport:
        """Reconcile one KPI and record the run (``ok`` or ``breach``; ``error`` with the reason).

        Raises:
            KpiError: Unknown KPI, bad partition, or a database failure (the run is recorded as ``error``).
        """
        first, last = split_spec(spec)
        run_id = self._start(name[:200], trigger, requested_by, first, last)
        try:
            report = self._engine.reconcile(name, spec, progress=progress)
        except BaseException as exc:
            self._finish_error(run_id, exc)
            raise
        with self._store.transaction() as uow:
            row = uow.kpi_runs.finish(
                run_id,
                finished_at=self._clock(),
                status="breach" if report.breached else "ok",
                source_value=report.source_value,
                target_value=report.target_value,
                diff=report.diff,
                relative_diff=report.relative_diff,
                within_tolerance=report.within_tolerance,
                result=report.to_json(),
            )
            row.partition_from, row.partition_to = report.range.first[:64], report.range.last[:64]
        return report

    def recheck(self, name: str, partition: str, *, requested_by: str | None = None) -> str:
        """Reconcile a KPI again for one partition after its backfill ended, and say where it stands now."""
        try:
            report = self.run(name, partition, trigger="backfill", requested_by=requested_by)
        except KpiError as exc:
            return f":warning: could not re-check KPI `{name}` {partition} after the backfill: {exc}"
        if report.within_tolerance:
            return (
                f":white_check_mark: KPI `{name}` {partition} after the backfill: within tolerance ({_shown(report)})"
            )
        return f":x: KPI `{name}` {partition} after the backfill: still out of tolerance ({_shown(report)})"

    def check(self, name: str, *, trigger: str = "cli", requested_by: str | None = None) -> CheckResult:
        """Run one check and record it (as `check:<name>`: ``ok``, ``failed`` or ``error``).

        Raises:
            KpiError: Unknown check or a database failure (the run is recorded as ``error``).
        """
        run_id = self._start(f"{CHECK_PREFIX}{name}"[:200], trigger, requested_by, None, None)
        try:
            result = self._engine.check(name)
        except BaseException as exc:
            self._finish_error(run_id, exc)
            raise
        with self._store.transaction() as uow:
            uow.kpi_runs.finish(
                run_id,
                finished_at=self._clock(),
                status="ok" if result.passed else "failed",
                within_tolerance=result.passed,
                result=result.to_json(),
            )
        return result

    def _start(self, kpi: str, trigger: str, requested_by: str | None, first: str | None, last: str | None) -> int:
        with self._store.transaction() as uow:
            row = uow.kpi_runs.start(
                kpi=kpi,
                started_at=self._clock(),
                partition_from=first,
                partition_to=last,
                trigger=trigger[:16],
                requested_by=requested_by[:64] if requested_by else None,
            )
            return row.id

    def _finish_error(self, run_id: int, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, KpiError) else describe_exception(exc)
        try:
            with self._store.transaction() as uow:
                uow.kpi_runs.finish(run_id, finished_at=self._clock(), status="error", error=reason or "interrupted")
        except Exception:
            logger.exception("could not record the end of KPI run %s (%s)", run_id, reason)

    def last_runs(self, kind: str = "kpi") -> dict[str, LastRun]:
        """The latest recorded run of each configured KPI (or check), for the lists."""
        from bot.render.kpi import LastRun

        names = sorted(self._project.kpis if kind == "kpi" else self._project.checks)
        found: dict[str, LastRun] = {}
        with self._store.transaction() as uow:
            for name in names:
                rows = uow.kpi_runs.latest(name if kind == "kpi" else f"{CHECK_PREFIX}{name}", limit=1)
                if rows:
                    found[name] = LastRun(rows[0].status, rows[0].started_at, rows[0].relative_diff)
        return found

    # ------------------------------------------------------------------------------------------- Slack

    def run_in_chat(
        self,
        chat: KpiChat,
        channel: str,
        name: str,
        spec: str | None = None,
        *,
        requested_by: str | None = None,
        thread_ts: str | None = None,
        interval: float = PROGRESS_INTERVAL,
    ) -> ChatRun:
        """`/etl kpi` in a channel: a progress message kept up to date, then the result and the chart.

        When the progress message cannot be posted (the bot is not in the channel), the run still
        happens and is returned with ``delivered=False`` for the caller to answer another way.

        Raises:
            KpiError: Only when nothing was posted (otherwise the reason replaces the progress message).
        """
        from bot.alerts.dispatch import ChatError
        from bot.render.kpi import render_kpi_failed, render_kpi_progress, render_kpi_report

        ts: str | None = None
        try:
            channel, ts = chat.post(channel, render_kpi_progress(name, spec, "starting…"), thread_ts=thread_ts)
        except ChatError as exc:
            logger.info("cannot post KPI progress in %s (%s); answering by response_url", channel, exc)
        progress: Progress = no_progress
        if ts is not None:
            message_ts = ts
            progress = ThrottledProgress(
                lambda step: chat.update(channel, message_ts, render_kpi_progress(name, spec, step)), interval=interval
            )
        try:
            report = self.run(name, spec, trigger="slack", requested_by=requested_by, progress=progress)
        except KpiError as exc:
            if ts is None:
                raise
            chat.update(channel, ts, render_kpi_failed(name, spec, str(exc)))
            return ChatRun(None, True, channel, ts, error=str(exc))
        except Exception as exc:
            if ts is not None:
                reason = f"{describe_exception(exc)} (details were sent to whoever asked)"
                self._quietly(lambda: chat.update(channel, message_ts, render_kpi_failed(name, spec, reason)))
            raise
        if ts is None:
            return ChatRun(report, False, channel)
        chat.update(channel, ts, render_kpi_report(report))
        uploaded = self._upload_chart(chat, channel, ts, report)
        return ChatRun(report, True, channel, ts, chart_uploaded=uploaded)

    def _upload_chart(self, chat: KpiChat, channel: str, thread_ts: str | None, report: KpiReport) -> bool:
        """Share the chart in the result's thread; a failure is logged, the answer stands without it."""
        from bot.kpi.chart import chart_filename, render_chart

        try:
            png = render_chart(report)
            title = f"{report.kpi} {report.range.label}: source vs target per {report.range.grain}"
            chat.upload(channel, png, filename=chart_filename(report), title=title, thread_ts=thread_ts)
            return True
        except Exception as exc:
            logger.warning("could not share the chart of %s: %s", report.kpi, describe_exception(exc))
            return False

    @staticmethod
    def _quietly(call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:
            logger.warning("Slack call failed: %s", describe_exception(exc))

    # ------------------------------------------------------------------------------------------- schedule

    def run_all(self, *, post: bool, progress: Progress = no_progress, trigger: str = "schedule") -> RunAllSummary:
        """Every KPI, then every check: recorded, posted and alerted as configured. Never stops early.

        Args:
            post: Post results to Slack and raise alerts (needs ``chat``; alerts need ``alerts``).
            progress: Told what runs now (``premium_amount: partitions…``).
            trigger: Recorded with each run.
        """
        summary = RunAllSummary()
        for name in sorted(self._project.kpis):
            summary.outcomes.append(self._scheduled_kpi(name, post=post, progress=progress, trigger=trigger))
        for name in sorted(self._project.checks):
            progress(f"check {name}")
            summary.outcomes.append(self._scheduled_check(name, post=post, trigger=trigger))
        if post and self._alerts is not None and any(outcome.alerted for outcome in summary.outcomes):
            try:
                self._alerts.drain_now(enrich=False)
            except Exception:
                logger.exception("could not post the KPI alerts now; they stay pending")
        if post:
            for outcome in summary.outcomes:
                if outcome.pending_post is not None:
                    self._post_report(outcome)
        return summary

    def _post_report(self, outcome: Outcome) -> None:
        """Post a breach's report in its alert's thread (one thread per KPI), else in the KPI's channel."""
        assert outcome.pending_post is not None
        channel, message, setting = outcome.pending_post
        thread = self._alert_thread(outcome) if outcome.status != "ok" else None
        if thread is not None:
            channel = thread[0]
        ts = self._post(outcome, channel, message, setting, thread_ts=thread[1] if thread else None)
        if ts is not None and outcome.report is not None and outcome.posted_to is not None and self._chat is not None:
            self._upload_chart(self._chat, outcome.posted_to, thread[1] if thread else ts, outcome.report)

    def _alert_thread(self, outcome: Outcome) -> tuple[str, str] | None:
        """The (channel, ts) of the open alert this run raised, once the dispatcher has posted it."""
        if not outcome.alerted:
            return None
        with self._store.transaction() as uow:
            incident = uow.incidents.find_open(f"{outcome.kind}:{outcome.name}")
            if incident is None or not incident.slack_channel or not incident.slack_ts:
                return None
            return incident.slack_channel, incident.slack_ts

    def _scheduled_kpi(self, name: str, *, post: bool, progress: Progress, trigger: str) -> Outcome:
        kpi = self._project.kpis[name]

        def step(message: str) -> None:
            progress(message if message.startswith(name) else f"{name}: {message}")

        step("starting")
        try:
            report = self.run(name, None, trigger=trigger, progress=step)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, KpiError) else describe_exception(exc)
            logger.warning("scheduled KPI %s could not run: %s", name, reason)
            outcome = Outcome("kpi", name, "error", error=reason)
            if post and kpi.post == "always":
                from bot.render.kpi import render_kpi_failed

                self._post(outcome, kpi.channel, render_kpi_failed(name, None, reason), f"kpis.{name}.channel")
            if post:
                self._raise_alert(outcome)
            return outcome
        outcome = Outcome("kpi", name, "breach" if report.breached else "ok", report=report)
        if post and (report.breached or kpi.post == "always"):
            from bot.render.kpi import render_kpi_report

            outcome.pending_post = (kpi.channel, render_kpi_report(report), f"kpis.{name}.channel")
        if post and report.breached:
            self._raise_alert(outcome)
        elif post:
            self._resolve_alert(outcome)
        return outcome

    def _scheduled_check(self, name: str, *, post: bool, trigger: str) -> Outcome:
        check = self._project.checks[name]
        try:
            result = self.check(name, trigger=trigger)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, KpiError) else describe_exception(exc)
            logger.warning("scheduled check %s could not run: %s", name, reason)
            outcome = Outcome("check", name, "error", error=reason)
            if post:
                self._raise_alert(outcome)
            return outcome
        outcome = Outcome("check", name, "ok" if result.passed else "failed", check=result)
        if post and not result.passed:
            from bot.render.kpi import render_check_result

            outcome.pending_post = (check.channel, render_check_result(result), f"checks.{name}.channel")
        if post and not result.passed:
            self._raise_alert(outcome)
        elif post:
            self._resolve_alert(outcome)
        return outcome

    def _post(
        self,
        outcome: Outcome,
        channel: str | None,
        message: dict[str, Any],
        setting: str,
        *,
        thread_ts: str | None = None,
    ) -> str | None:
        """Post to the KPI's (check's) channel or the default one; note why not on the outcome."""
        from bot.alerts.dispatch import ChatError

        if self._chat is None:
            outcome.post_error = "no Slack (SLACK_BOT_TOKEN is not set)"
            return None
        where = channel or self._project.default_channel
        if not where:
            outcome.post_error = f"no channel: set {setting} or default_channel in etl-doctor.yml"
            return None
        try:
            posted_channel, ts = self._chat.post(where, message, thread_ts=thread_ts)
        except ChatError as exc:
            outcome.post_error = f"Slack refused the post to {where}: {exc}"
            logger.warning("could not post %s to %s: %s", outcome.label, where, exc)
            return None
        outcome.posted_to = posted_channel
        return ts

    # ------------------------------------------------------------------------------------------- alerts

    def _raise_alert(self, outcome: Outcome) -> None:
        if self._alerts is None:
            return
        try:
            self._alerts.intake.accept(self._alert(outcome))
            outcome.alerted = True
        except Exception:
            logger.exception("could not raise the alert for %s", outcome.label)

    def _resolve_alert(self, outcome: Outcome) -> None:
        """A KPI (check) back within tolerance resolves the alert its last breach raised."""
        if self._alerts is None:
            return
        recorded = outcome.name if outcome.kind == "kpi" else f"{CHECK_PREFIX}{outcome.name}"
        with self._store.transaction() as uow:
            runs = uow.kpi_runs.latest(recorded, limit=2)
        if len(runs) < 2 or runs[1].status not in ("breach", "failed", "error"):
            return
        try:
            self._alerts.intake.accept(self._alert(outcome, resolved=True))
            outcome.alerted = True
        except Exception:
            logger.exception("could not resolve the alert for %s", outcome.label)

    def _alert(self, outcome: Outcome, *, resolved: bool = False) -> Alert:
        """The alert for a breach, a failed check, a run that could not happen, or a recovery."""
        import uuid

        from bot.alerts.model import Alert

        key = f"{outcome.kind}:{outcome.name}"  # kpi:<name> or check:<name>: one thread per KPI
        what = "KPI" if outcome.kind == "kpi" else "check"
        pipeline = self._project.kpis[outcome.name].pipeline if outcome.kind == "kpi" else None
        if resolved:
            title = f"{what} {outcome.name} {'back within tolerance' if outcome.kind == 'kpi' else 'passes again'}"
        elif outcome.status == "error":
            title = f"{what} {outcome.name} could not run"
        elif outcome.kind == "kpi":
            title = f"KPI {outcome.name} out of tolerance"
        else:
            title = f"check {outcome.name} failed"
        details = {"kind": outcome.kind, "name": outcome.name, "status": outcome.status}
        if outcome.report is not None:
            details["partitions"] = outcome.report.range.label
        return Alert(
            source=SOURCE_KPI,
            kind="KPI reconciliation" if outcome.kind == "kpi" else "Data-quality check",
            status="resolved" if resolved else "failing",
            severity="warning" if outcome.status == "error" else "error",
            title=title,
            summary=outcome.detail,
            occurred_at=self._clock(),
            resource=outcome.name,
            resources={outcome.kind: outcome.name},
            error=None if resolved else outcome.status,
            resolve_key=key,
            subject=title,
            delivery_id=f"{key}:{uuid.uuid4().hex}",  # every scheduled run is a delivery of its own
            pipeline=pipeline,
            category=None if resolved else "data_quality_assertion",
            fingerprint=key,
            details=details,
        )

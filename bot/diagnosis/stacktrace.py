"""Find exception stack traces in ETL log lines and pick the one that explains a failure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Language = Literal["java", "scala", "python", "node", "unknown"]

_MAX_MESSAGE = 500
_MAX_APP_FRAMES = 5
_MAX_LINE = 8192  # characters of a line that are classified; the rest is kept but not searched
_NOISE_TOLERANCE = 3  # foreign lines (other threads) tolerated between frames of one trace
_MAX_CONTINUATION = 200  # message continuation lines kept per exception
_MAX_TENTATIVE = 50  # lines after a blank that may still belong to a message
_MAX_JSON_DEPTH = 3

_PY_TRACEBACK = "Traceback (most recent call last):"
_PY_SEPARATORS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)

# Log prefixes. Each is anchored and free of nested quantifiers, so stripping is linear in the line length.
_TIMESTAMP = re.compile(
    r"\[?(?:\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}[-/]\d{1,2}[-/]\d{2,4})[T ]\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?"
    r"(?: ?[AP]M)?(?:Z|[+-]\d{2}:?\d{2})?\]?[ \t]+"
)
_CLOCK = re.compile(r"\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?[ \t]+")
_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}[ \t]+")
_LEVEL = re.compile(r"\[?(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|SEVERE|CRITICAL)\]?(?::|[ \t]+|$)")
_THREAD = re.compile(r"\[[^\]\n]{1,80}\][ \t]+")
_COMPOSE = re.compile(r"[\w.-]+[ \t]+\|(?: |\t|$)")
_LOGGER = re.compile(r"[\w.$]+(?::\d+)?(?: -|:)[ \t]")  # "Executor: " or log4j's "TaskSetManager:54 - "
_TRACE_CONTINUATION = re.compile(r"[ \t]*(?:at |Caused by:|Suppressed:|\.\.\. \d+ more|File \")")

_JVM_FRAME = re.compile(r"at [\w$.<>/@-]+(?:\([^()]*\))?(?:[ \t]+~?\[[^\]]*\])?")
_PY_FRAME = re.compile(r'File "([^"]*)", line (\d+)(?:, in (.*))?')
_LINE_COL_END = re.compile(r":\d+(?::\d+)?\)?$")
_TOKEN = re.compile(r"\S+")
_TYPE_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_JVM_HEADER = re.compile(r'(?:Exception in thread "[^"]*" )?([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)(?::[ \t]?(.*))?')
_PY_EXCEPTION = re.compile(r"([A-Za-z_][\w.]*)(?::[ \t]?(.*))?")
_NODE_HEADER = re.compile(r"(?:Uncaught )?([A-Za-z_$][\w$.]*)(?: \[[A-Z0-9_]+\])?(?::[ \t]?(.*))?")
_PY_LIBRARY_PATH = re.compile(r"/lib(?:64)?/python\d+(?:\.\d+)?/")
_STAGE_FAILURE = "most recent failure: "

_JVM_ROOT_PACKAGES = frozenset(
    {"java", "javax", "jdk", "sun", "com", "org", "net", "io", "scala", "software", "akka", "kotlin", "kotlinx"}
    | {"lambdainternal", "ch", "de", "fr", "uk", "cats", "zio", "play", "reactor", "dev", "ai", "app", "me", "edu"}
)
_EXCEPTION_WORDS = ("Exception", "Error", "Throwable", "Failure", "Fault", "Death")

_JVM_LIBRARY_PREFIXES = (
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "scala.",
    "org.apache.",
    "py4j.",
    "com.amazonaws.",
    "software.amazon.",
    "com.amazon.ws.",
    "com.amazon.redshift.",
    "lambdainternal.",
    "io.netty.",
    "com.google.",
    "com.fasterxml.",
    "org.slf4j.",
    "ch.qos.logback.",
    "org.springframework.",
    "kotlin.",
    "kotlinx.",
    "akka.",
    "com.databricks.",
    "io.delta.",
    "org.json4s.",
    "net.jpountz.",
    "org.xerial.",
    "com.mysql.",
    "org.postgresql.",
    "org.mariadb.",
    "com.microsoft.sqlserver.",
    "oracle.jdbc.",
    "net.snowflake.",
    "com.zaxxer.",
    "org.hibernate.",
    "org.junit.",
    "junit.",
    "com.intellij.",
    "org.eclipse.",
    "org.glassfish.",
    "io.grpc.",
    "okhttp3.",
    "okio.",
    "reactor.",
    "org.codehaus.",
    "org.objectweb.",
    "com.esotericsoftware.",
    "org.antlr.",
    "org.joda.",
    "io.micrometer.",
    "io.opentelemetry.",
    "com.twitter.",
    "shapeless.",
    "cats.",
    "zio.",
    "org.scalatest.",
    "jdk.internal.",
    "com.oracle.",
    "org.jboss.",
)
_PY_LIBRARY_MARKERS = (
    "/site-packages/",
    "/dist-packages/",
    "/var/runtime/",
    "/var/lang/",
    "awslambdaric",
    "/botocore/",
    "/boto3/",
    "/pyspark/",
    "/pyspark.zip",
    "/py4j/",
    "/py4j-",
    "/opt/python/",
    "<frozen ",
    "<string>",
)
_NODE_LIBRARY_MARKERS = ("/node_modules/", "/var/runtime/", "node:", "<anonymous>")


@dataclass(frozen=True)
class StackTrace:
    """One exception stack trace found in log lines.

    Attributes:
        language: What printed it: "java", "scala", "python", "node" or "unknown".
        chain: Exceptions in the order printed (Java: outer then each "Caused by"; Python: each chained
            traceback in turn), each "Type: message" with the message's first line.
        root_type: The exception that explains the failure (the last of ``chain``), e.g. "KeyError".
        root_message: Its message (first line, at most 500 characters).
        app_frames: Up to five application frames of the root exception, as printed (an outer exception's
            when the root has none of its own).
        first_line: Index in the input of the trace's first line.
        last_line: Index in the input of its last line.
    """

    language: Language
    chain: tuple[str, ...]
    root_type: str
    root_message: str
    app_frames: tuple[str, ...]
    first_line: int
    last_line: int

    @property
    def root_exception(self) -> str:
        """The root exception as "Type: message" (just "Type" when the message is empty)."""
        return _join(self.root_type, self.root_message)


def find_stack_traces(lines: Sequence[str]) -> list[StackTrace]:
    r"""Find every stack trace in log lines.

    One log event may hold a whole multi-line trace, or each line may be its own event; lines may still
    contain ``\r`` (Lambda joins a Python traceback with it) and JSON log events may carry an escaped
    trace in a stack/trace/exception/error field. A trace cut short by the log driver is returned with
    what it has.

    Args:
        lines: Log lines, in order.

    Returns:
        The traces, ordered by their first line.
    """
    return [found.trace for found in _scan(lines)]


def root_cause(lines: Sequence[str]) -> StackTrace | None:
    """Pick the trace that explains a failure.

    The last complete trace wins, preferring fatal ones (an uncaught ``Exception in thread``, a Python
    traceback not logged at WARN level, Spark's "Job aborted", Lambda's own error report) over traces
    logged at WARN/INFO level, which are usually retried.

    Args:
        lines: Log lines, in order.

    Returns:
        The trace, or None when the lines hold none.
    """
    found = _scan(lines)
    if not found:
        return None
    complete = [item for item in found if item.trace.root_type]
    if not complete:
        return found[-1].trace
    for wanted in (lambda item: item.fatal, lambda item: not item.quiet):
        chosen = [item for item in complete if wanted(item)]
        if chosen:
            return chosen[-1].trace
    return complete[-1].trace


def parse_lambda_error(payload: str | Mapping[str, object]) -> StackTrace | None:
    r"""Read Lambda's error object, as Step Functions puts it in a Cause or Invoke returns it.

    Args:
        payload: JSON text or a mapping with ``errorType``, ``errorMessage`` and optionally ``requestId``
            and a stack (``stackTrace``, ``trace`` or ``stack``): a list of strings (Python frames such as
            ``'  File "/var/task/app.py", line 12, in handler\n    x = y[1]\n'``, Node lines such as
            ``'at Runtime.handler (/var/task/index.js:10:11)'``) or, from the Python 2.7 runtime, a list of
            ``[file, line, function, code]``.

    Returns:
        The trace (first_line and last_line are 0), or None when the payload is not of that shape.
    """
    obj: object = payload
    if isinstance(payload, str):
        try:
            obj = json.loads(payload)
        except ValueError:
            return None
    if not isinstance(obj, Mapping):
        return None
    return _lambda_trace(obj, 0)


def is_application_frame(frame: str, language: Language) -> bool:
    """Tell whether a printed frame belongs to the application rather than a runtime or library.

    Args:
        frame: One frame as printed, e.g. ``at com.acme.Job.run(Job.java:12)``,
            ``File "/var/task/app.py", line 3, in handler`` or ``at handler (/var/task/index.js:5:20)``.
        language: The trace's language; "unknown" guesses from the frame's shape.

    Returns:
        False for frames of the JVM, Scala, Spark, Hadoop, AWS SDKs, Python's standard library and
        installed packages, the Lambda runtime, PySpark/py4j, Node internals and node_modules.
    """
    text = frame.strip()
    python = _PY_FRAME.match(text)
    if language == "python" or (language == "unknown" and python):
        path = python.group(1) if python else text
        return _is_python_application_path(path)
    if language in ("java", "scala") or (language == "unknown" and _JVM_FRAME.fullmatch(text)):
        return _is_jvm_application_frame(text)
    return _is_node_application_frame(text)


# ---------------------------------------------------------------------------------------------------------------
# Frame classification


def _is_python_application_path(path: str) -> bool:
    normal = path.replace("\\", "/").lower()
    if any(marker in normal for marker in _PY_LIBRARY_MARKERS):
        return False
    return _PY_LIBRARY_PATH.search(normal) is None


def _is_jvm_application_frame(text: str) -> bool:
    name = text[3:] if text.startswith("at ") else text
    name = name.split("(", 1)[0].strip()
    if "/" in name:
        before, _, after = name.partition("/")
        # A module or class loader prefix (java.base/java.lang.Thread.run, app//com.acme.Job) has no capital
        # letters; a hidden class (com.acme.Job$$Lambda$97/0x0000000840.apply) does.
        name = after.lstrip("/") if before == before.lower() else before
    return bool(name) and not name.startswith(_JVM_LIBRARY_PREFIXES)


def _is_node_application_frame(text: str) -> bool:
    location = text[3:] if text.startswith("at ") else text
    if location.endswith(")") and " (" in location:
        location = location[location.index(" (") + 2 : -1]
    if any(marker in location for marker in _NODE_LIBRARY_MARKERS) or location.startswith("internal/"):
        return False
    if location.startswith("index ") or location.startswith("native"):
        return False
    # A bare file name ("net.js:1141:16") is a core module of an older Node; application files have a path.
    return "/" in location or "\\" in location


# ---------------------------------------------------------------------------------------------------------------
# Input lines


@dataclass
class _Line:
    index: int
    body: str  # log prefixes removed
    level: str | None  # log level of the line, when it had one
    prefixed: bool  # a timestamp or level prefix was removed: a log line, not a trace's continuation
    boundary: bool = False  # a trace cannot continue across this line (start of a JSON-embedded trace)
    trace: _Found | None = None  # a trace built directly (a Lambda error object in a log line)


@dataclass
class _Found:
    trace: StackTrace
    fatal: bool
    quiet: bool  # logged at WARN, INFO or DEBUG level


def _strip_prefix(text: str) -> tuple[str, str | None, bool]:
    body = text
    level: str | None = None
    prefixed = False
    for _ in range(6):
        match = _TIMESTAMP.match(body) or _CLOCK.match(body) or _REQUEST_ID.match(body) or _COMPOSE.match(body[:200])
        if match:
            body = body[match.end() :]
            prefixed = prefixed or match.re is not _COMPOSE
            continue
        match = _LEVEL.match(body)
        if match and level is None:
            level = match.group(1)
            body = body[match.end() :]
            prefixed = True
            thread = _THREAD.match(body)
            if thread:
                body = body[thread.end() :]
            logger = _LOGGER.match(body[:300])
            if logger and _TRACE_CONTINUATION.match(body, logger.end()):  # a log prefix on every line of a trace
                body = body[logger.end() :]
            continue
        break
    return body, level, prefixed


def _expand(lines: Sequence[str]) -> Iterator[_Line]:
    for index, raw in enumerate(lines):
        parts = raw.splitlines() or [""]
        for part in parts:
            body, level, prefixed = _strip_prefix(part)
            obj = _json_object(body)
            if obj is not None:
                yield from _from_json(index, body, obj, level)
                continue
            yield _Line(index, body, level, prefixed)


def _json_object(body: str) -> dict[str, object] | None:
    start = body.find('{"')
    if start < 0 or not body.rstrip().endswith("}"):
        return None
    try:
        obj = json.loads(body[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _from_json(index: int, body: str, obj: Mapping[str, object], level: str | None) -> Iterator[_Line]:
    level = _json_level(obj) or level
    lambda_trace = _lambda_trace(obj, index)
    if lambda_trace is not None:
        yield _Line(index, "", level, True, boundary=True, trace=_Found(lambda_trace, True, False))
        return
    stack = _json_stack(obj, 0)
    if stack is None:
        yield _Line(index, body, level, True)
        return
    first = True
    for part in stack:
        body, _, _ = _strip_prefix(part)
        yield _Line(index, body, level if first else None, False, boundary=first)
        first = False
    yield _Line(index, "", None, False, boundary=True)


def _json_level(obj: Mapping[str, object]) -> str | None:
    for key in ("level", "log.level", "levelname", "severity", "log_level"):
        value = obj.get(key)
        if isinstance(value, str):
            return value.upper()
    return None


def _json_stack(obj: Mapping[str, object], depth: int) -> list[str] | None:
    for key, value in obj.items():
        name = key.lower()
        if not any(word in name for word in ("stack", "trace", "exc", "error")):
            continue
        if isinstance(value, str) and "\n" in value:
            return value.splitlines()
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return [line for item in value for line in str(item).splitlines()]
    if depth < _MAX_JSON_DEPTH:
        for value in obj.values():
            if isinstance(value, Mapping):
                found = _json_stack(value, depth + 1)
                if found is not None:
                    return found
    return None


# ---------------------------------------------------------------------------------------------------------------
# Exceptions and the builder that turns lines into one trace


@dataclass
class _Exc:
    type: str
    message: str
    kind: str  # "jvm", "python" or "node"
    frames: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # continuation lines of a multi-line message
    children: list[_Exc] = field(default_factory=list)  # exceptions printed inside this one's message
    only_if_last: bool = False  # Spark's task failure inside "Job aborted": the root only without a "Caused by"

    def first_message_line(self) -> str:
        message = self.message.strip()
        if not message:
            message = next((line.strip() for line in self.extra if line.strip()), "")
        return message[:_MAX_MESSAGE]


def _join(kind: str, message: str) -> str:
    return f"{kind}: {message}" if message else kind


def _exceptionish(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last[:1].isupper() and any(word in last for word in _EXCEPTION_WORDS)


def _strict_jvm_header(text: str) -> tuple[str, str] | None:
    match = _JVM_HEADER.fullmatch(text[:_MAX_LINE])
    if not match:
        return None
    name = match.group(1)
    parts = name.split(".")
    if len(parts) < 2 or parts[0] not in _JVM_ROOT_PACKAGES or not _exceptionish(name):
        return None
    return name, match.group(2) or ""


def _relaxed_header(text: str) -> tuple[str, str] | None:
    match = _JVM_HEADER.fullmatch(text.strip()[:_MAX_LINE])
    if match and _exceptionish(match.group(1)):
        return match.group(1), match.group(2) or ""
    return _header_token(text)


def _header_token(text: str) -> tuple[str, str] | None:
    """Find an exception type inside a log line (e.g. ``WARN Foo: lost task: java.io.IOException: x``)."""
    for match in _TOKEN.finditer(text[:_MAX_LINE]):
        token = match.group(0)
        name = token.rstrip(":")
        if len(name) > 300 or "." not in name or not _TYPE_NAME.fullmatch(name) or not _exceptionish(name):
            continue
        message = text[match.end() :].strip() if token.endswith(":") else ""
        return name, message
    return None


def _python_exception_line(text: str) -> tuple[str, str] | None:
    if not text or text[0] in " \t":
        return None
    match = _PY_EXCEPTION.fullmatch(text[:_MAX_LINE])
    if not match:
        return None
    name = match.group(1)
    last = name.rsplit(".", 1)[-1]
    if not (last[:1].isupper() or last.endswith(("error", "timeout", "exception"))):
        return None
    return name, (match.group(2) or "").strip()


def _lambda_header(text: str) -> tuple[str, str] | None:
    """Lambda's own line before a Python traceback: ``KeyError: 'id'`` or, on python3.6, ``'id': KeyError``."""
    found = _python_exception_line(text)
    if found and (_exceptionish(found[0]) or found[0].rsplit(".", 1)[-1] in ("KeyboardInterrupt", "StopIteration")):
        return found
    message, separator, name = text.rpartition(": ")
    if separator and _TYPE_NAME.fullmatch(name) and _exceptionish(name):
        return name, message
    return None


def _is_node_frame(text: str) -> bool:
    stripped = text.strip()
    if not stripped.startswith("at "):
        return False
    if stripped.endswith("{"):
        stripped = stripped[:-1].rstrip()
    if _JVM_FRAME.fullmatch(stripped[:_MAX_LINE]):  # Java style: no space before the parenthesis
        return stripped == "at <anonymous>"
    return stripped.endswith(")") or _LINE_COL_END.search(stripped[-40:]) is not None


def _is_jvm_frame(text: str) -> bool:
    return _JVM_FRAME.fullmatch(text.strip()[:_MAX_LINE]) is not None


def _indent(text: str) -> int:
    width = 0
    for char in text:
        if char == "\t":
            width += 4
        elif char == " ":
            width += 1
        else:
            break
    return width


def _stage_failure(message: str) -> _Exc | None:
    """Spark's "Job aborted due to stage failure: ... most recent failure: Lost task ...): Type: message"."""
    start = message.find(_STAGE_FAILURE)
    if start < 0:
        return None
    end = message.find("): ", start)
    if end < 0:
        return None
    found = _relaxed_header(message[end + 3 :])
    if found is None:
        return None
    return _Exc(found[0], found[1].strip(), "jvm", only_if_last=True)


class _Builder:
    """Accumulates the lines of one trace; ``feed`` returns False at the first line that is not part of it."""

    def __init__(self, first: int, mode: str, *, fatal: bool, quiet: bool) -> None:
        self.first = first
        self.last = first
        self.mode = mode  # "jvm", "python" or "node"
        self.chain: list[_Exc] = []
        self.fatal = fatal
        self.quiet = quiet
        self.noise = 0
        self.blanks = 0
        self.tentative = 0
        # Python
        self.py_state = "frames"  # frames | code | message | after | separator
        self.py_frames: list[str] = []
        self.py_pending: tuple[str, str] | None = None  # Lambda's "[ERROR] Type: message" before the traceback
        self.py_owner: _Exc | None = None  # the JVM exception whose message is this Python traceback
        self.py_message: _Exc | None = None  # the exception whose message lines follow
        self.py_code = 0
        self.py_frame_indent = 0
        # JVM
        self.jvm_target: _Exc | None = None  # receives frames
        self.jvm_driver: _Exc | None = None  # receives frames after "Driver stacktrace:"
        self.jvm_merge: str | None = None  # "JVM stacktrace:" of a Python exception with this simple name
        self.suppressed: int | None = None  # indentation of the Suppressed: block being skipped
        # Node
        self.node_target: _Exc | None = None
        self.node_depth = 0

    # -- helpers ---------------------------------------------------------------------------------------------

    def _keep(self, line: _Line) -> bool:
        self.last = max(self.last, line.index)
        self.noise = 0
        self.blanks = 0
        self.tentative = 0
        return True

    def _foreign(self) -> bool:
        self.noise += 1
        return self.noise <= _NOISE_TOLERANCE

    def _blank(self) -> bool:
        self.blanks += 1
        return self.blanks <= 2

    def add_jvm(self, name: str, message: str, line: _Line, *, chained: bool = True) -> _Exc:
        exc = _Exc(name, message.strip(), "jvm")
        if chained:
            self.chain.append(exc)
        self.jvm_target = exc
        self.jvm_driver = exc
        if "Job aborted" in message:
            self.fatal = True
        embedded = _stage_failure(message)
        if embedded is not None:
            exc.children.append(embedded)
            self.jvm_target = embedded
        self.mode = "jvm"
        self.suppressed = None
        owner = embedded or exc
        if owner.message.endswith(_PY_TRACEBACK):
            self.start_embedded_python(owner)
        self._keep(line)
        return exc

    def start_embedded_python(self, owner: _Exc) -> None:
        owner.message = owner.message[: -len(_PY_TRACEBACK)].rstrip() or _PY_TRACEBACK
        self.mode = "python"
        self.py_state = "frames"
        self.py_frames = []
        self.py_owner = owner

    def _python_exception(self, name: str, message: str) -> None:
        exc = _Exc(name, message, "python", frames=self.py_frames)
        if self.py_owner is not None:
            self.py_owner.children.append(exc)
        else:
            self.chain.append(exc)
        self.py_frames = []
        self.py_pending = None
        self.py_message = exc

    def _close_python_segment(self) -> None:
        if self.py_frames and self.py_pending is not None:
            self._python_exception(*self.py_pending)
        self.py_frames = []

    # -- feeding ---------------------------------------------------------------------------------------------

    def feed(self, line: _Line) -> bool:
        if self.mode == "python":
            return self._feed_python(line)
        if self.mode == "node":
            return self._feed_node(line)
        return self._feed_jvm(line)

    def _feed_python(self, line: _Line) -> bool:
        body = line.body
        stripped = body.strip()
        if self.py_owner is not None and _is_jvm_frame(body):  # back to the JVM frames of the wrapper
            self._close_python_segment()
            self.py_owner = None
            self.mode = "jvm"
            return self._feed_jvm(line)
        if self.py_state in ("frames", "code"):
            return self._feed_python_frames(line, body, stripped)
        if self.py_state == "separator":
            if not stripped:
                return True
            if stripped.endswith(_PY_TRACEBACK):
                self.py_state = "frames"
                return self._keep(line)
            return False
        # message / after
        if not stripped:
            self.py_state = "after"
            return self._blank()
        if stripped in _PY_SEPARATORS:
            self.py_state = "separator"
            return self._keep(line)
        if stripped == "JVM stacktrace:" and self.py_message is not None:
            self.mode = "jvm"
            self.jvm_target = None
            self.jvm_merge = self.py_message.type.rsplit(".", 1)[-1]
            return self._keep(line)
        if body.startswith(": "):
            found = _strict_jvm_header(body[2:].strip())
            if found:  # py4j: the Java exception behind Py4JJavaError
                self.add_jvm(*found, line)
                return True
        if _starts_trace(line) or line.prefixed or _PY_FRAME.match(stripped):
            return False
        target = self.py_message
        if target is not None and len(target.extra) < _MAX_CONTINUATION:
            target.extra.append(body)
        if self.py_state == "message":
            return self._keep(line)
        self.tentative += 1
        return self.tentative <= _MAX_TENTATIVE

    def _feed_python_frames(self, line: _Line, body: str, stripped: str) -> bool:
        if _PY_FRAME.fullmatch(stripped[:_MAX_LINE]):
            self.py_frames.append(stripped)
            self.py_state = "code"
            self.py_code = 0
            self.py_frame_indent = _indent(body)
            return self._keep(line)
        if not stripped:
            return self._foreign()
        if (stripped.startswith("....") and not stripped.strip(".")) or stripped.startswith("[Previous line repeated"):
            return self._keep(line)
        if self.py_frames or self.py_owner is not None or self.chain:
            found = _python_exception_line(body)
            if found is not None:
                self._python_exception(*found)
                self.py_state = "message"
                return self._keep(line)
        if stripped.endswith(_PY_TRACEBACK) or _strict_jvm_header(stripped):
            return False
        indent = _indent(body)
        old_style = self.py_frame_indent == 0 and self.py_code < 2  # python3.6 Lambda: code lines not indented
        if self.py_state == "code" and not line.prefixed and (indent > self.py_frame_indent or old_style):
            self.py_code += 1
            return self._keep(line)
        return self._foreign()

    def _feed_jvm(self, line: _Line) -> bool:
        body = line.body
        stripped = body.strip()
        if self.jvm_target is None and self.jvm_merge is not None:  # the header after "JVM stacktrace:"
            if not stripped:
                return True
            found = _relaxed_header(stripped)
            if found is None:
                return False
            same = found[0].rsplit(".", 1)[-1] == self.jvm_merge
            self.add_jvm(*found, line, chained=not same)
            self.jvm_merge = None
            return True
        if _is_jvm_frame(body):
            if self.suppressed is None and self.jvm_target is not None:
                self.jvm_target.frames.append(stripped)
            return self._keep(line)
        if stripped.startswith("... ") or (stripped.startswith("....") and not stripped.strip(".")):
            return self._keep(line)
        if stripped == "...":
            return self._keep(line)
        if stripped.startswith("Caused by:"):
            indent = _indent(body)
            if self.suppressed is not None and indent >= self.suppressed:
                return self._keep(line)
            found = _relaxed_header(stripped[len("Caused by:") :].strip())
            if found is None:
                return False
            self.add_jvm(*found, line)
            return True
        if stripped.startswith("Suppressed:"):
            self.suppressed = _indent(body)
            return self._keep(line)
        if stripped == "Driver stacktrace:":
            self.jvm_target = self.jvm_driver
            return self._keep(line)
        if not stripped:
            return self._blank()
        if _starts_trace(line):
            return False
        target = self.jvm_target
        if target is not None and not target.frames and not line.prefixed and self.tentative < _MAX_TENTATIVE:
            if len(target.extra) < _MAX_CONTINUATION:
                target.extra.append(body)
            self.tentative += 1
            return True
        return self._foreign()

    def _feed_node(self, line: _Line) -> bool:
        body = line.body
        stripped = body.strip()
        if _is_node_frame(body):
            frame = stripped[:-1].rstrip() if stripped.endswith("{") else stripped
            if self.node_target is not None:
                self.node_target.frames.append(frame)
            if stripped.endswith("{"):
                self.node_depth += 1
            return self._keep(line)
        if stripped.startswith("... ") and stripped.endswith("..."):
            return self._keep(line)
        for prefix in ("[cause]: ", "cause: "):
            if stripped.startswith(prefix):
                rest = stripped[len(prefix) :].strip()
                found = _node_header(rest.rstrip("{").strip().strip("[]"))
                if found is None:
                    return self._keep(line)
                exc = _Exc(found[0], found[1], "node")
                self.chain.append(exc)
                self.node_target = exc
                if rest.endswith("{"):
                    self.node_depth += 1
                return self._keep(line)
        if self.node_depth > 0:
            if stripped.startswith(("}", "]")):
                self.node_depth -= 1
            elif stripped.endswith(("{", "[")):
                self.node_depth += 1
            return self._keep(line)
        if not stripped:
            return self._blank()
        if stripped.startswith("Node.js v"):
            return self._keep(line)
        if stripped.startswith("---") and not stripped.strip("-"):
            return self._keep(line)
        if _starts_trace(line):
            return False
        return self._foreign()

    # -- result ----------------------------------------------------------------------------------------------

    def finish(self) -> _Found:
        if self.mode == "python" or self.py_frames:
            self._close_python_segment()
        excs = _flatten(self.chain)
        if excs and "Job aborted" in " ".join(exc.message for exc in excs):
            self.fatal = True
        named = [exc for exc in excs if exc.type]
        root = named[-1] if named else None
        if root is None:
            loose = [frame for exc in excs for frame in exc.frames] + self.py_frames
            kind = self.mode
            trace = StackTrace(
                language=_language(kind, [], loose),
                chain=(),
                root_type="",
                root_message="",
                app_frames=_app_frames([_Exc("", "", kind, frames=loose)]),
                first_line=self.first,
                last_line=self.last,
            )
            return _Found(trace, self.fatal, self.quiet)
        all_jvm = [frame for exc in excs if exc.kind == "jvm" for frame in exc.frames]
        trace = StackTrace(
            language=_language(root.kind, root.frames, all_jvm),
            chain=tuple(_join(exc.type, exc.first_message_line()) for exc in named),
            root_type=root.type,
            root_message=root.first_message_line(),
            app_frames=_app_frames(excs),
            first_line=self.first,
            last_line=self.last,
        )
        return _Found(trace, self.fatal, self.quiet)


def _flatten(chain: list[_Exc]) -> list[_Exc]:
    out: list[_Exc] = []
    for position, exc in enumerate(chain):
        out.append(exc)
        last = position == len(chain) - 1
        for child in exc.children:
            if child.only_if_last and not last:
                continue
            out.extend(_flatten([child]))
    return out


def _language(kind: str, root_frames: list[str], jvm_frames: list[str]) -> Language:
    if kind == "python":
        return "python"
    if kind == "node":
        return "node"
    frames = root_frames or jvm_frames
    scala = sum(1 for frame in frames if ".scala:" in frame)
    return "scala" if frames and scala * 2 > len(frames) else "java"


_FRAME_LANGUAGE: dict[str, Language] = {"jvm": "java", "python": "python", "node": "node"}


def _frame_language(kind: str) -> Language:
    return _FRAME_LANGUAGE.get(kind, "unknown")


def _app_frames(excs: list[_Exc]) -> tuple[str, ...]:
    for exc in reversed(excs):
        language = _frame_language(exc.kind)
        app = [frame for frame in exc.frames if is_application_frame(frame, language)]
        if app:
            return tuple(app[:_MAX_APP_FRAMES])
    return ()


def _node_header(text: str) -> tuple[str, str] | None:
    match = _NODE_HEADER.fullmatch(text[:_MAX_LINE])
    if not match or not match.group(1)[:1].isupper():
        return None
    return match.group(1), (match.group(2) or "").strip()


def _starts_trace(line: _Line) -> bool:
    stripped = line.body.strip()
    if stripped.endswith(_PY_TRACEBACK) or stripped.startswith('Exception in thread "'):
        return True
    return line.body[:1] not in " \t" and _strict_jvm_header(stripped) is not None


# ---------------------------------------------------------------------------------------------------------------
# Scanning


def _scan(lines: Sequence[str]) -> list[_Found]:
    found: list[_Found] = []
    builder: _Builder | None = None
    previous: _Line | None = None  # last non-blank line
    previous_used = False  # it belonged to a trace
    quiet_levels = ("WARN", "WARNING", "INFO", "DEBUG", "TRACE", "NOTICE")

    for line in _expand(lines):
        if builder is not None:
            if not line.boundary and line.trace is None and builder.feed(line):
                if line.body.strip():  # a line the trace only tolerated (another thread's) can still head the next
                    previous, previous_used = line, builder.last == line.index and builder.noise == 0
                continue
            found.append(builder.finish())
            builder = None
        if line.trace is not None:
            found.append(line.trace)
            previous, previous_used = None, False
            continue
        builder = _start(line, None if previous_used else previous, quiet_levels)
        if line.body.strip():
            previous, previous_used = line, builder is not None
    if builder is not None:
        found.append(builder.finish())
    found.sort(key=lambda item: item.trace.first_line)
    return found


def _origin_flags(line: _Line, header_line: _Line | None, quiet_levels: tuple[str, ...]) -> tuple[bool, bool]:
    level = line.level or (header_line.level if header_line is not None else None)
    text = line.body + " " + (header_line.body if header_line is not None else "")
    fatal = level in ("ERROR", "FATAL", "CRITICAL", "SEVERE") and (
        "Uncaught" in text or "threw exception" in text or "LAMBDA_WARNING" in text
    )
    fatal = fatal or 'Exception in thread "' in text or "Uncaught exception" in text
    return fatal, level in quiet_levels


def _start(line: _Line, previous: _Line | None, quiet_levels: tuple[str, ...]) -> _Builder | None:
    body = line.body
    stripped = body.strip()
    if not stripped:
        return None
    # A JVM exception header: "java.io.IOException: ...", 'Exception in thread "main" ...', py4j's ": org...".
    candidate = stripped[2:].strip() if stripped.startswith(": ") else stripped
    header = _strict_jvm_header(candidate) if body[:1] not in " \t" or stripped.startswith(": ") else None
    if header is not None:
        fatal, quiet = _origin_flags(line, previous, quiet_levels)
        builder = _Builder(line.index, "jvm", fatal=fatal or candidate.startswith("Exception in thread"), quiet=quiet)
        builder.add_jvm(*header, line)
        return builder
    if stripped.endswith(_PY_TRACEBACK):
        pending = _lambda_header(previous.body.strip()) if previous is not None else None
        first = previous.index if pending is not None and previous is not None else line.index
        fatal, quiet = _origin_flags(line, previous, quiet_levels)  # e.g. WARNING:root:retrying
        builder = _Builder(first, "python", fatal=not quiet, quiet=quiet)
        builder.fatal = builder.fatal or fatal
        builder.py_pending = pending
        builder.last = line.index
        return builder
    if _PY_FRAME.fullmatch(stripped[:_MAX_LINE]):  # a traceback whose head was cut off
        builder = _Builder(line.index, "python", fatal=False, quiet=line.level in quiet_levels)
        builder.feed(line)
        return builder
    if _is_jvm_frame(body) or stripped == "Driver stacktrace:":
        return _start_orphan_jvm(line, previous, quiet_levels)
    if _is_node_frame(body):
        return _start_node(line, previous, quiet_levels)
    return None


def _start_orphan_jvm(line: _Line, previous: _Line | None, quiet_levels: tuple[str, ...]) -> _Builder:
    header = _relaxed_header(previous.body) if previous is not None else None
    first = (
        previous.index
        if previous is not None and (header or previous.body.strip() == "Driver stacktrace:")
        else line.index
    )
    fatal, quiet = _origin_flags(line, previous, quiet_levels)
    builder = _Builder(first, "jvm", fatal=fatal, quiet=quiet)
    if header is not None and previous is not None:
        builder.add_jvm(*header, previous)
    else:
        placeholder = _Exc("", "", "jvm")
        builder.chain.append(placeholder)
        builder.jvm_target = placeholder
        builder.jvm_driver = placeholder
    builder.feed(line)
    return builder


def _start_node(line: _Line, previous: _Line | None, quiet_levels: tuple[str, ...]) -> _Builder:
    header = _node_header(previous.body.strip()) if previous is not None else None
    first = previous.index if header is not None and previous is not None else line.index
    fatal, quiet = _origin_flags(line, previous, quiet_levels)
    builder = _Builder(first, "node", fatal=fatal, quiet=quiet)
    exc = _Exc(header[0], header[1], "node") if header else _Exc("", "", "node")
    builder.chain.append(exc)
    builder.node_target = exc
    builder.feed(line)
    return builder


# ---------------------------------------------------------------------------------------------------------------
# Lambda error objects


def _lambda_trace(obj: Mapping[str, object], index: int) -> StackTrace | None:
    excs = _lambda_chain(obj, 0)
    if not excs:
        return None
    root = excs[-1]
    kinds = {exc.kind for exc in excs if exc.frames}
    kind = root.kind if root.frames else (kinds.pop() if len(kinds) == 1 else "unknown")
    language: Language = "unknown" if kind == "jvm" else _frame_language(kind)
    return StackTrace(
        language=language,
        chain=tuple(_join(exc.type, exc.first_message_line()) for exc in excs),
        root_type=root.type,
        root_message=root.first_message_line(),
        app_frames=_app_frames(excs),
        first_line=index,
        last_line=index,
    )


def _lambda_chain(obj: Mapping[str, object], depth: int) -> list[_Exc]:
    kind_name = obj.get("errorType")
    message = obj.get("errorMessage")
    if not isinstance(kind_name, str) or not kind_name or not isinstance(message, str):
        return []
    stack: object = None
    for key in ("stackTrace", "trace", "stack"):
        if key in obj:
            stack = obj[key]
            break
    if stack is not None and not isinstance(stack, list):
        return []
    frames, kind = _lambda_frames(stack or [], kind_name, message)
    message_lines = message.splitlines() or [""]
    exc = _Exc(kind_name, message_lines[0], kind, frames=frames, extra=message_lines[1:])
    chain = [exc]
    if depth < 5:
        for key in ("reason", "cause"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                chain.extend(_lambda_chain(inner, depth + 1))
    return chain


def _lambda_frames(stack: list[object], kind_name: str, message: str) -> tuple[list[str], str]:
    frames: list[str] = []
    kind = "unknown"
    for item in stack:
        if isinstance(item, list) and len(item) >= 3:  # python2.7: [file, line, function, code]
            frames.append(f'File "{item[0]}", line {item[1]}, in {item[2]}')
            kind = "python"
            continue
        if not isinstance(item, str):
            continue
        first = item.strip().splitlines()[0].strip() if item.strip() else ""
        if not first:
            continue
        if _PY_FRAME.fullmatch(first):
            frames.append(first)
            kind = "python"
        elif first.startswith("at "):
            frames.append(first)
            kind = "node"
        elif first in (_join(kind_name, message), kind_name) or first.startswith(kind_name + ": "):
            kind = "node"  # Node's stack starts with "Type: message"
        elif _LINE_COL_END.search(first[-40:]):
            frames.append(first)  # an old Node runtime's bare "file:line:column"
            kind = "node"
    return frames, kind

"""Stack trace extraction on real traces (tests/fixtures/stacktraces/SOURCES.md says where each came from)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from bot.diagnosis.stacktrace import (
    Language,
    StackTrace,
    find_stack_traces,
    is_application_frame,
    parse_lambda_error,
    root_cause,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stacktraces"


def load(name: str) -> list[str]:
    return (FIXTURES / name).read_text(encoding="utf-8").split("\n")


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


UNRESOLVED = (
    "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name `predictions` cannot be "
    "resolved. Did you mean one of the following? [`prediction`, `rawPrediction`, `Species`, `features`, `Id`].;"
)
PARSE_MESSAGE = (
    "mismatched input 'a' expecting {'(', 'ADD', 'ALTER', 'ANALYZE', 'CACHE', 'CLEAR', 'COMMENT', 'COMMIT', "
    "'CREATE', 'DELETE', 'DESC', 'DESCRIBE', 'DFS', 'DROP', 'EXPLAIN', 'EXPORT', 'FROM', 'GRANT', 'IMPORT', "
    "'INSERT', 'LIST', 'LOAD', 'LOCK', 'MAP', 'MERGE', 'MSCK', 'REDUCE', 'REFRESH', 'REPLACE', 'RESET', 'REVOKE', "
    "'ROLLBACK', 'SELECT', 'SET', 'SHOW', 'START', 'TABLE', 'TRUNCATE', 'UNCACHE', 'UNLOCK', 'UPDATE', 'USE', "
    "'VALUES', 'WITH'}(line 1, pos 0)"
)
STAGE_OOM = (
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task 69 in stage 95.0 failed 1 times, "
    "most recent failure: Lost task 69.0 in stage 95.0 (TID 916, localhost, executor driver): "
    "java.lang.OutOfMemoryError: Java heap space"
)
STAGE_CRASH = (
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task 5 in stage 0.0 failed 1 times, "
    "most recent failure: Lost task 5.0 in stage 0.0 (TID 5) (host.docker.internal executor driver): "
    "org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)"
)
HDFS_BLOCK = (
    "Could not obtain block: BP-183115326-96.113.30.153-1605540097659:blk_1073969993_240365 "
    "file=/snmp-checkpoints/state/0/153/539.snapshot"
)
S3_FILE = "s3://wherobots-examples/gdea-course-data/raw-data/53033C_20250330/S_FLD_HAZ_AR.???"
LAMBDA_FRAMES = (
    'File "/var/task/lambda_function.py", line 65, in lambda_handler',
    'File "/var/task/lambda_function.py", line 92, in create_event',
    'File "/var/task/lambda_function.py", line 114, in normalize_event',
)
CC_PYSPARK = "C:\\Users\\frien\\OneDrive\\Desktop\\cc-pyspark\\"

# fixture -> the root cause's (language, chain, root_type, root_message, app_frames, first_line, last_line)
EXPECTED: dict[str, tuple[str, tuple[str, ...], str, str, tuple[str, ...], int, int]] = {
    "java_spark_submit_caused_by.log": (
        "java",
        (
            "org.apache.spark.SparkException: Exception thrown in awaitResult:",
            "java.io.IOException: Failed to connect to devaraj-pc1/10.3.66.65:7077",
        ),
        "java.io.IOException",
        "Failed to connect to devaraj-pc1/10.3.66.65:7077",
        (),
        2,
        10,
    ),
    "java_suppressed_ssl.log": (
        "java",
        ("javax.net.ssl.SSLException: SSL peer shut down incorrectly",),
        "javax.net.ssl.SSLException",
        "SSL peer shut down incorrectly",
        (),
        0,
        14,
    ),
    "spark_executor_gc_overhead.log": (
        "java",
        ("java.lang.OutOfMemoryError: GC overhead limit exceeded",),
        "java.lang.OutOfMemoryError",
        "GC overhead limit exceeded",
        (),
        2,
        16,
    ),
    "spark_executor_oom_uncaught.log": (
        "scala",
        ("java.lang.OutOfMemoryError: Java heap space",),
        "java.lang.OutOfMemoryError",
        "Java heap space",
        (),
        3,
        15,
    ),
    "spark_driver_stage_failure_oom.log": (
        "scala",
        (STAGE_OOM, "java.lang.OutOfMemoryError: Java heap space"),
        "java.lang.OutOfMemoryError",
        "Java heap space",
        (),
        0,
        8,
    ),
    "spark_stage_failure_gc_info_line.log": (
        "java",
        ("java.lang.OutOfMemoryError: GC overhead limit exceeded",),
        "java.lang.OutOfMemoryError",
        "GC overhead limit exceeded",
        (),
        5,
        11,
    ),
    "scala_driver_stacktrace_hdfs.log": (
        "scala",
        (f"org.apache.hadoop.hdfs.BlockMissingException: {HDFS_BLOCK}",),
        "org.apache.hadoop.hdfs.BlockMissingException",
        HDFS_BLOCK,
        (),
        0,
        56,
    ),
    "spark_warn_filenotfound.log": (
        "java",
        (f"java.io.FileNotFoundException: No such file or directory: {S3_FILE}",),
        "java.io.FileNotFoundException",
        f"No such file or directory: {S3_FILE}",
        (),
        1,
        11,
    ),
    "spark_interleaved_executor_oom.log": (
        "scala",
        ("java.lang.OutOfMemoryError: Java heap space",),
        "java.lang.OutOfMemoryError",
        "Java heap space",
        (),
        1,
        17,
    ),
    "pyspark_udf_python_exception.log": (
        "python",
        ("org.apache.spark.api.python.PythonException: Traceback (most recent call last):", "KeyError: 'exe'"),
        "KeyError",
        "'exe'",
        ('File "/usr/share/unfetter/src/CAR_2013_04_002.py", line 64, in <lambda>',),
        2,
        18,
    ),
    "pyspark_py4j_worker_crashed.log": (
        "java",
        (
            "py4j.protocol.Py4JJavaError: An error occurred while calling o55.saveAsTable.",
            STAGE_CRASH,
            "org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)",
        ),
        "org.apache.spark.SparkException",
        "Python worker exited unexpectedly (crashed)",
        (
            f'File "{CC_PYSPARK}server_count.py", line 81, in <module>',
            f'File "{CC_PYSPARK}sparkcc.py", line 186, in run',
            f'File "{CC_PYSPARK}sparkcc.py", line 223, in run_job',
        ),
        1,
        14,
    ),
    "pyspark_sql_utils_analysis_exception.log": (
        "python",
        ("pyspark.sql.utils.AnalysisException: Path does not exist: file:/data",),
        "pyspark.sql.utils.AnalysisException",
        "Path does not exist: file:/data",
        (),
        2,
        11,
    ),
    "pyspark_captured_analysis_exception.log": (
        "python",
        (f"pyspark.errors.exceptions.captured.AnalysisException: {UNRESOLVED}",),
        "pyspark.errors.exceptions.captured.AnalysisException",
        UNRESOLVED,
        ('File "<stdin>", line 1, in <module>',),
        1,
        17,
    ),
    "pyspark_parse_exception_jvm_stacktrace.log": (
        "python",
        (f"pyspark.sql.utils.ParseException: {PARSE_MESSAGE}",),
        "pyspark.sql.utils.ParseException",
        PARSE_MESSAGE,
        ('File "<stdin>", line 1, in <module>',),
        0,
        16,
    ),
    "python_during_handling_lambda_s3fs.log": (
        "python",
        (
            "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the ListObjectsV2 "
            "operation: Access Denied",
            "PermissionError: Access Denied",
        ),
        "PermissionError",
        "Access Denied",
        (),
        0,
        12,
    ),
    "python_direct_cause_truncated.log": (
        "python",
        (
            "botocore.errorfactory.NoSuchKey: An error occurred (NoSuchKey) when calling the GetObject operation: "
            "The specified key does not exist.",
        ),
        "botocore.errorfactory.NoSuchKey",
        "An error occurred (NoSuchKey) when calling the GetObject operation: The specified key does not exist.",
        (),
        0,
        22,
    ),
    "python_pydantic_multiline_message.log": (
        "python",
        ("pydantic_core._pydantic_core.ValidationError: 4 validation errors for ClientTrustConfig",),
        "pydantic_core._pydantic_core.ValidationError",
        "4 validation errors for ClientTrustConfig",
        (),
        0,
        16,
    ),
    "lambda_python_console.log": (
        "python",
        ("IndexError: list index out of range",),
        "IndexError",
        "list index out of range",
        LAMBDA_FRAMES,
        7,
        14,
    ),
    "lambda_python36_console.log": (
        "python",
        ("KeyError: 'eventTime'",),
        "KeyError",
        "'eventTime'",
        (
            'File "/var/task/buildhub/lambda_s3_event.py", line 159, in lambda_handler',
            'File "/var/task/buildhub/lambda_s3_event.py", line 28, in main',
        ),
        1,
        11,
    ),
    "lambda_node_unhandled_rejection.log": (
        "node",
        (
            "Runtime.UnhandledPromiseRejection: TypeError: fetch failed",
            "TypeError: fetch failed",
            "Error: Client network socket disconnected before secure TLS connection was established",
        ),
        "Error",
        "Client network socket disconnected before secure TLS connection was established",
        (
            "at async getTableSource (file:///var/task/.svelte-kit/output/server/entries/pages/(inner)/components/"
            "data-tables/_page.svelte.js:122:18)",
        ),
        0,
        0,
    ),
    "node_error_cause.log": (
        "node",
        ("Error: The message failed to send", "Error: The remote HTTP server responded with a 500 status"),
        "Error",
        "The remote HTTP server responded with a 500 status",
        (),
        0,
        16,
    ),
    "node_econnrefused_mysql.log": (
        "node",
        ("Error: connect ECONNREFUSED 127.0.0.1:3306",),
        "Error",
        "connect ECONNREFUSED 127.0.0.1:3306",
        ("at Object.<anonymous> (/Users/erezrokah/Code/github/socialserver/src/config/dbconfig.js:18:4)",),
        1,
        19,
    ),
    "node_fetch_cause_compose_prefix.log": (
        "node",
        ("TypeError: fetch failed", "Error: connect ECONNREFUSED 127.0.0.1:8000"),
        "Error",
        "connect ECONNREFUSED 127.0.0.1:8000",
        (),
        14,
        19,
    ),
    "json_log4j_layout_exception.log": (
        "java",
        ("java.lang.RuntimeException: Test Exception",),
        "java.lang.RuntimeException",
        "Test Exception",
        ("at com.github.szhem.logstash.log4j.LogStashJsonLayoutTest.testSourcePath(LogStashJsonLayoutTest.java:193)",),
        1,
        1,
    ),
}


def as_tuple(trace: StackTrace) -> tuple[str, tuple[str, ...], str, str, tuple[str, ...], int, int]:
    return (
        trace.language,
        trace.chain,
        trace.root_type,
        trace.root_message,
        trace.app_frames,
        trace.first_line,
        trace.last_line,
    )


def test_every_fixture_is_listed_in_sources_and_tested() -> None:
    sources = read("SOURCES.md")
    tested = set(EXPECTED) | {
        "noise_no_trace.log",
        "lambda_python_error.json",
        "lambda_python27_error.json",
        "lambda_node_error_trace.json",
        "lambda_node_handler_not_found.json",
    }
    on_disk = {path.name for path in FIXTURES.iterdir() if path.name != "SOURCES.md"}
    assert on_disk == tested
    assert [name for name in sorted(on_disk) if f"`{name}`" not in sources] == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_root_cause_of_real_trace(name: str) -> None:
    trace = root_cause(load(name))
    assert trace is not None
    assert as_tuple(trace) == EXPECTED[name]
    assert trace.root_exception == f"{trace.root_type}: {trace.root_message}"
    assert trace.chain[-1] == trace.root_exception


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_event_holding_the_whole_trace_gives_the_same_root(name: str) -> None:
    # CloudWatch may store a multi-line trace as one event: the caller passes it as one line.
    lines = load(name)
    expected = EXPECTED[name]
    event = "\n".join(lines[expected[5] : expected[6] + 1])
    trace = root_cause([event])
    assert trace is not None
    assert (trace.root_type, trace.root_message, trace.app_frames) == expected[2:5]
    assert (trace.first_line, trace.last_line) == (0, 0)


def test_caused_by_chain_root_is_the_last_cause() -> None:
    trace = root_cause(load("java_spark_submit_caused_by.log"))
    assert trace is not None
    assert trace.root_exception == "java.io.IOException: Failed to connect to devaraj-pc1/10.3.66.65:7077"


def test_suppressed_block_is_not_the_root() -> None:
    trace = root_cause(load("java_suppressed_ssl.log"))
    assert trace is not None
    assert "Connection has been shutdown" not in " ".join(trace.chain)


def test_log_line_before_the_trace_is_not_part_of_it() -> None:
    traces = find_stack_traces(load("spark_executor_gc_overhead.log"))
    assert [(t.first_line, t.root_type) for t in traces] == [(2, "java.lang.OutOfMemoryError")]


def test_log_prefix_on_every_line() -> None:
    # The same real trace as written by a log4j layout that prefixes every line of the throwable.
    lines = load("spark_executor_gc_overhead.log")
    prefix = "21/02/03 07:55:00 ERROR Executor: "
    prefixed = lines[:2] + [prefix + line for line in lines[2:] if line]
    trace = root_cause(prefixed)
    assert trace is not None
    assert trace.root_exception == "java.lang.OutOfMemoryError: GC overhead limit exceeded"
    assert (trace.first_line, trace.last_line) == (2, 16)


def test_headerless_tail_of_an_earlier_trace_is_kept_but_not_chosen() -> None:
    traces = find_stack_traces(load("spark_executor_oom_uncaught.log"))
    assert [(t.root_type, t.first_line, t.last_line) for t in traces] == [
        ("", 0, 0),
        ("java.lang.OutOfMemoryError", 3, 15),
    ]


def test_repeated_and_truncated_traceback() -> None:
    traces = find_stack_traces(load("pyspark_sql_utils_analysis_exception.log"))
    assert [(t.root_type, t.first_line, t.last_line) for t in traces] == [
        ("pyspark.sql.utils.AnalysisException", 2, 11),
        ("", 12, 13),
    ]
    assert traces[1].chain == ()


def test_lambda_error_event_joined_with_carriage_returns() -> None:
    # The Lambda Python runtime writes "[ERROR] Type: message" and the traceback as one CloudWatch event whose
    # lines are separated by "\r"; here the real lines of lambda_python_console.log are joined that way.
    lines = load("lambda_python_console.log")
    event = "\r".join(lines[7:15])
    trace = root_cause([*lines[:7], event, *lines[15:]])
    assert trace is not None
    assert trace.root_exception == "IndexError: list index out of range"
    assert trace.app_frames == LAMBDA_FRAMES
    assert (trace.first_line, trace.last_line) == (7, 7)


def test_fatal_trace_wins_over_a_later_warn_level_one() -> None:
    fatal = load("java_spark_submit_caused_by.log")
    retried = load("spark_warn_filenotfound.log")
    lines = fatal + retried
    assert len(find_stack_traces(lines)) == 2
    trace = root_cause(lines)
    assert trace is not None
    assert trace.root_type == "java.io.IOException"
    # Without a fatal trace the WARN one is still reported.
    only_warn = root_cause(retried)
    assert only_warn is not None
    assert only_warn.root_type == "java.io.FileNotFoundException"


def test_last_complete_trace_wins_among_equals() -> None:
    lines = load("java_suppressed_ssl.log") + load("spark_executor_gc_overhead.log")
    trace = root_cause(lines)
    assert trace is not None
    assert trace.root_exception == "java.lang.OutOfMemoryError: GC overhead limit exceeded"


def test_python_traceback_that_ends_the_process_beats_an_executor_task_failure() -> None:
    # An executor's failed task (ERROR Executor: Exception in task ...) may be retried; the driver's
    # traceback is what stopped the job.
    lines = load("python_during_handling_lambda_s3fs.log") + load("pyspark_udf_python_exception.log")
    trace = root_cause(lines)
    assert trace is not None
    assert trace.root_exception == "PermissionError: Access Denied"


def test_noise_has_no_trace() -> None:
    assert find_stack_traces(load("noise_no_trace.log")) == []
    assert root_cause(load("noise_no_trace.log")) is None
    assert root_cause([]) is None


def test_json_log_line_without_stack_is_ignored() -> None:
    lines = load("json_log4j_layout_exception.log")
    assert find_stack_traces(lines[:1]) == []


def test_json_embedded_trace_ends_at_its_event() -> None:
    lines = load("json_log4j_layout_exception.log") + load("node_econnrefused_mysql.log")
    traces = find_stack_traces(lines)
    assert [(t.language, t.first_line, t.last_line) for t in traces] == [("java", 1, 1), ("node", 4, 22)]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "lambda_python_error.json",
            (
                "python",
                ("IndexError: list index out of range",),
                "IndexError",
                "list index out of range",
                LAMBDA_FRAMES,
            ),
        ),
        (
            "lambda_python27_error.json",
            (
                "python",
                ("KeyError: 's3'",),
                "KeyError",
                "'s3'",
                ('File "/var/task/s3_lambda_es.py", line 64, in lambda_handler',),
            ),
        ),
        (
            "lambda_node_error_trace.json",
            (
                "node",
                ("Error: wat",),
                "Error",
                "wat",
                (
                    "at Runtime.<anonymous> (/var/task/index.js:7:15)",
                    "at Runtime.__f0 [as handler] (/var/task/index.js:10:27)",
                ),
            ),
        ),
        (
            "lambda_node_handler_not_found.json",
            (
                "node",
                ("Runtime.HandlerNotFound: .output/server/index.handler is undefined or not exported",),
                "Runtime.HandlerNotFound",
                ".output/server/index.handler is undefined or not exported",
                (),
            ),
        ),
    ],
)
def test_parse_lambda_error(name: str, expected: tuple[str, tuple[str, ...], str, str, tuple[str, ...]]) -> None:
    text = read(name)
    for payload in (text, json.loads(text)):
        trace = parse_lambda_error(payload)
        assert trace is not None
        assert as_tuple(trace) == (*expected, 0, 0)


def test_parse_lambda_error_as_step_functions_cause() -> None:
    # Step Functions puts the function's error object, as a JSON string, in the failure's Cause.
    cause = json.dumps(json.loads(read("lambda_python_error.json")))
    trace = parse_lambda_error(cause)
    assert trace is not None
    assert trace.root_exception == "IndexError: list index out of range"


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[1, 2]",
        '{"Error": "States.TaskFailed", "Cause": "boom"}',
        '{"errorType": "KeyError"}',
        '{"errorType": 3, "errorMessage": "x"}',
        '{"errorType": "KeyError", "errorMessage": "x", "stackTrace": "not a list"}',
        {"errorMessage": "x"},
    ],
)
def test_parse_lambda_error_rejects_other_shapes(payload: str | dict[str, object]) -> None:
    assert parse_lambda_error(payload) is None


@pytest.mark.parametrize(
    ("frame", "language", "expected"),
    [
        (
            "at com.github.szhem.logstash.log4j.LogStashJsonLayoutTest.testSourcePath(LogStashJsonLayoutTest.java:193)",
            "java",
            True,
        ),
        ("at java.base/java.lang.Thread.run(Thread.java:840)", "java", False),
        ("at org.apache.spark.scheduler.DAGScheduler.abortStage(DAGScheduler.scala:1876)", "scala", False),
        ("at scala.Option.foreach(Option.scala:257)", "scala", False),
        ("at py4j.reflection.MethodInvoker.invoke(MethodInvoker.java:244)", "java", False),
        ("at com.amazonaws.services.glue.GlueBootstrap.invokeMainMethod(GlueBootstrap.java:325)", "java", False),
        ("at io.netty.channel.AbstractChannel.close(Unknown Source)", "java", False),
        ("at sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)", "java", False),
        (
            "at org.apache.spark.internal.config.ConfigEntryWithDefaultString1422803Lambda97/0x00000008402d8440."
            "apply(Unknown Source)",
            "java",
            False,
        ),
        ('File "/var/task/lambda_function.py", line 65, in lambda_handler', "python", True),
        ('File "/var/runtime/botocore/client.py", line 576, in _make_api_call', "python", False),
        ('File "/var/lang/lib/python3.12/base64.py", line 88, in b64decode', "python", False),
        (
            'File "/opt/hostedtoolcache/Python/3.13.5/x64/lib/python3.13/site-packages/pydantic/main.py", '
            "line 746, in f",
            "python",
            False,
        ),
        (
            'File "C:\\Users\\frien\\spark-3.5.5-bin-hadoop3\\python\\lib\\pyspark.zip\\pyspark\\sql\\readwriter.py", '
            "line 1586, in saveAsTable",
            "python",
            False,
        ),
        ('File "/usr/share/unfetter/src/CAR_2013_04_002.py", line 64, in <lambda>', "python", True),
        ('File "<stdin>", line 1, in <module>', "python", True),
        ("at handler (/var/task/index.js:5:20)", "node", True),
        ("at Runtime.handleOnceNonStreaming (/var/runtime/Runtime.js:73:25)", "node", False),
        ("at process.processTicksAndRejections (node:internal/process/task_queues:95:5)", "node", False),
        ("at fetch (/var/task/node_modules/undici/index.js:105:13)", "node", False),
        ("at TCPConnectWrap.afterConnect [as oncomplete] (net.js:1141:16)", "node", False),
        ("at new Promise (<anonymous>)", "node", False),
        ("at com.acme.etl.Job.run(Job.java:12)", "unknown", True),
        ('File "/var/task/app.py", line 3, in handler', "unknown", True),
        ("at /var/task/index.js:317:28", "unknown", True),
    ],
)
def test_is_application_frame(frame: str, language: Language, expected: bool) -> None:
    assert is_application_frame(frame, language) is expected


def test_ten_thousand_lines_in_one_pass() -> None:
    real = [line for path in sorted(FIXTURES.glob("*.log")) for line in load(path.name)]
    lines = (real * (10_000 // len(real) + 1))[:10_000]
    traces = find_stack_traces(lines)
    assert traces
    assert all(a.first_line <= b.first_line for a, b in itertools.pairwise(traces))
    # Long lines built to make a backtracking regex blow up: each must be handled in linear time.
    hostile = ["a." * 4000, "at " + "a" * 8000, 'File "' + "x" * 8000, '{"' + "a" * 8000 + "}", "\t" * 8000 + "at x("]
    assert find_stack_traces(hostile * 200) is not None

import pytest

from bot.diagnosis.logs_lookup import LogsUsageError, parse_logs_args
from bot.diagnosis.targets import TargetError, execution_arn_for, parse_target

ARN = "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-2025-02-18"


@pytest.mark.parametrize(
    "word",
    [
        ARN,
        f"<{ARN}>",  # Slack wraps what looks like a link
        f"https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{ARN}",
        "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/"
        + ARN.replace(":", "%3A"),
        f"https://console.aws.amazon.com/states/home?region=us-east-1#/executions/details/{ARN}",
    ],
)
def test_arns_and_console_urls(word: str) -> None:
    target = parse_target([word])
    assert target.kind == "arn"
    assert target.execution_arn == ARN


def test_machine_and_execution_name() -> None:
    target = parse_target(["policies-etl/run-2025-02-18"])
    assert (target.kind, target.state_machine, target.execution_name) == ("named", "policies-etl", "run-2025-02-18")


def test_bare_execution_name_and_latest() -> None:
    assert parse_target(["run-2025-02-18"]).kind == "execution_name"
    latest = parse_target(["latest", "policies-etl"])
    assert (latest.kind, latest.state_machine) == ("latest", "policies-etl")


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "name the execution"),
        (["latest"], "`latest` takes one state machine"),
        (["a", "b"], "one target at a time"),
        (["https://example.com/x"], "does not name a Step Functions execution"),
        (["arn:aws:lambda:us-east-1:123456789012:function:f"], "is not an execution ARN"),
        (["arn:aws:states:us-east-1:123456789012:express:m:e:f"], "Express workflow executions keep no history"),
        (["a/b/c"], "is not `<state-machine>/<execution-name>`"),
        (["bad name!"], "is not an execution name"),
    ],
)
def test_bad_targets_say_what_would_work(words: list[str], message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_target(words)


def test_execution_arn_from_a_versioned_state_machine_arn() -> None:
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:policies-etl:3"
    assert execution_arn_for(machine, "run-1") == "arn:aws:states:us-east-1:123456789012:execution:policies-etl:run-1"


def test_logs_arguments() -> None:
    query = parse_logs_args(["latest", "policies-etl", "--grep", "OutOfMemory", "--since", "6h", "--lines", "100"])
    assert query.target == ("latest", "policies-etl")
    assert query.grep == "OutOfMemory"
    assert query.since is not None and query.since.total_seconds() == 6 * 3600
    assert query.lines == 100


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["x", "--since", "yesterday"], "use a number and s, m, h or d"),
        (["x", "--lines", "0"], "give a number from 1 to 500"),
        (["x", "--grep"], "`--grep` needs a value"),
        (["x", "--follow"], "unknown option `--follow`"),
        (["--lines", "5"], "name what to read"),
    ],
)
def test_bad_logs_arguments(words: list[str], message: str) -> None:
    with pytest.raises(LogsUsageError, match=message):
        parse_logs_args(words)

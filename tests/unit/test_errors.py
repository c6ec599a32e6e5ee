from botocore.exceptions import ClientError, EndpointConnectionError

from bot.config import ConfigError
from bot.errors import SUMMARY_MAX, describe_exception
from bot.store.db import StoreSchemaError


def test_our_own_errors_are_shown_as_written() -> None:
    assert describe_exception(ConfigError("environment variable PORT: bad")) == "environment variable PORT: bad"
    message = "the store at sqlite:///x is at revision 0001, this etl-doctor needs 0002: run `etl-doctor db upgrade`"
    assert describe_exception(StoreSchemaError(message)) == message


def test_aws_errors_get_actionable_wording() -> None:
    denied = ClientError(
        {
            "Error": {
                "Code": "AccessDeniedException",
                "Message": "User is not authorized to perform states:ListExecutions",
            }
        },
        "ListExecutions",
    )
    assert describe_exception(denied) == (
        "AWS denied ListExecutions (AccessDeniedException): User is not authorized to perform "
        "states:ListExecutions. Check the IAM role etl-doctor runs as."
    )
    unreachable = EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com/")
    assert describe_exception(unreachable) == (
        "could not reach AWS at https://states.us-east-1.amazonaws.com/ (connection failed)"
    )


def test_unexpected_errors_are_one_redacted_bounded_line() -> None:
    text = describe_exception(ValueError("token=xoxb-12345678901-abc\n" + "x" * 1000))
    assert text.startswith("ValueError: token=[redacted] ")
    assert "\n" not in text and len(text) == SUMMARY_MAX

import pytest

from bot.answers import ANSWERS
from bot.commands import SUBCOMMANDS, UsageError, parse, parse_kpi_args, strip_mention


def test_every_listed_subcommand_has_an_answer_and_no_more() -> None:
    # `/etl help` must list only subcommands that really work.
    assert {sub.name for sub in SUBCOMMANDS} == set(ANSWERS)


def test_empty_text_is_help() -> None:
    assert parse("").subcommand.name == "help"
    assert parse("   ").subcommand.name == "help"


def test_subcommand_is_case_insensitive_and_args_are_kept() -> None:
    invocation = parse("HELP Pipelines")
    assert invocation.subcommand.name == "help"
    assert invocation.args == ("Pipelines",)


def test_slack_escaping_and_links_are_undone() -> None:
    invocation = parse("help &lt;pipelines&gt;".replace("&lt;pipelines&gt;", "<pipelines>"))
    assert invocation.args == ("pipelines",)


def test_unknown_subcommand_suggests_the_closest() -> None:
    with pytest.raises(UsageError) as raised:
        parse("pipeline")
    assert raised.value.message == "`pipeline` is not an etl-doctor subcommand — did you mean `pipelines`?"
    assert raised.value.subcommand is None


def test_unknown_subcommand_without_a_close_match() -> None:
    with pytest.raises(UsageError) as raised:
        parse("frobnicate now")
    assert raised.value.message == "`frobnicate` is not an etl-doctor subcommand"


def test_too_many_arguments_names_the_subcommand() -> None:
    with pytest.raises(UsageError) as raised:
        parse("pipelines extra")
    assert raised.value.message == "`pipelines` takes no arguments, got 1"
    assert raised.value.subcommand is not None and raised.value.subcommand.name == "pipelines"


def test_help_for_an_unknown_subcommand() -> None:
    with pytest.raises(UsageError, match="there is no subcommand `whyy` to explain"):
        parse("help whyy")


def test_unbalanced_quotes() -> None:
    with pytest.raises(UsageError, match="unbalanced quotes"):
        parse('help "pipelines')


def test_mention_is_stripped() -> None:
    assert strip_mention("<@U0ETLDOCTOR> pipelines") == "pipelines"
    assert strip_mention("  <@U0ETLDOCTOR|etl-doctor>   help why") == "help why"
    assert strip_mention("no mention here") == "no mention here"


def test_kpi_arguments_are_checked_in_the_parse() -> None:
    assert parse("kpi premium_amount 2025-02-01..2025-02-28").args == ("premium_amount", "2025-02-01..2025-02-28")
    assert parse_kpi_args(("premium_amount",)) == ("premium_amount", None)
    assert parse_kpi_args(("LIST",)) == (None, None)
    assert parse_kpi_args(("premium_amount", "2025-02-18 03")) == ("premium_amount", "2025-02-18 03")
    assert parse_kpi_args(("no_negative_premiums",), "check") == ("no_negative_premiums", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kpi", "`kpi` takes 1 to 2 arguments, got 0"),
        ("kpi list extra", "`kpi list` takes no arguments"),
        ("kpi premium_amount 2025-02-18'; DROP TABLE policies;--", "unbalanced quotes in the command"),
        (
            'kpi premium_amount "2025-02-18; DROP TABLE x"',
            "`2025-02-18; DROP TABLE x` is not a partition: give a partition like `2025-02-18`",
        ),
        ("kpi premium_amount 2025-02-18..", "`2025-02-18..` is not a partition"),
        ("kpi 1abc", "`1abc` is not a KPI name"),
        ("kpi `x`", "`'x'` is not a KPI name"),
        ("check a b", "`check` takes 1 argument, got 2"),
        ("check 'a;b'", "`a;b` is not a check name"),
    ],
)
def test_bad_kpi_arguments_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse(text)
    assert raised.value.message.startswith(message)
    assert raised.value.subcommand is not None or "quotes" in message  # usage of `kpi`/`check` is shown


def test_a_long_bad_value_is_not_echoed_in_full() -> None:
    with pytest.raises(UsageError) as raised:
        parse("kpi premium_amount " + "9" * 500)
    assert len(raised.value.message) < 200

import pytest

from bot.answers import ANSWERS
from bot.commands import SUBCOMMANDS, UsageError, parse, strip_mention


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

from bot.render.blocks import actions, button, context, divider, header, section
from bot.render.terminal import mrkdwn_to_text, render_blocks, render_message


def test_mrkdwn_becomes_plain_text() -> None:
    text = "*policies-etl* failed: <https://console.aws.amazon.com/x|run-42> &lt;exit 137&gt; :red_circle:"
    assert mrkdwn_to_text(text) == "policies-etl failed: run-42 <exit 137> ●"
    assert mrkdwn_to_text(text, show_urls=True).startswith("policies-etl failed: run-42 (https://console")


def test_blocks_render_like_slack_shows_them() -> None:
    blocks = [
        header("policies-etl failed"),
        section("Out of memory (exit 137)", fields=["*State*\nLoadFactPolicies", "*Run*\nrun-42"]),
        divider(),
        actions(button("Why", "why"), button("Retry with more memory", "retry"), button("Ack", "ack")),
        context("ref a1b2c3", "03:12 UTC"),
    ]
    assert render_blocks(blocks).splitlines() == [
        "policies-etl failed",
        "═══════════════════",
        "Out of memory (exit 137)",
        "  State",
        "LoadFactPolicies",
        "  Run",
        "run-42",
        "─" * 72,
        "[ Why ]  [ Retry with more memory ]  [ Ack ]",
        "  ref a1b2c3  ·  03:12 UTC",
    ]


def test_message_without_blocks_uses_text() -> None:
    assert render_message({"text": "*done*"}) == "done"

"""The bot's Slack client against the emulator: base URL from settings, 429s retried after Retry-After."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from slack_sdk.errors import SlackApiError

from bot.app import build_slack_client
from bot.config import Settings
from bot.sandbox.slack_emulator import SlackEmulator


def test_rate_limited_call_is_retried_after_retry_after(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator
) -> None:
    client = build_slack_client(make_settings(SLACK_API_URL=slack_emulator.api_url))
    slack_emulator.rate_limit("chat.postMessage", retry_after=0, times=1)
    response = client.chat_postMessage(channel="#etl-alerts", text="policies-etl failed at LoadFactPolicies")
    assert response["ok"] is True
    assert [call.status for call in slack_emulator.calls("chat.postMessage")] == [429, 200]
    assert [m["text"] for m in slack_emulator.messages("#etl-alerts")] == ["policies-etl failed at LoadFactPolicies"]


def test_retries_are_bounded_by_the_setting(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator
) -> None:
    client = build_slack_client(make_settings(SLACK_API_URL=slack_emulator.api_url, SLACK_RATE_LIMIT_RETRIES=1))
    slack_emulator.rate_limit("chat.postMessage", retry_after=0, times=5)
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="#etl-alerts", text="x")
    assert raised.value.response.status_code == 429
    assert len(slack_emulator.calls("chat.postMessage")) == 2  # the call and one retry


def test_client_uses_the_configured_token(
    make_settings: Callable[..., Settings], slack_emulator: SlackEmulator
) -> None:
    client = build_slack_client(make_settings(SLACK_API_URL=slack_emulator.api_url))
    assert client.auth_test()["user_id"] == slack_emulator.bot_user_id
    bad = build_slack_client(make_settings(SLACK_API_URL=slack_emulator.api_url, SLACK_BOT_TOKEN="xoxb-wrong"))
    with pytest.raises(SlackApiError, match="invalid_auth"):
        bad.auth_test()

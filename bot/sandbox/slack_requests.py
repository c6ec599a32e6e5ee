"""What Slack does when someone types `/etl …`: a signed request to the bot, then the answers collected."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_payloads import FORM_CONTENT_TYPE, form_body, post, signed_request, slash_command


@dataclass
class SlashResult:
    """What Slack would show after a slash command: the ack's answer and later response_url posts.

    Attributes:
        status: HTTP status the bot answered.
        ack: The JSON body of the ack, when it carried a message.
        responses: Messages posted later to the command's response_url, in order.
        ack_ms: How long the bot took to answer the HTTP request (Slack allows 3,000 ms).
    """

    status: int
    ack: dict[str, Any] | None
    responses: list[dict[str, Any]] = field(default_factory=list)
    ack_ms: float = 0.0

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message the user sees, in order."""
        return ([self.ack] if self.ack else []) + self.responses


class SlackRequests:
    """Sends slash commands to the bot the way Slack does and collects the replies from the emulator.

    Args:
        events_url: The bot's ``/slack/events`` URL.
        signing_secret: The secret Slack would sign with.
        emulator: The Slack emulator the bot answers through (response_url lives there).
    """

    def __init__(self, events_url: str, signing_secret: str, emulator: SlackEmulator) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.emulator = emulator

    def slash(
        self, text: str, *, user_id: str = "U0ONCALL", responses: int = 1, wait: float = 15.0, secret: str | None = None
    ) -> SlashResult:
        """Send a signed `/etl <text>` and wait for ``responses`` response_url posts (none if the ack answered).

        Args:
            text: What the user typed after `/etl`.
            user_id: Who typed it.
            responses: How many response_url posts to wait for (0 when the ack itself is the answer, e.g. usage).
            wait: Longest wait in seconds.
            secret: Sign with this instead of the real secret (to show forged requests are refused).
        """
        key = secrets.token_hex(8)
        payload = slash_command(text, user_id=user_id, response_url=self.emulator.response_url(key))
        body, headers = signed_request(
            form_body(payload), secret or self.signing_secret, content_type=FORM_CONTENT_TYPE
        )
        started = time.perf_counter()
        status, _headers, raw = post(self.events_url, body, headers)
        ack_ms = (time.perf_counter() - started) * 1000
        ack = json.loads(raw) if raw.strip().startswith(b"{") else None
        result = SlashResult(status=status, ack=ack, ack_ms=ack_ms)
        if status == 200 and responses:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                posted = [call.args for call in self.emulator.calls("response_url") if call.key == key]
                if len(posted) >= responses:
                    result.responses = posted
                    break
                time.sleep(0.02)
        return result

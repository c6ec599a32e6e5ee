"""The Slack payload builders match Slack's documented examples, and Bolt accepts what they build."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import pytest
from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.signature import SignatureVerifier

from bot.sandbox import slack_payloads as sp
from bot.sandbox.slack_emulator import SlackEmulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
SECRET = "unit-test-signing-secret"
RESPONSE_URL = "http://127.0.0.1:9/response_url/abc"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- shapes vs Slack's docs


def test_the_slash_command_fixture_is_the_docs_form_body_decoded() -> None:
    raw = (FIXTURES / "slash_command.urlencoded").read_text(encoding="utf-8").strip()

    assert dict(parse_qsl(raw, keep_blank_values=True)) == fixture("slash_command.json")


def test_slash_command_has_the_documented_keys() -> None:
    doc = fixture("slash_command.json")

    enterprise = sp.slash_command("x", response_url=RESPONSE_URL, enterprise_id="E0001", enterprise_name="Org")
    plain = sp.slash_command("why run-1", response_url=RESPONSE_URL)

    assert list(enterprise) == list(doc)  # same keys, same order as Slack's example
    assert set(plain) == set(doc) - {"enterprise_id", "enterprise_name"}
    assert all(isinstance(v, str) for v in plain.values())
    assert plain["command"] == "/etl" and plain["text"] == "why run-1"
    assert plain["response_url"] == RESPONSE_URL
    assert plain["trigger_id"].count(".") == 2
    assert plain["trigger_id"] != sp.slash_command("x", response_url=RESPONSE_URL)["trigger_id"]


def test_form_body_round_trips() -> None:
    payload = sp.slash_command("kpi premium_amount 2025-02-18 & more", response_url=RESPONSE_URL)

    assert dict(parse_qsl(sp.form_body(payload), keep_blank_values=True)) == payload


def test_block_actions_has_the_documented_keys() -> None:
    doc = fixture("block_actions.json")

    built = sp.block_actions("redrive", "run-1", response_url=RESPONSE_URL, message_ts="1700000000.000100")

    assert set(built) == set(doc)
    for part in ("team", "user", "channel", "message"):
        assert set(built[part]) == set(doc[part]), part
    assert set(built["actions"][0]) == set(doc["actions"][0])
    assert set(built["actions"][0]["text"]) == set(doc["actions"][0]["text"])
    # A Block Kit message's container (the doc example shows a legacy attachment's).
    assert set(built["container"]) <= set(doc["container"])
    assert built["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": "C0ETLALERTS",
        "is_ephemeral": False,
    }
    assert built["actions"][0]["action_id"] == "redrive" and built["actions"][0]["value"] == "run-1"


def test_block_actions_carries_the_message_blocks_when_given() -> None:
    blocks = [{"type": "actions", "block_id": "b", "elements": []}]

    built = sp.block_actions("ack", "x", response_url=RESPONSE_URL, message_blocks=blocks)

    assert built["message"]["blocks"] == blocks


def test_interactive_body_is_one_payload_field_of_json() -> None:
    payload = sp.block_actions("ack", "run-1", response_url=RESPONSE_URL)

    fields = parse_qs(sp.interactive_body(payload))

    assert list(fields) == ["payload"]
    assert json.loads(fields["payload"][0]) == payload


def test_event_callback_has_the_documented_envelope_keys() -> None:
    doc = fixture("event_callback_envelope.json")
    mention_doc = fixture("event_callback_app_mention.json")

    built = sp.event_callback(sp.app_mention("<@U0ETLDOCTOR> why run-1"), event_time=1515449522)

    assert set(built) == set(doc)
    assert set(built["authorizations"][0]) == set(doc["authorizations"][0])
    assert set(mention_doc) <= set(built)
    assert set(built["event"]) == set(mention_doc["event"])
    assert built["event_time"] == 1515449522 and built["event_id"].startswith("Ev")
    assert built["event_id"] != sp.event_callback({"type": "app_mention"})["event_id"]
    assert json.loads(sp.json_body(built)) == built


def test_socket_mode_envelopes_have_the_documented_keys() -> None:
    slash_doc = fixture("socket_mode_slash_commands_envelope.json")
    interactive_doc = fixture("socket_mode_interactive_envelope.json")

    slash = sp.socket_mode_envelope("slash_commands", sp.slash_command("x", response_url=RESPONSE_URL))
    interactive = sp.socket_mode_envelope("interactive", sp.block_actions("a", "v", response_url=RESPONSE_URL))
    events = sp.socket_mode_envelope("events_api", sp.event_callback({"type": "app_mention"}))

    assert set(slash) == set(slash_doc)
    assert set(slash_doc["payload"]) <= set(slash["payload"])  # the doc's example predates api_app_id
    assert set(interactive) == set(interactive_doc)
    assert set(interactive["payload"]) == set(interactive_doc["payload"])
    assert set(events) == set(slash_doc) | {"retry_attempt", "retry_reason"}
    assert (slash["accepts_response_payload"], interactive["accepts_response_payload"]) == (True, True)
    assert events["accepts_response_payload"] is False
    assert (events["retry_attempt"], events["retry_reason"]) == (0, "")
    assert slash["envelope_id"] != interactive["envelope_id"]


def test_socket_mode_envelope_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        sp.socket_mode_envelope("slash_command", {})


# ---------------------------------------------------------------------- signatures


def test_sign_matches_slack_sdks_verifier() -> None:
    body = sp.form_body(sp.slash_command("why run-1", response_url=RESPONSE_URL))

    headers = sp.sign(body, SECRET)

    verifier = SignatureVerifier(SECRET)
    timestamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert signature.startswith("v0=")
    assert verifier.is_valid(body, timestamp, signature)
    assert not verifier.is_valid(body.replace("why", "rm -rf"), timestamp, signature)
    assert not SignatureVerifier("another-secret").is_valid(body, timestamp, signature)


def test_sign_with_an_old_timestamp_is_refused_by_the_verifier() -> None:
    body = sp.json_body(sp.event_callback({"type": "app_mention"}))

    headers = sp.sign(body, SECRET, timestamp=int(time.time()) - 600)

    assert (
        SignatureVerifier(SECRET).generate_signature(timestamp=headers["X-Slack-Request-Timestamp"], body=body)
        == (headers["X-Slack-Signature"])
    )
    assert not SignatureVerifier(SECRET).is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )


def test_signed_request_adds_the_content_type() -> None:
    body, headers = sp.signed_request("a=b", SECRET, content_type=sp.FORM_CONTENT_TYPE, timestamp=1700000000)

    assert body == "a=b"
    assert headers == {"Content-Type": "application/x-www-form-urlencoded", **sp.sign("a=b", SECRET, 1700000000)}


# ---------------------------------------------------------------------- Bolt accepts what the builders build


@pytest.fixture
def bolt_app() -> App:
    def authorize(**_: Any) -> AuthorizeResult:  # no auth.test round trip: this is a unit test
        return AuthorizeResult(
            enterprise_id=None,
            team_id="T0SANDBOX",
            bot_token="xoxb-unit",
            bot_user_id="U0ETLDOCTOR",
            bot_id="B0ETLDOCTOR",
        )

    return App(signing_secret=SECRET, authorize=authorize)


def _dispatch(app: App, body: str, content_type: str, timestamp: int | None = None) -> Any:
    _, headers = sp.signed_request(body, SECRET, content_type=content_type, timestamp=timestamp)
    return app.dispatch(BoltRequest(body=body, headers={k.lower(): v for k, v in headers.items()}))


def test_bolt_routes_a_signed_slash_command(bolt_app: App) -> None:
    seen: list[dict[str, Any]] = []

    @bolt_app.command("/etl")
    def etl(ack: Any, command: dict[str, Any]) -> None:
        seen.append(command)
        ack(text=f"Looking into {command['text']}")

    body = sp.form_body(sp.slash_command("why run-1", response_url=RESPONSE_URL))
    response = _dispatch(bolt_app, body, sp.FORM_CONTENT_TYPE)

    assert response.status == 200 and "Looking into why run-1" in response.body
    assert seen[0]["channel_id"] == "C0ETLALERTS" and seen[0]["user_id"] == "U0ONCALL"
    stale = _dispatch(bolt_app, body, sp.FORM_CONTENT_TYPE, timestamp=int(time.time()) - 600)
    assert stale.status == 401


def test_bolt_routes_a_signed_block_action(bolt_app: App) -> None:
    seen: list[dict[str, Any]] = []

    @bolt_app.action("redrive")
    def redrive(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        seen.append({"value": action["value"], "user": body["user"]["id"], "channel": body["channel"]["id"]})

    body = sp.interactive_body(sp.block_actions("redrive", "run-1", response_url=RESPONSE_URL))
    response = _dispatch(bolt_app, body, sp.FORM_CONTENT_TYPE)

    assert response.status == 200
    assert seen == [{"value": "run-1", "user": "U0ONCALL", "channel": "C0ETLALERTS"}]


def test_bolt_routes_a_signed_app_mention(bolt_app: App) -> None:
    seen: list[str] = []
    bolt_app.event("app_mention")(lambda event: seen.append(event["text"]))

    body = sp.json_body(sp.event_callback(sp.app_mention("<@U0ETLDOCTOR> why run-1")))
    response = _dispatch(bolt_app, body, sp.JSON_CONTENT_TYPE)

    assert response.status == 200
    assert _wait(lambda: seen == ["<@U0ETLDOCTOR> why run-1"])


def _wait(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)
    return bool(condition())


# ---------------------------------------------------------------------- post()


def test_post_returns_error_answers_instead_of_raising() -> None:
    with SlackEmulator() as slack:
        url = slack.response_url("k")
        answers = [sp.post(url, '{"text": "x"}', {"Content-Type": sp.JSON_CONTENT_TYPE}) for _ in range(6)]
        missing = sp.post(f"{slack.base_url}/nowhere", "", {})

    assert [status for status, _, _ in answers] == [200] * 5 + [404]
    assert answers[0][2] == b"ok" and answers[-1][2] == b"used_url"
    assert answers[0][1]["content-type"].startswith("text/plain")
    assert missing[0] == 404


def test_post_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        sp.post("file:///etc/passwd", "", {})

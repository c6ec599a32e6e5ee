"""The Slack emulator, driven by the real slack_sdk clients (WebClient, WebhookClient, SocketModeClient) and Bolt."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.webhook import WebhookClient

from bot.sandbox import slack_payloads
from bot.sandbox.slack_emulator import RESPONSE_URL_MAX_USES, SlackEmulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"

# A PNG signature plus every byte value: bytes >= 0x80 are not valid UTF-8 or form data.
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4 + b"\xff\xfe%&=+"


@pytest.fixture
def client(slack_emulator: SlackEmulator) -> WebClient:
    return WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url)


def _api_error(call: Callable[[], Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@contextmanager
def _socket_client(emulator: SlackEmulator, **kwargs: Any) -> Iterator[SocketModeClient]:
    web_client = WebClient(token=emulator.bot_token, base_url=emulator.api_url)
    sm_client = SocketModeClient(app_token=emulator.app_token, web_client=web_client, **kwargs)
    try:
        yield sm_client
    finally:
        sm_client.close()


# ---------------------------------------------------------------------- Web API basics


def test_auth_test_describes_the_bot(slack_emulator: SlackEmulator, client: WebClient) -> None:
    response = client.auth_test()

    assert response.status_code == 200
    assert response["ok"] is True
    assert response["url"] == "https://sandbox.slack.com/"
    assert (response["team_id"], response["user_id"], response["bot_id"]) == ("T0SANDBOX", "U0ETLDOCTOR", "B0ETLDOCTOR")
    assert response["is_enterprise_install"] is False
    (call,) = slack_emulator.calls("auth.test")
    assert call.headers["authorization"] == "Bearer xoxb-sandbox-token"


def test_tokens_are_checked_like_slack(slack_emulator: SlackEmulator) -> None:
    wrong = WebClient(token="xoxb-not-the-bot", base_url=slack_emulator.api_url)
    anonymous = WebClient(base_url=slack_emulator.api_url)
    app_token = WebClient(token=slack_emulator.app_token, base_url=slack_emulator.api_url)
    bot = WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url)

    assert _api_error(wrong.auth_test).response["error"] == "invalid_auth"
    assert _api_error(anonymous.auth_test).response["error"] == "not_authed"
    assert _api_error(app_token.auth_test).response["error"] == "not_allowed_token_type"
    bot_opening_socket = _api_error(lambda: bot.apps_connections_open(app_token=slack_emulator.bot_token))
    assert bot_opening_socket.response["error"] == "not_allowed_token_type"
    assert bot.apps_connections_open(app_token=slack_emulator.app_token)["url"].startswith("ws://127.0.0.1:")
    # Logical errors are HTTP 200, as on Slack.
    assert {c.status for c in slack_emulator.calls()} == {200}


def test_a_token_form_field_authenticates_too(slack_emulator: SlackEmulator) -> None:
    anonymous = WebClient(base_url=slack_emulator.api_url)

    response = anonymous.api_call("auth.test", params={"token": slack_emulator.bot_token})

    assert response["user_id"] == "U0ETLDOCTOR"


def test_unknown_method_is_answered_and_recorded(slack_emulator: SlackEmulator, client: WebClient) -> None:
    error = _api_error(lambda: client.api_call("chat.teleport", json={"channel": "C1"}))

    assert error.response.status_code == 200
    assert error.response["error"] == "unknown_method"
    (call,) = slack_emulator.calls("chat.teleport")
    assert call.args == {"channel": "C1"}


# ---------------------------------------------------------------------- messages


def test_post_message_returns_a_slack_style_ts_and_stores_the_message(
    slack_emulator: SlackEmulator, client: WebClient
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*policies-etl* failed"}}]

    first = client.chat_postMessage(channel="#etl-alerts", text="policies-etl failed", blocks=blocks)
    second = client.chat_postMessage(channel="etl-alerts", text="second")

    channel = slack_emulator.channel_id("#etl-alerts")
    assert first["channel"] == second["channel"] == channel
    assert channel.startswith("C0")
    seconds, micros = first["ts"].split(".")
    assert len(seconds) == 10 and len(micros) == 6
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == blocks
    assert first["message"]["bot_id"] == "B0ETLDOCTOR"
    stored = slack_emulator.messages("#etl-alerts")
    assert [m["text"] for m in stored] == ["policies-etl failed", "second"]
    assert stored[0]["blocks"] == blocks and stored[0]["user"] == "U0ETLDOCTOR"


def test_blocks_sent_as_a_form_field_json_string_are_decoded(slack_emulator: SlackEmulator, client: WebClient) -> None:
    blocks = [{"type": "divider"}]

    client.api_call("chat.postMessage", params={"channel": "C0FORM", "text": "t", "blocks": json.dumps(blocks)})

    (call,) = slack_emulator.calls("chat.postMessage")
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.args["blocks"] == blocks
    assert slack_emulator.messages("C0FORM")[0]["blocks"] == blocks


def test_thread_replies_and_broadcasts(slack_emulator: SlackEmulator, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="#etl-alerts", text="policies-etl failed")

    client.chat_postMessage(channel="#etl-alerts", text="again (2)", thread_ts=parent["ts"])
    client.chat_postMessage(channel="#etl-alerts", text="again (3)", thread_ts=parent["ts"], reply_broadcast=True)

    thread = slack_emulator.thread("#etl-alerts", parent["ts"])
    assert [m["text"] for m in thread] == ["policies-etl failed", "again (2)", "again (3)"]
    assert thread[0]["reply_count"] == 2
    assert thread[1].get("reply_broadcast") is None and thread[2]["reply_broadcast"] is True
    replies = client.conversations_replies(channel=parent["channel"], ts=parent["ts"])
    assert len(replies["messages"]) == 3
    history = client.conversations_history(channel=parent["channel"])
    assert [m["text"] for m in history["messages"]] == ["policies-etl failed"]


def test_post_message_errors(slack_emulator: SlackEmulator, client: WebClient) -> None:
    no_text = _api_error(lambda: client.api_call("chat.postMessage", json={"channel": "C0ETLALERTS"}))
    no_channel = _api_error(lambda: client.api_call("chat.postMessage", json={"channel": " ", "text": "x"}))

    assert no_text.response["error"] == "no_text"
    assert no_channel.response["error"] == "channel_not_found"
    assert slack_emulator.messages("C0ETLALERTS") == []


def test_update_replaces_the_stored_message(slack_emulator: SlackEmulator, client: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "running"}}]
    posted = client.chat_postMessage(channel="#etl-alerts", text="redrive running", blocks=blocks)

    updated = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="redrive succeeded")

    assert updated["ts"] == posted["ts"] and updated["text"] == "redrive succeeded"
    (message,) = slack_emulator.messages("#etl-alerts")
    assert message["text"] == "redrive succeeded"
    assert message["blocks"] == blocks  # chat.update keeps blocks it was not given
    assert message["edited"]["user"] == "U0ETLDOCTOR"
    new_blocks = [{"type": "divider"}]
    client.chat_update(channel=posted["channel"], ts=posted["ts"], text="x", blocks=new_blocks)
    assert slack_emulator.messages("#etl-alerts")[0]["blocks"] == new_blocks


def test_update_of_an_unknown_message_is_message_not_found(client: WebClient) -> None:
    error = _api_error(lambda: client.chat_update(channel="C0ETLALERTS", ts="1.000001", text="x"))

    assert error.response["error"] == "message_not_found"


def test_post_ephemeral(slack_emulator: SlackEmulator, client: WebClient) -> None:
    response = client.chat_postEphemeral(channel="#etl-alerts", user="U0ONCALL", text="only you")

    assert response["ok"] and response["message_ts"]
    (ephemeral,) = slack_emulator.ephemerals("#etl-alerts")
    assert (ephemeral["user"], ephemeral["text"]) == ("U0ONCALL", "only you")
    assert slack_emulator.messages("#etl-alerts") == []
    missing_user = _api_error(lambda: client.api_call("chat.postEphemeral", json={"channel": "C1", "text": "x"}))
    assert missing_user.response["error"] == "invalid_arguments"


def test_reactions(slack_emulator: SlackEmulator, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="#etl-alerts", text="policies-etl failed")

    client.reactions_add(channel=posted["channel"], timestamp=posted["ts"], name="eyes")

    reactions = slack_emulator.messages("#etl-alerts")[0]["reactions"]
    assert reactions == [{"name": "eyes", "users": ["U0ETLDOCTOR"], "count": 1}]
    again = _api_error(lambda: client.reactions_add(channel=posted["channel"], timestamp=posted["ts"], name="eyes"))
    assert again.response["error"] == "already_reacted"
    unknown = _api_error(lambda: client.reactions_add(channel=posted["channel"], timestamp="2.000002", name="eyes"))
    assert unknown.response["error"] == "message_not_found"


def test_permalink_and_delete(slack_emulator: SlackEmulator, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="#etl-alerts", text="x")

    link = client.chat_getPermalink(channel=posted["channel"], message_ts=posted["ts"])["permalink"]
    client.chat_delete(channel=posted["channel"], ts=posted["ts"])

    assert link == f"https://sandbox.slack.com/archives/{posted['channel']}/p{posted['ts'].replace('.', '')}"
    assert slack_emulator.messages("#etl-alerts") == []


def test_channel_ids_are_stable_and_ids_pass_through(slack_emulator: SlackEmulator) -> None:
    other = SlackEmulator()  # not started: channel_id is pure

    assert slack_emulator.channel_id("#etl-alerts") == other.channel_id("etl-alerts")
    assert slack_emulator.channel_id("#etl-alerts") != slack_emulator.channel_id("#etl-other")
    assert slack_emulator.channel_id("C0123ABC") == "C0123ABC"
    assert slack_emulator.channel_id("G0123ABC") == "G0123ABC"
    assert slack_emulator.channel_id("U0ONCALL").startswith("D0")


# ---------------------------------------------------------------------- views, files, user groups


def test_views_open_and_update(slack_emulator: SlackEmulator, client: WebClient) -> None:
    modal = {
        "type": "modal",
        "callback_id": "confirm_redrive",
        "external_id": "redrive-run-1",
        "title": {"type": "plain_text", "text": "Redrive?"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Redrive run-1?"}}],
    }

    opened = client.views_open(trigger_id="123.456.abc", view=modal)["view"]
    view_id = opened["id"]
    assert view_id.startswith("V") and opened["hash"] and opened["callback_id"] == "confirm_redrive"
    assert slack_emulator.views[view_id]["title"]["text"] == "Redrive?"

    changed = dict(modal, title={"type": "plain_text", "text": "Redriving…"})
    updated = client.views_update(view_id=view_id, view=changed, hash=opened["hash"])["view"]
    assert updated["id"] == view_id and updated["hash"] != opened["hash"]
    assert slack_emulator.views[view_id]["title"]["text"] == "Redriving…"

    by_external_id = client.views_update(external_id="redrive-run-1", view=modal)["view"]
    assert by_external_id["id"] == view_id
    stale = _api_error(lambda: client.views_update(view_id=view_id, view=modal, hash=opened["hash"]))
    assert stale.response["error"] == "hash_conflict"
    unknown = _api_error(lambda: client.views_update(view_id="V0NOPE", view=modal))
    assert unknown.response["error"] == "not_found"
    no_trigger = _api_error(lambda: client.api_call("views.open", json={"view": modal}))
    assert no_trigger.response["error"] == "invalid_arguments"


def test_views_open_accepts_the_view_as_a_json_string(slack_emulator: SlackEmulator, client: WebClient) -> None:
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []}

    opened = client.api_call("views.open", params={"trigger_id": "1.2.3", "view": json.dumps(modal)})

    assert opened["view"]["type"] == "modal"
    assert opened["view"]["id"] in slack_emulator.views


def test_files_upload_v2_stores_exact_bytes_and_shares_in_the_thread(
    slack_emulator: SlackEmulator, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="#etl-alerts", text="policies-etl failed")

    response = client.files_upload_v2(
        channel=parent["channel"],
        content=PNG_BYTES,
        filename="memory.png",
        title="Memory",
        initial_comment="memory graph",
        thread_ts=parent["ts"],
    )

    assert response["file"]["name"] == "memory.png" and response["file"]["title"] == "Memory"
    (upload,) = slack_emulator.calls("upload")
    assert upload.body == PNG_BYTES
    # slack_sdk sends the raw bytes labelled as a form; the emulator must not parse them.
    assert upload.headers["content-type"] == "application/x-www-form-urlencoded"
    assert upload.args == {}
    (stored,) = slack_emulator.uploaded_files()
    assert stored["content"] == PNG_BYTES and stored["length"] == len(PNG_BYTES)
    assert stored["completed"] is True and stored["thread_ts"] == parent["ts"]
    shared = slack_emulator.thread("#etl-alerts", parent["ts"])[-1]
    assert shared["text"] == "memory graph"
    assert shared["thread_ts"] == parent["ts"]
    assert shared["files"][0]["id"] == response["file"]["id"]
    completed = slack_emulator.calls("files.completeUploadExternal")[0]
    assert completed.args["files"] == [{"id": response["file"]["id"], "title": "Memory"}]


def test_complete_upload_of_an_unknown_file_fails(client: WebClient) -> None:
    error = _api_error(lambda: client.files_completeUploadExternal(files=[{"id": "F0NOPE", "title": "x"}]))

    assert error.response["error"] == "file_not_found"


def test_files_upload_v1_is_retired(client: WebClient) -> None:
    error = _api_error(lambda: client.api_call("files.upload", params={"channels": "C1", "content": "x"}))

    assert error.response["error"] == "method_deprecated"


def test_usergroups_users_list(slack_emulator: SlackEmulator, client: WebClient) -> None:
    slack_emulator.add_usergroup("S0DATAENG", ["U0ALICE", "U0BOB"])

    assert client.usergroups_users_list(usergroup="S0DATAENG")["users"] == ["U0ALICE", "U0BOB"]
    unknown = _api_error(lambda: client.usergroups_users_list(usergroup="S0NOPE"))
    assert unknown.response["error"] == "no_such_subteam"


# ---------------------------------------------------------------------- response_url


def test_response_url_allows_five_posts_then_refuses(slack_emulator: SlackEmulator) -> None:
    url = slack_emulator.response_url("cmd-1")
    webhook = WebhookClient(url)

    answers = [webhook.send(text=f"update {i}") for i in range(RESPONSE_URL_MAX_USES + 1)]

    assert [a.status_code for a in answers] == [200] * 5 + [404]
    assert [a.body for a in answers] == ["ok"] * 5 + ["used_url"]
    calls = slack_emulator.calls("response_url")
    assert len(calls) == 6 and {c.key for c in calls} == {"cmd-1"}
    assert calls[0].args == {"text": "update 0"}
    assert calls[-1].status == 404
    # Another URL has its own budget.
    assert WebhookClient(slack_emulator.response_url()).send(text="x").status_code == 200


def test_response_url_with_a_context_changes_the_channel(slack_emulator: SlackEmulator, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="#etl-alerts", text="[Redrive] [Ack]")
    url = slack_emulator.response_url(channel="#etl-alerts", user="U0ONCALL", message_ts=posted["ts"])
    webhook = WebhookClient(url)

    webhook.send(text="only for you")
    webhook.send(text="for everyone", response_type="in_channel")
    webhook.send(text="redrive started by <@U0ONCALL>", replace_original=True)

    (ephemeral,) = slack_emulator.ephemerals("#etl-alerts")
    assert (ephemeral["user"], ephemeral["text"]) == ("U0ONCALL", "only for you")
    texts = [m["text"] for m in slack_emulator.messages("#etl-alerts")]
    assert texts == ["redrive started by <@U0ONCALL>", "for everyone"]
    webhook.send(delete_original=True)
    assert [m["text"] for m in slack_emulator.messages("#etl-alerts")] == ["for everyone"]


# ---------------------------------------------------------------------- rate limits


def test_queued_429_then_success_with_the_retry_handler(slack_emulator: SlackEmulator) -> None:
    client = WebClient(
        token=slack_emulator.bot_token,
        base_url=slack_emulator.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack_emulator.rate_limit("chat.postMessage", retry_after=0)

    response = client.chat_postMessage(channel="#etl-alerts", text="hi")

    assert response["ok"] is True
    calls = slack_emulator.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].response == {"ok": False, "error": "ratelimited"}
    assert len(slack_emulator.messages("#etl-alerts")) == 1


def test_queued_429_without_a_retry_handler_raises(slack_emulator: SlackEmulator, client: WebClient) -> None:
    slack_emulator.rate_limit("chat.postMessage", retry_after=7)

    error = _api_error(lambda: client.chat_postMessage(channel="#etl-alerts", text="hi"))

    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited"
    assert error.response.headers["retry-after"] == "7"
    assert slack_emulator.messages("#etl-alerts") == []
    assert client.chat_postMessage(channel="#etl-alerts", text="hi")["ok"]  # only one was queued


def test_channel_rate_limits_one_channel_not_another(slack_emulator: SlackEmulator, client: WebClient) -> None:
    slack_emulator.enforce_channel_rate(per_second=0.01)  # one post per 100 s: the burst surely exceeds it

    burst = []
    for i in range(3):
        try:
            burst.append(client.chat_postMessage(channel="#etl-alerts", text=f"alert {i}").status_code)
        except SlackApiError as error:
            burst.append(error.response.status_code)
            retry_after = error.response.headers["retry-after"]
            assert retry_after.isdigit() and int(retry_after) >= 1
    other = client.chat_postMessage(channel="#etl-other", text="fine")

    assert burst == [200, 429, 429]
    assert other["ok"] is True
    assert [m["text"] for m in slack_emulator.messages("#etl-alerts")] == ["alert 0"]
    slack_emulator.enforce_channel_rate(None)
    assert client.chat_postMessage(channel="#etl-alerts", text="after")["ok"] is True


# ---------------------------------------------------------------------- bookkeeping


def test_wait_for_reports_what_arrived_on_timeout(slack_emulator: SlackEmulator, client: WebClient) -> None:
    client.auth_test()

    with pytest.raises(AssertionError) as caught:
        slack_emulator.wait_for("chat.postMessage", timeout=0.1)

    assert "expected 1 call(s) to 'chat.postMessage'" in str(caught.value)
    assert "auth.test -> 200 ok" in str(caught.value)


def test_wait_for_sees_calls_made_from_another_thread(slack_emulator: SlackEmulator, client: WebClient) -> None:
    worker = threading.Thread(target=lambda: client.chat_postMessage(channel="C0BG", text="later"))
    worker.start()

    (call,) = slack_emulator.wait_for("chat.postMessage")

    worker.join()
    assert call.args["text"] == "later"


def test_reset_forgets_traffic_but_keeps_configuration(slack_emulator: SlackEmulator, client: WebClient) -> None:
    slack_emulator.add_usergroup("S0X", ["U1"])
    client.chat_postMessage(channel="C0X", text="x")
    slack_emulator.rate_limit("auth.test")

    slack_emulator.reset()

    assert slack_emulator.calls() == [] and slack_emulator.messages("C0X") == []
    assert client.auth_test()["ok"]  # the queued 429 is gone
    assert client.usergroups_users_list(usergroup="S0X")["users"] == ["U1"]


# ---------------------------------------------------------------------- Socket Mode


def test_socket_mode_round_trip_with_the_real_client(slack_emulator: SlackEmulator) -> None:
    received: list[SocketModeRequest] = []
    messages: list[dict[str, Any]] = []

    def listener(sm_client: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        text = request.payload.get("text", "")
        sm_client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": f"checking {text}"})
        )

    with _socket_client(slack_emulator) as sm_client:
        sm_client.socket_mode_request_listeners.append(listener)
        sm_client.message_listeners.append(lambda _c, message, _raw: messages.append(message))
        sm_client.connect()
        slack_emulator.wait_for_socket_client()
        payload = slack_payloads.slash_command("why run-1", response_url=slack_emulator.response_url())
        envelope = slack_payloads.socket_mode_envelope("slash_commands", payload, envelope_id="env-1")

        ack = slack_emulator.socket_mode_send(envelope)

        assert ack == {"envelope_id": "env-1", "payload": {"text": "checking why run-1"}}
        assert len(received) == 1 and received[0].type == "slash_commands"
        assert received[0].payload == payload and received[0].accepts_response_payload is True
        hello = messages[0]
        doc_hello = json.loads((FIXTURES / "socket_mode_hello.json").read_text())
        assert hello["type"] == "hello" and set(hello) == set(doc_hello)
        assert hello["connection_info"] == {"app_id": "A0ETLDOCTOR"}
        # The client pings right after connecting; a pong with its payload proves ping/pong works.
        assert _eventually(lambda: sm_client.current_session.last_ping_pong_time is not None)
        assert slack_emulator.socket_mode_acks() == [ack]
        (opened,) = slack_emulator.calls("apps.connections.open")
        assert opened.headers["authorization"] == "Bearer xapp-sandbox-token"
        assert [c.status for c in slack_emulator.calls("socket_mode.connect")] == [101]


def test_socket_mode_frames_over_70000_bytes_both_ways(slack_emulator: SlackEmulator) -> None:
    big_text = "<@U0ETLDOCTOR> " + "stack trace line é\n" * 4000  # > 70,000 bytes of UTF-8

    def echo(sm_client: SocketModeClient, request: SocketModeRequest) -> None:
        sm_client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"echo": request.payload["event"]["text"]})
        )

    with _socket_client(slack_emulator) as sm_client:
        sm_client.socket_mode_request_listeners.append(echo)
        sm_client.connect()
        event = slack_payloads.event_callback(slack_payloads.app_mention(big_text))
        envelope = slack_payloads.socket_mode_envelope("events_api", event)
        assert len(json.dumps(envelope).encode()) > 70_000

        ack = slack_emulator.socket_mode_send(envelope, timeout=10)

    assert ack["envelope_id"] == envelope["envelope_id"]
    assert ack["payload"]["echo"] == big_text


def test_socket_mode_disconnect_makes_the_client_reconnect(slack_emulator: SlackEmulator) -> None:
    with _socket_client(slack_emulator) as sm_client:
        sm_client.socket_mode_request_listeners.append(
            lambda c, r: c.send_socket_mode_response(SocketModeResponse(envelope_id=r.envelope_id))
        )
        sm_client.connect()
        slack_emulator.wait_for_socket_client()

        slack_emulator.socket_mode_disconnect("refresh_requested")

        slack_emulator.wait_for("apps.connections.open", count=2)
        slack_emulator.wait_for("socket_mode.connect", count=2)
        envelope = slack_payloads.socket_mode_envelope("interactive", {"type": "block_actions"}, envelope_id="e2")
        assert slack_emulator.socket_mode_send(envelope)["envelope_id"] == "e2"


def test_socket_mode_send_without_a_client_fails_clearly(slack_emulator: SlackEmulator) -> None:
    with pytest.raises(AssertionError, match="no Socket Mode client connected"):
        slack_emulator.socket_mode_send({"envelope_id": "e", "type": "events_api", "payload": {}}, timeout=0.1)
    with pytest.raises(ValueError, match="envelope_id"):
        slack_emulator.socket_mode_send({"type": "events_api", "payload": {}})


def test_an_unacked_envelope_times_out_with_a_helpful_message(slack_emulator: SlackEmulator) -> None:
    with _socket_client(slack_emulator) as sm_client:  # no listener: nothing acks
        sm_client.connect()
        envelope = slack_payloads.socket_mode_envelope("events_api", {}, envelope_id="lost")

        with pytest.raises(AssertionError, match="no ack for envelope 'lost'"):
            slack_emulator.socket_mode_send(envelope, timeout=0.3)


def test_stopping_the_emulator_under_a_connected_client_does_not_hang() -> None:
    emulator = SlackEmulator().start()
    with _socket_client(emulator, ping_interval=1) as sm_client:
        sm_client.connect()
        emulator.wait_for_socket_client()

        stopper = threading.Thread(target=emulator.stop)
        stopper.start()
        stopper.join(timeout=10)

        assert not stopper.is_alive()
        assert emulator.socket_mode_connections() == 0
        assert _eventually(lambda: not sm_client.is_connected())
        closer = threading.Thread(target=sm_client.close)
        closer.start()
        closer.join(timeout=15)
        assert not closer.is_alive()
    emulator.stop()  # idempotent


def test_bolt_socket_mode_handler_acks_and_calls_the_web_api(slack_emulator: SlackEmulator) -> None:
    app = App(client=WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url))

    @app.command("/etl")
    def etl(ack: Any, command: dict[str, Any], client: WebClient) -> None:
        ack(text=f"Looking into {command['text']}…")
        client.chat_postMessage(channel=command["channel_id"], text=f"diagnosis of {command['text']}")

    handler = SocketModeHandler(app, slack_emulator.app_token)
    handler.connect()
    try:
        payload = slack_payloads.slash_command("why run-7", response_url=slack_emulator.response_url())
        ack = slack_emulator.socket_mode_send(slack_payloads.socket_mode_envelope("slash_commands", payload))

        assert ack["payload"] == {"text": "Looking into why run-7…"}
        (posted,) = slack_emulator.wait_for("chat.postMessage")
        assert posted.args["text"] == "diagnosis of why run-7"
        assert slack_emulator.messages("C0ETLALERTS")[0]["text"] == "diagnosis of why run-7"
    finally:
        handler.close()

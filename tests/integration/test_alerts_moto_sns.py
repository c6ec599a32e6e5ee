"""End to end with a moto SNS topic: Publish → moto's signed HTTP delivery → the running bot's /sns → Slack.

How moto delivers, and how these tests deal with it (moto 5.2, read in ``moto/sns/models.py``, ``urls.py``
and ``responses.py``, and checked by trying):

* moto's server runs in this process (`MotoSandbox` wraps ``ThreadedMotoServer``; region us-east-1,
  account 123456789012, credentials testing/testing as in tests/conftest.py). An ``http`` subscription is
  confirmed at once: moto sends no SubscriptionConfirmation.
* ``Publish`` delivers synchronously: inside the Publish call moto ``requests.post``s the JSON envelope to
  every HTTP endpoint, so the bot has verified and stored the message when Publish returns.
* moto signs with SignatureVersion 2 (SHA256withRSA) using an RSA key per subscription and a self-made
  certificate (CN=sns.amazonaws.com, not chained to any CA). Its SigningCertURL is
  ``https://sns.<region>.amazonaws.com/SimpleNotificationService-<uuid hex>.pem``, which passes the URL check
  but cannot be fetched here (no internet, and it is moto's certificate, not AWS's).
* The moto server serves that PEM at ``/SimpleNotificationService-<uuid hex>.pem`` (``SNSResponse.serve_pem``)
  once the request reaches its SNS backend. moto 5.2 picks the backend from the SigV4 credential scope of
  the Authorization header, not from the Host header (a GET with ``Host: sns.<region>.amazonaws.com`` gets
  404), so `MotoCertificates` sends a GET signed by botocore for service ``sns`` in the URL's region.
* moto leaves Subject out of the string it signs (AWS signs it when present), so a message published with a
  Subject would be refused, correctly, with 403: these tests publish without one.

moto's certificate reaches the bot through the `CertificateSource` seam, the one ``--cert-file`` uses
(`PinnedCertificate`): `MotoCertificates.certificate(url)` runs `check_cert_url(url)` first, like
`FetchedCertificates`, then fetches from moto. Signature verification itself stays on, and the second test
shows that a message altered in transit is refused.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bot.alerts.sns import SnsVerificationError, check_cert_url, parse_envelope, verify
from bot.aws.clients import AwsClients
from bot.config import Settings
from bot.sandbox.aws_replay import AwsReplay
from bot.sandbox.moto_server import SANDBOX_ACCOUNT, SANDBOX_CREDENTIALS, SANDBOX_REGION, MotoSandbox
from bot.sandbox.slack_emulator import SlackEmulator
from bot.services import Services
from tests.support.alerts import PROJECT, blocks_text, parents, send, sfn_event, wait_until
from tests.support.bot import BotUnderTest, running_bot

TOPIC = f"arn:aws:sns:{SANDBOX_REGION}:{SANDBOX_ACCOUNT}:etl-alerts"  # allowed by PROJECT's sns_topics (etl-*)
MOTO_CERT_URL = re.compile(r"^https://sns\.us-east-1\.amazonaws\.com/SimpleNotificationService-[0-9a-f]{32}\.pem$")


class MotoCertificates:
    """A `CertificateSource` for moto's SNS signing certificates, fetched from the moto server.

    Args:
        endpoint_url: The moto server.

    Attributes:
        fetched: Every certificate URL fetched, in order.
    """

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.fetched: list[str] = []

    def certificate(self, url: str) -> bytes:
        """The PEM moto serves for ``url`` (an SNS certificate URL, checked first)."""
        check_cert_url(url)
        parts = urlsplit(url)
        region = (parts.hostname or "").split(".")[1]
        signed = AWSRequest(method="GET", url=self.endpoint_url + parts.path)
        SigV4Auth(Credentials(*SANDBOX_CREDENTIALS), "sns", region).add_auth(signed)
        request = urllib.request.Request(signed.url, headers=dict(signed.headers.items()))
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                pem: bytes = response.read()
        except OSError as exc:
            raise SnsVerificationError(f"could not fetch certificate {url} from moto: {exc}") from exc
        self.fetched.append(url)
        return pem


class CapturingEndpoint:
    """An HTTP endpoint on loopback that keeps every body POSTed to it and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                owner.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/capture"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def certificates(moto: MotoSandbox) -> MotoCertificates:
    return MotoCertificates(moto.endpoint_url)


@pytest.fixture
def bot(
    make_settings: Callable[..., Settings],
    slack_emulator: SlackEmulator,
    replay: AwsReplay,
    replay_aws: AwsClients,
    load: Callable[[str], dict[str, Any]],
    certificates: MotoCertificates,
) -> Iterator[BotUnderTest]:
    """The bot serving HTTP on loopback, SNS certificates from moto, AWS through the replay (for enrichment)."""
    load("ecs_oom")
    settings = make_settings(
        PROJECT,
        SLACK_API_URL=slack_emulator.api_url,
        AWS_ENDPOINT_URL=replay.endpoint_url,
        ETL_DOCTOR_HTTP_HOST="127.0.0.1",
        PORT=0,
    )
    services = Services(settings, aws=replay_aws, sns_certificates=certificates)
    with running_bot(settings, services, slack_emulator) as running:
        yield running


@pytest.fixture
def capture() -> Iterator[CapturingEndpoint]:
    endpoint = CapturingEndpoint()
    yield endpoint
    endpoint.stop()


def subscribe(aws: AwsClients, endpoint: str) -> str:
    sns = aws.client("sns")
    arn: str = sns.subscribe(TopicArn=TOPIC, Protocol="http", Endpoint=endpoint, ReturnSubscriptionArn=True)[
        "SubscriptionArn"
    ]
    return arn


def test_a_failure_published_to_a_moto_topic_reaches_slack_verified_and_enriched(
    aws: AwsClients, bot: BotUnderTest, certificates: MotoCertificates, slack_emulator: SlackEmulator
) -> None:
    sns = aws.client("sns")
    assert sns.create_topic(Name="etl-alerts")["TopicArn"] == TOPIC
    subscribe(aws, f"{bot.base_url}/sns")
    alerts = bot.server.alerts
    assert alerts is not None

    sns.publish(TopicArn=TOPIC, Message=json.dumps(sfn_event("FAILED", "run-2025-02-18")))  # no Subject

    # moto delivered inside Publish: verified against moto's certificate and stored already
    assert (alerts.ingest.accepted, alerts.ingest.duplicates, sum(alerts.ingest.rejections.values())) == (1, 0, 0)
    (url,) = certificates.fetched
    assert MOTO_CERT_URL.match(url), url
    (parent,) = wait_until(lambda: parents(slack_emulator))
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"
    assert parent["blocks"][0]["type"] == "header"
    enriched = wait_until(
        lambda: [m for m in parents(slack_emulator) if "java.lang.OutOfMemoryError" in blocks_text(m)], timeout=20
    )
    assert "LoadFactPolicies" in blocks_text(enriched[0])


def test_moto_signatures_are_really_verified_and_an_altered_body_is_refused(
    aws: AwsClients,
    bot: BotUnderTest,
    certificates: MotoCertificates,
    capture: CapturingEndpoint,
    slack_emulator: SlackEmulator,
) -> None:
    sns = aws.client("sns")
    sns.create_topic(Name="etl-alerts")
    subscribe(aws, f"{bot.base_url}/sns")
    subscribe(aws, capture.url)  # a second subscription: what moto sent, as it was sent

    sns.publish(TopicArn=TOPIC, Message=json.dumps(sfn_event("FAILED", "run-2025-02-18")))

    (body,) = capture.bodies  # one Notification: no SubscriptionConfirmation came first
    captured = json.loads(body)
    assert captured["Type"] == "Notification"
    assert captured["SignatureVersion"] == "2"
    assert "Subject" not in captured
    verify(parse_envelope(body), certificates)  # as moto sent it: authentic

    altered = dict(captured, Message=captured["Message"].replace("run-2025-02-18", "run-forged"))
    with pytest.raises(SnsVerificationError) as caught:
        verify(parse_envelope(altered), certificates)
    assert caught.value.reason == "signature does not match (SignatureVersion 2, SHA256withRSA)"

    # and the bot refuses the altered copy when it arrives at /sns
    status, answer = send(bot, altered)
    assert status == 403
    assert "signature does not match" in answer["error"]
    alerts = bot.server.alerts
    assert alerts is not None
    assert alerts.ingest.rejections == {"bad_signature": 1}
    assert alerts.ingest.accepted == 1  # only moto's own delivery
    (parent,) = wait_until(lambda: parents(slack_emulator))
    assert "run-forged" not in json.dumps(slack_emulator.messages("#etl-alerts"))
    assert parent["text"] == "policies-etl: execution run-2025-02-18 FAILED"

"""SNS message parsing and signature verification (bot/alerts/sns.py)."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.alerts import sns
from bot.alerts.sns import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    UNSUBSCRIBE_CONFIRMATION,
    FetchedCertificates,
    PinnedCertificate,
    SnsFormatError,
    SnsVerificationError,
    check_cert_url,
    looks_like_sns,
    parse_envelope,
    string_to_sign,
    topic_allowed,
    verify,
    verify_file,
)
from tests.support.sns_signing import DEFAULT_CERT_URL, TestSigner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sns"
RUBY_CERT = FIXTURES / "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
JAVA_CERT = FIXTURES / "SimpleNotificationService-bb750dd426d95ee9390147a5624348ee.pem"
# (message file, the certificate its SigningCertURL named, SignatureVersion)
REAL_MESSAGES = [
    ("aws_sdk_ruby_notification_v1.json", RUBY_CERT, "1"),
    ("aws_sdk_ruby_notification_v2.json", RUBY_CERT, "2"),
    ("aws_sdk_java_v2_notification_subject_v1.json", JAVA_CERT, "1"),
]
ALGORITHM = {"1": "SHA1withRSA", "2": "SHA256withRSA"}


@pytest.fixture(scope="module")
def signer() -> TestSigner:
    return TestSigner.create()


def _reason(document: dict[str, Any], certificates: sns.CertificateSource) -> str | None:
    try:
        verify(parse_envelope(document), certificates)
    except SnsVerificationError as exc:
        return exc.reason
    return None


def _real(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


# ---------------------------------------------------------------- the documented string to sign


def test_string_to_sign_for_a_notification_follows_the_documented_order() -> None:
    envelope = parse_envelope(
        {
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
            "Subject": "My First Message",
            "Message": "Hello world!",
            "Timestamp": "2012-05-02T00:54:06.655Z",
            "SignatureVersion": "1",
            "Signature": "AAAA",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-x.pem",
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
        }
    )
    assert string_to_sign(envelope) == (
        b"Message\nHello world!\n"
        b"MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
        b"Subject\nMy First Message\n"
        b"Timestamp\n2012-05-02T00:54:06.655Z\n"
        b"TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
        b"Type\nNotification\n"
    )
    without_subject = dataclasses.replace(envelope, subject=None)
    assert b"Subject" not in string_to_sign(without_subject)


def test_string_to_sign_for_a_confirmation_follows_the_documented_order(signer: TestSigner) -> None:
    document = signer.confirmation(token="tok", message_id="m-1", topic_arn="arn:aws:sns:eu-west-1:1:t")
    envelope = parse_envelope(document)
    assert (
        string_to_sign(envelope)
        == (
            f"Message\n{document['Message']}\n"
            "MessageId\nm-1\n"
            f"SubscribeURL\n{document['SubscribeURL']}\n"
            f"Timestamp\n{document['Timestamp']}\n"
            "Token\ntok\n"
            "TopicArn\narn:aws:sns:eu-west-1:1:t\n"
            f"Type\n{SUBSCRIPTION_CONFIRMATION}\n"
        ).encode()
    )


def test_string_to_sign_writes_a_replaced_timestamp_with_milliseconds(signer: TestSigner) -> None:
    envelope = parse_envelope(signer.notification("x"))
    moved = dataclasses.replace(envelope, timestamp=datetime(2026, 11, 26, 3, 12, 0, 123456, tzinfo=UTC))
    assert b"Timestamp\n2026-11-26T03:12:00.123Z\n" in string_to_sign(moved)


# ---------------------------------------------------------------- our own signer: every type, both versions


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("message_type", [NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION])
def test_valid_messages_of_every_type_and_version_verify(signer: TestSigner, message_type: str, version: str) -> None:
    if message_type == NOTIFICATION:
        document = signer.notification("Execution failed", subject="etl alert", version=version)
    else:
        document = signer.confirmation(message_type, version=version)
    assert _reason(document, PinnedCertificate(signer.pem)) is None


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_notification_signed_without_subject_is_valid_and_adding_one_breaks_it(
    signer: TestSigner, version: str
) -> None:
    document = signer.notification('{"status": "FAILED"}', version=version)
    assert "Subject" not in document
    certificates = PinnedCertificate(signer.pem)
    assert _reason(document, certificates) is None
    assert _reason({**document, "Subject": None}, certificates) is None  # the Lambda spelling of "no subject"
    assert _reason({**document, "Subject": "added later"}, certificates) == (
        f"signature does not match (SignatureVersion {version}, {ALGORITHM[version]})"
    )


def test_removing_a_signed_subject_breaks_the_signature(signer: TestSigner) -> None:
    document = signer.notification("m", subject="s")
    del document["Subject"]
    assert (
        _reason(document, PinnedCertificate(signer.pem))
        == "signature does not match (SignatureVersion 2, SHA256withRSA)"
    )


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", "Execution succeeded"),
        ("Subject", "another subject"),
        ("Timestamp", "2026-11-26T03:12:01.123Z"),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
        ("TopicArn", "arn:aws:sns:us-east-1:123456789012:other-topic"),
    ],
)
def test_tampered_signed_fields_are_rejected(signer: TestSigner, version: str, field: str, value: str) -> None:
    document = signer.notification(
        "Execution failed", subject="etl alert", timestamp=datetime(2026, 11, 26, 3, 12, 0, 123000), version=version
    )
    assert _reason({**document, field: value}, PinnedCertificate(signer.pem)) == (
        f"signature does not match (SignatureVersion {version}, {ALGORITHM[version]})"
    )


@pytest.mark.parametrize("field", ["Token", "SubscribeURL", "Message", "Type"])
def test_tampered_confirmations_are_rejected(signer: TestSigner, field: str) -> None:
    document = signer.confirmation()
    value = UNSUBSCRIBE_CONFIRMATION if field == "Type" else document[field] + "x"
    assert _reason({**document, field: value}, PinnedCertificate(signer.pem)) == (
        "signature does not match (SignatureVersion 2, SHA256withRSA)"
    )


def test_unsigned_fields_may_change(signer: TestSigner) -> None:
    document = signer.notification("m")
    changed = {**document, "UnsubscribeURL": "https://example.com/", "MessageAttributes": {"a": {"Type": "String"}}}
    assert _reason(changed, PinnedCertificate(signer.pem)) is None


def test_another_key_does_not_verify(signer: TestSigner) -> None:
    other = TestSigner.create()
    document = signer.notification("m")
    assert (
        _reason(document, PinnedCertificate(other.pem))
        == "signature does not match (SignatureVersion 2, SHA256withRSA)"
    )


def test_switching_signature_version_breaks_the_signature(signer: TestSigner) -> None:
    document = signer.notification("m", version="1")
    assert _reason({**document, "SignatureVersion": "2"}, PinnedCertificate(signer.pem)) == (
        "signature does not match (SignatureVersion 2, SHA256withRSA)"
    )


@pytest.mark.parametrize("version", ["3", "", "v2", "01"])
def test_unsupported_signature_version(signer: TestSigner, version: str) -> None:
    document = {**signer.notification("m"), "SignatureVersion": version}
    assert _reason(document, PinnedCertificate(signer.pem)) == f"unsupported SignatureVersion {version!r}"


def test_unsupported_signature_version_is_reported_before_the_url(signer: TestSigner) -> None:
    document = {**signer.notification("m"), "SignatureVersion": "3", "SigningCertURL": "http://evil.example.com/x"}
    assert _reason(document, PinnedCertificate(signer.pem)) == "unsupported SignatureVersion '3'"


@pytest.mark.parametrize("signature", ["not base64!", "QUJDRA=", "QUJ", "QU JD"])
def test_bad_base64_signature(signer: TestSigner, signature: str) -> None:
    document = {**signer.notification("m"), "Signature": signature}
    reason = _reason(document, PinnedCertificate(signer.pem))
    assert reason is not None
    assert reason.startswith("Signature is not valid Base64")


def test_a_well_formed_but_wrong_signature(signer: TestSigner) -> None:
    document = {**signer.notification("m"), "Signature": base64.b64encode(b"\0" * 256).decode()}
    assert (
        _reason(document, PinnedCertificate(signer.pem))
        == "signature does not match (SignatureVersion 2, SHA256withRSA)"
    )


def test_the_url_is_checked_even_with_a_pinned_certificate(signer: TestSigner) -> None:
    document = signer.notification("m", cert_url="https://evil.example.com/SimpleNotificationService-x.pem")
    assert _reason(document, PinnedCertificate(signer.pem)) == (
        "SigningCertURL host evil.example.com is not sns.<region>.amazonaws.com"
    )


def test_a_source_serving_garbage(signer: TestSigner) -> None:
    class Garbage:
        def certificate(self, url: str) -> bytes:
            return b"<html>not a certificate</html>"

    assert _reason(signer.notification("m"), Garbage()) == (
        f"certificate at {DEFAULT_CERT_URL} is not a PEM X.509 certificate"
    )


def test_a_non_rsa_certificate_is_refused(signer: TestSigner) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now)
        .sign(key, hashes.SHA256())
    )
    pinned = PinnedCertificate(cert.public_bytes(serialization.Encoding.PEM))
    reason = _reason(signer.notification("m"), pinned)
    assert reason is not None
    assert reason.startswith(f"certificate at {DEFAULT_CERT_URL} has a ")
    assert reason.endswith("key, not the RSA key SHA256withRSA needs")


def test_verify_caches_the_public_key_per_pem(signer: TestSigner) -> None:
    sns._public_key.cache_clear()
    certificates = PinnedCertificate(signer.pem)  # parses once (cache miss)
    for _ in range(5):
        verify(parse_envelope(signer.notification("m")), certificates)
    info = sns._public_key.cache_info()
    assert info.misses == 1
    assert info.hits == 5


# ---------------------------------------------------------------- SigningCertURL


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
        "https://sns.eu-central-2.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.ap-southeast-5.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
        "https://sns.cn-northwest-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-x.pem",
        "https://SNS.US-EAST-1.AMAZONAWS.COM/SimpleNotificationService-x.pem",
    ],
)
def test_sns_certificate_urls_are_accepted(url: str) -> None:
    check_cert_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://sns.us-east-1.amazonaws.com/x.pem", "SigningCertURL must use https, got http"),
        ("ftp://sns.us-east-1.amazonaws.com/x.pem", "SigningCertURL must use https, got ftp"),
        ("//sns.us-east-1.amazonaws.com/x.pem", "SigningCertURL must use https, got no scheme"),
        ("https://evil.example.com/x.pem", "SigningCertURL host evil.example.com is not sns.<region>.amazonaws.com"),
        (
            "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
            "SigningCertURL host sns.us-east-1.amazonaws.com.evil.com is not sns.<region>.amazonaws.com",
        ),
        (
            "https://evilsns.us-east-1.amazonaws.com/x.pem",
            "SigningCertURL host evilsns.us-east-1.amazonaws.com is not sns.<region>.amazonaws.com",
        ),
        (
            "https://sns.amazonaws.com/x.pem",
            "SigningCertURL host sns.amazonaws.com is not sns.<region>.amazonaws.com",
        ),
        (
            "https://sns.us-east-1.amazonaws.com./x.pem",
            "SigningCertURL host sns.us-east-1.amazonaws.com. is not sns.<region>.amazonaws.com",
        ),
        (
            "https://s3.us-east-1.amazonaws.com/x.pem",
            "SigningCertURL host s3.us-east-1.amazonaws.com is not sns.<region>.amazonaws.com",
        ),
        (
            "https://sns.us-east-1.amazonaws.co/x.pem",
            "SigningCertURL host sns.us-east-1.amazonaws.co is not sns.<region>.amazonaws.com",
        ),
        (
            "https://sns.evil.amazonaws.com/x.pem",
            "SigningCertURL host sns.evil.amazonaws.com is not sns.<region>.amazonaws.com",
        ),
        ("https:///x.pem", "SigningCertURL host (none) is not sns.<region>.amazonaws.com"),
        (
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "SigningCertURL port 8443 is not allowed (only 443)",
        ),
        (
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "SigningCertURL must not contain user information (user@host)",
        ),
        (
            "https://sns.us-east-1.amazonaws.com@evil.example.com/x.pem",
            "SigningCertURL must not contain user information (user@host)",
        ),
        (
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.key",
            "SigningCertURL path /SimpleNotificationService-x.key does not end with .pem",
        ),
        ("https://sns.us-east-1.amazonaws.com", "SigningCertURL path / does not end with .pem"),
        ("https://sns.us-east-1.amazonaws.com/?x=.pem", "SigningCertURL path / does not end with .pem"),
    ],
)
def test_other_certificate_urls_are_rejected(url: str, reason: str) -> None:
    with pytest.raises(SnsVerificationError) as caught:
        check_cert_url(url)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com:99999/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem\n",
        "https://sns.us-east-1.amazonaws.com /x.pem",
        "https://[::1/x.pem",
    ],
)
def test_malformed_certificate_urls_are_rejected(url: str) -> None:
    with pytest.raises(SnsVerificationError):
        check_cert_url(url)


# ---------------------------------------------------------------- certificate sources


def test_fetched_certificates_fetch_once_under_20_threads(signer: TestSigner) -> None:
    calls: list[tuple[str, float]] = []

    def slow_opener(url: str, timeout: float) -> bytes:
        calls.append((url, timeout))
        time.sleep(0.2)
        return signer.pem

    certificates = FetchedCertificates(opener=slow_opener)
    barrier = threading.Barrier(20)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            verify(parse_envelope(signer.notification("m")), certificates)
            results.append(certificates.certificate(DEFAULT_CERT_URL))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert results == [signer.pem] * 20
    assert certificates.fetches == 1
    assert calls == [(DEFAULT_CERT_URL, 5.0)]


def test_fetched_certificates_cache_per_url(signer: TestSigner) -> None:
    calls: list[str] = []

    def opener(url: str, timeout: float) -> bytes:
        calls.append(url)
        return signer.pem

    certificates = FetchedCertificates(timeout=1.5, opener=opener)
    other = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-other.pem"
    for url in (DEFAULT_CERT_URL, other, DEFAULT_CERT_URL, other):
        assert certificates.certificate(url) == signer.pem
    assert calls == [DEFAULT_CERT_URL, other]
    assert certificates.fetches == 2


def test_fetched_certificates_never_fetch_an_unchecked_url(signer: TestSigner) -> None:
    def opener(url: str, timeout: float) -> bytes:
        raise AssertionError("must not fetch")

    with pytest.raises(SnsVerificationError, match="must use https"):
        FetchedCertificates(opener=opener).certificate("http://sns.us-east-1.amazonaws.com/x.pem")


def test_fetch_failures_are_reported_and_not_cached(signer: TestSigner) -> None:
    answers: list[bytes | Exception] = [OSError("connection refused"), b"<html>busy</html>", b"x" * (64 * 1024 + 1)]
    answers.append(signer.pem)

    def opener(url: str, timeout: float) -> bytes:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    certificates = FetchedCertificates(opener=opener)
    reasons = []
    for _ in range(3):
        with pytest.raises(SnsVerificationError) as caught:
            certificates.certificate(DEFAULT_CERT_URL)
        reasons.append(caught.value.reason)
    assert reasons == [
        f"could not fetch certificate {DEFAULT_CERT_URL}: connection refused",
        f"certificate at {DEFAULT_CERT_URL} is not a PEM X.509 certificate",
        f"certificate at {DEFAULT_CERT_URL} is larger than 64 KiB",
    ]
    assert certificates.certificate(DEFAULT_CERT_URL) == signer.pem
    assert certificates.certificate(DEFAULT_CERT_URL) == signer.pem
    assert certificates.fetches == 4


def test_the_default_opener_uses_urllib_with_the_timeout_and_a_size_cap(
    signer: TestSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    class Response:
        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self, limit: int) -> bytes:
            seen["limit"] = limit
            return signer.pem

    def fake_urlopen(url: str, timeout: float) -> Response:
        seen["url"], seen["timeout"] = url, timeout
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert FetchedCertificates().certificate(DEFAULT_CERT_URL) == signer.pem
    assert seen == {"url": DEFAULT_CERT_URL, "timeout": 5.0, "limit": 64 * 1024 + 1}


def test_pinned_certificate_from_file(signer: TestSigner, tmp_path: Path) -> None:
    good = tmp_path / "cert.pem"
    good.write_bytes(signer.pem)
    assert PinnedCertificate.from_file(good).certificate("https://anything") == signer.pem
    assert PinnedCertificate.from_file(str(good)).pem == signer.pem


@pytest.mark.parametrize(
    "content",
    [
        b"garbage",
        b"",
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
        b"-----BEGIN PUBLIC KEY-----\nMAo=\n-----END PUBLIC KEY-----\n",
    ],
)
def test_pinned_certificate_from_file_with_garbage(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    with pytest.raises(SnsVerificationError) as caught:
        PinnedCertificate.from_file(bad)
    assert caught.value.reason == f"certificate file {bad} is not a PEM X.509 certificate"


def test_pinned_certificate_from_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SnsVerificationError) as caught:
        PinnedCertificate.from_file(tmp_path / "missing.pem")
    assert caught.value.reason == f"cannot read certificate file {tmp_path / 'missing.pem'}: No such file or directory"


def test_pinned_certificate_rejects_garbage_pem() -> None:
    with pytest.raises(SnsVerificationError) as caught:
        PinnedCertificate(b"nope")
    assert caught.value.reason == "the pinned certificate is not a PEM X.509 certificate"


# ---------------------------------------------------------------- a real AWS-signed notification


@pytest.mark.parametrize(("name", "cert", "version"), REAL_MESSAGES)
def test_real_aws_notifications_verify(name: str, cert: Path, version: str) -> None:
    document = _real(name)
    assert document["SignatureVersion"] == version
    assert _reason(document, PinnedCertificate.from_file(cert)) is None
    assert verify_file(FIXTURES / name, cert) is None


@pytest.mark.parametrize(("name", "cert", "version"), REAL_MESSAGES)
def test_real_aws_notifications_verify_through_a_fetch(name: str, cert: Path, version: str) -> None:
    document = _real(name)
    served = {document["SigningCertURL"]: cert.read_bytes()}
    certificates = FetchedCertificates(opener=lambda url, timeout: served[url])
    assert verify_file(FIXTURES / name, certificates=certificates) is None
    assert certificates.fetches == 1


def test_real_aws_notification_with_the_other_certificate_fails() -> None:
    assert verify_file(FIXTURES / "aws_sdk_ruby_notification_v2.json", JAVA_CERT) == (
        "signature does not match (SignatureVersion 2, SHA256withRSA)"
    )


def test_real_aws_notification_is_parsed() -> None:
    envelope = parse_envelope((FIXTURES / "aws_sdk_java_v2_notification_subject_v1.json").read_bytes())
    assert envelope.type == NOTIFICATION
    assert envelope.subject == "this is raw"
    assert envelope.message == "boo"
    assert envelope.timestamp == datetime(2015, 9, 20, 1, 22, 14, 1000, tzinfo=UTC)
    assert envelope.region == "us-east-1"
    assert envelope.message_attributes["AWS.SNS.MOBILE.WNS.Type"] == {"Type": "String", "Value": "wns/badge"}
    assert envelope.unsubscribe_url is not None
    assert envelope.unsubscribe_url.startswith("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe")
    assert envelope.subscribe_url is None
    assert envelope.token is None


@pytest.mark.parametrize(("name", "cert", "version"), REAL_MESSAGES)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", "Hello world!"),
        ("Subject", "a subject nobody signed"),
        ("Timestamp", "2022-07-28T21:23:59.317Z"),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
        ("TopicArn", "arn:aws:sns:us-east-2:295079676684:another-topic"),
    ],
)
def test_tampered_real_notifications_are_rejected(name: str, cert: Path, version: str, field: str, value: str) -> None:
    document = {**_real(name), field: value}
    assert _reason(document, PinnedCertificate.from_file(cert)) == (
        f"signature does not match (SignatureVersion {version}, {ALGORITHM[version]})"
    )


def test_removing_the_subject_of_the_real_notification_is_rejected() -> None:
    document = _real("aws_sdk_java_v2_notification_subject_v1.json")
    del document["Subject"]
    assert _reason(document, PinnedCertificate.from_file(JAVA_CERT)) == (
        "signature does not match (SignatureVersion 1, SHA1withRSA)"
    )


@pytest.mark.parametrize(("name", "cert", "version"), REAL_MESSAGES)
def test_real_notifications_with_a_moved_certificate_url_are_rejected(name: str, cert: Path, version: str) -> None:
    document = _real(name)
    pinned = PinnedCertificate.from_file(cert)
    url = document["SigningCertURL"]
    evil_host = url.replace("amazonaws.com/", "amazonaws.com.evil.example.com/")
    assert _reason({**document, "SigningCertURL": evil_host}, pinned) == (
        f"SigningCertURL host {evil_host.split('/')[2]} is not sns.<region>.amazonaws.com"
    )
    http = url.replace("https://", "http://")
    assert _reason({**document, "SigningCertURL": http}, pinned) == "SigningCertURL must use https, got http"


def test_tampered_real_notification_files_give_reasons(tmp_path: Path) -> None:
    document = _real("aws_sdk_ruby_notification_v1.json")
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**document, "Message": "Hello world."}), encoding="utf-8")
    assert verify_file(tampered, RUBY_CERT) == "signature does not match (SignatureVersion 1, SHA1withRSA)"


# ---------------------------------------------------------------- parsing


def test_parse_envelope_accepts_bytes_text_and_dicts(signer: TestSigner) -> None:
    document = signer.notification("m", subject="s", message_attributes={"k": {"Type": "String", "Value": "v"}})
    from_bytes = parse_envelope(json.dumps(document).encode())
    assert from_bytes == parse_envelope(json.dumps(document)) == parse_envelope(document)
    assert from_bytes.subject == "s"
    assert from_bytes.signing_cert_url == DEFAULT_CERT_URL
    assert from_bytes.message_attributes == {"k": {"Type": "String", "Value": "v"}}
    assert from_bytes.raw == document
    assert from_bytes.timestamp.tzinfo is not None
    assert from_bytes.timestamp.utcoffset() == UTC.utcoffset(None)
    assert from_bytes.region == "us-east-1"


def test_parse_envelope_of_a_confirmation(signer: TestSigner) -> None:
    document = signer.confirmation(UNSUBSCRIBE_CONFIRMATION, token="abc", topic_arn="arn:aws-cn:sns:cn-north-1:1:t")
    envelope = parse_envelope(document)
    assert envelope.type == UNSUBSCRIBE_CONFIRMATION
    assert envelope.token == "abc"
    assert envelope.subscribe_url == document["SubscribeURL"]
    assert envelope.region == "cn-north-1"
    assert envelope.message_attributes == {}


def test_parse_envelope_accepts_the_lambda_spellings(signer: TestSigner) -> None:
    document = signer.notification("m")
    lambda_style = {k: v for k, v in document.items() if k not in ("SigningCertURL", "UnsubscribeURL")}
    lambda_style |= {"SigningCertUrl": document["SigningCertURL"], "UnsubscribeUrl": document["UnsubscribeURL"]}
    envelope = parse_envelope(lambda_style)
    assert envelope.signing_cert_url == DEFAULT_CERT_URL
    assert envelope.unsubscribe_url == document["UnsubscribeURL"]
    verify(envelope, PinnedCertificate(signer.pem))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"\xff\xfe", "not JSON: the body is not UTF-8 (invalid start byte at byte 0)"),
        ("{", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("[1]", "not an SNS message: a JSON object is expected, got list"),
        ("{}", "not an SNS message: missing field Type"),
        ('{"Type": "Alarm"}', "not an SNS message: Type 'Alarm' is not one of " + ", ".join(sns.MESSAGE_TYPES)),
        ('{"Type": "Notification"}', "not an SNS message: missing field MessageId"),
    ],
)
def test_parse_envelope_errors(body: bytes | str, message: str) -> None:
    with pytest.raises(SnsFormatError) as caught:
        parse_envelope(body)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "field", ["MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL"]
)
def test_parse_envelope_names_the_missing_field(signer: TestSigner, field: str) -> None:
    document = signer.notification("m")
    del document[field]
    with pytest.raises(SnsFormatError, match=f"^not an SNS message: missing field {field}$"):
        parse_envelope(document)


@pytest.mark.parametrize("field", ["SubscribeURL", "Token"])
def test_parse_envelope_requires_confirmation_fields(signer: TestSigner, field: str) -> None:
    document = signer.confirmation()
    del document[field]
    with pytest.raises(SnsFormatError, match=f"missing field {field}$"):
        parse_envelope(document)


def test_parse_envelope_rejects_wrong_types_and_times(signer: TestSigner) -> None:
    document = signer.notification("m")
    with pytest.raises(SnsFormatError, match="field Message must be a string, got dict"):
        parse_envelope({**document, "Message": {"a": 1}})
    with pytest.raises(SnsFormatError, match="field SignatureVersion must be a string, got int"):
        parse_envelope({**document, "SignatureVersion": 2})
    with pytest.raises(SnsFormatError, match="Timestamp 'yesterday' is not an ISO 8601 time"):
        parse_envelope({**document, "Timestamp": "yesterday"})
    with pytest.raises(SnsFormatError, match="has no time zone"):
        parse_envelope({**document, "Timestamp": "2026-11-26T03:12:00.123"})
    with pytest.raises(SnsFormatError, match="MessageAttributes must be an object"):
        parse_envelope({**document, "MessageAttributes": []})


def test_looks_like_sns(signer: TestSigner) -> None:
    assert looks_like_sns(signer.notification("m"))
    assert looks_like_sns(signer.confirmation())
    assert looks_like_sns({"Type": "UnsubscribeConfirmation", "MessageId": "1", "TopicArn": "arn"})
    assert not looks_like_sns({"Type": "Notification", "MessageId": "1"})
    assert not looks_like_sns({"Type": "Alarm", "MessageId": "1", "TopicArn": "arn"})
    assert not looks_like_sns({"detail-type": "Step Functions Execution Status Change", "source": "aws.states"})
    assert not looks_like_sns([{"Type": "Notification", "MessageId": "1", "TopicArn": "arn"}])
    assert not looks_like_sns('{"Type": "Notification"}')
    assert not looks_like_sns(None)


@pytest.mark.parametrize(
    ("arn", "region"),
    [
        ("arn:aws:sns:us-east-1:123456789012:etl", "us-east-1"),
        ("arn:aws-us-gov:sns:us-gov-west-1:1:etl", "us-gov-west-1"),
        ("not an arn", None),
        ("arn:aws:sqs:us-east-1:1:queue", None),
    ],
)
def test_region_from_the_topic_arn(signer: TestSigner, arn: str, region: str | None) -> None:
    assert parse_envelope({**signer.notification("m"), "TopicArn": arn}).region == region


# ---------------------------------------------------------------- verify_file (the CLI)


def test_verify_file_reasons(signer: TestSigner, tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_bytes(signer.pem)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(signer.notification("m")), encoding="utf-8")
    assert verify_file(good, cert) is None
    assert verify_file(str(good), str(cert)) is None
    assert verify_file(good, certificates=PinnedCertificate(signer.pem)) is None

    assert (
        verify_file(tmp_path / "missing.json", cert)
        == f"cannot read {tmp_path / 'missing.json'}: No such file or directory"
    )
    not_json = tmp_path / "not.json"
    not_json.write_text("Type: Notification", encoding="utf-8")
    assert verify_file(not_json, cert) == "not JSON: Expecting value: line 1 column 1 (char 0)"
    not_sns = tmp_path / "event.json"
    not_sns.write_text('{"source": "aws.states"}', encoding="utf-8")
    assert verify_file(not_sns, cert) == "not an SNS message: missing field Type"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**signer.notification("m"), "Message": "n"}), encoding="utf-8")
    assert verify_file(tampered, cert) == "signature does not match (SignatureVersion 2, SHA256withRSA)"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("garbage", encoding="utf-8")
    assert verify_file(good, garbage) == f"certificate file {garbage} is not a PEM X.509 certificate"


def test_verify_file_fetches_by_default(signer: TestSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(signer.notification("m")), encoding="utf-8")

    def unreachable(url: str, timeout: float) -> bytes:
        raise OSError("network is unreachable")

    monkeypatch.setattr(sns, "_default_opener", unreachable)
    assert verify_file(good) == f"could not fetch certificate {DEFAULT_CERT_URL}: network is unreachable"


# ---------------------------------------------------------------- topic allow-list


@pytest.mark.parametrize(
    ("arn", "patterns", "allowed"),
    [
        ("arn:aws:sns:us-east-1:123456789012:etl-alerts", ["arn:aws:sns:us-east-1:123456789012:etl-alerts"], True),
        ("arn:aws:sns:us-east-1:123456789012:etl-alerts", ["arn:aws:sns:*:123456789012:etl-*"], True),
        ("arn:aws:sns:eu-west-1:123456789012:etl-nightly", ["arn:aws:sns:*:123456789012:etl-*"], True),
        ("arn:aws:sns:us-east-1:999999999999:etl-alerts", ["arn:aws:sns:*:123456789012:etl-*"], False),
        ("arn:aws:sns:us-east-1:123456789012:billing", ["arn:aws:sns:*:123456789012:etl-*"], False),
        ("arn:aws:sns:us-east-1:123456789012:ETL-alerts", ["arn:aws:sns:*:123456789012:etl-*"], False),
        ("arn:aws:sns:us-east-1:123456789012:etl-alerts", ["arn:aws:sns:us-east-1:123456789012:etl"], False),
        ("arn:aws:sns:us-east-1:123456789012:etl-alerts", ["other", "arn:aws:sns:us-east-1:123456789012:*"], True),
        ("arn:aws:sns:us-east-1:123456789012:etl-alerts", ["*"], True),
        ("arn:aws:sns:us-east-1:123456789012:etl-alerts", [], False),
    ],
)
def test_topic_allowed(arn: str, patterns: list[str], allowed: bool) -> None:
    assert topic_allowed(arn, patterns) is allowed
    assert topic_allowed(arn, tuple(patterns)) is allowed

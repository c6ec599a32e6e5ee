"""Sign Amazon SNS HTTP(S) messages like SNS does, with a throwaway CA and leaf certificate (sandbox, tests).

The string to sign is written here independently of ``bot.alerts.sns`` (from AWS's "Verifying the signatures
of Amazon SNS messages"), so a wrong field order in the verifier makes its tests fail.

    signer = SnsSigner.create()
    document = signer.notification("hello", subject="Step Functions failed")
    verify(parse_envelope(document), PinnedCertificate(signer.pem))
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

DEFAULT_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
DEFAULT_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:etl-alerts"

# AWS: Notification → Message, MessageId, Subject (if present), Timestamp, TopicArn, Type;
# SubscriptionConfirmation / UnsubscribeConfirmation → Message, MessageId, SubscribeURL, Timestamp, Token,
# TopicArn, Type. Each "key\nvalue\n".
_SIGNED_KEYS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
    "UnsubscribeConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
}


def sns_timestamp(moment: datetime | None = None) -> str:
    """SNS's Timestamp format, with milliseconds: ``2026-11-26T03:12:00.123Z`` (naive means UTC)."""
    moment = moment or datetime.now(UTC)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def canonical_string(document: dict[str, Any]) -> bytes:
    """The documented string to sign for ``document`` (independent of the module under test)."""
    text = ""
    for key in _SIGNED_KEYS[document["Type"]]:
        if key == "Subject" and document.get("Subject") is None:
            continue
        text += f"{key}\n{document[key]}\n"
    return text.encode("utf-8")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class SnsSigner:
    """A test CA and a leaf certificate for ``sns.amazonaws.com``, and the leaf's private key.

    Attributes:
        pem: The leaf certificate (PEM), what SigningCertURL would serve.
        ca_pem: The CA certificate that issued it (PEM).
        private_key: The leaf's RSA key.
        cert_url: The SigningCertURL written by :meth:`sign` unless told otherwise.
    """

    __test__ = False  # not a pytest test class

    pem: bytes
    ca_pem: bytes
    private_key: rsa.RSAPrivateKey
    cert_url: str = DEFAULT_CERT_URL

    @classmethod
    def create(cls, *, cert_url: str = DEFAULT_CERT_URL, common_name: str = "sns.amazonaws.com") -> SnsSigner:
        """A fresh CA and leaf (two 2048-bit RSA keys; about 0.1 s)."""
        now = datetime.now(UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("etl-doctor test SNS CA"))
            .issuer_name(_name("etl-doctor test SNS CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            pem=leaf_cert.public_bytes(serialization.Encoding.PEM),
            ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
            private_key=leaf_key,
            cert_url=cert_url,
        )

    @classmethod
    def shared(cls) -> SnsSigner:
        """One signer per test process (key generation is the slow part); do not mutate it."""
        return _shared_signer()

    def sign(self, document: dict[str, Any], version: str = "2", cert_url: str | None = None) -> dict[str, Any]:
        """A copy of ``document`` with SignatureVersion, Signature and SigningCertURL filled in.

        Args:
            document: An SNS message with at least the signed fields of its Type.
            version: ``"1"`` (SHA1withRSA) or ``"2"`` (SHA256withRSA).
            cert_url: SigningCertURL to write (default :attr:`cert_url`); it is not signed.
        """
        hash_algorithm: hashes.HashAlgorithm
        if version == "1":
            hash_algorithm = hashes.SHA1()  # noqa: S303 - SNS SignatureVersion 1 is SHA1withRSA
        elif version == "2":
            hash_algorithm = hashes.SHA256()
        else:
            raise ValueError(f"SNS has no SignatureVersion {version!r}")
        signed = dict(document)
        signature = self.private_key.sign(canonical_string(signed), padding.PKCS1v15(), hash_algorithm)
        signed["SignatureVersion"] = version
        signed["Signature"] = base64.b64encode(signature).decode("ascii")
        signed["SigningCertURL"] = cert_url or self.cert_url
        return signed

    def notification(
        self,
        message: str,
        *,
        subject: str | None = None,
        topic_arn: str = DEFAULT_TOPIC_ARN,
        message_id: str | None = None,
        timestamp: datetime | None = None,
        version: str = "2",
        cert_url: str | None = None,
        message_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A signed Notification, laid out like the ones SNS POSTs (Subject only when given)."""
        region = topic_arn.split(":")[3]
        document: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic_arn,
        }
        if subject is not None:
            document["Subject"] = subject
        document["Message"] = message
        document["Timestamp"] = sns_timestamp(timestamp)
        signed = self.sign(document, version, cert_url)
        signed["UnsubscribeURL"] = (
            f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:{uuid.uuid4()}"
        )
        if message_attributes is not None:
            signed["MessageAttributes"] = message_attributes
        return signed

    def confirmation(
        self,
        message_type: str = "SubscriptionConfirmation",
        *,
        topic_arn: str = DEFAULT_TOPIC_ARN,
        token: str | None = None,
        message_id: str | None = None,
        timestamp: datetime | None = None,
        version: str = "2",
        cert_url: str | None = None,
    ) -> dict[str, Any]:
        """A signed SubscriptionConfirmation or UnsubscribeConfirmation."""
        region = topic_arn.split(":")[3]
        token = token or uuid.uuid4().hex * 4
        verb = "subscribe to" if message_type == "SubscriptionConfirmation" else "unsubscribe from"
        document = {
            "Type": message_type,
            "MessageId": message_id or str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": (
                f"You have chosen to {verb} the topic {topic_arn}.\n"
                "To confirm the subscription, visit the SubscribeURL included in this message."
            ),
            "SubscribeURL": (
                f"https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}"
            ),
            "Timestamp": sns_timestamp(timestamp),
        }
        return self.sign(document, version, cert_url)


@cache
def _shared_signer() -> SnsSigner:
    return SnsSigner.create()

"""Amazon SNS HTTP(S) messages: parse the JSON envelope and verify its signature as AWS documents."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import functools
import json
import re
import threading
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
MESSAGE_TYPES = (NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION)

# The string to sign, per "Verifying the signatures of Amazon SNS messages": these keys, in this order, each
# key and then its value on a line of its own. Subject is part of a Notification's only when present.
NOTIFICATION_SIGNED_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_SIGNED_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")

# SignatureVersion → (hash name for cryptography, the algorithm's name in AWS's documentation).
SIGNATURE_VERSIONS = {"1": ("SHA1", "SHA1withRSA"), "2": ("SHA256", "SHA256withRSA")}

CERT_FETCH_TIMEOUT = 5.0  # seconds
CERT_MAX_BYTES = 64 * 1024
CERT_CACHE_MAX = 64  # certificate URLs remembered by FetchedCertificates

# sns.<region>.amazonaws.com or sns.<region>.amazonaws.com.cn; a region is like us-east-1, us-gov-west-1, cn-north-1.
_CERT_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]+\.amazonaws\.com(?:\.cn)?")
_REQUIRED_FIELDS = ("Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature")


class SnsFormatError(ValueError):
    """Not an SNS message (not JSON, or a required field missing): the message says which."""


class SnsVerificationError(Exception):
    """Signature or certificate check failed.

    Attributes:
        reason: What failed, in words a person can act on, e.g.
            ``"signature does not match (SignatureVersion 2, SHA256withRSA)"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SnsEnvelope:
    """One SNS HTTP(S) message: a Notification, SubscriptionConfirmation or UnsubscribeConfirmation.

    Attributes:
        type: One of :data:`MESSAGE_TYPES`.
        message_id: The message's UUID.
        topic_arn: The topic the message was published to.
        message: The published message (or, for confirmations, SNS's explanation).
        timestamp: When SNS sent the message (UTC-aware).
        subject: The Subject given at publish time, or None when the message has none.
        signature_version: ``"1"`` (SHA1withRSA) or ``"2"`` (SHA256withRSA), as sent (not yet checked).
        signature: The Base64 signature, as sent.
        signing_cert_url: Where the signing certificate is, as sent (not yet checked).
        subscribe_url: A confirmation's SubscribeURL, else None.
        unsubscribe_url: A notification's UnsubscribeURL, else None.
        token: A confirmation's Token, else None.
        message_attributes: The MessageAttributes object ({} when absent).
        raw: The whole JSON document as received.
    """

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: datetime
    subject: str | None
    signature_version: str
    signature: str
    signing_cert_url: str
    subscribe_url: str | None
    unsubscribe_url: str | None
    token: str | None
    message_attributes: dict[str, Any] = field(default_factory=dict, hash=False)
    raw: dict[str, Any] = field(default_factory=dict, hash=False, repr=False)

    @property
    def region(self) -> str | None:
        """The topic's region, from its ARN (``arn:aws:sns:<region>:<account>:<name>``), or None."""
        parts = self.topic_arn.split(":")
        if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "sns" and parts[3]:
            return parts[3]
        return None


def looks_like_sns(document: object) -> bool:
    """Whether ``document`` has the shape of an SNS HTTP(S) message (signature not checked).

    Args:
        document: A decoded JSON document.

    Returns:
        True for a dict whose Type is one of :data:`MESSAGE_TYPES` and that has MessageId and TopicArn.
    """
    return (
        isinstance(document, dict)
        and document.get("Type") in MESSAGE_TYPES
        and isinstance(document.get("MessageId"), str)
        and isinstance(document.get("TopicArn"), str)
    )


def parse_envelope(body: bytes | str | dict[str, Any]) -> SnsEnvelope:
    """Parse an SNS HTTP(S) message body.

    The Lambda event spellings ``SigningCertUrl`` and ``UnsubscribeUrl`` are accepted too, and a null
    Subject counts as no Subject.

    Args:
        body: The POST body (UTF-8 JSON) or the already decoded JSON object.

    Returns:
        The envelope; its signature is not checked (see :func:`verify`).

    Raises:
        SnsFormatError: The body is not JSON, not an object, has an unknown Type, or lacks a field (the
            message names it).
    """
    if isinstance(body, dict):
        document: object = body
    else:
        try:
            text = body.decode("utf-8") if isinstance(body, bytes) else body
            document = json.loads(text)
        except UnicodeDecodeError as exc:
            raise SnsFormatError(f"not JSON: the body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        except json.JSONDecodeError as exc:
            raise SnsFormatError(f"not JSON: {exc}") from exc
        except RecursionError as exc:
            raise SnsFormatError("not an SNS message: JSON nested too deeply") from exc
    if not isinstance(document, dict):
        raise SnsFormatError(f"not an SNS message: a JSON object is expected, got {type(document).__name__}")
    raw: dict[str, Any] = dict(document)

    message_type = raw.get("Type")
    if message_type is None:
        raise SnsFormatError("not an SNS message: missing field Type")
    if message_type not in MESSAGE_TYPES:
        raise SnsFormatError(f"not an SNS message: Type {message_type!r} is not one of {', '.join(MESSAGE_TYPES)}")
    required = list(_REQUIRED_FIELDS)
    if message_type != NOTIFICATION:
        required += ["SubscribeURL", "Token"]
    values = {name: _string_field(raw, name) for name in required}
    signing_cert_url = _string_field(raw, "SigningCertURL", alias="SigningCertUrl")
    unsubscribe_url = _optional_string_field(raw, "UnsubscribeURL", alias="UnsubscribeUrl")
    attributes = raw.get("MessageAttributes")
    if attributes is None:
        attributes = {}
    elif not isinstance(attributes, dict):
        raise SnsFormatError(
            f"not an SNS message: field MessageAttributes must be an object, got {type(attributes).__name__}"
        )
    return SnsEnvelope(
        type=message_type,
        message_id=values["MessageId"],
        topic_arn=values["TopicArn"],
        message=values["Message"],
        timestamp=_parse_timestamp(values["Timestamp"]),
        subject=_optional_string_field(raw, "Subject"),
        signature_version=values["SignatureVersion"],
        signature=values["Signature"],
        signing_cert_url=signing_cert_url,
        subscribe_url=values.get("SubscribeURL") or _optional_string_field(raw, "SubscribeURL"),
        unsubscribe_url=unsubscribe_url,
        token=values.get("Token") or _optional_string_field(raw, "Token"),
        message_attributes=attributes,
        raw=raw,
    )


def _string_field(raw: dict[str, Any], name: str, *, alias: str | None = None) -> str:
    value = raw.get(name)
    if value is None and alias is not None:
        value = raw.get(alias)
    if value is None:
        raise SnsFormatError(f"not an SNS message: missing field {name}")
    if not isinstance(value, str):
        raise SnsFormatError(f"not an SNS message: field {name} must be a string, got {type(value).__name__}")
    return value


def _optional_string_field(raw: dict[str, Any], name: str, *, alias: str | None = None) -> str | None:
    if raw.get(name) is None and (alias is None or raw.get(alias) is None):
        return None
    return _string_field(raw, name, alias=alias)


def _parse_timestamp(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SnsFormatError(f"not an SNS message: Timestamp {text!r} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise SnsFormatError(f"not an SNS message: Timestamp {text!r} has no time zone")
    return parsed.astimezone(UTC)


def _format_timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def string_to_sign(envelope: SnsEnvelope) -> bytes:
    """The bytes SNS signed for ``envelope``, built as AWS documents.

    A Notification signs Message, MessageId, Subject (only if present), Timestamp, TopicArn and Type; a
    SubscriptionConfirmation or UnsubscribeConfirmation signs Message, MessageId, SubscribeURL, Timestamp,
    Token, TopicArn and Type. Each key, then its value, is written on a line of its own, every line ending
    with a newline.

    Args:
        envelope: A parsed message. Its Timestamp is signed as received (``raw``) while it still denotes
            ``envelope.timestamp``; otherwise ``envelope.timestamp`` is written with milliseconds and a Z.

    Returns:
        The UTF-8 string to sign.
    """
    raw_timestamp = envelope.raw.get("Timestamp")
    timestamp = _format_timestamp(envelope.timestamp)
    if isinstance(raw_timestamp, str):
        try:
            if _parse_timestamp(raw_timestamp) == envelope.timestamp:
                timestamp = raw_timestamp
        except SnsFormatError:
            pass
    values: dict[str, str | None] = {
        "Message": envelope.message,
        "MessageId": envelope.message_id,
        "Subject": envelope.subject,
        "SubscribeURL": envelope.subscribe_url,
        "Timestamp": timestamp,
        "Token": envelope.token,
        "TopicArn": envelope.topic_arn,
        "Type": envelope.type,
    }
    names = NOTIFICATION_SIGNED_FIELDS if envelope.type == NOTIFICATION else CONFIRMATION_SIGNED_FIELDS
    lines: list[str] = []
    for name in names:
        value = values[name]
        if value is None:
            if name == "Subject":
                continue
            value = ""  # a confirmation built by hand without SubscribeURL/Token: it will not verify
        lines += [name, value]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def check_cert_url(url: str) -> None:
    """Check that ``url`` is where Amazon SNS keeps its signing certificates.

    Accepted: ``https://sns.<region>.amazonaws.com/<name>.pem`` (or ``.amazonaws.com.cn``), with no user
    information and no port other than 443.

    Args:
        url: The message's SigningCertURL.

    Raises:
        SnsVerificationError: The URL is not acceptable; the reason says why.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise SnsVerificationError(f"SigningCertURL {url!r} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SnsVerificationError(f"SigningCertURL {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme != "https":
        raise SnsVerificationError(f"SigningCertURL must use https, got {parts.scheme or 'no scheme'}")
    if "@" in parts.netloc:
        raise SnsVerificationError("SigningCertURL must not contain user information (user@host)")
    if port is not None and port != 443:
        raise SnsVerificationError(f"SigningCertURL port {port} is not allowed (only 443)")
    host = parts.hostname or ""
    if not _CERT_HOST.fullmatch(host):
        raise SnsVerificationError(f"SigningCertURL host {host or '(none)'} is not sns.<region>.amazonaws.com")
    if not parts.path.endswith(".pem"):
        raise SnsVerificationError(f"SigningCertURL path {parts.path or '/'} does not end with .pem")


class CertificateSource(Protocol):
    """Where :func:`verify` gets the certificate a SigningCertURL names."""

    def certificate(self, url: str) -> bytes:
        """The PEM certificate at ``url`` (already checked by :func:`check_cert_url`).

        Raises:
            SnsVerificationError: The certificate is not available.
        """
        ...


def _default_opener(url: str, timeout: float) -> bytes:
    # check_cert_url has accepted the URL: https only, an SNS host.
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        data: bytes = response.read(CERT_MAX_BYTES + 1)
        return data


class FetchedCertificates:
    """Fetches each certificate URL once and remembers it: the production :class:`CertificateSource`.

    Fetches use urllib (timeout 5 s) and read at most 64 KiB. A certificate is remembered by URL only once
    it parses as a PEM X.509 certificate (its public key is then cached by :func:`verify`); failures are
    not remembered. Thread-safe: a lock per URL, so concurrent first requests for one URL fetch it once.

    Attributes:
        fetches: How many fetches were made (successful or not).
    """

    def __init__(
        self, *, timeout: float = CERT_FETCH_TIMEOUT, opener: Callable[[str, float], bytes] | None = None
    ) -> None:
        self.timeout = timeout
        self.fetches = 0
        self._opener = opener or _default_opener
        self._pems: dict[str, bytes] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def certificate(self, url: str) -> bytes:
        """The PEM certificate at ``url``, fetched on first use.

        Args:
            url: A SigningCertURL; it is checked with :func:`check_cert_url` before any fetch.

        Returns:
            The PEM bytes.

        Raises:
            SnsVerificationError: The URL is not an SNS certificate URL, the fetch failed, the answer is larger
                than 64 KiB or is not a PEM X.509 certificate.
        """
        with self._lock:
            cached = self._pems.get(url)
            if cached is not None:
                return cached
        check_cert_url(url)
        with self._lock:
            url_lock = self._locks.setdefault(url, threading.Lock())
        with url_lock:
            with self._lock:
                cached = self._pems.get(url)
                if cached is not None:
                    return cached
                self.fetches += 1
            try:
                pem = self._fetch(url)
            except SnsVerificationError:
                with self._lock:
                    self._locks.pop(url, None)
                raise
            with self._lock:
                if len(self._pems) >= CERT_CACHE_MAX:
                    forgotten = next(iter(self._pems))
                    del self._pems[forgotten]
                    self._locks.pop(forgotten, None)
                self._pems[url] = pem
            return pem

    def _fetch(self, url: str) -> bytes:
        try:
            pem = self._opener(url, self.timeout)
        except SnsVerificationError:
            raise
        except Exception as exc:  # urllib raises URLError, HTTPError, TimeoutError, http.client errors…
            raise SnsVerificationError(f"could not fetch certificate {url}: {exc}") from exc
        if len(pem) > CERT_MAX_BYTES:
            raise SnsVerificationError(f"certificate at {url} is larger than {CERT_MAX_BYTES // 1024} KiB")
        try:
            _public_key(pem)
        except ValueError as exc:
            raise SnsVerificationError(f"certificate at {url} is not a PEM X.509 certificate") from exc
        return pem


class PinnedCertificate:
    """One certificate for every (URL-checked) message: the ``--cert-file`` seam, also used by tests.

    Args:
        pem: A PEM X.509 certificate.

    Raises:
        SnsVerificationError: ``pem`` is not a PEM X.509 certificate.
    """

    def __init__(self, pem: bytes) -> None:
        try:
            _public_key(pem)
        except ValueError as exc:
            raise SnsVerificationError("the pinned certificate is not a PEM X.509 certificate") from exc
        self.pem = pem

    @classmethod
    def from_file(cls, path: str | Path) -> PinnedCertificate:
        """Read a PEM certificate file.

        Args:
            path: The file.

        Returns:
            A source that answers every URL with this certificate.

        Raises:
            SnsVerificationError: The file cannot be read or is not a PEM X.509 certificate.
        """
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise SnsVerificationError(f"cannot read certificate file {path}: {exc.strerror or exc}") from exc
        try:
            return cls(pem)
        except SnsVerificationError as exc:
            raise SnsVerificationError(f"certificate file {path} is not a PEM X.509 certificate") from exc

    def certificate(self, url: str) -> bytes:
        """The pinned certificate, whatever ``url`` is (:func:`verify` has checked it)."""
        return self.pem


@functools.lru_cache(maxsize=32)
def _public_key(pem: bytes) -> CertificatePublicKeyTypes:
    """The public key of a PEM X.509 certificate, cached by PEM bytes; ValueError if it is not one."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem).public_key()


def verify(envelope: SnsEnvelope, certificates: CertificateSource) -> None:
    """Verify an SNS message's signature, as AWS documents.

    Checks, in order: the SignatureVersion is 1 or 2; the SigningCertURL passes :func:`check_cert_url`; the
    certificate is available and is a PEM X.509 certificate with an RSA key; the Base64 signature is
    SHA1withRSA (version 1) or SHA256withRSA (version 2) over :func:`string_to_sign`. The message's age and
    the certificate's validity dates and chain are not checked.

    Args:
        envelope: The parsed message.
        certificates: Where certificates come from (:class:`FetchedCertificates` in production).

    Raises:
        SnsVerificationError: A check failed; ``reason`` says which.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    algorithm = SIGNATURE_VERSIONS.get(envelope.signature_version)
    if algorithm is None:
        raise SnsVerificationError(f"unsupported SignatureVersion {envelope.signature_version!r}")
    hash_name, algorithm_name = algorithm
    url = envelope.signing_cert_url
    check_cert_url(url)
    pem = certificates.certificate(url)
    try:
        key = _public_key(pem)
    except ValueError as exc:
        raise SnsVerificationError(f"certificate at {url} is not a PEM X.509 certificate") from exc
    if not isinstance(key, RSAPublicKey):
        raise SnsVerificationError(
            f"certificate at {url} has a {type(key).__name__.lstrip('_')} key, not the RSA key {algorithm_name} needs"
        )
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SnsVerificationError(f"Signature is not valid Base64: {exc}") from exc
    chosen_hash: hashes.HashAlgorithm = hashes.SHA1() if hash_name == "SHA1" else hashes.SHA256()  # noqa: S303
    try:
        key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), chosen_hash)
    except InvalidSignature as exc:
        raise SnsVerificationError(
            f"signature does not match (SignatureVersion {envelope.signature_version}, {algorithm_name})"
        ) from exc


def verify_file(
    path: str | Path, cert_file: str | Path | None = None, *, certificates: CertificateSource | None = None
) -> str | None:
    """Verify a saved SNS message: ``etl-doctor sns verify MESSAGE.json [--cert-file PEM]``.

    Args:
        path: The message's JSON file.
        cert_file: A PEM certificate to use instead of fetching SigningCertURL (the URL is still checked).
        certificates: Where certificates come from when ``cert_file`` is None; a new
            :class:`FetchedCertificates` when both are None.

    Returns:
        None when the message is authentic, else the reason it is not (file unreadable, not JSON, not an
        SNS message, or the verification failure).
    """
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    try:
        envelope = parse_envelope(body)
        source: CertificateSource
        if cert_file is not None:
            source = PinnedCertificate.from_file(cert_file)
        else:
            source = certificates if certificates is not None else FetchedCertificates()
        verify(envelope, source)
    except SnsFormatError as exc:
        return str(exc)
    except SnsVerificationError as exc:
        return exc.reason
    return None


def topic_allowed(topic_arn: str, patterns: Sequence[str]) -> bool:
    """Whether ``topic_arn`` matches one of ``patterns``.

    Args:
        topic_arn: The message's TopicArn.
        patterns: Topic ARNs or shell wildcards, case-sensitive, e.g. ``"arn:aws:sns:*:123456789012:etl-*"``.
            An empty sequence allows nothing.

    Returns:
        True when one pattern matches the whole ARN.
    """
    return any(fnmatch.fnmatchcase(topic_arn, pattern) for pattern in patterns)

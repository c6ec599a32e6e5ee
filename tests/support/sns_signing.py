"""The SNS signer for tests (it lives in bot/sandbox so `make demo` can sign alerts too)."""

from __future__ import annotations

from bot.sandbox.sns_signing import (
    DEFAULT_CERT_URL,
    DEFAULT_TOPIC_ARN,
    SnsSigner,
    canonical_string,
    sns_timestamp,
)

TestSigner = SnsSigner

__all__ = ["DEFAULT_CERT_URL", "DEFAULT_TOPIC_ARN", "TestSigner", "canonical_string", "sns_timestamp"]

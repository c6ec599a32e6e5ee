"""Mask secrets in text before it leaves the process (Slack messages, logs shown to users, LLM prompts)."""

from __future__ import annotations

import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack tokens: bot, user, app-level, refresh, configuration.
    (re.compile(r"\bxox[abpears]-[A-Za-z0-9-]{8,}"), "xox?-[redacted]"),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{8,}"), "xapp-[redacted]"),
    # AWS access key ids and secrets in key=value form.
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "[redacted-aws-key-id]"),
    (
        re.compile(
            r"(?i)(aws_secret_access_key|secret_access_key|aws_session_token)([\"']?\s*[=:]\s*)[\"']?[^\s\"',]+"
        ),
        r"\1\2[redacted]",
    ),
    # Passwords inside URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), r"\1:[redacted]@"),
    # password=…, passwd: …, secret=…, token=…, api_key=…
    (
        re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)([\"']?\s*[=:]\s*)[\"']?[^\s\"',;&]+"),
        r"\1\2[redacted]",
    ),
    # OpenAI-style keys.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "sk-[redacted]"),
    # PEM private keys.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
        "[redacted-private-key]",
    ),
)


def redact(text: str) -> str:
    """Return ``text`` with tokens, keys and passwords masked.

    Args:
        text: Anything about to be shown outside the process.

    Returns:
        The same text with each secret replaced by a ``[redacted]`` marker.
    """
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text

import pytest

from bot.redact import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("token xoxb-1234567890-abcdefghijkl leaked", "xoxb-1234567890-abcdefghijkl"),
        ("app xapp-1-A0123-456-abcdef0123", "xapp-1-A0123-456-abcdef0123"),
        ("key AKIAIOSFODNN7EXAMPLE in log", "AKIAIOSFODNN7EXAMPLE"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("connect postgresql://etl:hunter2@db.internal:5432/etl failed", "hunter2"),
        ("password=hunter2 host=db", "hunter2"),
        ('{"api_key": "abc123def"}', "abc123def"),
        ("OPENAI sk-proj-abcdefghijklmnop1234", "sk-proj-abcdefghijklmnop1234"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB\n-----END RSA PRIVATE KEY-----", "MIIEpAIB"),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert "redacted" in masked


def test_ordinary_text_is_untouched() -> None:
    text = "LoadFactPolicies failed: exit code 137 (OutOfMemoryError) at 2025-02-18T03:12:00Z"
    assert redact(text) == text

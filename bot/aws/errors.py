"""Turn botocore exceptions into sentences an on-call engineer can act on."""

from __future__ import annotations


def describe_aws_error(exc: BaseException) -> str | None:
    """Describe an AWS failure in one line, or return None when ``exc`` is not an AWS error.

    Args:
        exc: Any exception.

    Returns:
        e.g. "AWS denied states:ListExecutions (AccessDeniedException): …" or None.
    """
    if not type(exc).__module__.startswith("botocore"):
        return None
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", "")
        operation = exc.operation_name
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            return f"AWS denied {operation} ({code}): {message}. Check the IAM role etl-doctor runs as."
        if code in {"ThrottlingException", "TooManyRequestsException", "Throttling"}:
            return f"AWS throttled {operation} even after retries ({code}); try again in a minute."
        return f"AWS {operation} failed: {code}: {message}"
    if isinstance(exc, EndpointConnectionError):
        return f"could not reach AWS at {exc.kwargs.get('endpoint_url', 'the endpoint')} (connection failed)"
    if isinstance(exc, ReadTimeoutError):
        return f"AWS did not answer in time ({exc.kwargs.get('endpoint_url', '')})"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an IAM role)"
    if isinstance(exc, NoRegionError):
        return "no AWS region configured (set AWS_REGION)"
    return None

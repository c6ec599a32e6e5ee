"""Deep links into the AWS console (pure string building)."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote


def _console_host(region: str) -> str:
    if region.startswith("cn-"):
        return f"https://{region}.console.amazonaws.cn"
    if region.startswith("us-gov-"):
        return f"https://{region}.console.amazonaws-us-gov.com"
    return f"https://{region}.console.aws.amazon.com"


def region_of_arn(arn: str, default: str) -> str:
    """Return the region field of an ARN (``arn:partition:service:region:…``), or ``default``."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else default


def execution_url(execution_arn: str, region: str) -> str:
    """Console page of one Step Functions execution."""
    region = region_of_arn(execution_arn, region)
    return (
        f"{_console_host(region)}/states/home?region={region}#/v2/executions/details/{quote(execution_arn, safe=':')}"
    )


def state_machine_url(state_machine_arn: str, region: str) -> str:
    """Console page of a state machine."""
    region = region_of_arn(state_machine_arn, region)
    return (
        f"{_console_host(region)}/states/home?region={region}#/statemachines/view/{quote(state_machine_arn, safe=':')}"
    )


def _cloudwatch_encode(value: str) -> str:
    """CloudWatch's console fragment encoding: URL-encode twice, then ``%`` becomes ``$``."""
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def log_group_url(region: str, group: str) -> str:
    """Console page of a log group."""
    return (
        f"{_console_host(region)}/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{_cloudwatch_encode(group)}"
    )


def log_stream_url(region: str, group: str, stream: str, at: datetime | None = None) -> str:
    """Console page of a log stream, positioned 30 s before ``at`` when given."""
    url = f"{log_group_url(region, group)}/log-events/{_cloudwatch_encode(stream)}"
    if at is not None:
        url += f"$3Fstart$3D{int((at - timedelta(seconds=30)).timestamp() * 1000)}"
    return url

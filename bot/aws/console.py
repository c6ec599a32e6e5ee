"""Deep links into the AWS console (pure string building)."""

from __future__ import annotations

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

"""What `/etl why <target>` may name, and how it becomes one execution ARN."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote

from bot.aws.stepfunctions import ExecutionNotFoundError, StepFunctionsGateway
from bot.config import ProjectConfig
from bot.errors import UserFacingError

_EXECUTION_ARN = re.compile(
    r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:(?:execution|express):[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+"
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
TARGET_USAGE = "<execution ARN | console URL | state-machine/execution-name | execution-name | latest <state-machine>>"


class TargetError(UserFacingError):
    """The target cannot name an execution; the message says what would."""


@dataclass(frozen=True)
class Target:
    """A parsed target.

    Attributes:
        kind: ``arn`` (an execution ARN), ``named`` (state machine + execution name), ``execution_name``
            (search the configured pipelines), or ``latest`` (the latest failed execution of a state machine).
        execution_arn: For ``arn``.
        state_machine: Pipeline or state machine name, or a state machine ARN, for ``named``/``latest``.
        execution_name: For ``named``/``execution_name``.
    """

    kind: str
    execution_arn: str | None = None
    state_machine: str | None = None
    execution_name: str | None = None


def parse_target(args: Sequence[str]) -> Target:
    """Parse the words after `why`/`logs` into a target.

    Raises:
        TargetError: Nothing that names an execution.
    """
    words = [word for word in args if word]
    if not words:
        raise TargetError(f"name the execution: {TARGET_USAGE}")
    if words[0].lower() == "latest":
        if len(words) != 2:
            raise TargetError("`latest` takes one state machine (or pipeline) name, e.g. `latest policies-etl`")
        return Target(kind="latest", state_machine=_state_machine_word(words[1]))
    if len(words) != 1:
        raise TargetError(f"one target at a time: {TARGET_USAGE}")
    word = unquote(unquote(words[0].strip("<>")))
    match = _EXECUTION_ARN.search(word)
    if match:
        arn = match[0]
        if ":express:" in arn:
            raise TargetError(
                "Express workflow executions keep no history in Step Functions; look in the state machine's "
                "CloudWatch log group instead"
            )
        return Target(kind="arn", execution_arn=arn)
    if word.startswith(("http://", "https://")):
        raise TargetError("that link does not name a Step Functions execution (expected a console execution URL)")
    if word.startswith("arn:"):
        raise TargetError(
            f"`{word}` is not an execution ARN (arn:aws:states:<region>:<account>:execution:<machine>:<name>)"
        )
    machine, slash, name = word.partition("/")
    if slash:
        if not (_NAME.match(machine) and _NAME.match(name)):
            raise TargetError(f"`{word}` is not `<state-machine>/<execution-name>`")
        return Target(kind="named", state_machine=machine, execution_name=name)
    if not _NAME.match(word):
        raise TargetError(f"`{word}` is not an execution name, ARN or console URL")
    return Target(kind="execution_name", execution_name=word)


def _state_machine_word(word: str) -> str:
    if word.startswith("arn:") or _NAME.match(word):
        return word
    raise TargetError(f"`{word}` is not a state machine name or ARN")


def resolve_target(target: Target, project: ProjectConfig, sfn: StepFunctionsGateway) -> str:
    """Turn a target into an execution ARN.

    Raises:
        TargetError: The state machine or execution cannot be found (the message names the region).
    """
    if target.kind == "arn" and target.execution_arn:
        return target.execution_arn
    if target.kind == "execution_name" and target.execution_name:
        return _search_pipelines(target.execution_name, project, sfn)
    machine_arn = state_machine_arn(target.state_machine or "", project, sfn)
    if target.kind == "latest":
        latest = sfn.latest_failure(machine_arn)
        if latest is None:
            machine = machine_arn.rsplit(":", 1)[-1]
            raise TargetError(f"`{machine}` has no FAILED, TIMED_OUT or ABORTED execution in {sfn.region}")
        return latest.execution_arn
    return execution_arn_for(machine_arn, target.execution_name or "")


def state_machine_arn(name_or_arn: str, project: ProjectConfig, sfn: StepFunctionsGateway) -> str:
    """A pipeline name, state machine name or ARN as a state machine ARN.

    Raises:
        TargetError: No pipeline or state machine of that name in the region.
    """
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    pipeline = project.pipelines.get(name_or_arn)
    if pipeline is not None:
        return pipeline.state_machine_arn
    for config in project.pipelines.values():
        if config.state_machine_arn.rsplit(":", 1)[-1] == name_or_arn:
            return config.state_machine_arn
    found = sfn.find_state_machine(name_or_arn)
    if found is None:
        known = ", ".join(sorted(project.pipelines)) or "none configured"
        raise TargetError(f"no pipeline or state machine `{name_or_arn}` in {sfn.region} (pipelines: {known})")
    return found


def execution_arn_for(machine_arn: str, execution_name: str) -> str:
    """The ARN of a standard execution of a state machine."""
    base = machine_arn.split(":stateMachine:", 1)
    if len(base) != 2:
        raise TargetError(f"`{machine_arn}` is not a state machine ARN")
    machine = base[1].split(":", 1)[0]  # drop a version or alias qualifier
    return f"{base[0]}:execution:{machine}:{execution_name}"


def _search_pipelines(name: str, project: ProjectConfig, sfn: StepFunctionsGateway) -> str:
    if name in project.pipelines:
        return resolve_target(Target(kind="latest", state_machine=name), project, sfn)
    candidates = [execution_arn_for(config.state_machine_arn, name) for config in project.pipelines.values()]
    if not candidates:
        raise TargetError(
            f"`{name}` alone needs configured pipelines to search; use `<state-machine>/{name}` or the execution ARN"
        )

    def exists(arn: str) -> bool:
        try:
            sfn.describe_execution(arn)
        except ExecutionNotFoundError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=min(8, len(candidates))) as pool:
        found = [arn for arn, ok in zip(candidates, pool.map(exists, candidates), strict=True) if ok]
    if not found:
        pipelines = ", ".join(sorted(project.pipelines))
        raise TargetError(f"no execution `{name}` of any configured pipeline ({pipelines}) in {sfn.region}")
    if len(found) > 1:
        options = ", ".join(f"`{arn.split(':execution:', 1)[1].replace(':', '/')}`" for arn in found)
        raise TargetError(f"`{name}` is ambiguous; say which: {options}")
    return found[0]

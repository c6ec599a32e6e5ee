"""What to do next, per category, using what the chase found (memory sizes, principals, objects, Retry blocks).

Every category gives two to four steps, most useful first. A step names what the diagnosis holds (the failed
state, the task definition, function or job, the image, the secret, the endpoint, the log stream, the column);
general advice stands in only for what was not found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from bot.diagnosis.model import Diagnosis

MAX_STEPS = 4
QUOTE_MAX = 160
NAMES_MAX = 3
FARGATE_MEMORY_STEPS = (
    512,
    1024,
    2048,
    3072,
    4096,
    5120,
    6144,
    7168,
    8192,
    10240,
    12288,
    16384,
    20480,
    24576,
    30720,
    61440,
    122880,
)
_NOT_AUTHORIZED = re.compile(
    r"(?:User|Principal):\s*(?P<principal>arn:\S+?)\s+is not authorized to perform:\s*(?P<action>[\w:*-]+)"
    r"(?:\s+on resource:\s*(?P<resource>\S+?))?(?:[\s.,]|$)"
)
_ACTION_ONLY = re.compile(r"(?:not authorized to perform|AccessDenied\w*).{0,80}?\b(?P<action>[a-z0-9-]+:[A-Za-z*]+)")
_OPERATION = re.compile(r"when calling the (?P<operation>\w+) operation")
_S3_OBJECT = re.compile(r"s3a?://[\w.-]+/[^\s'\"]*")
_MISSING_OBJECT = re.compile(
    r"(?:NoSuchKey|NoSuchBucket|Path does not exist|does not exist|not found|ResourceNotFoundException)"
    r"[:\s]*(?P<what>[^\n]{0,160})",
    re.IGNORECASE,
)
_SECRET_ARN = re.compile(
    r"arn:aws[\w-]*:(?:secretsmanager:[\w-]+:\d{12}:secret:[\w/+=.@-]+|ssm:[\w-]+:\d{12}:parameter/[\w/.-]+)"
)
_KMS_KEY = re.compile(r"arn:aws[\w-]*:kms:[\w-]+:\d{12}:(?:key|alias)/[\w/-]+")
_IMAGE_REF = re.compile(
    r"(?:failed to resolve ref|pull image|manifest for|repository|image)\s+\"?"
    r"(?P<image>[\w.-]+(?::\d+)?/[\w./-]+(?::[\w.-]+|@sha256:[0-9a-f]{64})?|[\w.-]+:[\w.-]+)"
)
_ENDPOINTS = (
    re.compile(r"https?://(?P<host>[\w.-]+(?::\d+)?)"),
    re.compile(
        r"\b(?P<host>(?:\d{1,3}\.){3}\d{1,3}:\d{2,5}"
        r"|(?![\w.-]*\.(?:go|java|scala|py|js|ts|rb|c|cc|cpp|h):)[a-z0-9][\w-]*(?:\.[\w-]+)+:\d{2,5})\b"
    ),
    re.compile(r"\bhost\s+\"(?P<host>[\w.-]+)\""),
    re.compile(r"UnknownHostException:\s*(?P<host>[\w.-]+)"),
    re.compile(r"connect to (?P<host>[\w.-]+ port \d+)"),
)
_DNS = re.compile(
    r"UnknownHost|Name or service not known|nodename nor servname|getaddrinfo|NXDOMAIN|no such host|"
    r"name resolution|could not translate host name",
    re.IGNORECASE,
)
_MODULES = (
    re.compile(r"No module named '(?P<name>[\w.]+)'"),
    re.compile(r"Cannot find module '(?P<name>[^']+)'"),
    re.compile(r"cannot import name '(?P<name>\w+)'"),
    re.compile(
        r"ClassNotFoundException: (?:Failed to (?:find|load class for) data source: )?(?P<name>[\w$]+(?:\.[\w$]+)*)"
    ),
    re.compile(r"NoClassDefFoundError: (?P<name>[\w/$.]+)"),
    re.compile(r"NoSuchMethodError: (?P<name>[\w.$]+)"),
    re.compile(r"(?P<name>[\w.+-]+\.so(?:\.[\d.]+)?): cannot open shared object"),
    re.compile(r"version `(?P<name>GLIBC_[\d.]+)' not found"),
    re.compile(r"Unable to import module '(?P<name>[\w.]+)'"),
)
_NATIVE_BUILD = re.compile(r"invalid ELF header|GLIBC_|cannot open shared object|bad magic number|exec format error")
_COLUMNS = (
    re.compile(r"cannot resolve '`?(?P<name>[\w.]+)`?'"),
    re.compile(r"with name (?P<name>`[^`]+`(?:\.`[^`]+`)*) cannot be resolved"),
    re.compile(
        r"[Cc]olumn:? `?(?P<name>[\w.]+)`?(?:'s declared type| does not exist| cannot be converted| is of type)"
    ),
    re.compile(r"Column name: (?P<name>\w+)"),
    re.compile(r"[Ff]ield (?P<name>\w+) not found"),
)
_TASK_START = re.compile(r"CannotPullContainerError|ResourceInitializationError|registry auth")
_FULL_PATH = re.compile(r"write (?P<path>/[^\s:]+): no space left on device")


# ------------------------------------------------------------------ what the diagnosis holds


def _text(d: Diagnosis) -> str:
    """Everything the failure said, in one string: error, Cause, root exception and evidence lines."""
    return " ".join(filter(None, [d.error, d.cause_summary, d.root_exception, *(line.message for line in d.evidence)]))


def _quote(text: str | None, limit: int = QUOTE_MAX) -> str:
    """One line of AWS or log text, safe inside backticks, at most ``limit`` characters."""
    line = " ".join((text or "").split()).replace("`", "'")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _names(items: Sequence[str]) -> str:
    """Items in backticks, joined with commas and "and"; past three, how many more there are."""
    shown = [f"`{item}`" for item in items[:NAMES_MAX]]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    more = len(items) - NAMES_MAX
    return listed + (f" (and {more} more)" if more > 0 else "")


def _first(patterns: Sequence[re.Pattern[str]], text: str) -> str | None:
    """The ``name``/``host`` group of the first pattern that matches, in the patterns' order of preference."""
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return str(match[1]).strip("`'\" ")
    return None


def _s3_path(text: str) -> str | None:
    """The first S3 path in the text, without the sentence's punctuation after it."""
    match = _S3_OBJECT.search(text)
    return match[0].rstrip(".,;:)") if match else None


def _context(d: Diagnosis, key: str) -> dict[str, Any]:
    value = d.context.get(key)
    return value if isinstance(value, dict) else {}


def _listed(d: Diagnosis, key: str) -> list[str]:
    value = d.context.get(key)
    return [str(item) for item in value if item] if isinstance(value, list | tuple) else []


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _named_then_known(named: Sequence[str], known: Sequence[str]) -> list[str]:
    """What the error names first, then what the diagnosis knows (an item contained in another is shown once)."""
    merged: list[str] = []
    for item in [*named, *known]:
        if item and not any(item in kept or kept in item for kept in merged):
            merged.append(item)
    return merged


def _state(d: Diagnosis) -> str:
    return f"`{d.failed_state}`" if d.failed_state else "the failed state"


_RESOURCE_KEYS = (("ecs", "task_definition"), ("lambda", "function"), ("glue", "job"))
_WORK = {"ecs": "task definition `{}`", "lambda": "Lambda `{}`", "glue": "Glue job `{}`"}
_ROLE = {
    "ecs": "the task role of `{}`",
    "lambda": "the execution role of Lambda `{}`",
    "glue": "the IAM role of Glue job `{}`",
}


def _phrase(d: Diagnosis, templates: dict[str, str]) -> str | None:
    """The template for the failed work's own resource (task definition, function or job), filled with its name."""
    for kind, key in _RESOURCE_KEYS:
        name = _context(d, kind).get(key)
        if name and kind in templates:
            return templates[kind].format(name)
    return None


def _work(d: Diagnosis) -> str:
    """The failed work by name: its task definition, Lambda function or Glue job, else its state."""
    return _phrase(d, _WORK) or (f"state `{d.failed_state}`" if d.failed_state else "the failed work")


def _logs_command(d: Diagnosis) -> str:
    """The `/etl logs` command that shows more of a live execution's logs (in parentheses), else nothing."""
    if not d.execution_arn.startswith("arn:"):
        return ""
    machine = d.pipeline or d.state_machine_arn.rsplit(":", 1)[-1]
    target = f"{machine}/{d.execution_name}" if machine and d.execution_name else d.execution_arn
    return f" (`/etl logs {target} --lines 200`)"


def _stream_before_failure(d: Diagnosis) -> str | None:
    """Where the evidence was read (stream, group, the last line's time), or None without evidence."""
    if not d.evidence:
        return None
    line = d.evidence[-1]
    return f"`{line.log_stream}` in `{line.log_group}` before {line.timestamp:%H:%M:%S}"


def _logs_step(d: Diagnosis) -> str:
    """Where to read more: the evidence stream before the failure, or the hop that could not be followed."""
    stream = _stream_before_failure(d)
    if stream:
        return (
            f"Read the lines of {stream}{_logs_command(d)}: the first error is usually the cause, the later ones its "
            "consequences."
        )
    missed = next((hop for hop in d.hops if not hop.followed), None)
    if missed is not None:
        return (
            f"The {missed.kind.replace('_', ' ')} `{missed.label}` was not followed ({_quote(missed.detail, 100)}): "
            "open it in the console, the evidence is there."
        )
    return f"Open the execution in the console and read the input and the full Cause of {_state(d)}."


def _role(d: Diagnosis) -> str:
    """The IAM principal that ran the failed work, as precisely as the diagnosis knows it."""
    named = _phrase(d, _ROLE)
    if named:
        return named
    by_integration = {
        "ecs": "the ECS task role",
        "lambda": "the Lambda function's execution role",
        "glue": "the Glue job's IAM role",
        "batch": "the Batch job's role",
    }
    if d.integration in by_integration:
        return by_integration[d.integration]
    if d.integration in {None, "unknown", "fail", "runtime", "timeout", "aborted", "activity"}:
        return f"the role that ran {_state(d)}"
    return f"the state machine's execution role (it calls `{d.integration}` itself in {_state(d)})"


# ------------------------------------------------------------------ out of memory, timeout, throttling


def _next_memory(current: int) -> int:
    target = current * 2
    return next((step for step in FARGATE_MEMORY_STEPS if step >= target), target)


def _ecs_memory_step(d: Diagnosis) -> str | None:
    ecs = _context(d, "ecs")
    if not ecs.get("task_memory"):
        return None
    current = int(ecs["task_memory"])
    container = ecs.get("container_memory")
    what = f"task definition `{ecs.get('task_definition')}` gives the task {current} MiB"
    if container:
        what += f" and container `{ecs.get('container')}` {container} MiB"
    return f"{what}; raise it to {_next_memory(current)} MiB (and the container limit with it), then retry."


def _spark_memory_step(d: Diagnosis) -> str | None:
    environment = " ".join(_context(d, "ecs").get("environment", {}) or {})
    if "spark" not in ((d.root_exception or "") + environment).lower() and "java.lang.OutOfMemoryError" not in (
        d.root_exception or ""
    ):
        return None
    return (
        "Spark: raise `spark.executor.memory`/`spark.driver.memory` (or `spark.executor.memoryOverhead`), or spread "
        "the data: more `spark.sql.shuffle.partitions`, repartition skewed keys, avoid `collect()` on the driver."
    )


def _lambda_memory_step(d: Diagnosis) -> str | None:
    lam = _context(d, "lambda")
    if not lam.get("memory"):
        return None
    used = lam.get("max_memory_used")
    return (
        f"Lambda `{lam.get('function')}` has {lam['memory']} MB"
        + (f" and used {used} MB" if used else "")
        + f"; raise MemorySize to {int(lam['memory']) * 2} MB (CPU grows with it)."
    )


def _glue_memory_step(d: Diagnosis) -> str | None:
    glue = _context(d, "glue")
    if not glue.get("job"):
        return None
    return (
        f"Glue job `{glue['job']}` runs {glue.get('workers') or '?'} × {glue.get('worker_type') or '?'} workers; "
        "use G.2X (or G.4X) workers, or more of them, and check for skew."
    )


def _out_of_memory(d: Diagnosis) -> list[str]:
    found = (_ecs_memory_step(d), _spark_memory_step(d), _lambda_memory_step(d), _glue_memory_step(d))
    steps = [step for step in found if step] or [
        f"Give {_work(d)} more memory (the task definition, Lambda MemorySize or Glue worker type), or process "
        "the input in smaller pieces."
    ]
    steps.append(
        "Compare this run's input with the last successful run's: a sudden growth (a backfill, duplicated or skewed "
        "data) wants a fix upstream, not only more memory."
    )
    return steps


def _timeout(d: Diagnosis) -> list[str]:
    lam, glue = _context(d, "lambda"), _context(d, "glue")
    steps = []
    if lam.get("timeout") or lam.get("timed_out_after"):
        limit = lam.get("timeout") or lam.get("timed_out_after")
        steps.append(
            f"Lambda `{lam.get('function')}` timed out after {limit} s; raise its Timeout (max 900 s) or split the "
            "work."
        )
    elif glue.get("job"):
        steps.append(
            f"Glue job `{glue['job']}` reached its Timeout: raise the job's `Timeout` (minutes) or the state's "
            f"`Arguments.Timeout`, or give it more than {glue.get('workers') or 'its'} workers."
        )
    elif d.status == "TIMED_OUT":
        steps.append("The execution ran past the state machine's own `TimeoutSeconds`: raise it, or split the run.")
    steps.append(
        f"Check `TimeoutSeconds`/`HeartbeatSeconds` of {_state(d)} against how long this work normally takes "
        "(its last successful runs)."
    )
    stream = _stream_before_failure(d)
    where = f" in the last lines of {stream}" if stream else f" in the logs of {_work(d)}"
    steps.append(f"Before retrying, find what it waited on (a lock, a slow query, an upstream API){where}.")
    return steps


def _throttling(d: Diagnosis) -> list[str]:
    operation = _first((_OPERATION,), _text(d))
    what = f"`{operation}`" if operation else _work(d)
    error = f" (`{d.error}`)" if d.error else ""
    steps = [f"{what} was throttled{error}: this is transient, a retry with backoff usually succeeds."]
    for advice in d.retry_audit:
        if advice.suggestion:
            steps.append(f"Add this Retry to state `{advice.state}`:\n```{_retry_block(advice.suggestion)}```")
    steps.append(
        f"If it recurs, lower the concurrency that calls {what} (Map `MaxConcurrency`, parallel runs) or ask for a "
        "quota increase."
    )
    return steps


# ------------------------------------------------------------------ permissions and missing things


def _denied_step(d: Diagnosis, text: str) -> str:
    """Who lacks what on what, as far as the error says."""
    match = _NOT_AUTHORIZED.search(text)
    if match:
        resource = match["resource"] or "the resource named in the error"
        return (
            f"Grant `{match['action']}` on `{resource}` to `{match['principal']}` (or fix the resource policy / KMS "
            "key policy), then retry."
        )
    if _SECRET_ARN.search(text) or "unable to pull secrets" in text:
        secrets = _secrets(d, text)
        what = _names(secrets) if secrets else "the secrets in the task definition"
        owner = _context(d, "ecs").get("task_definition")
        role = f"the task execution role of `{owner}`" if owner else "the task execution role"
        return (
            f"{_capital(role)} may not read {what}: grant it `secretsmanager:GetSecretValue` (or "
            "`ssm:GetParameters`) there, then retry."
        )
    action = _ACTION_ONLY.search(text)
    operation = _first((_OPERATION,), text)
    role = _capital(_role(d))
    if action:
        return f"{role} lacks `{action['action']}`; grant it, then retry."
    if operation:
        where = _s3_path(text)
        on = f" on `{where}`" if where else ""
        return f"{role} was denied `{operation}`{on}: grant that action, then retry."
    return (
        f"{role} was denied (`{_quote(d.cause_summary or d.error, 100)}`): find the action and resource in the "
        "evidence lines and grant them, then retry."
    )


def _permission(d: Diagnosis) -> list[str]:
    text = _text(d)
    steps = [_denied_step(d, text)]
    if "kms" in text.lower():
        key = _KMS_KEY.search(text)
        steps.append(
            f"The KMS key{f' `{key[0]}`' if key else ''} must allow it too (`kms:Decrypt` in the key policy or a "
            "grant): an IAM policy alone is not enough when the key policy does not delegate to IAM."
        )
    when = f" around {d.stopped_at:%H:%M} UTC" if d.stopped_at else ""
    steps.append(
        "Check whether a recent IAM, bucket-policy, SCP or permission-boundary change removed it: CloudTrail's "
        f"`AccessDenied` event{when} names the exact principal and action."
    )
    return steps


def _missing(d: Diagnosis) -> list[str]:
    text = _text(d)
    s3 = _s3_path(text)
    match = _MISSING_OBJECT.search(text)
    thing = (
        s3
        if s3
        else (match["what"].strip(" :'\"") if match and match["what"].strip() else "the object named in the error")
    )
    steps = [
        f"`{_quote(thing)}` does not exist (yet): check it is what {_state(d)} should read (a wrong date or prefix "
        "in the execution input?) before retrying."
    ]
    if s3 or "partition" in text.lower():
        steps.append(
            "If it is late-arriving upstream data, wait for it (or add a sensor/Choice state) and rerun; do not "
            "backfill empty."
        )
    if s3:
        steps.append(f"See what is there: `aws s3 ls {s3.rsplit('/', 1)[0]}/`.")
    else:
        steps.append(_logs_step(d))
    return steps


# ------------------------------------------------------------------ containers and networks


def _images(d: Diagnosis, text: str) -> list[str]:
    """The image the error names, then the task's images (``context["container_images"]``, else the container's)."""
    known = _listed(d, "container_images") or [str(_context(d, "ecs").get("image") or "")]
    return _named_then_known([match["image"] for match in _IMAGE_REF.finditer(text)], known)


def _secrets(d: Diagnosis, text: str) -> list[str]:
    """The secret the error names, then the task's secrets (``context["container_secrets"]``)."""
    return _named_then_known(_SECRET_ARN.findall(text), _listed(d, "container_secrets"))


def _image_step(images: list[str]) -> str:
    if not images:
        return (
            "Check the image exists in the registry with that tag and the task execution role may pull it "
            "(ecr:GetAuthorizationToken, ecr:BatchGetImage)."
        )
    if all(".dkr.ecr." in image for image in images):
        return (
            f"Check that {_names(images)} exists with that tag and the task execution role can pull it "
            "(ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer)."
        )
    return (
        f"Check that {_names(images)} exists with that tag; outside ECR a private registry needs "
        "`repositoryCredentials` (a secret the execution role can read), and Docker Hub limits anonymous pulls."
    )


def _secret_step(secrets: list[str]) -> str:
    if not secrets:
        what = "the secrets and parameters of the task definition exist"
    else:
        what = f"secret {_names(secrets)} exists" if len(secrets) == 1 else f"secrets {_names(secrets)} exist"
    return (
        f"Check that {what} and the task execution role may read {'it' if len(secrets) == 1 else 'them'} "
        "(secretsmanager:GetSecretValue or ssm:GetParameters, and kms:Decrypt on the key)."
    )


def _route_step(text: str) -> str:
    host = _first(_ENDPOINTS, text)
    to = f" to `{host}`" if host else ""
    return (
        f"The task's subnets need a route{to}: a NAT gateway (or a public IP), or VPC endpoints for ECR (`ecr.api`, "
        "`ecr.dkr`), S3, CloudWatch Logs and Secrets Manager/SSM; and security-group egress on 443."
    )


def _container_start(d: Diagnosis) -> list[str]:
    text = _text(d)
    image, secret, route = _image_step(_images(d, text)), _secret_step(_secrets(d, text)), _route_step(text)
    if re.search(r"\bsecrets?\b|\bssm\b|\basm\b", text, re.IGNORECASE):
        steps = [secret, route, image]
    elif re.search(r"timeout|timed out|dial tcp|connection|request canceled", text, re.IGNORECASE):
        steps = [route, image, secret]
    else:
        steps = [image, route, secret]
    if _NATIVE_BUILD.search(text) or "executable file not found" in text:
        steps.insert(
            0,
            "The image starts but its command cannot run: `exec format error` means it was built for another CPU "
            "architecture (build for the task's `runtimePlatform`), `executable file not found` a wrong entryPoint "
            "or command.",
        )
    return steps


def _network(d: Diagnosis) -> list[str]:
    text = _text(d)
    host = _first(_ENDPOINTS, text)
    target = f"`{host}`" if host else "the endpoint in the error"
    steps = []
    if _DNS.search(text):
        steps.append(
            f"{target} did not resolve: check the name (a typo, a deleted endpoint?) and, for a private name, the "
            "VPC's DNS resolution and its private hosted zone."
        )
    retry = (
        f"If {target} was briefly unavailable (a failover, a deploy, maintenance), Retry as is; if it recurs, add a "
        f"Retry with backoff to {_state(d)}."
    )
    steps += [retry, _path_step(d, target)] if d.transient else [_path_step(d, target), retry]
    return steps


def _path_step(d: Diagnosis, target: str) -> str:
    """Where the network path from the failed work to ``target`` may be blocked."""
    text = _text(d)
    if _TASK_START.search(text):  # the task never started: ECS itself could not reach the registry or secrets
        return _route_step(text)
    templates = {
        "lambda": "Lambda `{}` in a VPC has no internet access: its subnets need a NAT gateway or VPC endpoints, "
        f"and its security group egress to {target}.",
        "glue": f"Glue job `{{}}` reaches {target} through its connection: the connection's subnet needs a route "
        "(NAT gateway or VPC endpoints) and its security group a self-referencing rule for all TCP.",
    }
    return _phrase(d, templates) or (
        f"From {_work(d)}: security-group egress to {target}, the target's ingress from it, NACLs, and a route from "
        "its subnets (NAT gateway or VPC endpoint)."
    )


# ------------------------------------------------------------------ data, code and dependencies


def _schema(d: Diagnosis) -> list[str]:
    text = _text(d)
    column = _first(_COLUMNS, text)
    what = f"column `{column.replace('`', '')}`" if column else "the data"
    steps = [
        f"{_capital(what)} no longer matches what {_state(d)} expects "
        f"(`{_quote(d.root_exception or d.cause_summary)}`).",
        "Compare the upstream schema (new/renamed/retyped column) with the job's; fix the mapping or the cast, then "
        "rerun. Retrying as is will fail again.",
    ]
    s3 = _s3_path(text)
    if "stl_load_errors" in text.lower() or "load into table" in text.lower():
        steps.append("Query `stl_load_errors` (newest first): it names the file, line, column and value that failed.")
    elif s3:
        steps.append(f"Read the schema of `{s3}` (e.g. `parquet-tools schema`) and compare it with the table's.")
    else:
        steps.append(_logs_step(d))
    return steps


def _data_quality(d: Diagnosis) -> list[str]:
    assertion = _quote(d.root_exception or d.cause_summary or d.error)
    return [
        f"A data quality check in {_state(d)} stopped the load on purpose (`{assertion}`): find the failing rows.",
        "Fix or quarantine them upstream; do not retry or redrive unchanged.",
        _logs_step(d),
    ]


def _code_bug(d: Diagnosis) -> list[str]:
    frame = f" at `{_quote(d.app_frames[0], 120)}`" if d.app_frames else ""
    image = _context(d, "ecs").get("image")
    changed = f"the image `{image}`" if image else f"the code of {_work(d)}"
    return [
        f"A bug in the job's code: `{_quote(d.root_exception or d.error or 'the exception')}`{frame}.",
        "Fix and deploy, then redrive. A retry as is will fail the same way.",
        f"Check what changed since the last successful run: {changed}, or a new kind of input it does not handle.",
    ]


def _dependency_home(d: Diagnosis) -> str:
    image = _context(d, "ecs").get("image")
    if image:
        return f"the image `{image}` (requirements, Dockerfile), then a new task definition revision"
    templates = {
        "ecs": "the image of task definition `{}` (requirements, Dockerfile), then a new revision",
        "lambda": "the deployment package or a layer of Lambda `{}`",
        "glue": "Glue job `{}`'s `--additional-python-modules` (Python) or `--extra-jars` (JVM)",
    }
    return _phrase(d, templates) or (
        "the image, package or layer it runs from (Glue `--additional-python-modules`, a Lambda layer, an image)"
    )


def _dependency(d: Diagnosis) -> list[str]:
    text = _text(d)
    name = _first(_MODULES, text)
    what = f"`{name}`" if name else f"A module or class (`{_quote(d.root_exception or d.cause_summary, 100)}`)"
    steps = [f"{what} is missing or broken at run time: add it to {_dependency_home(d)}."]
    if _NATIVE_BUILD.search(text):
        steps.append(
            "A native library built for another platform: build the package on Amazon Linux (or in the runtime's base "
            "image) for the runtime's CPU architecture and language version."
        )
    else:
        steps.append(
            "If it is there, it is a version conflict (`NoSuchMethodError`, `NoClassDefFoundError`: two versions on "
            "the path): pin the versions the code was built against."
        )
    steps.append("A retry as is fails the same way: deploy the fix, then Retry.")
    return steps


def _disk_home(d: Diagnosis, text: str) -> str:
    if "Disk Full" in text or "DiskFull" in text:
        return "The database ran out of disk: free space (delete/vacuum; `SVV_TABLE_INFO` shows the largest) or resize."
    templates = {
        "ecs": "Raise the task's ephemeral storage in `{}` (Fargate `ephemeralStorage.sizeInGiB`: 20 GiB by default, "
        "up to 200; on EC2 the instance's Docker volume).",
        "lambda": "Raise Lambda `{}`'s `EphemeralStorage` (/tmp: 512 MB by default, up to 10,240 MB).",
        "glue": "Glue job `{}`: larger workers (G.2X) or shuffle to S3 (`--write-shuffle-files-to-s3 true`).",
    }
    return _phrase(d, templates) or (
        "Raise the work's local disk (Fargate `ephemeralStorage`, Lambda `EphemeralStorage`, Glue worker type, the "
        "Batch launch template's volume)."
    )


def _disk_full(d: Diagnosis) -> list[str]:
    text = _text(d)
    path = _first((_FULL_PATH,), text)
    filled = f" (it failed writing `{path}`)" if path else ""
    return [
        _disk_home(d, text),
        f"Find what fills it{filled}: temporary or spill files can go to S3 instead, or be deleted as the job goes.",
        "A retry as is fills the disk again: change the storage or the job first, then Retry.",
    ]


def _capacity(d: Diagnosis) -> list[str]:
    return [
        "Capacity was reclaimed or unavailable (Spot interruption, no instances of that type): retry; it is transient.",
        "If it keeps happening, add an on-demand fallback to the capacity provider strategy or more instance types.",
    ]


def _unknown(d: Diagnosis) -> list[str]:
    said = " ".join(part for part in (f"`{d.error}`" if d.error else "", _quote(d.cause_summary, 120)) if part)
    return [
        f"No known pattern matched what {_state(d)} reported ({said or 'no error text'}): read it in full first.",
        _logs_step(d),
        f"If {_work(d)} passed before with the same input and nothing changed since, Retry once; if it fails the "
        "same way, treat it as a bug.",
    ]


RULES: dict[str, Callable[[Diagnosis], list[str]]] = {
    "out_of_memory": _out_of_memory,
    "timeout": _timeout,
    "throttling_or_rate_limit": _throttling,
    "permission_denied": _permission,
    "missing_resource": _missing,
    "container_start_failure": _container_start,
    "network_or_connectivity": _network,
    "schema_or_type_mismatch": _schema,
    "data_quality_assertion": _data_quality,
    "code_bug": _code_bug,
    "dependency_or_import": _dependency,
    "disk_full": _disk_full,
    "spot_or_capacity": _capacity,
    "unknown": _unknown,
}


_MISSING_PATH = re.compile(
    r"The JSONPath '(?P<path>[^']+)' specified for the field '(?P<field>[^']+)' could not be found in the input"
)


def _runtime(d: Diagnosis) -> list[str]:
    """States.Runtime: the definition and the data it is given disagree; say exactly where."""
    missing = _MISSING_PATH.search(d.cause_summary or "") if d.integration == "runtime" else None
    if missing is None:
        return []
    return [
        f"`{missing['path']}` (for `{missing['field']}`) is missing from the input of `{d.failed_state}`: make the "
        "execution input (or the previous state's output/ResultPath) carry it.",
        "If the field is optional, give it a default before this state (a Pass state or JSONata `$exists`) or "
        "branch on it with a Choice state.",
        "Then start a new execution with the corrected input; a redrive reuses the same input and fails again.",
    ]


def _fail_state(d: Diagnosis) -> list[str]:
    """A Fail state is reached on purpose: point at the decision and the data it was made on."""
    path = d.context.get("path") or []
    if d.integration != "fail" or not path:
        return []
    decided = path[0]
    fed = f" on the output of `{path[1]}`" if len(path) > 1 else ""
    return [
        f"`{d.failed_state}` is reached on purpose: `{decided}` sent the execution there{fed}. Open that output "
        "(execution link) to see which condition matched.",
        f"Fix what `{path[1] if len(path) > 1 else decided}` reported (for a polled job, diagnose the job itself), "
        "then start a new execution.",
    ]


def _retry_block(suggestion: dict[str, Any] | None) -> str:
    return json.dumps([suggestion], indent=2)


def _audit_steps(d: Diagnosis) -> list[str]:
    """The Retry-policy audit's findings as steps (throttling already shows them as its own)."""
    if d.category == "throttling_or_rate_limit":
        return []
    return [
        f"`{advice.state}` has no Retry for `{advice.errors[0]}`; add:\n```{_retry_block(advice.suggestion)}```"
        for advice in d.retry_audit
        if advice.suggestion
    ]


def remediate(d: Diagnosis) -> list[str]:
    """Two to four next steps for a diagnosis, most useful first (the Retry audit's finding included).

    Args:
        d: A diagnosis, classified (``category`` set); the more it holds, the more concrete the steps.

    Returns:
        Between two and four steps (mrkdwn: names in backticks, Retry blocks in code blocks).
    """
    steps = _runtime(d) or _fail_state(d) or RULES.get(d.category, _unknown)(d)
    audit = _audit_steps(d)
    return [*steps[: max(2, MAX_STEPS - len(audit))], *audit][:MAX_STEPS]

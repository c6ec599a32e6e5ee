"""What to do next, per category, using what the chase found (memory sizes, principals, objects, Retry blocks)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from bot.diagnosis.model import Diagnosis

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
_S3_OBJECT = re.compile(r"s3a?://[\w.-]+/[^\s'\"]*")
_MISSING_OBJECT = re.compile(
    r"(?:NoSuchKey|NoSuchBucket|Path does not exist|does not exist|not found|ResourceNotFoundException)"
    r"[:\s]*(?P<what>[^\n]{0,160})",
    re.IGNORECASE,
)


def _next_memory(current: int) -> int:
    target = current * 2
    return next((step for step in FARGATE_MEMORY_STEPS if step >= target), target)


def _out_of_memory(d: Diagnosis) -> list[str]:
    steps: list[str] = []
    ecs = d.context.get("ecs") or {}
    lam = d.context.get("lambda") or {}
    glue = d.context.get("glue") or {}
    spark = any(
        word in (d.root_exception or "") + " ".join(ecs.get("environment", {}) or {})
        for word in ("spark", "Spark", "SPARK")
    )
    if ecs.get("task_memory"):
        current = int(ecs["task_memory"])
        container = ecs.get("container_memory")
        what = f"task definition `{ecs.get('task_definition')}` gives the task {current} MiB"
        if container:
            what += f" and container `{ecs.get('container')}` {container} MiB"
        steps.append(f"{what}; raise it to {_next_memory(current)} MiB (and the container limit with it), then retry.")
    if spark or "java.lang.OutOfMemoryError" in (d.root_exception or ""):
        steps.append(
            "Spark: raise `spark.executor.memory`/`spark.driver.memory` (or `spark.executor.memoryOverhead`), or "
            "spread "
            "the data: more `spark.sql.shuffle.partitions`, repartition skewed keys, avoid `collect()` on the driver."
        )
    if lam.get("memory"):
        used = lam.get("max_memory_used")
        steps.append(
            f"Lambda `{lam.get('function')}` has {lam['memory']} MB"
            + (f" and used {used} MB" if used else "")
            + f"; raise MemorySize to {int(lam['memory']) * 2} MB (CPU grows with it)."
        )
    if glue.get("job"):
        steps.append(
            f"Glue job `{glue['job']}` runs {glue.get('workers') or '?'} × {glue.get('worker_type') or '?'} workers; "
            "use G.2X (or G.4X) workers, or more of them, and check for skew."
        )
    return steps or ["Give the failed work more memory, or process the input in smaller pieces."]


def _timeout(d: Diagnosis) -> list[str]:
    lam = d.context.get("lambda") or {}
    steps = []
    if lam.get("timeout") or lam.get("timed_out_after"):
        limit = lam.get("timeout") or lam.get("timed_out_after")
        steps.append(
            f"Lambda `{lam.get('function')}` timed out after {limit} s; raise its Timeout (max 900 s) or split the "
            "work."
        )
    steps.append("Check the state's `TimeoutSeconds`/`HeartbeatSeconds` against how long this work normally takes.")
    steps.append(
        "Look at what it waited on (a lock, a slow query, an upstream API) in the evidence lines before retrying."
    )
    return steps


def _throttling(d: Diagnosis) -> list[str]:
    steps = ["Throttling is transient: a retry with backoff usually succeeds."]
    for advice in d.retry_audit:
        if advice.suggestion:
            steps.append(
                f"Add this Retry to state `{advice.state}`:\n```{json.dumps([advice.suggestion], indent=2)}```"
            )
    steps.append("If it recurs, lower the concurrency (Map `MaxConcurrency`) or ask for a quota increase.")
    return steps


def _permission(d: Diagnosis) -> list[str]:
    text = " ".join(filter(None, [d.cause_summary, d.root_exception, *(line.message for line in d.evidence)]))
    match = _NOT_AUTHORIZED.search(text)
    if match:
        resource = match["resource"] or "the resource named in the error"
        return [
            f"Grant `{match['action']}` on `{resource}` to `{match['principal']}` (or fix the resource policy / KMS "
            "key policy), then retry.",
            "Check whether a recent IAM, bucket-policy or SCP change removed it.",
        ]
    action = _ACTION_ONLY.search(text)
    if action:
        return [
            f"The role running this work lacks `{action['action']}`; grant it (check KMS key policies too), then retry."
        ]
    return ["Find the principal and action in the evidence lines and grant the missing permission; then retry."]


def _missing(d: Diagnosis) -> list[str]:
    text = " ".join(filter(None, [d.cause_summary, d.root_exception, *(line.message for line in d.evidence)]))
    s3 = _S3_OBJECT.search(text)
    match = _MISSING_OBJECT.search(text)
    thing = (
        s3[0]
        if s3
        else (match["what"].strip(" :'\"") if match and match["what"].strip() else "the object named in the error")
    )
    steps = [f"`{thing}` does not exist (yet)."]
    if s3 or "partition" in text.lower():
        steps.append(
            "If it is late-arriving upstream data, wait for it (or add a sensor/Choice state) and rerun; do not "
            "backfill empty."
        )
    steps.append("Check the path/name the state was given (a wrong date or prefix in the input?) before retrying.")
    return steps


def _container_start(d: Diagnosis) -> list[str]:
    return [
        "Check the image exists in the registry with that tag and the task execution role may pull it "
        "(ecr:GetAuthorizationToken, ecr:BatchGetImage).",
        "For private subnets: a NAT gateway or VPC endpoints for ECR (api, dkr), S3, CloudWatch Logs and Secrets "
        "Manager/SSM.",
        "Secrets and parameters referenced by the task definition must exist and be readable by the execution role.",
    ]


def _network(d: Diagnosis) -> list[str]:
    return [
        "Usually transient: retry. If it recurs, check security groups, NACLs, route tables/NAT, VPC endpoints and "
        "DNS for the endpoint in the error.",
    ]


def _schema(d: Diagnosis) -> list[str]:
    return [
        f"The data no longer matches what the job expects ({(d.root_exception or d.cause_summary or '')[:160]}).",
        "Compare the upstream schema (new/renamed/retyped column) with the job's; fix the mapping or the cast, then "
        "rerun. Retrying as is will fail again.",
    ]


def _data_quality(d: Diagnosis) -> list[str]:
    return [
        "A data quality check stopped the load on purpose: find the failing rows (the assertion is in the evidence "
        "lines).",
        "Fix or quarantine them upstream; do not retry or redrive unchanged.",
    ]


def _code_bug(d: Diagnosis) -> list[str]:
    frame = f" at `{d.app_frames[0].strip()}`" if d.app_frames else ""
    return [
        f"A bug in the job's code: `{(d.root_exception or d.error or 'the exception')[:160]}`{frame}.",
        "Fix and deploy, then redrive. A retry as is will fail the same way.",
    ]


def _dependency(d: Diagnosis) -> list[str]:
    return [
        f"A module or class is missing at run time ({(d.root_exception or '')[:120]}): check the image/package/layer "
        "and the job's dependency settings "
        "(Glue `--additional-python-modules`/`--extra-jars`, a Lambda layer, the Docker build).",
    ]


def _disk_full(d: Diagnosis) -> list[str]:
    return [
        "The work ran out of local disk: raise ephemeral storage (Fargate `ephemeralStorage`, Lambda "
        "`EphemeralStorage`, Glue/EMR worker disk) "
        "or write spill/temporary files to S3.",
    ]


def _capacity(d: Diagnosis) -> list[str]:
    return [
        "Capacity was reclaimed or unavailable (Spot interruption, no instances of that type): retry; it is transient.",
        "If it keeps happening, add an on-demand fallback to the capacity provider strategy or more instance types.",
    ]


def _unknown(d: Diagnosis) -> list[str]:
    return ["No known pattern matched: read the evidence lines and the linked log stream; `/etl logs` shows more."]


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


def remediate(d: Diagnosis) -> list[str]:
    """Two to four next steps for a diagnosis, most useful first (the Retry audit's finding included)."""
    steps = _runtime(d) or _fail_state(d) or RULES.get(d.category, _unknown)(d)
    for advice in d.retry_audit:
        if advice.suggestion and d.category != "throttling_or_rate_limit":
            steps.append(
                f"`{advice.state}` has no Retry for `{advice.errors[0]}`; "
                f"add:\n```{json.dumps([advice.suggestion], indent=2)}```"
            )
    return steps[:4]

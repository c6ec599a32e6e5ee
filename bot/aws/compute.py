"""ECS, Lambda, Glue, Batch and CloudWatch metrics: the lookups a diagnosis makes on the failed work."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.aws.clients import AwsClients


class ComputeGateway:
    """Read-only lookups on the services Step Functions runs work on.

    Args:
        aws: The client factory.
    """

    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    def ecs_task(self, cluster: str | None, task_arn: str) -> dict[str, Any] | None:
        """DescribeTasks for one task (None when ECS no longer knows it: stopped tasks expire after ~1 h)."""
        request: dict[str, Any] = {"tasks": [task_arn]}
        if cluster:
            request["cluster"] = cluster
        tasks = self._aws.client("ecs").describe_tasks(**request).get("tasks", [])
        return dict(tasks[0]) if tasks else None

    def ecs_task_definition(self, arn: str) -> dict[str, Any] | None:
        """DescribeTaskDefinition (None when it does not exist)."""
        ecs = self._aws.client("ecs")
        try:
            return dict(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"])
        except ecs.exceptions.ClientException:
            return None

    def lambda_configuration(self, function: str) -> dict[str, Any] | None:
        """GetFunctionConfiguration (log group, memory, timeout), or None when it cannot be read.

        A ``:$LATEST`` qualifier (as Step Functions' ``lambda:invoke`` parameters often carry it) is dropped: an
        unqualified name means $LATEST too, and not every Lambda API implementation accepts the qualified form.
        """
        from botocore.exceptions import ClientError

        try:
            name = function.removesuffix(":$LATEST")
            return dict(self._aws.client("lambda").get_function_configuration(FunctionName=name))
        except ClientError:
            return None  # optional: without it the log group follows the /aws/lambda/<name> convention

    def glue_job_run(self, job_name: str, run_id: str) -> dict[str, Any] | None:
        """GetJobRun, or None when it does not exist."""
        glue = self._aws.client("glue")
        try:
            return dict(glue.get_job_run(JobName=job_name, RunId=run_id)["JobRun"])
        except glue.exceptions.EntityNotFoundException:
            return None

    def batch_job(self, job_id: str) -> dict[str, Any] | None:
        """DescribeJobs for one job, or None."""
        jobs = self._aws.client("batch").describe_jobs(jobs=[job_id]).get("jobs", [])
        return dict(jobs[0]) if jobs else None

    def metric_series(
        self,
        namespace: str,
        metrics: dict[str, tuple[str, str]],
        dimensions: dict[str, str],
        start: datetime,
        end: datetime,
        *,
        period: int = 60,
    ) -> dict[str, list[tuple[datetime, float]]]:
        """Several metrics with the same dimensions in one GetMetricData call, from 5 min before ``start``.

        Args:
            namespace: E.g. ``ECS/ContainerInsights``.
            metrics: Query id → (metric name, statistic), e.g. ``{"cpu": ("CpuUtilized", "Average")}``.
            dimensions: Dimension name → value.
            start: Start of the window of interest.
            end: Its end (one more minute is read).
            period: Seconds per datapoint.

        Returns:
            Query id → datapoints (timestamp, value), oldest first; ids without data are left out.
        """
        response = self._aws.client("cloudwatch").get_metric_data(
            MetricDataQueries=[
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": period,
                        "Stat": stat,
                    },
                }
                for query_id, (name, stat) in metrics.items()
            ],
            StartTime=start - timedelta(minutes=5),
            EndTime=end + timedelta(minutes=1),
        )
        series: dict[str, list[tuple[datetime, float]]] = {}
        for result in response.get("MetricDataResults", []):
            points = sorted(zip(result.get("Timestamps", []), result.get("Values", []), strict=False))
            if points:
                series[result["Id"]] = [(when, float(value)) for when, value in points]
        return series

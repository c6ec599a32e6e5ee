"""Enrichment: the `/etl why` verdict, condensed for an alert's parent message."""

from __future__ import annotations

from bot.alerts.dispatch import Enricher
from bot.alerts.model import Enrichment
from bot.services import Services


def diagnosis_enricher(services: Services) -> Enricher:
    """An enricher that diagnoses an execution with the services' AWS clients."""

    def enrich(execution_arn: str) -> Enrichment:
        from bot.diagnosis.runner import make_chase

        diagnosis = make_chase(services).diagnose(execution_arn)
        if not diagnosis.diagnosable:
            return Enrichment(verdict=diagnosis.verdict or f"execution is {diagnosis.status}")
        return Enrichment(
            category=diagnosis.category,
            title=diagnosis.title or None,
            failed_state=diagnosis.failed_state,
            root_exception=diagnosis.root_exception,
            next_step=diagnosis.remediation[0] if diagnosis.remediation else None,
        )

    return enrich

"""Alerts: SNS verification, event normalisation, fingerprints, grouping and posting."""

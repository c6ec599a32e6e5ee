"""KPI reconciliation: definitions, dialect-aware SQL, the funnel from KPI value to keys and lineage."""

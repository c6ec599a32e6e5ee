"""etl-doctor: tells on-call why an AWS ETL pipeline failed and what to do next."""

__version__ = "0.1.0"

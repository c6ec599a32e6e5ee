"""Incident store: SQLAlchemy models, repositories and Alembic migrations."""

"""Alembic migrations of the central's database (the only way its schema is created or changed)."""

"""The central's store: SQLAlchemy 2 models, sessions, and the Alembic migrations that create them."""

"""Migration scripts, one per revision (alembic skips this file)."""

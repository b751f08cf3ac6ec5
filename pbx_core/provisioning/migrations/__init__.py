"""Alembic migrations of the provisioning database, shipped inside the package.

Run them with ``pbx-core db upgrade`` (or :func:`pbx_core.provisioning.db.upgrade`); no
alembic.ini is needed, the configuration is built in code.
"""

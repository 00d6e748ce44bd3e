"""Alembic environment: runs migrations on the connection `pathgen.storage.engine.upgrade_schema` passes in."""

from alembic import context
from sqlalchemy import text

from pathgen.storage.models import Base

# Any fixed number: replicas starting together on one PostgreSQL wait for each other's upgrade.
ADVISORY_LOCK_KEY = 7_318_242_018

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    context.run_migrations()

"""PathGen's database: SQLAlchemy 2 models, engine set-up with alembic migrations, and the `Storage` API."""

from .engine import DATABASE_URL_ENV, STATE_DIR_ENV, database_url, make_engine, schema_revision, state_dir, upgrade_schema
from .store import AnswerRecord, AssignmentRecord, Storage, StudentRecord, StudentSummary

__all__ = ["DATABASE_URL_ENV", "STATE_DIR_ENV", "AnswerRecord", "AssignmentRecord", "Storage", "StudentRecord",
           "StudentSummary", "database_url", "make_engine", "schema_revision", "state_dir", "upgrade_schema"]

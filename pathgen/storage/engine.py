"""Which database to use, how to connect to it, and bringing its schema up to date.

`PATHGEN_DATABASE_URL` selects the database (any SQLAlchemy URL; `postgresql://...` uses psycopg 3).
Without it, PathGen keeps an SQLite file `pathgen.sqlite3` in its state folder: `$PATHGEN_STATE_DIR`
if set, else `/data` when that folder exists and is writable (a Hugging Face Space's persistent
storage), else `~/.cache/pathgen`.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DATABASE_URL_ENV = "PATHGEN_DATABASE_URL"
STATE_DIR_ENV = "PATHGEN_STATE_DIR"
SPACE_DATA_DIR = Path("/data")
SQLITE_FILE = "pathgen.sqlite3"
BUSY_TIMEOUT_MS = 10_000
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def state_dir() -> Path:
    """The folder that holds the default SQLite file (created if missing)."""
    if configured := os.environ.get(STATE_DIR_ENV):
        folder = Path(configured).expanduser()
    elif SPACE_DATA_DIR.is_dir() and os.access(SPACE_DATA_DIR, os.W_OK):
        folder = SPACE_DATA_DIR
    else:
        folder = Path.home() / ".cache" / "pathgen"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def database_url(url: str | None = None) -> str:
    """The URL given, else $PATHGEN_DATABASE_URL, else the SQLite file in the state folder."""
    url = url or os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{state_dir() / SQLITE_FILE}"
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # Bare postgresql:// means psycopg 3 here, the only PostgreSQL driver PathGen installs.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # The sqlite3 module's own transaction handling would send a plain (deferred) BEGIN; turn it off
    # so that the "begin" hook below decides. WAL lets readers proceed while one writer commits.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout instead of
    # failing with "database is locked" when a read transaction tries to upgrade to a write.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite gets WAL, a busy timeout and immediate write transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=8)


def upgrade_schema(engine: Engine) -> None:
    """Creates or upgrades the schema to the newest alembic revision (safe to run on every start)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_revision(engine: Engine) -> str | None:
    """The alembic revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

"""Operations on PathGen's database: back it up, restore a backup, export one assignment's results.

    python -m pathgen.ops backup BACKUP.sqlite3          # SQLite only: a consistent copy while the app runs
    python -m pathgen.ops restore BACKUP.sqlite3 --yes   # SQLite only: replaces the database's contents
    python -m pathgen.ops export-assignment CODE [--output results.csv]

The database is $PATHGEN_DATABASE_URL, else the default SQLite file (see pathgen.storage.engine); --url
overrides both. For PostgreSQL use its own tools: `pg_dump -Fc DBNAME > pathgen.dump` to back up and
`pg_restore --clean -d DBNAME pathgen.dump` to restore.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from .classroom import ClassroomError, Slide, normalise_code
from .classroom_results import results_csv
from .storage import Storage, database_url, make_engine, upgrade_schema

POSTGRES_HINT = ("This is a PostgreSQL database: back it up with `pg_dump -Fc DBNAME > pathgen.dump` and restore "
                 "with `pg_restore --clean -d DBNAME pathgen.dump`.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="Database URL (default: $PATHGEN_DATABASE_URL, else the SQLite file).")
    commands = parser.add_subparsers(dest="command", required=True)
    backup = commands.add_parser("backup", help="Copy the SQLite database to a file, safely while the app runs.")
    backup.add_argument("destination", help="The backup file to write (must not exist).")
    restore = commands.add_parser("restore", help="Replace the SQLite database's contents with a backup.")
    restore.add_argument("source", help="A backup written by `backup`.")
    restore.add_argument("--yes", action="store_true", help="Confirm that the current contents may be overwritten.")
    export = commands.add_parser("export-assignment", help="Write one assignment's answers as CSV.")
    export.add_argument("code", help="The assignment code (e.g. ABCD-2345).")
    export.add_argument("--output", default=None, help="CSV file to write (default: standard output).")
    return parser.parse_args(argv)


def sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise SystemExit(POSTGRES_HINT if parsed.get_backend_name() == "postgresql" else
                         f"Backups are supported for SQLite only, not {parsed.get_backend_name()}.")
    if not parsed.database or parsed.database == ":memory:":
        raise SystemExit("An in-memory database cannot be backed up.")
    return Path(parsed.database).expanduser()


def backup(url: str, destination: Path) -> None:
    """SQLite's online backup API: a consistent snapshot even while the app writes (WAL included)."""
    if destination.exists():
        raise SystemExit(f"{destination} exists; choose a new file name.")
    source_path = sqlite_path(url)
    if not source_path.exists():
        raise SystemExit(f"No database at {source_path}.")
    with sqlite3.connect(source_path) as source, sqlite3.connect(destination) as target:
        source.backup(target)
    source.close()
    target.close()


def restore(url: str, source_path: Path) -> None:
    """Copies the backup over the live database through the backup API (so open connections see it),
    then upgrades its schema in case the backup predates a migration."""
    target_path = sqlite_path(url)
    with sqlite3.connect(f"file:{source_path}?mode=ro", uri=True) as source:
        if source.execute("SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'").fetchone()[0] != 1:
            raise SystemExit(f"{source_path} is not a PathGen database backup.")
        with sqlite3.connect(target_path, timeout=30) as target:
            source.backup(target)
        target.close()
    source.close()
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()


def export_assignment(url: str, code: str) -> str:
    storage = Storage(make_engine(url))
    try:
        code = normalise_code(code)
        record = storage.assignment(code)
        if record is None:
            raise SystemExit(f"No assignment {code} in this database.")
        return results_csv(code, [Slide.from_dict(s) for s in record.slides], storage.answers(code))
    except ClassroomError as error:
        raise SystemExit(str(error)) from error
    finally:
        storage.close()


def main(args: argparse.Namespace) -> int:
    url = database_url(args.url)
    if args.command == "backup":
        backup(url, Path(args.destination))
        print(f"Backed up {sqlite_path(url)} to {args.destination}.")
    elif args.command == "restore":
        if not args.yes:
            raise SystemExit("Restoring overwrites every assignment and answer in the database; add --yes to confirm.")
        restore(url, Path(args.source))
        print(f"Restored {args.source} into {sqlite_path(url)}.")
    else:
        text = export_assignment(url, args.code)
        if args.output:
            Path(args.output).write_text(text)
            print(f"Wrote {text.count(chr(10)) - 1} answers to {args.output}.")
        else:
            sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))

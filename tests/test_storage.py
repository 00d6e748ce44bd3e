"""The storage module against real databases: SQLite always, PostgreSQL when PATHGEN_TEST_POSTGRES_URL names a
server (`.ci/run` starts a throw-away one). Every test runs on both."""

import os
import sqlite3
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from pathgen import ops
from pathgen.classroom import ClassroomError
from pathgen.storage import Storage, database_url, schema_revision
from pathgen.storage.models import Base

POSTGRES_ENV = "PATHGEN_TEST_POSTGRES_URL"
SLIDES = [{"source": "bank", "index": 3, "label": 0}, {"source": "real", "index": 5, "label": 7},
          {"source": "bank", "index": 9, "label": 7}]
TOKEN, OTHER_TOKEN = "a" * 32, "b" * 32


def reset_postgres(url: str) -> None:
    engine = create_engine(database_url(url))
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pathgen.sqlite3'}"
    postgres = os.environ.get(POSTGRES_ENV)
    if not postgres:
        pytest.skip(f"{POSTGRES_ENV} is not set, so there is no PostgreSQL server for this run "
                    "(`bash .ci/run` starts a throw-away one)")
    reset_postgres(postgres)
    return postgres


@pytest.fixture
def storage(url):
    store = Storage.from_url(url)
    yield store
    store.close()


def new_assignment(storage: Storage) -> str:
    return storage.create_assignment({"mode": "label"}, SLIDES).code


def test_migrations_create_the_schema_the_models_describe(storage, url):
    assert schema_revision(storage.engine) == "0001"
    assert {"assignments", "students", "answers", "realism_counts", "app_secrets", "alembic_version"} <= \
        set(inspect(storage.engine).get_table_names())
    with storage.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    again = Storage.from_url(url)  # a restart upgrades an up-to-date schema without complaint
    assert schema_revision(again.engine) == "0001"
    again.close()


def test_realism_counts_accumulate_atomically(storage):
    threads = [threading.Thread(target=lambda: [storage.record_realism_judgement("bank:7", True, i % 2 == 0)
                                                for i in range(10)]) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    storage.record_realism_judgement("real:1", False, False)
    assert storage.realism_counts() == [
        {"tile_key": "bank:7", "is_synthetic": True, "shown": 60, "judged_synthetic": 30},
        {"tile_key": "real:1", "is_synthetic": False, "shown": 1, "judged_synthetic": 0}]
    with pytest.raises(ValueError, match="tile key"):
        storage.record_realism_judgement("x" * 500, True, True)


def test_join_resumes_with_the_same_token_and_never_hands_a_nickname_over(storage):
    code = new_assignment(storage)
    first = storage.join(code, "Ana", TOKEN)
    assert not first.resumed and first.answered == {}
    assert storage.record_answer(first.id, 1, "stroma", True, False, 900)
    again = storage.join(code, "ANA", TOKEN)  # nicknames match case-insensitively
    assert again.resumed and again.id == first.id and again.answered == {1: "stroma"}
    with pytest.raises(ClassroomError, match="already uses that nickname"):
        storage.join(code, "ana", OTHER_TOKEN)
    with pytest.raises(ClassroomError, match="No assignment has that code"):
        storage.join("ZZZZZZZZ", "Ana", TOKEN)
    assert storage.close_assignment(code)
    with pytest.raises(ClassroomError, match="closed"):
        storage.join(code, "Ben", TOKEN)
    with pytest.raises(ClassroomError, match="closed"):
        storage.record_answer(first.id, 0, "adipose", True, True, 900)


def test_a_slide_is_answered_once_and_the_first_answer_stays(storage):
    code = new_assignment(storage)
    student = storage.join(code, "Ana", TOKEN)
    assert storage.record_answer(student.id, 0, "adipose", True, True, 1000)
    assert not storage.record_answer(student.id, 0, "mucus", False, True, 2000)
    [row] = storage.answers(code)
    assert (row.nickname, row.slide, row.answer, row.correct, row.synthetic, row.response_ms) == \
        ("Ana", 0, "adipose", True, True, 1000)


@pytest.mark.parametrize("writers", [2, 8])
def test_simultaneous_answers_to_one_slide_store_exactly_one(storage, writers):
    code = new_assignment(storage)
    student = storage.join(code, "Ana", TOKEN)
    barrier, results = threading.Barrier(writers), []

    def answer(i: int) -> None:
        barrier.wait()
        results.append(storage.record_answer(student.id, 2, f"answer{i}", i == 0, True, 100 + i))

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * (writers - 1) + [True]
    assert len(storage.answers(code)) == 1


def test_assignments_keep_their_students_apart_and_delete_removes_everything(storage):
    one, two = new_assignment(storage), new_assignment(storage)
    assert one != two
    ana, ben = storage.join(one, "Ana", TOKEN), storage.join(two, "Ana", OTHER_TOKEN)  # same nickname, two classes
    storage.record_answer(ana.id, 0, "adipose", True, True, 500)
    storage.record_answer(ben.id, 0, "stroma", False, True, 700)
    assert [a.answer for a in storage.answers(one)] == ["adipose"]
    assert [s.nickname for s in storage.students(two)] == ["Ana"]
    assert storage.delete_assignment(one) and not storage.delete_assignment(one)
    assert storage.assignment(one) is None and storage.answers(one) == [] and storage.students(one) == []
    assert [a.answer for a in storage.answers(two)] == ["stroma"] and storage.count_answers() == 1


def test_values_travel_as_parameters_not_sql(storage):
    code = new_assignment(storage)
    nasty = "x'); DROP TABLE answers; --"
    student = storage.join(code, nasty, TOKEN)
    storage.record_answer(student.id, 0, nasty[:32], False, True, 1)
    assert storage.answers(code)[0].nickname == nasty and storage.answers(code)[0].answer == nasty[:32]
    assert storage.assignment("' OR '1'='1") is None


def test_app_secrets_are_made_once_and_kept(storage, url):
    secret = storage.secret("browser-state")
    assert len(secret) >= 24 and storage.secret("browser-state") == secret
    other = Storage.from_url(url)
    assert other.secret("browser-state") == secret
    other.close()


def test_sqlite_uses_wal_a_busy_timeout_and_immediate_transactions(tmp_path):
    storage = Storage.from_url(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    # An open transaction holds the write lock from its BEGIN, even before it writes anything.
    with storage.engine.begin() as connection:
        connection.exec_driver_sql("SELECT 1")
        other = sqlite3.connect(tmp_path / "db.sqlite3", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    storage.close()


def test_default_database_is_a_sqlite_file_in_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PATHGEN_DATABASE_URL", raising=False)
    monkeypatch.setenv("PATHGEN_STATE_DIR", str(tmp_path / "state"))
    assert database_url() == f"sqlite:///{tmp_path / 'state' / 'pathgen.sqlite3'}"
    monkeypatch.setenv("PATHGEN_DATABASE_URL", "postgresql://u:p@db.example/pathgen")
    assert database_url() == "postgresql+psycopg://u:p@db.example/pathgen"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_backup_restore_and_export_on_sqlite(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    storage = Storage.from_url(url)
    code = new_assignment(storage)
    ana = storage.join(code, "Ana", TOKEN)
    storage.record_answer(ana.id, 0, "adipose", True, True, 1234)
    ops.main(ops.parse_args(["--url", url, "backup", str(tmp_path / "backup.sqlite3")]))
    storage.record_answer(ana.id, 1, "mucus", False, False, 99)  # after the backup: gone once restored
    with pytest.raises(SystemExit, match="--yes"):
        ops.main(ops.parse_args(["--url", url, "restore", str(tmp_path / "backup.sqlite3")]))
    ops.main(ops.parse_args(["--url", url, "restore", str(tmp_path / "backup.sqlite3"), "--yes"]))
    assert [(a.slide, a.answer) for a in storage.answers(code)] == [(0, "adipose")]  # the open engine sees it
    capsys.readouterr()
    ops.main(ops.parse_args(["--url", url, "export-assignment", code.lower()]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("assignment,nickname,slide") and lines[1].startswith(f"{code},Ana,0,bank,3,adipose,adipose,1,1,1234,")
    with pytest.raises(SystemExit, match="not a PathGen database"):
        sqlite3.connect(tmp_path / "empty.sqlite3").close()
        ops.restore(url, tmp_path / "empty.sqlite3")
    storage.close()


def test_postgresql_backups_point_to_pg_dump():
    with pytest.raises(SystemExit, match="pg_dump"):
        ops.sqlite_path("postgresql://u@localhost/pathgen")

"""`Storage`: every read and write PathGen makes to its database, through the SQLAlchemy ORM.

Each method runs in its own short transaction and returns plain frozen dataclasses, never ORM objects,
so that nothing outside this module holds a session. All queries are built by the ORM, so values are
always sent as bound parameters.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..classroom import ClassroomError, new_code
from ..classroom_results import AnswerRecord
from .engine import database_url, make_engine, upgrade_schema
from .models import Answer, AppSecret, Assignment, RealismCount, Student

CODE_ATTEMPTS = 5


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def token_hash(token: str) -> str:
    # Only a hash is kept, so a copy of the database does not let anyone resume as a student.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AssignmentRecord:
    id: int
    code: str
    settings: dict
    slides: list
    created_at: datetime
    closed_at: datetime | None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


@dataclass(frozen=True)
class StudentRecord:
    id: int
    code: str
    nickname: str
    resumed: bool
    answered: dict[int, str]  # slide -> the answer already stored


@dataclass(frozen=True)
class StudentSummary:
    id: int
    nickname: str
    joined_at: datetime


def _assignment_record(row: Assignment) -> AssignmentRecord:
    return AssignmentRecord(id=row.id, code=row.code, settings=dict(row.settings), slides=list(row.slides),
                            created_at=row.created_at, closed_at=row.closed_at)


class Storage:
    """PathGen's database: classroom assignments and anonymous realism counts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str | None = None) -> Storage:
        """Connects (see `pathgen.storage.engine.database_url` for the default) and upgrades the schema."""
        engine = make_engine(database_url(url))
        upgrade_schema(engine)
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self._sessions()

    # ----- app secrets ---------------------------------------------------------------------------------
    def secret(self, name: str) -> str:
        """A random value made on first use and kept in the database, the same for every replica."""
        with self._session() as session, session.begin():
            if (row := session.get(AppSecret, name)) is not None:
                return row.value
        try:
            with self._session() as session, session.begin():
                session.add(AppSecret(name=name, value=secrets.token_urlsafe(24)))
        except IntegrityError:
            pass  # another replica made it first; use theirs
        with self._session() as session:
            return session.get(AppSecret, name).value

    # ----- realism counts (issue 17) -------------------------------------------------------------------
    def record_realism_judgement(self, tile_key: str, is_synthetic: bool, judged_synthetic: bool) -> None:
        """Adds one anonymous judgement of one tile; an atomic upsert, so concurrent calls all count."""
        if not isinstance(tile_key, str) or not 0 < len(tile_key) <= 128:
            raise ValueError("A tile key must be a string of 1 to 128 characters.")
        insert = postgresql_insert if self.dialect == "postgresql" else sqlite_insert
        statement = insert(RealismCount).values(tile_key=tile_key, is_synthetic=bool(is_synthetic), shown=1,
                                                judged_synthetic=int(bool(judged_synthetic)))
        statement = statement.on_conflict_do_update(
            index_elements=[RealismCount.tile_key],
            set_={"shown": RealismCount.shown + 1,
                  "judged_synthetic": RealismCount.judged_synthetic + statement.excluded.judged_synthetic})
        with self._session() as session, session.begin():
            session.execute(statement)

    def realism_counts(self) -> list[dict]:
        """Every tile's tallies: tile_key, is_synthetic, shown, judged_synthetic (sorted by tile_key)."""
        with self._session() as session:
            rows = session.scalars(select(RealismCount).order_by(RealismCount.tile_key)).all()
            return [{"tile_key": r.tile_key, "is_synthetic": r.is_synthetic, "shown": r.shown,
                     "judged_synthetic": r.judged_synthetic} for r in rows]

    # ----- assignments ---------------------------------------------------------------------------------
    def create_assignment(self, settings: dict, slides: list[dict],
                          make_code: Callable[[], str] = new_code) -> AssignmentRecord:
        """Stores a new assignment under a fresh random code (retrying on the rare collision)."""
        for _ in range(CODE_ATTEMPTS):
            row = Assignment(code=make_code(), settings=settings, slides=slides, created_at=utc_now())
            try:
                with self._session() as session, session.begin():
                    session.add(row)
                return _assignment_record(row)
            except IntegrityError:
                continue
        raise RuntimeError(f"No unused assignment code after {CODE_ATTEMPTS} tries.")

    def assignment(self, code: str) -> AssignmentRecord | None:
        with self._session() as session:
            row = session.scalar(select(Assignment).where(Assignment.code == code))
            return None if row is None else _assignment_record(row)

    def assignments(self) -> list[AssignmentRecord]:
        """Every assignment, newest first."""
        with self._session() as session:
            rows = session.scalars(select(Assignment).order_by(Assignment.created_at.desc(), Assignment.id.desc()))
            return [_assignment_record(row) for row in rows]

    def close_assignment(self, code: str) -> bool:
        """Stops new joins and answers; False when there is no such assignment."""
        with self._session() as session, session.begin():
            row = session.scalar(select(Assignment).where(Assignment.code == code))
            if row is None:
                return False
            row.closed_at = row.closed_at or utc_now()
            return True

    def delete_assignment(self, code: str) -> bool:
        """Deletes an assignment with its students and answers; False when there is no such assignment."""
        with self._session() as session, session.begin():
            assignment_id = session.scalar(select(Assignment.id).where(Assignment.code == code))
            if assignment_id is None:
                return False
            students = select(Student.id).where(Student.assignment_id == assignment_id)
            session.execute(delete(Answer).where(Answer.student_id.in_(students)))
            session.execute(delete(Student).where(Student.assignment_id == assignment_id))
            session.execute(delete(Assignment).where(Assignment.id == assignment_id))
            return True

    # ----- students ------------------------------------------------------------------------------------
    def join(self, code: str, nickname: str, token: str) -> StudentRecord:
        """Joins an open assignment, or resumes the attempt this browser token started under this nickname.

        Raises ClassroomError when the code is unknown, the assignment is closed, or another browser
        holds the nickname (a nickname never takes over someone else's attempt).
        """
        for _ in range(2):  # a second pass only when a concurrent join took the nickname first
            try:
                return self._join_once(code, nickname, token)
            except IntegrityError:
                continue
        raise ClassroomError("That nickname was just taken; pick another.")

    def _join_once(self, code: str, nickname: str, token: str) -> StudentRecord:
        with self._session() as session, session.begin():
            assignment = session.scalar(select(Assignment).where(Assignment.code == code))
            if assignment is None:
                raise ClassroomError("No assignment has that code; check it with your instructor.")
            if assignment.closed_at is not None:
                raise ClassroomError("This assignment is closed.")
            student = session.scalar(select(Student).where(Student.assignment_id == assignment.id,
                                                           Student.nickname_key == nickname.casefold()))
            if student is not None:
                if not secrets.compare_digest(student.token_hash, token_hash(token)):
                    raise ClassroomError("Someone in this assignment already uses that nickname; pick another. "
                                         "(To resume your own attempt, use the browser you started on.)")
                answered = dict(session.execute(select(Answer.slide, Answer.answer)
                                                .where(Answer.student_id == student.id)).all())
                return StudentRecord(student.id, code, student.nickname, resumed=True, answered=answered)
            student = Student(assignment_id=assignment.id, nickname=nickname, nickname_key=nickname.casefold(),
                              token_hash=token_hash(token), joined_at=utc_now())
            session.add(student)
            session.flush()
            return StudentRecord(student.id, code, student.nickname, resumed=False, answered={})

    def record_answer(self, student_id: int, slide: int, answer: str, correct: bool, synthetic: bool,
                      response_ms: int) -> bool:
        """Stores one answer; False when this student had already answered this slide (the first stays).

        Raises ClassroomError when the assignment has been closed or deleted meanwhile.
        """
        try:
            with self._session() as session, session.begin():
                closed = session.execute(select(Assignment.closed_at).join(Student, Student.assignment_id == Assignment.id)
                                         .where(Student.id == student_id)).first()
                if closed is None:
                    raise ClassroomError("This assignment no longer exists.")
                if closed[0] is not None:
                    raise ClassroomError("This assignment has been closed; no more answers are taken.")
                session.add(Answer(student_id=student_id, slide=slide, answer=answer, correct=bool(correct),
                                   synthetic=bool(synthetic), response_ms=int(response_ms), answered_at=utc_now()))
            return True
        except IntegrityError:
            return False

    # ----- results (instructor only) -------------------------------------------------------------------
    def students(self, code: str) -> list[StudentSummary]:
        with self._session() as session:
            rows = session.execute(select(Student.id, Student.nickname, Student.joined_at)
                                   .join(Assignment, Student.assignment_id == Assignment.id)
                                   .where(Assignment.code == code).order_by(Student.id)).all()
            return [StudentSummary(*row) for row in rows]

    def answers(self, code: str) -> list[AnswerRecord]:
        """Every stored answer of one assignment, ordered by student then time."""
        with self._session() as session:
            rows = session.execute(
                select(Answer.student_id, Student.nickname, Answer.slide, Answer.answer, Answer.correct,
                       Answer.synthetic, Answer.response_ms, Answer.answered_at)
                .join(Student, Answer.student_id == Student.id).join(Assignment, Student.assignment_id == Assignment.id)
                .where(Assignment.code == code).order_by(Answer.student_id, Answer.answered_at, Answer.id)).all()
            return [AnswerRecord(*row) for row in rows]

    def count_answers(self) -> int:
        with self._session() as session:
            return int(session.scalar(select(func.count()).select_from(Answer)))

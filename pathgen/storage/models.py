"""The database tables, as SQLAlchemy 2 declarative models.

Times are naive UTC. The schema itself is created and upgraded by the alembic migrations in
`pathgen/migrations`, never from these classes directly, so that a deployed database can be upgraded
in place; `tests/test_storage.py` checks that the migrations and these models agree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CODE_COLUMN_LENGTH = 16
NICKNAME_COLUMN_LENGTH = 64
ANSWER_COLUMN_LENGTH = 32
TILE_KEY_LENGTH = 128


class Base(DeclarativeBase):
    pass


class Assignment(Base):
    """A quiz an instructor set: its settings and the fixed draw of slides every student gets."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_COLUMN_LENGTH), unique=True)
    settings: Mapped[dict] = mapped_column(JSON)
    slides: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Student(Base):
    """One attempt at an assignment under a nickname; the browser token (hashed) lets it resume."""

    __tablename__ = "students"
    # nickname_key is the case-folded nickname, so "Ana" and "ana" cannot both join one assignment.
    __table_args__ = (UniqueConstraint("assignment_id", "nickname_key", name="uq_students_assignment_nickname"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    nickname: Mapped[str] = mapped_column(String(NICKNAME_COLUMN_LENGTH))
    nickname_key: Mapped[str] = mapped_column(String(NICKNAME_COLUMN_LENGTH))
    token_hash: Mapped[str] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column(DateTime)


class Answer(Base):
    """One student's answer to one slide of the draw; the unique constraint makes it the only one."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("student_id", "slide", name="uq_answers_student_slide"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    slide: Mapped[int] = mapped_column(Integer)  # position in the assignment's draw, not in the student's order
    answer: Mapped[str] = mapped_column(String(ANSWER_COLUMN_LENGTH))
    correct: Mapped[bool] = mapped_column(Boolean)
    synthetic: Mapped[bool] = mapped_column(Boolean)
    response_ms: Mapped[int] = mapped_column(Integer)
    answered_at: Mapped[datetime] = mapped_column(DateTime)


class RealismCount(Base):
    """Anonymous tallies for the real-or-synthetic round: how often a tile was shown and called synthetic."""

    __tablename__ = "realism_counts"

    tile_key: Mapped[str] = mapped_column(String(TILE_KEY_LENGTH), primary_key=True)
    is_synthetic: Mapped[bool] = mapped_column(Boolean)
    shown: Mapped[int] = mapped_column(Integer)
    judged_synthetic: Mapped[int] = mapped_column(Integer)


class AppSecret(Base):
    """Random values the app must keep across restarts (e.g. the key gr.BrowserState encrypts with)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))

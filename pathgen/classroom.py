"""Classroom rules: assignment codes, nicknames, settings, the fixed draw of slides, answer checking,
throttling of repeated failures and the instructor checks (password, or Hugging Face sign-in from a named
organisation). Pure functions, no database."""

from __future__ import annotations

import hmac
import os
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from .bank import ImageBank
from .checks import is_number_in
from .data import CLASS_NAMES, NUM_CLASSES, TISSUE_CLASSES, resolve_class
from .quiz import DIFFICULTIES, MAX_QUESTIONS, new_quiz

# No 0/O, 1/I/L: codes are read aloud and copied from a projector. 31 symbols ** 8 ≈ 8.5e11 codes.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
NICKNAME_MAX = 24
# A letter or digit first (so a nickname can never start a spreadsheet formula in the CSV export),
# then letters, digits, spaces, dots, hyphens and underscores.
NICKNAME_PATTERN = re.compile(r"[^\W_][\w .-]*")
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
MODES = ("label", "real_or_synthetic")
REAL, SYNTHETIC = "real", "synthetic"
PASSWORD_ENV = "PATHGEN_INSTRUCTOR_PASSWORD"
# Comma-separated Hugging Face organisation handles whose members may sign in as instructors on a Space.
ORGS_ENV = "PATHGEN_INSTRUCTOR_ORGS"
MAX_INPUT_ECHO = 40


class ClassroomError(ValueError):
    """A request that cannot be met; the message is meant for the student or instructor."""


def _shown(value: object) -> str:
    """A short, printable rendering of a user's input for error messages (escaping is the UI's job)."""
    text = repr(value)
    return text if len(text) <= MAX_INPUT_ECHO else text[: MAX_INPUT_ECHO - 1] + "…"


# ----- codes, nicknames, browser tokens --------------------------------------------------------------------
def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: object) -> str:
    """The canonical code from what a student typed (any case, spaces or hyphens allowed)."""
    if not isinstance(text, str) or len(text) > 4 * CODE_LENGTH:
        raise ClassroomError(f"An assignment code is {CODE_LENGTH} letters and digits, e.g. ABCD-2345.")
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        raise ClassroomError(f"An assignment code is {CODE_LENGTH} letters and digits, e.g. ABCD-2345; "
                             f"got {_shown(text)}.")
    return code


def format_code(code: str) -> str:
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def validate_nickname(text: object) -> str:
    """The nickname, tidied (Unicode NFKC, single spaces), or ClassroomError saying what is allowed."""
    if not isinstance(text, str) or len(text) > 4 * NICKNAME_MAX:
        raise ClassroomError(f"A nickname is 1 to {NICKNAME_MAX} letters, digits, spaces, dots, hyphens or underscores.")
    nickname = " ".join(unicodedata.normalize("NFKC", text).split())
    if not 1 <= len(nickname) <= NICKNAME_MAX or not NICKNAME_PATTERN.fullmatch(nickname):
        raise ClassroomError(f"A nickname is 1 to {NICKNAME_MAX} letters, digits, spaces, dots, hyphens or underscores, "
                             f"starting with a letter or digit; got {_shown(text)}. No real name or e-mail needed.")
    return nickname


def new_token() -> str:
    return secrets.token_urlsafe(24)


def valid_token(token: object) -> bool:
    return isinstance(token, str) and TOKEN_PATTERN.fullmatch(token) is not None


# ----- settings and the fixed draw ------------------------------------------------------------------------
@dataclass(frozen=True)
class AssignmentSettings:
    """What an instructor chose. `seed` fixes the draw; `shuffle` gives each student their own order."""

    n_questions: int
    difficulty: str = "mixed"
    classes: tuple[int, ...] = tuple(range(NUM_CLASSES))
    real_share: float = 0.5
    mode: str = "label"
    shuffle: bool = True
    seed: int = 0

    @classmethod
    def parse(cls, n_questions: object, difficulty: object, classes: object, real_share_percent: object,
              mode: object, shuffle: object = True, seed: int | None = None) -> AssignmentSettings:
        """Validated settings from raw UI or API values (real share in per cent)."""
        if isinstance(n_questions, bool) or not isinstance(n_questions, (int, float)) \
                or not float(n_questions).is_integer() or not 1 <= n_questions <= MAX_QUESTIONS:
            raise ClassroomError(f"Questions must be a whole number from 1 to {MAX_QUESTIONS}; got {_shown(n_questions)}.")
        if difficulty not in DIFFICULTIES:
            raise ClassroomError(f"Difficulty must be one of {', '.join(DIFFICULTIES)}; got {_shown(difficulty)}.")
        if mode not in MODES:
            raise ClassroomError(f"The kind of quiz must be one of {', '.join(MODES)}; got {_shown(mode)}.")
        if not is_number_in(real_share_percent, 0.0, 100.0):
            raise ClassroomError(f"The share of real tiles must be a number from 0 to 100; got {_shown(real_share_percent)}.")
        if not isinstance(classes, (list, tuple)) or not classes or len(classes) > NUM_CLASSES:
            raise ClassroomError("Choose at least one tissue class.")
        try:
            indices = tuple(sorted({resolve_class(c).index for c in classes}))
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise ClassroomError(f"Unknown tissue class in {_shown(classes)}.") from error
        if not isinstance(shuffle, bool):
            raise ClassroomError(f"Shuffle must be true or false; got {_shown(shuffle)}.")
        return cls(n_questions=int(n_questions), difficulty=str(difficulty), classes=indices,
                   real_share=float(real_share_percent) / 100, mode=str(mode), shuffle=shuffle,
                   seed=secrets.randbits(32) if seed is None else int(seed))

    def to_dict(self) -> dict:
        return {**asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: dict) -> AssignmentSettings:
        return cls(**{**data, "classes": tuple(data["classes"])})


@dataclass(frozen=True)
class Slide:
    """One slide of a draw: a bank (synthetic) or real tile, by its index there, and its tissue class."""

    source: str  # "bank" or "real"
    index: int
    label: int

    @property
    def synthetic(self) -> bool:
        return self.source == "bank"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Slide:
        return cls(source=str(data["source"]), index=int(data["index"]), label=int(data["label"]))


def draw_slides(settings: AssignmentSettings, bank: ImageBank, real_labels: np.ndarray,
                threshold: float | None = None) -> list[Slide]:
    """The assignment's fixed draw: synthetic slides chosen as the quiz chooses them, real ones spread
    evenly over the chosen classes, mixed in an order fixed by the settings' seed."""
    n_real = round(settings.n_questions * settings.real_share)
    n_synthetic = settings.n_questions - n_real
    rng = np.random.default_rng(settings.seed)
    slides = []
    if n_synthetic:
        quiz = new_quiz(bank, n_synthetic, settings.difficulty, list(settings.classes), seed=settings.seed,
                        threshold=threshold)
        slides += [Slide("bank", int(i), int(bank.labels[i])) for i in quiz.questions]
    pools = {c: list(rng.permutation(np.flatnonzero(np.asarray(real_labels) == c))) for c in settings.classes}
    if n_real > sum(len(p) for p in pools.values()):
        raise ClassroomError(f"Only {sum(len(p) for p in pools.values())} real tiles of the chosen classes are "
                             f"available; lower the share of real tiles or the number of questions.")
    while n_real:
        for c in rng.permutation(sorted(c for c, pool in pools.items() if pool))[:n_real]:
            slides.append(Slide("real", int(pools[int(c)].pop()), int(c)))
            n_real -= 1
    return [slides[i] for i in rng.permutation(len(slides))]


def student_order(n_slides: int, student_id: int, shuffle: bool = True) -> list[int]:
    """The order in which one student sees the draw's slides: fixed per student, so resuming keeps it."""
    if not shuffle:
        return list(range(n_slides))
    return [int(i) for i in np.random.default_rng([int(student_id), n_slides]).permutation(n_slides)]


def choices(mode: str) -> tuple[tuple[str, str], ...]:
    """(shown text, value) pairs a student picks from."""
    if mode == "real_or_synthetic":
        return (("Real tissue", REAL), ("Synthetic (generated)", SYNTHETIC))
    return tuple((c.name, c.key) for c in TISSUE_CLASSES)


def check_answer(mode: str, slide: Slide, answer: object) -> tuple[str, bool]:
    """The canonical answer value and whether it is right; ClassroomError for an answer not on offer."""
    if mode == "real_or_synthetic":
        if answer not in (REAL, SYNTHETIC):
            raise ClassroomError(f"Answer “{REAL}” or “{SYNTHETIC}”; got {_shown(answer)}.")
        return str(answer), (answer == SYNTHETIC) == slide.synthetic
    try:
        chosen = resolve_class(answer)
    except (KeyError, ValueError, TypeError, IndexError) as error:
        raise ClassroomError(f"Pick one of the nine tissue types; got {_shown(answer)}.") from error
    return chosen.key, chosen.index == slide.label


def truth_text(mode: str, slide: Slide) -> str:
    kind = "synthetic" if slide.synthetic else "real"
    return f"{kind} tile of {CLASS_NAMES[slide.label]}" if mode == "real_or_synthetic" else \
        f"{CLASS_NAMES[slide.label]} ({kind} tile)"


# ----- abuse limits -----------------------------------------------------------------------------------------
class FailureThrottle:
    """Slows repeated failures per client: after `free` failures within `window_s`, each further try must
    wait 2, 4, 8 ... seconds (at most `max_wait_s`) after the last failure. Thread-safe, bounded memory."""

    def __init__(self, free: int = 5, window_s: float = 600.0, max_wait_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        self.free, self.window_s, self.max_wait_s, self.clock, self.max_clients = free, window_s, max_wait_s, clock, max_clients
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (count, last failure)
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next try (0: go ahead)."""
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
            now = self.clock()
            if count == 0 or now - last > self.window_s:
                return 0.0
            penalty = 0.0 if count < self.free else min(2.0 ** (count - self.free + 1), self.max_wait_s)
            return max(0.0, last + penalty - now)

    def failure(self, client: str) -> None:
        with self._lock:
            count, last = self._failures.pop(client, (0, 0.0))
            now = self.clock()
            self._failures[client] = (1 if now - last > self.window_s else count + 1, now)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def success(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def instructor_password_ok(given: object, expected: str | None = None) -> bool:
    """True only for a non-empty string equal (in constant time) to a configured, non-empty password."""
    expected = os.environ.get(PASSWORD_ENV, "") if expected is None else expected
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def instructor_orgs(value: str | None = None) -> frozenset[str]:
    """The organisation handles named in $PATHGEN_INSTRUCTOR_ORGS (or `value`), lower-cased; empty when unset."""
    value = os.environ.get(ORGS_ENV, "") if value is None else value
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


def instructor_by_sign_in(profile: Mapping | None, orgs: frozenset[str] | None = None) -> bool:
    """True when a Hugging Face sign-in profile (OpenID userinfo) lists membership of an instructor organisation.

    Only the organisation's handle (`preferred_username`) counts: display names are not unique."""
    orgs = instructor_orgs() if orgs is None else orgs
    if not orgs or not isinstance(profile, Mapping):
        return False
    memberships = profile.get("orgs")
    if not isinstance(memberships, list):
        return False
    return any(isinstance(org, Mapping) and str(org.get("preferred_username", "")).lower() in orgs
               for org in memberships)

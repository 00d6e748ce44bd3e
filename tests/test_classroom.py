"""Classroom rules: codes, nicknames, settings, the fixed draw, answer checks, class statistics, CSV, throttling
and the instructor password. Pure functions, on the shipped bank and real tiles."""

import csv
import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pathgen.bank import ImageBank
from pathgen.classroom import (
    CODE_ALPHABET,
    CODE_LENGTH,
    AssignmentSettings,
    ClassroomError,
    FailureThrottle,
    Slide,
    check_answer,
    draw_slides,
    format_code,
    instructor_by_sign_in,
    instructor_orgs,
    instructor_password_ok,
    new_code,
    normalise_code,
    student_order,
    valid_token,
    validate_nickname,
)
from pathgen.classroom_results import CSV_COLUMNS, AnswerRecord, class_results, results_csv

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def bank() -> ImageBank:
    return ImageBank.load(ASSETS / "bank")


@pytest.fixture(scope="module")
def real_labels() -> np.ndarray:
    with np.load(ASSETS / "real_examples.npz") as arrays:
        return arrays["labels"].astype(np.int64)


def test_codes_are_long_random_and_unambiguous():
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("01ILO") & set(CODE_ALPHABET)
    assert len(CODE_ALPHABET) ** CODE_LENGTH > 5e11  # far too many to guess in bulk behind the throttle


def test_codes_are_normalised_and_checked():
    assert normalise_code(" abcd-2345 ") == "ABCD2345" and format_code("ABCD2345") == "ABCD-2345"
    for bad in ("ABCD234", "ABCD23450", "ABCD-O345", "<script>", 12345678, None, "A" * 10_000):
        with pytest.raises(ClassroomError) as error:
            normalise_code(bad)
        assert len(str(error.value)) < 200


def test_nicknames_are_tidied_and_limited():
    assert validate_nickname("  Ana   María ") == "Ana María"
    assert validate_nickname("owl_42.b-c") == "owl_42.b-c"
    for bad in ("", "   ", "<b>Ana</b>", "=HYPERLINK(1)", "-1", "a" * 25, "Ana\x00", None, 7, "x" * 100_000):
        with pytest.raises(ClassroomError) as error:
            validate_nickname(bad)
        assert len(str(error.value)) < 250


def test_browser_tokens_must_look_random():
    assert valid_token("A" * 16) and valid_token("a-b_c" * 6)
    assert not any(valid_token(t) for t in ("", "short", "x" * 65, "bad token with spaces!", None, 12))


def test_settings_are_validated_and_round_trip():
    settings = AssignmentSettings.parse(12, "hard", ["stroma", "Smooth muscle", 0], 25, "label", False, seed=3)
    assert settings.classes == (0, 5, 7) and settings.real_share == 0.25 and not settings.shuffle
    assert AssignmentSettings.from_dict(settings.to_dict()) == settings
    for args in ((0, "mixed", ["stroma"], 50, "label"), (3.5, "mixed", ["stroma"], 50, "label"),
                 (True, "mixed", ["stroma"], 50, "label"), (5, "brutal", ["stroma"], 50, "label"),
                 (5, "mixed", [], 50, "label"), (5, "mixed", ["bone"], 50, "label"),
                 (5, "mixed", ["stroma"], 101, "label"), (5, "mixed", ["stroma"], "50", "label"),
                 (5, "mixed", ["stroma"], 50, "essay"), (5, "mixed", "stroma", 50, "label")):
        with pytest.raises(ClassroomError):
            AssignmentSettings.parse(*args)


def test_the_draw_is_fixed_by_its_seed_and_follows_the_settings(bank, real_labels):
    settings = AssignmentSettings.parse(10, "mixed", ["adipose", "stroma"], 40, "label", seed=11)
    slides = draw_slides(settings, bank, real_labels)
    assert slides == draw_slides(settings, bank, real_labels)
    assert len(slides) == 10 and sum(not s.synthetic for s in slides) == 4
    assert {s.label for s in slides} == {0, 7}
    assert all(bank.labels[s.index] == s.label if s.synthetic else real_labels[s.index] == s.label for s in slides)
    assert len({(s.source, s.index) for s in slides}) == 10  # no slide twice
    other = draw_slides(AssignmentSettings.parse(10, "mixed", ["adipose", "stroma"], 40, "label", seed=12), bank,
                        real_labels)
    assert other != slides
    with pytest.raises(ClassroomError, match="real tiles"):
        draw_slides(AssignmentSettings.parse(4, "mixed", ["adipose"], 100, "label", seed=1), bank, np.array([0, 0, 7]))


def test_each_student_has_a_fixed_order_of_the_same_slides():
    order = student_order(20, 5)
    assert sorted(order) == list(range(20)) and order == student_order(20, 5)
    assert order != student_order(20, 6)
    assert student_order(4, 5, shuffle=False) == [0, 1, 2, 3]


def test_answers_are_checked_in_both_kinds_of_quiz():
    synthetic_stroma, real_stroma = Slide("bank", 1, 7), Slide("real", 2, 7)
    assert check_answer("label", synthetic_stroma, "stroma") == ("stroma", True)
    assert check_answer("label", synthetic_stroma, "Adipose tissue") == ("adipose", False)
    assert check_answer("real_or_synthetic", synthetic_stroma, "synthetic") == ("synthetic", True)
    assert check_answer("real_or_synthetic", real_stroma, "synthetic") == ("synthetic", False)
    for mode, bad in (("label", "bone"), ("label", 99), ("label", "<b>" * 1000), ("real_or_synthetic", "stroma")):
        with pytest.raises(ClassroomError) as error:
            check_answer(mode, synthetic_stroma, bad)
        assert len(str(error.value)) < 200


def answer_row(student_id: int, nickname: str, slide: int, answer: str, correct: bool, synthetic: bool,
        response_ms: int) -> AnswerRecord:
    return AnswerRecord(student_id, nickname, slide, answer, correct, synthetic, response_ms,
                        datetime(2026, 1, 2, 3, 4, 5))


def test_class_results_count_what_was_answered():
    slides = [Slide("bank", 0, 0), Slide("real", 1, 7), Slide("bank", 2, 7)]
    rows = [answer_row(1, "Ana", 0, "adipose", True, True, 1000), answer_row(1, "Ana", 1, "stroma", True, False, 3000),
            answer_row(1, "Ana", 2, "smooth_muscle", False, True, 2000), answer_row(2, "Ben", 2, "smooth_muscle", False, True, 500)]
    results = class_results("label", slides, [(1, "Ana"), (2, "Ben"), (3, "Cy")], rows)
    assert (results.students, results.finished, results.answers.right, results.answers.asked) == (3, 1, 2, 4)
    assert {k: (t.right, t.asked) for k, t in results.per_class.items()} == \
        {"Adipose tissue": (1, 1), "Cancer-associated stroma": (1, 3)}
    assert (results.by_source["real"].right, results.by_source["real"].asked) == (1, 1)
    assert (results.by_source["synthetic"].right, results.by_source["synthetic"].asked) == (1, 3)
    assert results.confusion[7, 5] == 2 and results.confusion[0, 0] == 1 and results.confusion.sum() == 4
    assert results.hardest[0][0] == 2 and results.hardest[0][1].asked == 2
    ana, ben, cy = results.per_student
    assert (ana["answered"], ana["right"], ana["median_response_s"]) == (3, 2, 2.0)
    assert (ben["answered"], ben["accuracy"], cy["answered"], cy["accuracy"]) == (1, 0.0, 0, None)
    ros = class_results("real_or_synthetic", slides, [(1, "Ana")], [answer_row(1, "Ana", 1, "synthetic", False, False, 10)])
    assert ros.confusion_labels == ("real", "synthetic") and ros.confusion[0, 1] == 1


def test_csv_has_one_row_per_answer():
    slides = [Slide("bank", 4, 0), Slide("real", 9, 7)]
    rows = [answer_row(1, "Ana María", 1, "stroma", True, False, 1500)]
    parsed = list(csv.reader(io.StringIO(results_csv("ABCD2345", slides, rows))))
    assert tuple(parsed[0]) == CSV_COLUMNS
    assert parsed[1] == ["ABCD2345", "Ana María", "1", "real", "9", "stroma", "stroma", "1", "0", "1500",
                         "2026-01-02T03:04:05.000"]


def test_repeated_failures_are_slowed_per_client():
    now = [0.0]
    throttle = FailureThrottle(free=3, window_s=600, max_wait_s=30, clock=lambda: now[0])
    for _ in range(2):
        throttle.failure("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 0
    throttle.failure("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 2 and throttle.wait_s("10.0.0.2") == 0
    for _ in range(10):
        throttle.failure("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 30  # capped
    now[0] = 31.0
    assert throttle.wait_s("10.0.0.1") == 0
    throttle.success("10.0.0.1")
    throttle.failure("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 0  # a success starts the count afresh
    small = FailureThrottle(max_clients=3, clock=lambda: 0.0)
    for i in range(10):
        small.failure(str(i))
    assert len(small._failures) == 3


def test_instructor_password_is_refused_unless_configured_and_equal(monkeypatch):
    monkeypatch.delenv("PATHGEN_INSTRUCTOR_PASSWORD", raising=False)
    assert not instructor_password_ok("anything") and not instructor_password_ok("")
    monkeypatch.setenv("PATHGEN_INSTRUCTOR_PASSWORD", "")
    assert not instructor_password_ok("")
    monkeypatch.setenv("PATHGEN_INSTRUCTOR_PASSWORD", "s3cret")
    assert instructor_password_ok("s3cret")
    for wrong in ("", "s3cre", "s3cret ", "S3CRET", None, 0, ["s3cret"]):
        assert not instructor_password_ok(wrong)


def test_sign_in_counts_only_members_of_a_named_organisation(monkeypatch):
    member = {"preferred_username": "ana", "orgs": [{"preferred_username": "Path-Course", "name": "Pathology course"}]}
    monkeypatch.delenv("PATHGEN_INSTRUCTOR_ORGS", raising=False)
    assert instructor_orgs() == frozenset() and not instructor_by_sign_in(member)  # no organisation named: nobody
    monkeypatch.setenv("PATHGEN_INSTRUCTOR_ORGS", " path-course , other-lab,")
    assert instructor_orgs() == {"path-course", "other-lab"}
    assert instructor_by_sign_in(member)
    outsider = {"preferred_username": "bo", "orgs": [{"preferred_username": "elsewhere", "name": "path-course"}]}
    for profile in (outsider, None, {}, {"orgs": None}, {"orgs": ["path-course"]}, "path-course"):
        assert not instructor_by_sign_in(profile)  # a display name or a bare string is no membership

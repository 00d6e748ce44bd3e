import numpy as np
import pytest

from pathgen.bank import ImageBank
from pathgen.data import CLASS_NAMES, NUM_CLASSES, TISSUE_CLASSES
from pathgen.quiz import (
    MAX_QUESTIONS,
    QuizState,
    RealTiles,
    answer,
    new_quiz,
    review_mistakes,
    summary,
    transfer_verdict,
)

PER_CLASS = 12


def make_bank(per_class: int = PER_CLASS, classes: range = range(NUM_CLASSES), threshold: float = 0.9) -> ImageBank:
    """Each class's own-class confidence runs evenly from the threshold up to 1.0."""
    labels = np.repeat(np.array(list(classes), dtype=np.int64), per_class)
    n = len(labels)
    confidence = np.tile(np.linspace(threshold, 1.0, per_class), len(classes))
    probabilities = np.tile(((1 - confidence) / (NUM_CLASSES - 1))[:, None], (1, NUM_CLASSES)).astype(np.float32)
    probabilities[np.arange(n), labels] = confidence
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
    return ImageBank(images=images, labels=labels, probabilities=probabilities, seeds=np.arange(n),
                     attempts=np.ones(n, dtype=np.int64), info={"threshold": threshold})


@pytest.fixture(scope="module")
def bank() -> ImageBank:
    return make_bank()


def play(state: QuizState, choose) -> QuizState:
    while not state.finished:
        state = answer(state, choose(state)).state
    return state


def test_new_quiz_draws_distinct_images_spread_over_classes(bank):
    state = new_quiz(bank, 18, "mixed", seed=1)
    assert state.total == 18 and state.position == 0 and state.score == 0 and state.kind == "mixed"
    assert len(set(state.questions)) == 18
    assert np.bincount(state.labels, minlength=NUM_CLASSES).tolist() == [2] * NUM_CLASSES
    assert state.labels == tuple(int(bank.labels[i]) for i in state.questions)
    assert new_quiz(bank, 18, "mixed", seed=1) == state


def test_easy_draws_confident_images_and_hard_those_near_the_threshold(bank):
    confidence = bank.confidence()
    easy = new_quiz(bank, 9, "easy", seed=0)
    hard = new_quiz(bank, 9, "hard", seed=0)
    # One per class from the top quarter (3 of 12) of each class's ranking.
    assert min(confidence[list(easy.questions)]) >= np.linspace(0.9, 1.0, PER_CLASS)[-3] - 1e-6
    assert max(confidence[list(hard.questions)]) <= np.linspace(0.9, 1.0, PER_CLASS)[2] + 1e-6


def test_focus_restricts_classes_and_accepts_names_keys_and_indices(bank):
    state = new_quiz(bank, 6, "mixed", focus_classes=["adipose", "Debris", 8], seed=3)
    assert set(state.labels) == {0, 2, 8}


@pytest.mark.parametrize("n", [0, MAX_QUESTIONS + 1, 2.5, True])
def test_bad_question_counts_are_refused(bank, n):
    with pytest.raises(ValueError, match="Number of questions"):
        new_quiz(bank, n)


def test_bad_requests_give_clear_errors(bank):
    with pytest.raises(ValueError, match="at least one tissue class"):
        new_quiz(bank, 3, focus_classes=[])
    with pytest.raises(ValueError, match="Difficulty"):
        new_quiz(bank, 3, "impossible")
    with pytest.raises(ValueError, match="Unknown tissue class"):
        new_quiz(bank, 3, focus_classes=["bone"])
    with pytest.raises(ValueError, match=f"Only {PER_CLASS} synthetic images"):
        new_quiz(bank, PER_CLASS + 1, focus_classes=["mucus"])
    partial = make_bank(classes=range(3))
    with pytest.raises(ValueError, match="no images of Mucus"):
        new_quiz(partial, 1, focus_classes=["mucus"])


def test_answer_gives_feedback_and_a_new_state(bank):
    state = new_quiz(bank, 2, seed=5)
    truth = TISSUE_CLASSES[state.labels[0]]
    feedback = answer(state, truth.name)
    assert feedback.correct and feedback.truth == truth and feedback.description == truth.description
    assert feedback.bank_index == state.questions[0]
    assert feedback.classifier_top3[0] == (truth.name, pytest.approx(bank.confidence()[state.questions[0]]))
    assert len(feedback.classifier_top3) == 3
    assert state.position == 0 and feedback.state.position == 1 and feedback.state.score == 1

    wrong = (state.labels[1] + 1) % NUM_CLASSES
    second = answer(feedback.state, wrong)
    assert not second.correct and second.chosen.index == wrong and second.state.finished
    assert second.state.current_question is None
    with pytest.raises(ValueError, match="finished"):
        answer(second.state, 0)
    with pytest.raises(ValueError, match="Unknown tissue class"):
        answer(state, "not a class")


def test_summary_counts_per_class_accuracy_and_confusion(bank):
    state = new_quiz(bank, 18, seed=2)
    # Right on every odd class, always "adipose" otherwise.
    finished = play(state, lambda s: s.labels[s.position] if s.labels[s.position] % 2 else 0)
    result = summary(finished)
    assert result.answered == result.total == 18
    right = sum(1 for t in state.labels if t % 2 or t == 0)
    assert result.score == right and result.accuracy == pytest.approx(right / 18)
    assert result.confusion.sum() == 18 and result.confusion.trace() == right
    assert result.confusion[2, 0] == 2 and result.confusion[3, 3] == 2
    assert result.per_class[CLASS_NAMES[0]] == (2, 2) and result.per_class_accuracy[CLASS_NAMES[2]] == 0.0


def test_summary_of_a_partly_answered_quiz(bank):
    state = answer(new_quiz(bank, 5, seed=4), 0).state
    result = summary(state)
    assert result.answered == 1 and result.total == 5 and sum(a for _, a in result.per_class.values()) == 1


def test_review_mistakes_builds_a_round_of_the_wrong_slides(bank):
    state = new_quiz(bank, 9, seed=7)
    finished = play(state, lambda s: s.labels[s.position] if s.position % 3 else (s.labels[s.position] + 1) % 9)
    review = review_mistakes(finished)
    assert review.kind == "review" and review.position == 0
    assert review.questions == tuple(state.questions[i] for i in (0, 3, 6))
    assert review.labels == tuple(state.labels[i] for i in (0, 3, 6))
    perfect = play(review, lambda s: s.labels[s.position])
    with pytest.raises(ValueError, match="No mistakes"):
        review_mistakes(perfect)


def make_real(per_class: int = 6) -> RealTiles:
    bank = make_bank(per_class)
    return RealTiles(labels=bank.labels, probabilities=bank.probabilities)


@pytest.mark.parametrize(("share", "expected"), [(0.0, 0), (0.5, 5), (1.0, 10), (0.25, 2)])
def test_the_share_of_real_tiles_is_kept(bank, share, expected):
    state = new_quiz(bank, 10, real=make_real(), real_share=share, seed=3)
    assert state.sources.count("real") == expected and state.sources.count("synthetic") == 10 - expected
    real = make_real()
    for source, index, label in zip(state.sources, state.questions, state.labels, strict=True):
        assert label == (real.labels[index] if source == "real" else bank.labels[index])


def test_real_tiles_need_a_real_set_and_a_valid_share(bank):
    with pytest.raises(ValueError, match="no real tiles"):
        new_quiz(bank, 4, real_share=0.5)
    for share in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match="share of real tiles"):
            new_quiz(bank, 4, real=make_real(), real_share=share)
    with pytest.raises(ValueError, match="Only 2 real images"):
        new_quiz(bank, 4, focus_classes=["mucus"], real=make_real(2), real_share=1.0)


def test_summary_splits_real_and_synthetic_and_says_whether_real_is_as_good(bank):
    state = new_quiz(bank, 20, real=make_real(), real_share=0.5, seed=1)
    # Right on every synthetic slide, wrong on every real one.
    for _ in range(20):
        truth = state.labels[state.position]
        state = answer(state, truth if state.current_source == "synthetic" else (truth + 1) % NUM_CLASSES).state
    result = summary(state)
    assert result.by_source == {"synthetic": (10, 10), "real": (0, 10)}
    assert sum(t[1] for tallies in result.per_class_by_source.values() for t in tallies.values()) == 20
    assert "worse on real tissue" in transfer_verdict(result)
    review = review_mistakes(state)
    assert set(review.sources) == {"real"} and review.total == 10

    state = new_quiz(bank, 10, real=make_real(), real_share=0.5, seed=2)
    state = play(state, lambda s: s.labels[s.position])
    assert "as well on real tissue" in transfer_verdict(summary(state))
    assert "only one kind of tile" in transfer_verdict(summary(play(new_quiz(bank, 3), lambda s: 0)))
    few = play(new_quiz(bank, 4, real=make_real(), real_share=0.5, seed=2), lambda s: 0)
    assert "Too few answers" in transfer_verdict(summary(few))


def test_practice_rounds_ask_the_scheduled_classes_in_order(bank):
    from pathgen.quiz import practice_quiz

    classes = [5, 7, 5, 7, 4]
    state = practice_quiz(bank, classes, real=make_real(), real_share=0.5, seed=0)
    assert list(state.labels) == classes and state.kind == "practice"
    assert len(set(zip(state.sources, state.questions, strict=True))) == len(classes)  # no slide twice
    with pytest.raises(ValueError, match="Not enough tiles"):
        practice_quiz(make_bank(per_class=1), [5, 5], seed=0)
    with pytest.raises(ValueError, match="from 1 to"):
        practice_quiz(bank, [])

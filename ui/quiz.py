"""Quiz tab: rounds of slides to label, feedback after each answer, a summary and a review of the mistakes."""

import time
from datetime import datetime, timezone

import gradio as gr

from pathgen import learning as progress_rules
from pathgen import scheduling
from pathgen.data import CLASS_NAMES, TISSUE_CLASSES
from pathgen.quiz import (
    DIFFICULTIES,
    MAX_QUESTIONS,
    QuizState,
    RealTiles,
    answer,
    new_quiz,
    practice_quiz,
    review_mistakes,
    summary,
    transfer_verdict,
)

from . import inputs
from .errors import bind, guard
from .services import Services
from .sessions import SessionBox
from .widgets import confusion_html, tile_file

CONFUSION_CAPTION = "Your answers: rows are the true tissue, columns what you chose."
START_HINT = "Choose your settings and press **Start quiz**."
DEFAULT_REAL_PERCENT = 50
MAX_PENDING = 200
REAL_INFO = "Real tiles are PathMNIST validation tiles; each tile says whether it was real only after you answer."


def ratio(tally: tuple[int, int] | None) -> str:
    return f"{tally[0]} / {tally[1]} ({tally[0] / tally[1]:.0%})" if tally and tally[1] else "–"


def summary_markdown(state: QuizState) -> str:
    result = summary(state)
    rows = "\n".join(f"| {name} | {ratio((right, asked))} | {ratio(result.per_class_by_source[name].get('real'))} | "
                     f"{ratio(result.per_class_by_source[name].get('synthetic'))} |"
                     for name, (right, asked) in result.per_class.items())
    return (f"### Your result: {result.score} / {result.answered} ({result.accuracy:.0%})\n\n"
            f"Real tiles: {ratio(result.by_source.get('real'))} · synthetic tiles: "
            f"{ratio(result.by_source.get('synthetic'))}. **{transfer_verdict(result)}**\n\n"
            f"| Tissue | All | Real | Synthetic |\n|---|---|---|---|\n{rows}\n\n"
            "The matrix below shows where your answers went. Press **Review my mistakes** to try the wrong ones again.")


def real_tiles(services: Services) -> RealTiles:
    if "real_tiles" not in services.extras:
        services.extras["real_tiles"] = RealTiles(labels=services.real_labels, probabilities=services.real_probabilities)
    return services.extras["real_tiles"]


def slide_image(services: Services, source: str, index: int) -> str:
    return tile_file(services.real_images[index] if source == "real" else services.bank.images[index])


def show_question(services: Services, box: SessionBox) -> tuple:
    quiz: QuizState = box.value
    status = (f"**Question {quiz.position + 1} of {quiz.total}** · score {quiz.score} / {quiz.position} · "
              f"{quiz.kind} round")
    return (box, slide_image(services, quiz.current_source, quiz.current_question), status, None, "", None, "",
            gr.HTML("", visible=False))


def quiz_start(services: Services, box: SessionBox, n_questions: object, difficulty: object, focus: object,
               real_percent: object = DEFAULT_REAL_PERCENT) -> tuple:
    """Starts a round of n slides (easy, hard or mixed), optionally only from the focus classes, with the given
    percentage of real tiles."""
    n = inputs.whole_number(n_questions, "Number of questions", 1, MAX_QUESTIONS)
    difficulty = inputs.choice(difficulty, "Difficulty", DIFFICULTIES)
    focus = [c.index for c in inputs.tissues(focus, "Focus tissue types")]
    share = inputs.number(DEFAULT_REAL_PERCENT if real_percent is None else real_percent,
                          "Share of real tiles (%)", 0, 100) / 100
    quiz = new_quiz(services.bank, n, difficulty, focus_classes=focus, threshold=services.threshold,
                    real=real_tiles(services), real_share=share)
    with box.lock:
        box.value, box.revealed = quiz, False
        return show_question(services, box)


def practice_due(services: Services, box: SessionBox, history: object,
                 real_percent: object = DEFAULT_REAL_PERCENT) -> tuple:
    """Starts a round over the cards that spaced repetition says are due now, confused pairs interleaved."""
    share = inputs.number(DEFAULT_REAL_PERCENT if real_percent is None else real_percent,
                          "Share of real tiles (%)", 0, 100) / 100
    due = scheduling.due_cards(history, datetime.now(timezone.utc))
    quiz = practice_quiz(services.bank, scheduling.practice_classes(due), real=real_tiles(services), real_share=share)
    names = ", ".join(card.name.replace("+", " vs ") for card in due[:4])
    with box.lock:
        box.value, box.revealed = quiz, False
        outputs = show_question(services, box)
    return outputs[:2] + (outputs[2] + f" · due now: {names}",) + outputs[3:]


def quiz_answer(services: Services, box: SessionBox, choice: object) -> tuple:
    """Marks the answer to the slide on screen and explains the right one; one answer per slide, however sent."""
    if choice in (None, ""):
        raise ValueError("Pick one of the nine tissue types first.")
    chosen = inputs.tissue(choice, "Your answer")
    with box.lock:
        if box.value is None:
            raise ValueError("Start a quiz first.")
        if box.revealed:
            raise ValueError("You have answered this slide; press “Next question” to go on.")
        feedback = answer(box.value, chosen.index)
        box.value, box.revealed = feedback.state, True
        box.pending.append(answer_record(services, feedback))
        del box.pending[:-MAX_PENDING]  # API clients have no browser to hand these to
    quiz = feedback.state
    verdict = ("✓ **Correct!**" if feedback.correct else f"✗ **Not quite.** You said *{feedback.chosen.name}*.")
    origin = ("a **real** PathMNIST tile (NCT-CRC-HE-100K validation split)" if feedback.source == "real"
              else "a **synthetic** tile from the validated bank")
    text = (f"{verdict} This is **{feedback.truth.name}**. It was {origin}.\n\n{feedback.description}\n\n"
            "The bars show what the classifier thought of this slide.")
    status = f"**{quiz.position} of {quiz.total} answered** · score {quiz.score} / {quiz.position}"
    finished = quiz.finished
    return (box, gr.skip(), status + (" · finished" if finished else ""), gr.skip(), text,
            dict(feedback.classifier_top3), summary_markdown(quiz) if finished else "",
            gr.HTML(confusion_html(summary(quiz).confusion, CLASS_NAMES, CONFUSION_CAPTION), visible=True)
            if finished else gr.skip())


def answer_record(services: Services, feedback) -> dict:
    """One answer as the browser keeps it: no name, no tile image, only what progress and scheduling need."""
    return {"t": time.time(), "class": feedback.truth.key, "chosen": feedback.chosen.key,
            "real": feedback.source == "real", "correct": bool(feedback.correct)}


def record_answers(box: SessionBox, history: object) -> list:
    """Appends this session's new answers to the browser's history (kept in its localStorage)."""
    return progress_rules.append(history, box.take_pending())


def quiz_next(services: Services, box: SessionBox) -> tuple:
    """Shows the next slide of the round."""
    with box.lock:
        if box.value is None:
            raise ValueError("Start a quiz first.")
        if box.value.finished:
            raise ValueError("That was the last slide: see your summary, review your mistakes or start a new quiz.")
        if not box.revealed:
            raise ValueError("Answer this slide first.")
        box.revealed = False
        return show_question(services, box)


def quiz_review(services: Services, box: SessionBox) -> tuple:
    """Starts a new round over the slides answered wrongly so far."""
    with box.lock:
        if box.value is None:
            raise ValueError("Start a quiz first.")
        box.value, box.revealed = review_mistakes(box.value), False
        return show_question(services, box)


def build(services: Services) -> None:
    with gr.Row():
        n = gr.Slider(1, MAX_QUESTIONS, value=10, step=1, label="Questions")
        difficulty = gr.Radio(list(DIFFICULTIES), value="mixed", label="Difficulty",
                              info="easy: clear-cut tiles · hard: tiles near the acceptance line")
        focus = gr.CheckboxGroup(inputs.TISSUE_CHOICES, value=[c.key for c in TISSUE_CLASSES],
                                 label="Focus on these tissue types")
    real_percent = gr.Slider(0, 100, value=DEFAULT_REAL_PERCENT, step=5, label="Share of real tiles (%)",
                             info=REAL_INFO)
    with gr.Row():
        start = gr.Button("Start quiz", variant="primary")
        practice = gr.Button("Practise what's due", elem_id="practice-due")
    status = gr.Markdown(START_HINT)
    with gr.Row():
        with gr.Column(scale=2, min_width=240):
            image = gr.Image(label="Which tissue is this? (28 × 28 px, shown 8× enlarged)", format="png",
                             interactive=False, height=300, elem_id="quiz-image")
        with gr.Column(scale=3, min_width=240):
            choice = gr.Radio(inputs.TISSUE_CHOICES, label="Your answer", elem_id="quiz-choice")
            with gr.Row():
                submit = gr.Button("Submit answer", variant="primary")
                next_button = gr.Button("Next question")
                review = gr.Button("Review my mistakes")
            feedback = gr.Markdown(elem_id="quiz-feedback")
            label = gr.Label(num_top_classes=3, label="What the classifier thought")
    summary_text = gr.Markdown()
    plot = gr.HTML(visible=False, elem_id="quiz-confusion")
    box = gr.State(SessionBox())

    outputs = [box, image, status, choice, feedback, label, summary_text, plot]
    if services.history is not None:
        practice.click(guard(bind(practice_due, services), outputs, status), [box, services.history, real_percent],
                       outputs, api_name="practice_due", preprocess=False)
    for trigger, handler, event_inputs, name in (
            (start, quiz_start, [box, n, difficulty, focus, real_percent], "quiz_start"),
            (submit, quiz_answer, [box, choice], "quiz_answer"),
            (next_button, quiz_next, [box], "quiz_next"),
            (review, quiz_review, [box], "quiz_review")):
        event = trigger.click(guard(bind(handler, services), outputs, status), event_inputs, outputs, api_name=name,
                              preprocess=False)
        if handler is quiz_answer and services.history is not None:
            event.then(record_answers, [box, services.history], services.history, api_visibility="private",
                       preprocess=False)

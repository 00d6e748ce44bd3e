"""Classroom tab (students): join an assignment by code and nickname, answer its fixed slides one by one.

Every answer is written to the database as it is given; the browser keeps a random token (gr.BrowserState)
so that the same nickname on the same browser resumes, and no other browser can take the nickname over.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

import gradio as gr
from gradio.context import Context

from pathgen.classroom import (
    AssignmentSettings,
    ClassroomError,
    FailureThrottle,
    Slide,
    check_answer,
    choices,
    format_code,
    new_token,
    normalise_code,
    student_order,
    truth_text,
    valid_token,
    validate_nickname,
)

from .errors import bind, guard, shown
from .services import Services
from .sessions import SessionBox
from .widgets import tile_file

MAX_RESPONSE_MS = 3_600_000  # a slide left open for over an hour counts as an hour
# Wrong codes (and taken nicknames) per client address: slows anyone trying codes in bulk. One per process.
JOIN_THROTTLE = FailureThrottle()
NO_DATABASE = "The classroom needs a database, and this server has none configured."


@dataclass
class Attempt:
    """One session's view of its own attempt; `answered` maps slide -> the stored answer."""

    student_id: int
    code: str
    nickname: str
    settings: AssignmentSettings
    slides: list[Slide]
    order: list[int]
    answered: dict[int, str] = field(default_factory=dict)
    right: int = 0
    shown_at: float = 0.0

    @property
    def next_slide(self) -> int | None:
        return next((s for s in self.order if s not in self.answered), None)


def client_key(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def slide_image(services: Services, slide: Slide):
    images = services.bank.images if slide.synthetic else services.real_images
    return tile_file(images[slide.index])


def show_next(services: Services, attempt: Attempt, feedback: str) -> tuple:
    """(status, image, choice, slide number, feedback) for the attempt's next slide, or its end."""
    done, total = len(attempt.answered), len(attempt.slides)
    who = html.escape(attempt.nickname)
    nxt = attempt.next_slide
    if nxt is None:
        return (f"**{who}**, you have answered all {total} slides of {format_code(attempt.code)}: "
                f"{attempt.right} right. Your instructor sees the class's results.", None,
                gr.Radio(value=None, interactive=False), None, feedback)
    attempt.shown_at = time.monotonic()
    question = "Is this tile real or synthetic?" if attempt.settings.mode == "real_or_synthetic" else \
        "Which tissue is this?"
    status = f"**{who}** · {format_code(attempt.code)} · slide {done + 1} of {total} · {question}"
    return status, slide_image(services, attempt.slides[nxt]), \
        gr.Radio(choices=list(choices(attempt.settings.mode)), value=None, interactive=True), done + 1, feedback


def assignment_join(services: Services, box: SessionBox, code: object, nickname: object, token: object,
                    request: gr.Request) -> tuple:
    """Joins (or resumes) an assignment; returns the first unanswered slide and the browser's token."""
    if services.storage is None:
        raise ValueError(NO_DATABASE)
    client = client_key(request)
    if (wait := JOIN_THROTTLE.wait_s(client)) > 0:
        raise ClassroomError(f"Too many failed tries from here; wait {wait:.0f} s and check the code.")
    token = token if valid_token(token) else new_token()
    code, nickname = normalise_code(code), validate_nickname(nickname)
    try:
        student = services.storage.join(code, nickname, token)
    except ClassroomError:
        JOIN_THROTTLE.failure(client)
        raise
    JOIN_THROTTLE.success(client)
    record = services.storage.assignment(code)
    settings = AssignmentSettings.from_dict(record.settings)
    slides = [Slide.from_dict(s) for s in record.slides]
    attempt = Attempt(student.id, code, student.nickname, settings, slides,
                      student_order(len(slides), student.id, settings.shuffle), dict(student.answered))
    attempt.right = sum(check_answer(settings.mode, slides[s], a)[1] for s, a in attempt.answered.items())
    with box.lock:
        box.value = attempt
        welcome = (f"Welcome back: {len(attempt.answered)} of {len(slides)} slides were already answered."
                   if student.resumed else "Answer each slide; every answer is saved as you give it.")
        return (token, *show_next(services, attempt, welcome))


def assignment_answer(services: Services, box: SessionBox, answer: object, slide_number: object) -> tuple:
    """Stores the answer to slide `slide_number` (1-based, as the status line counts them) and shows the next.

    The slide number is what makes a repeated click harmless: a second answer to a slide that has just been
    answered is refused instead of being taken as the answer to the next slide, which nobody has seen yet.
    """
    with box.lock:  # this session's answers take turns, so one slide gets one answer
        attempt: Attempt | None = box.value
        if attempt is None:
            raise ValueError("Join an assignment first: type its code and a nickname, then press Join.")
        slide_no = attempt.next_slide
        if slide_no is None:
            raise ValueError("You have answered every slide of this assignment.")
        if slide_number != len(attempt.answered) + 1 or isinstance(slide_number, bool):
            raise ValueError(f"Slide {shown(slide_number)} is not the one on screen (slide {len(attempt.answered) + 1}); "
                             "it has been answered already.")
        if answer is None or answer == "":
            raise ValueError("Pick an answer first.")
        slide = attempt.slides[slide_no]
        value, correct = check_answer(attempt.settings.mode, slide, answer)
        elapsed = int(min(max(time.monotonic() - attempt.shown_at, 0.0) * 1000, MAX_RESPONSE_MS))
        stored = services.storage.record_answer(attempt.student_id, slide_no, value, correct, slide.synthetic, elapsed)
        attempt.answered[slide_no] = value
        if not stored:
            feedback = "This slide had already been answered (in another tab?); the first answer stands."
        else:
            attempt.right += correct
            verdict = "✓ **Right.**" if correct else "✗ **Not quite.**"
            feedback = f"{verdict} This slide: {truth_text(attempt.settings.mode, slide)}."
        return show_next(services, attempt, feedback)


TAB_ID = "class"


def linked_code(request: gr.Request | None) -> str | None:
    """The assignment code a page's `?assignment=CODE` link names, normalised; None when there is no valid one."""
    value = request.query_params.get("assignment", "") if request is not None else ""
    try:
        return normalise_code(value)
    except ClassroomError:
        return None


def open_from_link(request: gr.Request) -> str:
    """Fills the code box from the page's `?assignment=CODE` link."""
    code = linked_code(request)
    return gr.skip() if code is None else format_code(code)


def tab_from_link(request: gr.Request) -> gr.Tabs:
    """Opens the Class tab when the page's link names an assignment (`?assignment=CODE`)."""
    return gr.skip() if linked_code(request) is None else gr.Tabs(selected=TAB_ID)


def build(services: Services) -> None:
    gr.Markdown("### Join your class's assignment\nType the code your instructor gave you (or open their link) and "
                "a nickname. No real name or e-mail is asked. The tiles are synthetic or real PathMNIST tiles, "
                "for education only.")
    with gr.Row():
        code = gr.Textbox(label="Assignment code", placeholder="ABCD-2345", max_length=40, elem_id="classroom-code")
        nickname = gr.Textbox(label="Nickname", placeholder="e.g. owl42", max_length=100, elem_id="classroom-nickname")
        join = gr.Button("Join", variant="primary", elem_id="classroom-join")
    status = gr.Markdown(elem_id="classroom-status")
    with gr.Row():
        image = gr.Image(label="Slide (28 × 28 px, shown 8× enlarged)", format="png", interactive=False, height=300,
                         elem_id="classroom-image")
        with gr.Column():
            choice = gr.Radio([], label="Your answer", elem_id="classroom-choice")
            submit = gr.Button("Submit answer", variant="primary", elem_id="classroom-submit")
            feedback = gr.Markdown(elem_id="classroom-feedback")
    secret = services.storage.secret("browser-state") if services.storage is not None else None
    token = gr.BrowserState("", storage_key="pathgen-classroom-token", secret=secret)
    box = gr.State(SessionBox())

    slide = gr.Number(visible="hidden", precision=0, elem_id="classroom-slide")
    join_outputs = [token, status, image, choice, slide, feedback]
    join.click(guard(bind(assignment_join, services), join_outputs, status), [box, code, nickname, token],
               join_outputs, api_name="assignment_join", preprocess=False)
    answer_outputs = [status, image, choice, slide, feedback]
    submit.click(guard(bind(assignment_answer, services), answer_outputs, feedback), [box, choice, slide], answer_outputs,
                 api_name="assignment_answer", preprocess=False)
    if Context.root_block is not None:
        Context.root_block.load(open_from_link, None, code, api_visibility="private", queue=False)

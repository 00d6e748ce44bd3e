"""Instructor tab: create assignments, follow a class's results, export them as CSV, close or delete.

Every action needs the instructor password ($PATHGEN_INSTRUCTOR_PASSWORD), compared in constant time, or, on a
Space with Hugging Face sign-in, a signed-in member of an organisation named in $PATHGEN_INSTRUCTOR_ORGS. With
neither configured the tab refuses everything. Repeated wrong passwords from one client are slowed down.
"""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

import gradio as gr

from pathgen.classroom import (
    ORGS_ENV,
    PASSWORD_ENV,
    AssignmentSettings,
    ClassroomError,
    FailureThrottle,
    Slide,
    draw_slides,
    format_code,
    instructor_by_sign_in,
    instructor_orgs,
    instructor_password_ok,
    normalise_code,
)
from pathgen.classroom_results import ClassResults, class_results, results_csv
from pathgen.data import CLASS_NAMES, TISSUE_CLASSES
from pathgen.quiz import DIFFICULTIES, MAX_QUESTIONS

from .classroom import NO_DATABASE, client_key, slide_image
from .errors import bind, guard
from .inputs import TISSUE_CHOICES
from .services import Services
from .widgets import confusion_html, tile_gallery

# Wrong passwords per client address; one per process.
PASSWORD_THROTTLE = FailureThrottle()
CONFUSION_CAPTION = "The class's answers: rows are the truth, columns what students chose."
MODE_CHOICES = (("Name the tissue", "label"), ("Real or synthetic?", "real_or_synthetic"))


def sign_in_offered() -> bool:
    """Hugging Face sign-in is shown where the Space enables it (it sets OAUTH_CLIENT_ID) and organisations are named."""
    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID") and instructor_orgs())


def check_typed_password(password: object, client: str) -> None:
    """Raises ClassroomError unless the password is right; wrong passwords from one client are slowed."""
    if (wait := PASSWORD_THROTTLE.wait_s(client)) > 0:
        raise ClassroomError(f"Too many wrong passwords from here; wait {wait:.0f} s.")
    if not instructor_password_ok(password):
        if password:  # an empty or missing password is no guess
            PASSWORD_THROTTLE.failure(client)
        if not os.environ.get(PASSWORD_ENV):
            if instructor_orgs():
                raise ClassroomError("Sign in with Hugging Face as a member of an instructor organisation.")
            raise ClassroomError(f"Instructor pages are off: the server has no {PASSWORD_ENV} or {ORGS_ENV} set.")
        raise ClassroomError("Wrong instructor password.")
    PASSWORD_THROTTLE.success(client)


def check_password(services: Services, password: object, request: gr.Request | None,
                   profile: gr.OAuthProfile | None = None) -> None:
    """Raises ClassroomError unless the password is right or the signed-in user belongs to an instructor
    organisation; wrong passwords from one client are slowed."""
    if not instructor_by_sign_in(profile):
        check_typed_password(password, client_key(request))
    if services.storage is None:
        raise ClassroomError(NO_DATABASE)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _code(value: object) -> str:
    return normalise_code(value)


def _record(services: Services, code: str):
    record = services.storage.assignment(code)
    if record is None:
        raise ClassroomError(f"No assignment {format_code(code)}.")
    return record


def assignment_link(code: str, request: gr.Request | None) -> str:
    referer = (getattr(request, "headers", None) or {}).get("referer", "") if request is not None else ""
    base = referer.split("?")[0] if referer.startswith(("http://", "https://")) else ""
    return f"{base}?assignment={code}"


def assignment_create(services: Services, password: object, n_questions: object, difficulty: object,
                      classes: object, real_share: object, mode: object, shuffle: object,
                      request: gr.Request, profile: gr.OAuthProfile | None = None) -> tuple:
    """Creates an assignment with a fixed draw; returns its code and the link that opens the app on it."""
    check_password(services, password, request, profile)
    settings = AssignmentSettings.parse(n_questions, difficulty, classes, real_share, mode, shuffle)
    slides = draw_slides(settings, services.bank, services.real_labels, threshold=services.threshold)
    record = services.storage.create_assignment(settings.to_dict(), [s.to_dict() for s in slides])
    link = assignment_link(record.code, request)
    message = (f"Created **{format_code(record.code)}**: {len(slides)} slides "
               f"({sum(not s.synthetic for s in slides)} real). Students open <{html.escape(link)}> "
               f"or type the code in the Class tab.")
    return message, format_code(record.code)


def assignment_list(services: Services, password: object, request: gr.Request,
                    profile: gr.OAuthProfile | None = None) -> str:
    """Every assignment: code, created, open or closed, students."""
    check_password(services, password, request, profile)
    rows = [f"| {format_code(r.code)} | {r.created_at:%Y-%m-%d %H:%M} UTC | {len(r.slides)} | "
            f"{'closed' if r.closed else 'open'} | {len(services.storage.students(r.code))} |"
            for r in services.storage.assignments()]
    if not rows:
        return "No assignments yet."
    return "| Code | Created | Slides | State | Students |\n|---|---|---|---|---|\n" + "\n".join(rows)


def summary_markdown(code: str, closed: bool, results: ClassResults) -> str:
    real, synthetic = results.by_source["real"], results.by_source["synthetic"]
    return (f"### {format_code(code)} ({'closed' if closed else 'open'})\n"
            f"{results.students} students joined, {results.finished} finished all {results.slides} slides; "
            f"{results.answers.asked} answers, {_pct(results.answers.accuracy)} right.\n\n"
            f"Real tiles: {_pct(real.accuracy)} right ({real.right}/{real.asked}) · synthetic tiles: "
            f"{_pct(synthetic.accuracy)} right ({synthetic.right}/{synthetic.asked}).")


def dashboard_results(services: Services, password: object, code: object, request: gr.Request,
                    profile: gr.OAuthProfile | None = None) -> tuple:
    """The class's results: summary, per-class accuracy, confusion matrix, hardest slides, per-student table, CSV."""
    check_password(services, password, request, profile)
    code = _code(code)
    record = _record(services, code)
    slides = [Slide.from_dict(s) for s in record.slides]
    students = [(s.id, s.nickname) for s in services.storage.students(code)]
    answers = services.storage.answers(code)
    results = class_results(record.settings.get("mode", "label"), slides, students, answers)
    per_class = [[name, t.right, t.asked, _pct(t.accuracy)] for name, t in results.per_class.items()]
    hardest = [(slide_image(services, slides[i]),
                f"slide {i + 1}: {CLASS_NAMES[slides[i].label]}, {'synthetic' if slides[i].synthetic else 'real'}, "
                f"{t.right}/{t.asked} right") for i, t in results.hardest]
    per_student = [[r["nickname"], r["answered"], r["of"], r["right"], _pct(r["accuracy"]), _pct(r["real_accuracy"]),
                    _pct(r["synthetic_accuracy"]),
                    "–" if r["median_response_s"] is None else f"{r['median_response_s']:.1f}"]
                   for r in results.per_student]
    csv_path = write_csv(code, results_csv(code, slides, answers))
    return (summary_markdown(code, record.closed, results), per_class,
            confusion_html(results.confusion, results.confusion_labels, CONFUSION_CAPTION), hardest, per_student,
            str(csv_path))


def write_csv(code: str, text: str) -> Path:
    """Writes the export where gradio can serve it; written whole then renamed, so a download never sees half."""
    folder = Path(tempfile.gettempdir()) / "pathgen-results"
    folder.mkdir(exist_ok=True)
    path = folder / f"pathgen-{code}.csv"
    partial = Path(tempfile.mkstemp(dir=folder, suffix=".part")[1])
    partial.write_text(text)
    partial.replace(path)
    return path


def assignment_close(services: Services, password: object, code: object, request: gr.Request,
                    profile: gr.OAuthProfile | None = None) -> str:
    """Closes an assignment: no more joins or answers; results stay."""
    check_password(services, password, request, profile)
    code = _code(code)
    if not services.storage.close_assignment(code):
        raise ClassroomError(f"No assignment {format_code(code)}.")
    return f"{format_code(code)} is closed: results are kept, no more answers are taken."


def assignment_delete(services: Services, password: object, code: object, confirm: object,
                      request: gr.Request, profile: gr.OAuthProfile | None = None) -> str:
    """Deletes an assignment with every student's answers, once confirmed."""
    check_password(services, password, request, profile)
    code = _code(code)
    if confirm is not True:
        raise ClassroomError("Tick “I understand this deletes every answer” first.")
    if not services.storage.delete_assignment(code):
        raise ClassroomError(f"No assignment {format_code(code)}.")
    return f"{format_code(code)} and all its answers are deleted."


def build(services: Services) -> None:
    gr.Markdown("### Instructor\nCreate an assignment for your class and follow its results. Needs the instructor "
                f"password (`{PASSWORD_ENV}` on the server).")
    if sign_in_offered():
        gr.LoginButton(value="Sign in with Hugging Face (instructors)")
        gr.Markdown(f"Members of {', '.join(sorted(instructor_orgs()))} may sign in instead of typing the password.")
    password = gr.Textbox(label="Instructor password", type="password", max_length=200, elem_id="instructor-password")
    with gr.Accordion("New assignment", open=True):
        with gr.Row():
            n = gr.Slider(1, MAX_QUESTIONS, value=10, step=1, label="Questions")
            difficulty = gr.Radio(list(DIFFICULTIES), value="mixed", label="Difficulty")
            real_share = gr.Slider(0, 100, value=50, step=5, label="Share of real tiles (%)")
        with gr.Row():
            classes = gr.CheckboxGroup(TISSUE_CHOICES, value=[c.key for c in TISSUE_CLASSES], label="Tissue types")
            mode = gr.Radio(MODE_CHOICES, value="label", label="Kind of quiz")
            shuffle = gr.Checkbox(True, label="Each student gets their own order")
        create = gr.Button("Create assignment", variant="primary", elem_id="instructor-create")
        created = gr.Markdown(elem_id="instructor-created")
    with gr.Row():
        code = gr.Textbox(label="Assignment code", max_length=40, elem_id="instructor-code")
        show = gr.Button("Show results", variant="primary", elem_id="instructor-show")
        listing = gr.Button("List assignments")
    message = gr.Markdown(elem_id="instructor-summary")
    with gr.Row():
        per_class = gr.Dataframe(headers=["Tissue", "Right", "Asked", "Accuracy"], label="Per-class accuracy",
                                 interactive=False)
        confusion = gr.HTML(elem_id="instructor-confusion")
    hardest = tile_gallery("Hardest slides (fewest right answers)", columns=6, elem_id="instructor-hardest")
    students = gr.Dataframe(headers=["Nickname", "Answered", "Of", "Right", "Accuracy", "Real", "Synthetic",
                                     "Median s per slide"], label="Students", interactive=False,
                            elem_id="instructor-students")
    csv_file = gr.File(label="Results as CSV")
    with gr.Row():
        close = gr.Button("Close assignment")
        confirm = gr.Checkbox(False, label="I understand this deletes every answer")
        delete = gr.Button("Delete assignment", variant="stop")

    create.click(guard(bind(assignment_create, services), [created, code], created),
                 [password, n, difficulty, classes, real_share, mode, shuffle], [created, code],
                 api_name="assignment_create", preprocess=False)
    listing.click(guard(bind(assignment_list, services), [message], message), password, message,
                  api_name="assignment_list", preprocess=False)
    outputs = [message, per_class, confusion, hardest, students, csv_file]
    show.click(guard(bind(dashboard_results, services), outputs, message), [password, code], outputs,
               api_name="dashboard_results", preprocess=False)
    close.click(guard(bind(assignment_close, services), [message], message), [password, code], message,
                api_name="assignment_close", preprocess=False)
    delete.click(guard(bind(assignment_delete, services), [message], message), [password, code, confirm], message,
                 api_name="assignment_delete", preprocess=False)

"""A class run through the app's named endpoints with gradio_client: an instructor creates an assignment, three
students answer, the dashboard and the CSV show what they answered; bad inputs, refused passwords, one answer per
slide under simultaneous submits, and a server killed mid-assignment that keeps every acknowledged answer."""

import csv
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio.helpers import special_args
from gradio_client import Client

import app
import ui.classroom
import ui.errors
import ui.instructor
from benchmarks.utils import api_client, free_port
from pathgen.classroom import FailureThrottle
from pathgen.data import TISSUE_CLASSES
from pathgen.storage import Storage

REPO = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get(app.ASSETS_ENV) or REPO / "assets")
PASSWORD = "correct horse battery staple"
ENDPOINTS = {"/assignment_create", "/assignment_join", "/assignment_answer", "/dashboard_results", "/assignment_close",
             "/assignment_delete", "/assignment_list"}
START_TIMEOUT_S = 600  # generous: start-up takes seconds on an idle machine, minutes on a crowded one
NAME_TO_KEY = {c.name: c.key for c in TISSUE_CLASSES}


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    store = Storage.from_url(f"sqlite:///{tmp_path_factory.mktemp('db') / 'pathgen.sqlite3'}")
    yield store
    store.close()


@pytest.fixture(scope="module")
def url(storage):
    previous = os.environ.get("PATHGEN_INSTRUCTOR_PASSWORD")
    os.environ["PATHGEN_INSTRUCTOR_PASSWORD"] = PASSWORD
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = app.create_app(ASSETS, storage=storage)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()
    if previous is None:
        os.environ.pop("PATHGEN_INSTRUCTOR_PASSWORD")
    else:
        os.environ["PATHGEN_INSTRUCTOR_PASSWORD"] = previous


@pytest.fixture(autouse=True)
def fresh_throttles(monkeypatch):
    # Every test client comes from 127.0.0.1; each test starts with no failures counted against it.
    monkeypatch.setattr(ui.classroom, "JOIN_THROTTLE", FailureThrottle())
    monkeypatch.setattr(ui.instructor, "PASSWORD_THROTTLE", FailureThrottle())


def client(url) -> Client:
    return api_client(url)


def create(c: Client, n=6, classes=("adipose", "stroma", "mucus"), real=50, mode="label") -> str:
    message, code = c.predict(PASSWORD, n, "mixed", list(classes), real, mode, True, api_name="/assignment_create")
    assert message.startswith("Created"), message
    return code


def join(c: Client, code: str, nickname: str, token: str = "") -> tuple:
    return c.predict(code, nickname, token, api_name="/assignment_join")  # token, status, image, choice, slide, feedback


def answer(c: Client, value, slide) -> tuple:
    return c.predict(value, slide, api_name="/assignment_answer")  # status, image, choice, slide, feedback


def truth_of(feedback: str) -> str:
    """The tissue key that an answer's feedback names ("... This slide: Adipose tissue (real tile).")."""
    name = feedback.split("This slide: ", 1)[1].rsplit(" (", 1)[0]
    return NAME_TO_KEY[name]


def nothing_sent(value) -> bool:
    """An output left as it was: no value, or an update without one (gr.HTML wraps its skip in `props`)."""
    if value is None:
        return True
    return (isinstance(value, dict) and value.get("__type__") == "update" and "value" not in value
            and "value" not in (value.get("props") or {}))


def test_every_classroom_action_has_a_named_endpoint(url):
    assert ENDPOINTS <= set(client(url).view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_a_class_of_three_and_the_dashboard_and_csv_agree(url, storage):
    instructor = client(url)
    code = create(instructor)
    given = {}  # nickname -> [(truth, answer)]
    for nickname, choice, count in (("Ana", "adipose", 6), ("Ben", "stroma", 3), ("Cy", "mucus", 6)):
        student = client(url)
        token, status, image, _, slide, _ = join(student, code, nickname)
        assert nickname in status and image and slide == 1
        given[nickname] = []
        for i in range(count):
            status, _, _, slide, feedback = answer(student, choice, i + 1)
            given[nickname].append((truth_of(feedback), choice))
        assert (slide is None) == (count == 6)
    summary, per_class, _, hardest, students, csv_path = instructor.predict(PASSWORD, code,
                                                                            api_name="/dashboard_results")
    assert "3 students joined, 2 finished all 6 slides; 15 answers" in summary
    table = {row[0]: row for row in students["data"]}
    for nickname, pairs in given.items():
        assert table[nickname][1] == len(pairs) and table[nickname][3] == sum(t == a for t, a in pairs)
    asked = {row[0]: (row[1], row[2]) for row in per_class["data"]}
    for name, key in NAME_TO_KEY.items():
        pairs = [(t, a) for p in given.values() for t, a in p if t == key]
        if pairs:
            assert asked[name] == (sum(t == a for t, a in pairs), len(pairs))
    assert 0 < len(hardest) <= 6
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 15
    for nickname, pairs in given.items():
        mine = [r for r in rows if r["nickname"] == nickname]
        assert sorted((r["tissue"], r["answer"]) for r in mine) == sorted(pairs)
        assert all(r["correct"] == str(int(r["tissue"] == r["answer"])) for r in mine)
    assert len(storage.answers(code.replace("-", ""))) == 15


def test_students_resume_and_cannot_take_over_a_nickname(url):
    code = create(client(url), n=4)
    first = client(url)
    token, *_ = join(first, code, "Dana")
    answer(first, "adipose", 1)
    _, status, *_ , feedback = join(client(url), code, "dana")  # another browser: no token
    assert "already uses that nickname" in status
    _, status, _, _, slide, feedback = join(client(url), code, "Dana", token)  # the same browser, new tab
    assert slide == 2 and "Welcome back: 1 of 4" in feedback


def test_a_repeated_submit_cannot_answer_the_next_slide(url, storage):
    code = create(client(url), n=4)
    student = client(url)
    token, *_ = join(student, code, "Eve")
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(answer, student, "stroma", 1) for _ in range(2)]
        outcomes = [j.result() for j in jobs]
    assert sum("already" in o[4] for o in outcomes) == 1
    assert len(storage.answers(code.replace("-", ""))) == 1
    # Two tabs of one student (same token, two sessions) answering the same slide at once: one is stored.
    tabs = [client(url), client(url)]
    for tab in tabs:
        join(tab, code, "Eve", token)
    with ThreadPoolExecutor(2) as pool:
        outcomes = [j.result() for j in [pool.submit(answer, tab, "mucus", 2) for tab in tabs]]
    assert len(storage.answers(code.replace("-", ""))) == 2
    assert sum("already been answered" in o[4] for o in outcomes) == 1


def test_bad_inputs_get_short_escaped_messages(url):
    c = client(url)
    code = create(c, n=3)
    for bad_code in ("<img src=x onerror=alert(1)>", "Z" * 5000, 42, None):
        _, status, *_ = join(c, bad_code, "Finn")
        assert status.startswith("⚠️") and "<img" not in status and len(status) < 450
    for bad_name in ("<b>bold</b>", "n" * 5000, "", None, 3.5):
        _, status, *_ = join(c, code, bad_name)
        assert status.startswith("⚠️") and "<b>" not in status and len(status) < 450
    *_, feedback = answer(client(url), "adipose", 1)
    assert "Join an assignment first" in feedback
    join(c, code, "Finn")
    for bad_answer, slide in (("bone", 1), (99, 1), ("<script>" * 500, 1), (None, 1), ("adipose", 3), ("adipose", "1")):
        *_, feedback = answer(c, bad_answer, slide)
        assert feedback.startswith("⚠️") and "<script>" not in feedback and len(feedback) < 450
    for bad in ((0, "mixed", ["adipose"], 50, "label", True), (5, "mixed", ["bone"], 50, "label", True),
                (5, "mixed", ["adipose"], "lots", "label", True), (5, "mixed", ["adipose"], 50, "essay", True)):
        message, _ = c.predict(PASSWORD, *bad, api_name="/assignment_create")
        assert message.startswith("⚠️")


def test_instructor_actions_are_refused_without_the_right_password(url, monkeypatch):
    c = client(url)
    code = create(c, n=2)
    for wrong in ("", None, "wrong", PASSWORD + " "):
        summary, *rest = c.predict(wrong, code, api_name="/dashboard_results")
        assert summary == "⚠️ Wrong instructor password."
        assert all(nothing_sent(value) for value in rest), rest
    for call in ((code, "/assignment_close"), (code, True, "/assignment_delete"), ("/assignment_list",),
                 (3, "mixed", ["adipose"], 0, "label", True, "/assignment_create")):
        outputs = c.predict("nope", *call[:-1], api_name=call[-1])
        # From the fifth wrong guess on, the throttle answers before the password is even compared.
        assert (outputs[0] if isinstance(outputs, tuple) else outputs).startswith(("⚠️ Wrong", "⚠️ Too many"))
    # Six wrong guesses so far: the next try, even with the right password, must wait.
    assert "Too many wrong passwords" in c.predict(PASSWORD, code, api_name="/dashboard_results")[0]
    monkeypatch.setattr(ui.instructor, "PASSWORD_THROTTLE", FailureThrottle())
    monkeypatch.delenv("PATHGEN_INSTRUCTOR_PASSWORD")
    assert "no PATHGEN_INSTRUCTOR_PASSWORD" in c.predict("", code, api_name="/dashboard_results")[0]
    monkeypatch.setenv("PATHGEN_INSTRUCTOR_PASSWORD", PASSWORD)
    assert "is closed" in c.predict(PASSWORD, code, api_name="/assignment_close")
    _, status, *_ = join(client(url), code, "Gus")
    assert "closed" in status
    assert "Tick" in c.predict(PASSWORD, code, False, api_name="/assignment_delete")
    assert "deleted" in c.predict(PASSWORD, code, True, api_name="/assignment_delete")


def test_signed_in_members_of_an_instructor_organisation_need_no_password(monkeypatch, storage):
    import gradio as gr

    services = SimpleNamespace(storage=storage)
    member = gr.OAuthProfile({"name": "Ana", "preferred_username": "ana", "profile": "", "picture": "",
                              "orgs": [{"preferred_username": "path-course"}]})
    monkeypatch.delenv("PATHGEN_INSTRUCTOR_PASSWORD", raising=False)
    monkeypatch.setenv("PATHGEN_INSTRUCTOR_ORGS", "path-course")
    ui.instructor.check_password(services, "", None, member)
    with pytest.raises(ValueError, match="Sign in with Hugging Face"):
        ui.instructor.check_password(services, "", None, None)
    monkeypatch.setenv("PATHGEN_INSTRUCTOR_ORGS", "another-course")
    with pytest.raises(ValueError, match="Sign in"):
        ui.instructor.check_password(services, "", None, member)


def test_the_sign_in_button_appears_only_on_a_space_with_sign_in_and_organisations(monkeypatch):
    monkeypatch.setenv("PATHGEN_INSTRUCTOR_ORGS", "path-course")
    assert not ui.instructor.sign_in_offered()  # not a Space
    monkeypatch.setenv("SPACE_ID", "someone/pathgen")
    assert not ui.instructor.sign_in_offered()  # a Space without hf_oauth in its front matter
    monkeypatch.setenv("OAUTH_CLIENT_ID", "abc")
    assert ui.instructor.sign_in_offered()
    monkeypatch.delenv("PATHGEN_INSTRUCTOR_ORGS")
    assert not ui.instructor.sign_in_offered()
    # gradio hands each instructor action the sign-in profile: an API call's inputs gain a None in its place.
    handler = ui.errors.bind(ui.instructor.dashboard_results, None)
    inputs, *_ = special_args(handler, ["password", "CODE"], request=None)
    assert inputs == ["password", "CODE", None, None]  # gr.Request, then the (absent) profile


def test_guessing_codes_is_slowed(url):
    c = client(url)
    for _ in range(5):
        _, status, *_ = join(c, "ABCD-2345", "Ivy")
        assert "No assignment has that code" in status
    _, status, *_ = join(c, "ABCD-2346", "Ivy")
    assert "Too many failed tries" in status


def start_server(port: int, database: str) -> subprocess.Popen:
    env = {**os.environ, "PATHGEN_DATABASE_URL": database, "PATHGEN_INSTRUCTOR_PASSWORD": PASSWORD,
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "PATHGEN_ASSETS_DIR": str(ASSETS)}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"the app did not start within {START_TIMEOUT_S} s")


def test_a_killed_server_keeps_every_acknowledged_answer_and_students_resume(tmp_path):
    database, port = f"sqlite:///{tmp_path / 'crash.sqlite3'}", free_port()
    server = start_server(port, database)
    try:
        url = f"http://127.0.0.1:{port}/"
        code = create(client(url), n=6)
        student = client(url)
        token, *_ = join(student, code, "Hana")
        acknowledged = [truth_of(answer(student, "adipose", i + 1)[4]) for i in range(3)]
        pending = student.submit("stroma", 4, api_name="/assignment_answer")  # in flight when the server dies
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        try:
            pending.result(timeout=10)
        except Exception:
            pass  # not acknowledged: it may or may not have been stored
        server = start_server(port, database)
        _, _, _, _, slide, feedback = join(client(url), code, "Hana", token)
        stored = Storage.from_url(database).answers(code.replace("-", ""))
        assert [a.answer for a in stored][:3] == ["adipose"] * 3 and len(stored) in (3, 4)
        assert slide == len(stored) + 1 and f"Welcome back: {len(stored)} of 6" in feedback
        assert len(acknowledged) == 3
    finally:
        server.kill()
        server.wait(30)

"""The app driven as its users' browsers would, through gradio_client and each named endpoint."""

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import app

REPO = Path(__file__).resolve().parent.parent
# The shipped assets, unless a developer points the tests elsewhere.
ASSETS = Path(os.environ.get(app.ASSETS_ENV) or REPO / "assets")
ENDPOINTS = {"/explore_show", "/explore_confidence", "/explore_generate", "/quiz_start", "/quiz_answer", "/quiz_next",
             "/quiz_review", "/generate", "/generate_confidence"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from tests
    demo = app.create_app(ASSETS)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture
def client(url) -> Client:
    return Client(url, verbose=False)


def status_of(outputs: tuple) -> str:
    # Quiz endpoints return (image, status, choice, feedback, label, summary, plot); gr.State is not sent.
    return outputs[1]


def test_every_event_has_a_named_endpoint(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_explore_shows_description_galleries_and_confidence(client):
    description, synthetic, real, label, caption, _, fresh = client.predict("lymphocytes", api_name="/explore_show")
    assert "Lymphocytes" in description and "28 × 28" in description
    assert 0 < len(synthetic) <= app.EXPLORE_SYNTHETIC and len(real) == app.EXPLORE_REAL
    assert all(item["caption"].endswith("%") for item in synthetic + real)
    label, caption = client.predict(len(synthetic), api_name="/explore_confidence")  # the first real tile
    assert len(label["confidences"]) == 5 and "real" in caption
    label, caption = client.predict(0, api_name="/explore_confidence")
    assert "synthetic" in caption and label["label"] in {c.name for c in app.TISSUE_CLASSES}


def test_explore_refuses_bad_inputs(client):
    client.predict("adipose", api_name="/explore_show")
    _, message = client.predict(999, api_name="/explore_confidence")
    assert "Tile position must be a whole number" in message
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("bone", api_name="/explore_show")


def test_explore_generates_fresh_validated_tiles(client):
    client.predict("adipose", api_name="/explore_show")
    gallery, stats, _, _ = client.predict("adipose", api_name="/explore_generate")
    assert "accepted" in stats and "rejected" in stats and len(gallery) <= app.EXPLORE_FRESH
    if gallery:
        _, caption = client.predict(0, api_name="/explore_confidence")
        assert "synthetic" in caption


def test_a_whole_quiz_with_feedback_summary_and_review(client):
    out = client.predict(3, "easy", ["adipose", "mucus"], api_name="/quiz_start")
    assert Path(out[0]).is_file() and "Question 1 of 3" in status_of(out)

    out = client.predict("background", api_name="/quiz_answer")  # never right: only adipose and mucus are asked
    assert "Not quite" in out[3] and "This is **" in out[3] and len(out[4]["confidences"]) == 3
    assert "score 0 / 1" in status_of(out)
    out = client.predict("background", api_name="/quiz_answer")
    assert "press “Next question”" in status_of(out)

    for question in (2, 3):
        out = client.predict(api_name="/quiz_next")
        assert f"Question {question} of 3" in status_of(out)
        out = client.predict("background", api_name="/quiz_answer")
    assert "finished" in status_of(out) and "Your result: 0 / 3" in out[5] and out[6] is not None
    assert "last slide" in status_of(client.predict(api_name="/quiz_next"))

    out = client.predict(api_name="/quiz_review")
    assert "Question 1 of 3" in status_of(out) and "review round" in status_of(out)


def test_quiz_refuses_bad_inputs(client):
    assert "Start a quiz first" in status_of(client.predict("adipose", api_name="/quiz_answer"))
    assert "Start a quiz first" in status_of(client.predict(api_name="/quiz_next"))
    assert "at least one tissue class" in status_of(client.predict(3, "mixed", [], api_name="/quiz_start"))
    with pytest.raises(AppError, match="maximum"):
        client.predict(500, "mixed", ["adipose"], api_name="/quiz_start")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(3, "impossible", ["adipose"], api_name="/quiz_start")
    client.predict(2, "mixed", ["adipose"], api_name="/quiz_start")
    assert "Pick one of the nine" in status_of(client.predict(None, api_name="/quiz_answer"))
    assert "Answer this slide first" in status_of(client.predict(api_name="/quiz_next"))


def test_two_clients_at_once_keep_separate_quizzes(url):
    first, second = Client(url, verbose=False), Client(url, verbose=False)
    started = {}

    def start(name: str, client: Client, n: int) -> None:
        started[name] = client.predict(n, "mixed", ["adipose", "debris"], api_name="/quiz_start")

    threads = [threading.Thread(target=start, args=a) for a in (("first", first, 2), ("second", second, 4))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "of 2" in status_of(started["first"]) and "of 4" in status_of(started["second"])

    assert "1 of 2 answered" in status_of(first.predict("adipose", api_name="/quiz_answer"))
    # The second user has answered nothing, whatever the first did.
    assert "Answer this slide first" in status_of(second.predict(api_name="/quiz_next"))
    assert "1 of 4 answered" in status_of(second.predict("debris", api_name="/quiz_answer"))
    assert "Question 2 of 2" in status_of(first.predict(api_name="/quiz_next"))


def test_generate_returns_accepted_tiles_and_refuses_bad_values(client):
    gallery, stats, _, _ = client.predict("mucus", 2, "5", 4, 2.0, 0.5, api_name="/generate")
    assert len(gallery) <= 2 and "Seed 5 repeats this run" in stats and "acceptance rate" in stats
    assert "Seed " in client.predict("mucus", 1, "", 2, 2.0, 0.5, api_name="/generate")[1]  # blank: random
    for seed in ("-5", "1.5", "abc"):
        assert "Seed must be a whole number" in client.predict("mucus", 2, seed, 4, 2.0, 0.5, api_name="/generate")[1]
    with pytest.raises(AppError, match="maximum"):
        client.predict("mucus", app.MAX_GENERATE + 1, "5", 4, 2.0, 0.5, api_name="/generate")
    with pytest.raises(AppError, match="minimum"):
        client.predict("mucus", 2, "5", 4, 2.0, 0.0, api_name="/generate")
    assert "No tiles are shown yet" in client.predict(0, api_name="/generate_confidence")[1]


def test_only_gradio_files_are_served(url):
    for path in (REPO / "app.py", Path("/etc/passwd"), ASSETS / "classifier" / "config.json"):
        assert httpx.get(f"{url}gradio_api/file={path}").status_code != 200


def test_model_card_reports_measured_figures_and_the_papers():
    card = app.model_card(app.load_assets(ASSETS))
    for text in ("synthetic", "must not be used for diagnosis", "0.6727", "27.3%", "78.4%", "CC BY 4.0",
                 "Limitations", "Test recall per class"):
        assert text in card


def test_model_card_says_whether_the_bank_excluded_near_copies():
    assets = app.load_assets(ASSETS)
    assets.bank.info.pop("near_copy_exclusion", None)
    assert "near-copies" not in app.model_card(assets)
    assets.bank.info["near_copy_exclusion"] = {"percentile": 1.0}
    assets.bank.info["acceptance"] = {"debris": {"near_copies_discarded": 5}, "stroma": {"near_copies_discarded": 2}}
    assert "closer to a training tile than 99% of real held-out tiles" in app.model_card(assets)
    assert "(7 while the bank was built)" in app.model_card(assets)


def test_missing_or_corrupt_assets_stop_start_up_with_the_rebuild_script(tmp_path):
    with pytest.raises(app.AssetError, match="python -m training.train_classifier"):
        app.create_app(tmp_path)
    for name in ("classifier", "generator", "metrics", "real_examples.npz"):
        (tmp_path / name).symlink_to(ASSETS / name)
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "bank.npz").write_bytes(b"not a bank")
    with pytest.raises(app.AssetError, match="python -m training.build_bank"):
        app.load_assets(tmp_path)

    env = {**os.environ, app.ASSETS_ENV: str(tmp_path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "PathGen cannot start" in result.stderr and "training.build_bank" in result.stderr
    assert "Traceback" not in result.stderr

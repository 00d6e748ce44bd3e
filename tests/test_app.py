"""The app driven as its users' browsers would, through gradio_client and each named endpoint."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

import app
from benchmarks.utils import api_client, free_port
from pathgen.data import TISSUE_CLASSES
from pathgen.storage import Storage
from ui import explore, generate
from ui.model_card import model_card
from ui.services import load_services

REPO = Path(__file__).resolve().parent.parent
# The shipped assets, unless a developer points the tests elsewhere.
ASSETS = Path(os.environ.get(app.ASSETS_ENV) or REPO / "assets")
ENDPOINTS = {"/explore_show", "/explore_confidence", "/explore_generate", "/quiz_start", "/quiz_answer", "/quiz_next",
             "/quiz_review", "/generate", "/generate_confidence", "/real_or_synthetic_start",
             "/real_or_synthetic_answer", "/compare_show", "/progress_show", "/practice_due"}


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Storage:
    database = tmp_path_factory.mktemp("state") / "pathgen.sqlite3"
    storage = Storage.from_url(f"sqlite:///{database}")
    yield storage
    storage.close()


@pytest.fixture(scope="module")
def url(storage):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from tests
    demo = app.create_app(ASSETS, storage=storage)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture
def client(url) -> Client:
    return api_client(url)


def status_of(outputs: tuple) -> str:
    # Quiz endpoints return (image, status, choice, feedback, label, summary, plot); gr.State is not sent.
    return outputs[1]


def test_every_event_has_a_named_endpoint(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_explore_shows_description_galleries_and_confidence(client):
    description, synthetic, real, label, caption, _, fresh = client.predict("lymphocytes", api_name="/explore_show")
    assert "Lymphocytes" in description and "28 × 28" in description
    assert 0 < len(synthetic) <= explore.EXPLORE_SYNTHETIC and len(real) == explore.EXPLORE_REAL
    assert all(item["caption"].endswith("%") for item in synthetic + real)
    label, caption = client.predict(len(synthetic), api_name="/explore_confidence")  # the first real tile
    assert len(label["confidences"]) == 5 and "real" in caption
    label, caption = client.predict(0, api_name="/explore_confidence")
    assert "synthetic" in caption and label["label"] in {c.name for c in TISSUE_CLASSES}


def test_explore_refuses_bad_inputs(client):
    client.predict("adipose", api_name="/explore_show")
    _, message = client.predict(999, api_name="/explore_confidence")
    assert "Tile position must be a whole number" in message
    assert "Tissue type must be one of the nine" in client.predict("bone", api_name="/explore_show")[0]


def test_explore_generates_fresh_validated_tiles(client):
    client.predict("adipose", api_name="/explore_show")
    gallery, stats, _, _ = client.predict("adipose", api_name="/explore_generate")
    assert "accepted" in stats and "rejected" in stats and len(gallery) <= explore.EXPLORE_FRESH
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
    assert "from 1 to 50, got 500" in status_of(client.predict(500, "mixed", ["adipose"], api_name="/quiz_start"))
    assert "Difficulty must be one of" in status_of(client.predict(3, "impossible", ["adipose"], api_name="/quiz_start"))
    client.predict(2, "mixed", ["adipose"], api_name="/quiz_start")
    assert "Pick one of the nine" in status_of(client.predict(None, api_name="/quiz_answer"))
    assert "Answer this slide first" in status_of(client.predict(api_name="/quiz_next"))


def test_two_clients_at_once_keep_separate_quizzes(url):
    first, second = api_client(url), api_client(url)
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


def test_generate_returns_accepted_tiles_and_refuses_bad_values(client, url):
    # A session that has generated nothing has no tile to explain (this client may have tiles from other tests).
    assert "No tiles are shown yet" in api_client(url).predict(0, api_name="/generate_confidence")[1]
    gallery, stats, _, _ = client.predict("mucus", 2, "5", 4, 2.0, 0.5, api_name="/generate")
    assert len(gallery) <= 2 and "Seed 5 repeats this run" in stats and "acceptance rate" in stats
    assert "Seed " in client.predict("mucus", 1, "", 2, 2.0, 0.5, api_name="/generate")[1]  # blank: random
    for seed in ("-5", "1.5", "abc"):
        assert "Seed must be a whole number" in client.predict("mucus", 2, seed, 4, 2.0, 0.5, api_name="/generate")[1]
    too_many = client.predict("mucus", generate.MAX_GENERATE + 1, "5", 4, 2.0, 0.5, api_name="/generate")[1]
    assert f"Number of images must be a whole number from 1 to {generate.MAX_GENERATE}" in too_many
    assert "Threshold must be a number from" in client.predict("mucus", 2, "5", 4, 2.0, 0.0, api_name="/generate")[1]


def test_only_gradio_files_are_served(url):
    for path in (REPO / "app.py", Path("/etc/passwd"), ASSETS / "classifier" / "config.json"):
        assert httpx.get(f"{url}gradio_api/file={path}").status_code != 200


def test_model_card_reports_measured_figures_and_the_papers():
    card = model_card(load_services(ASSETS))
    for text in ("synthetic", "must not be used for diagnosis", "0.6727", "27.3%", "78.4%", "CC BY 4.0",
                 "Limitations", "Test recall per class"):
        assert text in card


def test_model_card_says_whether_the_bank_excluded_near_copies():
    assets = load_services(ASSETS)
    assets.bank.info.pop("near_copy_exclusion", None)
    assert "near-copies" not in model_card(assets)
    assets.bank.info["near_copy_exclusion"] = {"percentile": 1.0}
    assets.bank.info["acceptance"] = {"debris": {"near_copies_discarded": 5}, "stroma": {"near_copies_discarded": 2}}
    assert "closer to a training tile than 99% of real held-out tiles" in model_card(assets)
    assert "(7 while the bank was built)" in model_card(assets)


def test_missing_or_corrupt_assets_stop_start_up_with_the_rebuild_script(tmp_path):
    with pytest.raises(app.AssetError, match="python -m training.train_classifier"):
        app.create_app(tmp_path)
    for name in ("classifier", "generator", "metrics", "real_examples.npz"):
        (tmp_path / name).symlink_to(ASSETS / name)
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "bank.npz").write_bytes(b"not a bank")
    with pytest.raises(app.AssetError, match="python -m training.build_bank"):
        load_services(tmp_path)

    env = {**os.environ, app.ASSETS_ENV: str(tmp_path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "PathGen cannot start" in result.stderr and "training.build_bank" in result.stderr
    assert "Traceback" not in result.stderr


# ----- bad input: the app's own message, cut and escaped, and nothing in the log -------------------------------
BAD_CALLS = [  # (api name, arguments, index of the output that carries the message, expected text)
    ("/quiz_start", ("ten", "mixed", ["adipose"]), 1, "Number of questions must be a whole number"),
    ("/quiz_start", (2.5, "mixed", ["adipose"]), 1, "Number of questions must be a whole number"),
    ("/quiz_start", (3, "impossible", ["adipose"]), 1, "Difficulty must be one of"),
    ("/quiz_start", (3, "mixed", "adipose"), 1, "must be a list of tissue types"),
    ("/quiz_start", (3, "mixed", ["bone"]), 1, "must be one of the nine tissue types"),
    ("/quiz_answer", (7,), 1, "must be one of the nine tissue types"),
    ("/explore_show", (["adipose"],), 0, "Tissue type must be one of the nine"),
    ("/explore_confidence", ("first",), 1, "Tile position must be a whole number"),
    ("/explore_confidence", (0, "yes"), 1, "Predict first must be true or false"),
    ("/generate", ("mucus", "eight", "", 4, 2.0, 0.5), 1, "Number of images must be a whole number"),
    ("/generate", ("mucus", 2, "", True, 2.0, 0.5), 1, "Steps must be a whole number"),
    ("/generate", ("mucus", 2, "", 4, -1.0, 0.5), 1, "Guidance must be a number"),
    ("/generate", ("mucus", 2, "", 4, 2.0, 0.5, "best"), 1, "Sampling profile must be one of"),
    ("/generate_confidence", (None, ), 1, "Click any tile"),
]


def no_tracebacks(capfd, caplog) -> None:
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err + caplog.text
    assert not [r for r in caplog.records if r.levelno >= 40]


@pytest.mark.parametrize(("api_name", "arguments", "index", "expected"), BAD_CALLS)
def test_bad_values_get_the_apps_message_and_no_traceback(client, capfd, caplog, api_name, arguments, index, expected):
    capfd.readouterr()
    outputs = client.predict(*arguments, api_name=api_name)
    assert expected in outputs[index]
    no_tracebacks(capfd, caplog)


def test_huge_or_html_input_is_cut_and_escaped(client, capfd, caplog):
    capfd.readouterr()
    seed = "<img src=x onerror=alert(1)>" * 400
    message = client.predict("mucus", 2, seed, 4, 2.0, 0.5, api_name="/generate")[1]
    assert "Seed must be a whole number" in message and len(message) < 300
    assert "<img" not in message and "&lt;img" in message
    no_tracebacks(capfd, caplog)


def test_exactly_one_answer_per_slide_under_concurrent_submits(client):
    for _ in range(3):
        client.predict(2, "mixed", ["adipose", "mucus"], api_name="/quiz_start")
        jobs = [client.submit(name, api_name="/quiz_answer") for name in ("adipose", "mucus", "adipose", "mucus")]
        statuses = [status_of(job.result()) for job in jobs]
        assert sum("1 of 2 answered" in s for s in statuses) == 1, statuses
        assert sum("You have answered this slide" in s for s in statuses) == 3, statuses
        out = client.predict(api_name="/quiz_next")
        assert "Question 2 of 2" in status_of(out)


def test_one_generation_request_is_bounded_and_says_so(client, monkeypatch):
    monkeypatch.setattr(generate, "MAX_TILE_STEPS", 64)  # the server runs in this process
    stats = client.predict("stroma", 8, "3", 4, 2.0, 1.0, api_name="/generate")[1]
    generated = int(stats.split("Generated ")[1].split(" ")[0])
    assert generated <= 16  # two rounds of at most 8 tiles at 4 steps: 64 tile-steps
    assert "of 8 accepted" in stats or "stopped after 2 round(s)" in stats
    assert generate.rounds_allowed(generate.MAX_GENERATE, generate.MAX_UI_STEPS) == 1


def test_generate_offers_both_sampling_profiles(client):
    stats = client.predict("adipose", 1, "1", 2, 2.0, 0.5, "bank", api_name="/generate")[1]
    assert "bank profile" in stats


# ----- real tissue in quizzes, real or synthetic, progress, practice, compare ------------------------------------
def test_quiz_tiles_say_real_or_synthetic_after_the_answer_and_the_summary_splits_them(client):
    out = client.predict(4, "mixed", ["mucus", "stroma"], 50, api_name="/quiz_start")
    assert "real" not in status_of(out) and out[3] == ""  # nothing gives the tile's origin away before the answer
    origins = []
    for question in range(4):
        out = client.predict("mucus", api_name="/quiz_answer")
        origins.append("a **real** PathMNIST tile" in out[3])
        assert origins[-1] or "a **synthetic** tile" in out[3]
        if question < 3:
            client.predict(api_name="/quiz_next")
    assert sum(origins) == 2
    assert "Real tiles: " in out[5] and "| Tissue | All | Real | Synthetic |" in out[5]
    assert "Too few answers yet to compare real and synthetic tissue" in out[5]  # 2 of each: too few to judge
    only_real = client.predict(2, "mixed", ["adipose"], 100, api_name="/quiz_start")
    assert "Question 1 of 2" in status_of(only_real)
    assert "Share of real tiles (%) must be" in status_of(client.predict(2, "mixed", ["adipose"], 101,
                                                                           api_name="/quiz_start"))


def test_a_real_or_synthetic_round_stores_anonymous_counts(client, storage):
    before = sum(c["shown"] for c in storage.realism_counts())
    assert "Start a round first" in client.predict("real", api_name="/real_or_synthetic_answer")[1]
    image, status = client.predict(4, False, api_name="/real_or_synthetic_start")[:2]
    assert Path(image).is_file() and "Tile 1 of 4" in status
    assert "Your call must be one of" in client.predict("maybe", api_name="/real_or_synthetic_answer")[1]
    for _ in range(4):
        # Outputs: image, status, call, tissue, feedback, summary.
        image, status, _, _, feedback, summary = client.predict("synthetic", api_name="/real_or_synthetic_answer")
        assert "that tile was **real**" in feedback or "that tile was **synthetic**" in feedback
    assert "Round finished" in status and "Detection: 2 / 4" in summary and "95% interval" in summary
    assert "finished" in client.predict("real", api_name="/real_or_synthetic_answer")[1]
    counts = storage.realism_counts()
    assert sum(c["shown"] for c in counts) == before + 4
    assert all(c["tile_key"].split(":")[0] in ("real", "bank") and set(c) == {"tile_key", "is_synthetic", "shown",
                                                                              "judged_synthetic"} for c in counts)

    client.predict(2, True, api_name="/real_or_synthetic_start")
    assert "Name the tissue type too" in client.predict("real", None, api_name="/real_or_synthetic_answer")[1]
    feedback = client.predict("real", "mucus", api_name="/real_or_synthetic_answer")[4]
    assert "You named it *Mucus*" in feedback


def test_two_clients_keep_separate_real_or_synthetic_rounds(url):
    first, second = api_client(url), api_client(url)
    first.predict(3, False, api_name="/real_or_synthetic_start")
    second.predict(5, False, api_name="/real_or_synthetic_start")
    assert "Tile 2 of 3" in first.predict("real", api_name="/real_or_synthetic_answer")[1]
    assert "Tile 2 of 5" in second.predict("real", api_name="/real_or_synthetic_answer")[1]


def history_of(minutes_ago: float, pairs: list[tuple[str, str]], real: bool = False) -> list[dict]:
    now = time.time()
    return [{"t": now - 60 * minutes_ago + i, "class": truth, "chosen": chosen, "real": real,
             "correct": truth == chosen} for i, (truth, chosen) in enumerate(pairs)]


def test_progress_show_reads_the_history_it_is_given(client):
    empty, plot = client.predict([], api_name="/progress_show")
    assert "No answers recorded in this browser yet" in empty and plot is None
    junk, _ = client.predict([{"t": "<b>now</b>"}, 5, "x" * 10000], api_name="/progress_show")
    assert "No answers recorded" in junk
    history = history_of(60, [("stroma", "smooth_muscle"), ("stroma", "stroma"), ("mucus", "mucus")], real=True)
    text, plot = client.predict(history, api_name="/progress_show")
    assert "3 answers, 2 / 3 (67%) right" in text and "Real tiles: 2 / 3" in text
    assert "Smooth muscle ↔ Cancer-associated stroma (1×)" in text and plot is not None


def test_practice_due_builds_a_round_from_the_due_cards(client):
    assert "Nothing is due" in status_of(client.predict([], 50, api_name="/practice_due"))
    history = history_of(60, [("stroma", "smooth_muscle"), ("mucus", "normal_mucosa")])
    out = client.predict(history, 0, api_name="/practice_due")
    assert "Question 1 of 10" in status_of(out) and "practice round" in status_of(out)
    assert "due now: smooth_muscle vs stroma" in status_of(out)
    assert "1 of 10 answered" in status_of(client.predict("stroma", api_name="/quiz_answer"))


def test_compare_shows_real_and_synthetic_tiles_of_both_and_what_tells_them_apart(client):
    text, first, second = client.predict("mucus", "normal_mucosa", api_name="/compare_show")
    assert "Mucus or Normal colon mucosa?" in text and "goblet" in text
    assert len(first) == len(second) == 8
    assert [t["caption"] for t in first] == ["real"] * 4 + ["synthetic"] * 4
    assert "two different" in client.predict("mucus", "mucus", api_name="/compare_show")[0]
    assert "First tissue must be one of" in client.predict("<i>x</i>", "mucus", api_name="/compare_show")[0]


def test_predict_first_hides_the_classifier_until_the_trainee_has_chosen(client):
    client.predict("stroma", api_name="/explore_show")
    label, caption = client.predict(0, True, None, api_name="/explore_confidence")
    assert not label and "Predict first" in caption  # an empty Label: no bars
    label, caption = client.predict(0, True, "stroma", api_name="/explore_confidence")
    assert label["label"] and "your *Cancer-associated stroma*" in caption


# ----- what users see ----------------------------------------------------------------------------------------
def test_the_nine_classes_are_medmnists_official_labels_in_order():
    import medmnist

    official = medmnist.INFO["pathmnist"]["label"]
    assert list(official) == [str(i) for i in range(9)] and len(TISSUE_CLASSES) == 9
    for tissue, (index, label) in zip(TISSUE_CLASSES, official.items(), strict=True):
        assert str(tissue.index) == index
        # Our display names are the official labels, capitalised; "adipose" is shown as "Adipose tissue".
        assert tissue.name.lower() in (label, f"{label} tissue"), (tissue.name, label)


def test_generate_returns_exactly_the_tiles_asked_for_each_recognised_as_that_tissue(client):
    gallery, stats, _, _ = client.predict("lymphocytes", 3, "11", 12, 2.0, 0.5, api_name="/generate")
    accepted = int(stats.split("**")[1].split(" ")[0].replace("Only", "") or 0) if "Only" not in stats \
        else int(stats.split("Only ")[1].split(" ")[0])
    assert len(gallery) == accepted
    assert accepted == 3 or "passed** the classifier after" in stats  # exactly as asked, or it says why not
    for position in range(len(gallery)):
        label, caption = client.predict(position, api_name="/generate_confidence")
        assert label["label"] == "Lymphocytes" and "synthetic" in caption
    gallery, stats, _, _ = client.predict("lymphocytes", explore.EXPLORE_FRESH, api_name="/explore_generate")
    for position in range(len(gallery)):
        assert client.predict(position, api_name="/explore_confidence")[0]["label"] == "Lymphocytes"


def test_the_model_card_shows_the_figures_of_the_files_it_reads(tmp_path):
    for name in ("classifier", "generator", "bank", "real_examples.npz"):
        (tmp_path / name).symlink_to(ASSETS / name)
    (tmp_path / "metrics").mkdir()
    generator = json.loads((ASSETS / "metrics" / "generator.json").read_text())
    generator["recognisability"]["macro_f1"] = 0.123456
    generator["feature_spaces"]["judge"]["generated"]["prdc"]["summary"]["coverage"]["mean"] = 0.5678
    (tmp_path / "metrics" / "generator.json").write_text(json.dumps(generator))
    (tmp_path / "classifier").unlink()
    (tmp_path / "classifier").mkdir()
    for item in (ASSETS / "classifier").iterdir():
        (tmp_path / "classifier" / item.name).symlink_to(item)
    classifier = json.loads((ASSETS / "classifier" / "metrics.json").read_text())
    classifier["test"]["accuracy"] = 0.4321
    (tmp_path / "classifier" / "metrics.json").unlink()
    (tmp_path / "classifier" / "metrics.json").write_text(json.dumps(classifier))
    card = model_card(load_services(tmp_path))
    assert "0.1235" in card and "| Accuracy | " in card and "0.4321" in card and "0.57 / " in card
    assert "No human realism figure yet" in card
    (tmp_path / "metrics" / "realism.json").write_text(json.dumps({
        "judgements": 40, "tiles_judged": 12, "synthetic_spotted_overall": 0.625,
        "per_class": [{"class": "stroma", "name": "Cancer-associated stroma",
                       "synthetic_spotted": {"judgements": 20, "rate": 0.7, "ci95": [0.46, 0.88]},
                       "real_called_synthetic": {"judgements": 20, "rate": 0.3, "ci95": [0.12, 0.54]}}]}))
    card = model_card(load_services(tmp_path))
    assert "synthetic tiles spotted overall: 62.5%" in card and "| Cancer-associated stroma | 70.0% (20) | 30.0% (20) |" in card


def test_shared_tiles_are_files_written_once_and_named_by_content(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from ui.widgets import SCALE, tile_file

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    tile = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    path = tile_file(tile)
    written = os.stat(path).st_mtime_ns
    shown = np.asarray(Image.open(path))
    assert shown.shape == (28 * SCALE, 28 * SCALE, 3) and (shown[::SCALE, ::SCALE] == tile).all()
    assert tile_file(tile.copy()) == path and os.stat(path).st_mtime_ns == written  # never rewritten in place
    other = tile.copy()
    other[0, 0, 0] ^= 1
    assert tile_file(other) != path
    assert not list(Path(path).parent.glob("*.part"))


def test_confusion_tables_show_every_count_in_its_cell_and_escape_labels():
    import numpy as np

    from ui.widgets import confusion_html

    matrix = np.array([[3, 0], [1, 2]])
    table = confusion_html(matrix, ["<b>A</b>", "B"], "rows: truth")
    rows = table.split("<tr>")[2:]
    assert [[cell.split(">", 1)[1].split("<")[0] for cell in row.split("<td")[1:]] for row in rows] == [["3", ""], ["1", "2"]]
    assert "&lt;b&gt;A&lt;/b&gt;" in table and "<b>A</b>" not in table
    assert "rgba(31,119,180,0.90)" in rows[0]  # the largest count is the darkest cell


def test_guidance_slider_follows_the_profiles_scale_for_the_chosen_tissue():
    from types import SimpleNamespace

    from pathgen.generation import SamplingDefaults, SamplingProfiles

    profiles = SamplingProfiles(live=SamplingDefaults(steps=12, guidance=2.0),
                                bank=SamplingDefaults(steps=50, guidance=1.5, class_guidance={"mucus": 1.0}))
    services = SimpleNamespace(generator=SimpleNamespace(profiles=profiles))
    assert generate.profile_settings(services, "bank", "mucus")[:2] == (50, 1.0)
    assert generate.profile_settings(services, "bank", "stroma")[:2] == (50, 1.5)
    assert generate.profile_settings(services, "live", "mucus")[:2] == (12, 2.0)
    assert generate.class_guidance(services, "bank", "mucus")[0] == 1.0
    # A profile with one scale for every class leaves the user's guidance alone when the tissue changes.
    assert generate.class_guidance(services, "live", "mucus")[0] == generate.gr.skip()
    with pytest.raises(ValueError, match="Tissue type must be one of"):
        generate.class_guidance(services, "bank", "x" * 10_000)

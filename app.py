"""PathGen teaching app: explore, quiz on and generate synthetic colorectal histopathology tiles.

    python app.py    # serves on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (default 127.0.0.1:7860)

Models and the image bank come from ./assets (or $PATHGEN_ASSETS_DIR) and load once at start-up;
every per-user value lives in a session's gr.State. All logic sits in `pathgen`; this file is UI.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from pathgen.bank import ImageBank
from pathgen.classifier import TissueClassifier
from pathgen.data import CLASS_NAMES, DATA_CITATION, NUM_CLASSES, TISSUE_CLASSES, check_images, resolve_class
from pathgen.generator import GENERATOR_CONFIG_NAME, ImageGenerator, load_generator
from pathgen.quiz import DIFFICULTIES, MAX_QUESTIONS, QuizState, answer, new_quiz, review_mistakes, summary
from pathgen.validation import generate_validated

ASSETS_ENV = "PATHGEN_ASSETS_DIR"
DEFAULT_ASSETS = Path(__file__).resolve().parent / "assets"
SCALE = 8  # 28 px -> 224 px; nearest-neighbour, so every square on screen is one real pixel
CAPTION_NOTE = "caption: the classifier's probability for this tissue type"
RESOLUTION_NOTE = "True resolution 28 × 28 px, shown 8× enlarged without smoothing (one square = one pixel)."
EXPLORE_SYNTHETIC = 12
EXPLORE_REAL = 6
EXPLORE_FRESH = 6
MAX_GENERATE = 32
MAX_UI_STEPS = 50
MAX_UI_GUIDANCE = 10.0
GENERATE_ATTEMPTS = 10
MIN_THRESHOLD = 0.05
BANNER = (
    "<div style='background:#fff4d6;border:2px solid #e0a800;border-radius:8px;padding:8px 14px;color:#4a3800'>"
    "<b>⚠️ Synthetic images, for education only.</b> Every tissue tile in this app is made by a diffusion model "
    "unless it is labelled <i>real</i>. Not for diagnosis or any clinical decision.</div>"
)
# Which script rebuilds each asset, named in the start-up error when one is missing or corrupt.
REBUILD = {
    "classifier": "python -m training.train_classifier",
    "classifier/metrics.json": "python -m training.evaluate_classifier",
    "generator": "python -m training.train_generator",
    "metrics/generator.json": "python -m training.evaluate_generator",
    "bank": "python -m training.build_bank",
    "real_examples.npz": "python -m training.export_real_examples",
}
TISSUE_CHOICES = tuple((c.name, c.key) for c in TISSUE_CLASSES)
logger = logging.getLogger("pathgen.app")


class AssetError(RuntimeError):
    """An asset is missing or unreadable; the message names the script that rebuilds it."""


@dataclass(frozen=True)
class Assets:
    """Everything loaded at start-up; shared read-only by all sessions."""

    classifier: TissueClassifier
    generator: ImageGenerator
    generator_backend: str
    bank: ImageBank
    real_images: np.ndarray
    real_labels: np.ndarray
    real_probabilities: np.ndarray
    attribution: str
    generator_metrics: dict
    classifier_metrics: dict

    @property
    def threshold(self) -> float:
        return float(self.bank.info.get("threshold", 0.9))


@dataclass(frozen=True)
class QuizSession:
    quiz: QuizState
    revealed: bool = False  # feedback on the last answer is showing; "Next question" moves on


def load_assets(folder: str | os.PathLike) -> Assets:
    """Loads every asset or raises AssetError saying which one failed and how to rebuild it."""
    folder = Path(folder)

    def load(name: str, loader):
        try:
            return loader(folder / name)
        except Exception as error:
            hint = "" if REBUILD[name] in str(error) else f" Rebuild it with `{REBUILD[name]}`."
            raise AssetError(f"{folder / name}: {error}{hint}") from error

    def read_json(path: Path) -> dict:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def read_real(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
        with np.load(path) as arrays:
            images, labels = check_images(arrays["images"]), arrays["labels"].astype(np.int64).reshape(-1)
            attribution = str(arrays["attribution"]) if "attribution" in arrays else DATA_CITATION
        if len(labels) != len(images) or labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise ValueError("labels do not match the images")
        return images, labels, attribution

    classifier = load("classifier", TissueClassifier.from_pretrained)
    generator = load("generator", load_generator)
    backend = load("generator", lambda p: read_json(p / GENERATOR_CONFIG_NAME).get("backend", "unknown"))
    bank = load("bank", ImageBank.load)
    real_images, real_labels, attribution = load("real_examples.npz", read_real)
    return Assets(classifier=classifier, generator=generator, generator_backend=backend, bank=bank,
                  real_images=real_images, real_labels=real_labels,
                  real_probabilities=classifier.predict_proba(real_images), attribution=attribution,
                  generator_metrics=load("metrics/generator.json", read_json),
                  classifier_metrics=load("classifier/metrics.json", read_json))


def enlarge(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(image, SCALE, axis=0), SCALE, axis=1)


def tile_gallery(label: str, columns: int, height: int, **kwargs) -> gr.Gallery:
    # PNG, not gradio's default WebP: lossy compression would blur the enlarged pixels.
    return gr.Gallery(label=label, columns=columns, height=height, format="png", object_fit="contain", **kwargs)


def as_label(probabilities: np.ndarray | list[float]) -> dict[str, float]:
    return {name: float(p) for name, p in zip(CLASS_NAMES, probabilities, strict=True)}


def whole_number(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(value)


def number(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low} to {high}, got {value!r}.")
    return float(value)


def optional_seed(text: str | int | None) -> int | None:
    """A seed typed by the user: blank means None (random); otherwise a whole number from 0 to 2**63 - 1."""
    text = "" if text is None else str(text).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        raise ValueError(f"Seed must be a whole number from 0 to {2**63 - 1}, or blank for random; got {text!r}.")
    return int(text)


def user_errors(message_index: int, n_outputs: int):
    """Wraps a handler so that any failure becomes a warning toast plus a message in one output,
    leaving the other outputs as they were; users never see a traceback."""

    def wrap(handler):
        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except ValueError as error:
                text = str(error)
            except Exception:
                logger.exception("%s failed", handler.__name__)
                text = "Something went wrong on the server; please try again."
            gr.Warning(text)
            outputs = [gr.skip()] * n_outputs
            outputs[message_index] = f"⚠️ {text}"
            return tuple(outputs)

        return run

    return wrap


def confusion_figure(matrix: np.ndarray) -> Figure:
    # A bare Figure, not pyplot: pyplot keeps global state that concurrent sessions would share.
    figure = Figure(figsize=(7, 6), layout="tight")
    axis = figure.add_subplot()
    axis.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max())))
    for row, col in zip(*np.nonzero(matrix), strict=True):
        axis.text(col, row, str(matrix[row, col]), ha="center", va="center",
                  color="white" if matrix[row, col] > matrix.max() / 2 else "black")
    axis.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(NUM_CLASSES), CLASS_NAMES, fontsize=8)
    axis.set_xlabel("your answer")
    axis.set_ylabel("true tissue")
    axis.set_title("Your answers (rows: truth, columns: what you chose)")
    return figure


def summary_markdown(state: QuizState) -> str:
    result = summary(state)
    rows = "\n".join(f"| {name} | {right} | {asked} | {right / asked:.0%} |"
                     for name, (right, asked) in result.per_class.items())
    return (f"### Your result: {result.score} / {result.answered} ({result.accuracy:.0%})\n\n"
            f"| Tissue | Right | Asked | Accuracy |\n|---|---|---|---|\n{rows}\n\n"
            "The matrix below shows where your answers went. Press **Review my mistakes** to try the wrong ones again.")


def metric(metrics: dict, *path: str, digits: int = 4, percent: bool = False) -> str:
    """One number from a nested metrics dict, formatted, or "n/a" when the file lacks it."""
    value = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.{digits}f}"


def model_card(assets: Assets) -> str:
    """The About tab, built from the shipped metrics files so that its figures match the shipped models."""
    c, g = assets.classifier_metrics, assets.generator_metrics
    classifier_rows = "\n".join(
        f"| {label} | {metric(c, 'val', key)} | {metric(c, 'test', key)} |"
        for label, key in (("Accuracy", "accuracy"), ("Macro F1", "macro_f1"), ("Expected calibration error", "ece"),
                           ("ECE without temperature scaling", "ece_without_temperature")))
    recall = ", ".join(f"{name} {value:.3f}" for name, value in c.get("test", {}).get("per_class_recall", {}).items())
    acceptance = ", ".join(f"{key} {metric(v, 'acceptance_rate', percent=True)}"
                           for key, v in g.get("acceptance", {}).get("per_class", {}).items())
    generator_rows = "\n".join(f"| {label} | {value} |" for label, value in (
        ("Macro precision / recall / F1 of *unfiltered* samples, as judged by the classifier",
         " / ".join(metric(g, "recognisability", k) for k in ("macro_precision", "macro_recall", "macro_f1"))),
        (f"Acceptance rate at threshold {metric(g, 'acceptance', 'threshold', digits=2)}",
         metric(g, "acceptance", "overall_acceptance_rate", percent=True)),
        ("Fréchet distance in classifier features, generated vs real (not FID)",
         metric(g, "realism", "overall", "generated_vs_real", digits=2)),
        ("... the same between two real sets (the floor)", metric(g, "realism", "overall", "real_vs_real", digits=2)),
        ("Near-copies of training tiles among generated / accepted / bank tiles",
         " / ".join(metric(g, "memorisation", k, "near_copy_fraction", percent=True)
                    for k in ("generated", "accepted", "bank"))),
    ))
    unet = getattr(getattr(assets.generator, "pipeline", None), "unet", None)
    size = f", {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters" if unet is not None else ""
    counts = np.bincount(assets.bank.labels, minlength=NUM_CLASSES)
    near_copies = ""
    if (exclusion := assets.bank.info.get("near_copy_exclusion")) is not None:
        discarded = sum(v.get("near_copies_discarded", 0) for v in assets.bank.info.get("acceptance", {}).values())
        near_copies = (f" Tiles that passed the classifier but sat closer to a training tile than "
                       f"{100 - exclusion['percentile']:g}% of real held-out tiles of their class do were discarded "
                       f"too, as near-copies of patient tissue ({discarded} while the bank was built).")
    tta = (" Each prediction averages the eight flips and rotations of the tile, since tissue has no orientation."
           if assets.classifier.config.dihedral_tta else "")
    return f"""
## Model card

**Every tissue image in this app is synthetic** except the few labelled *real* in Explore. The app is for
teaching pattern recognition only: **it is not a medical device and must not be used for diagnosis.**

### Data
{DATA_CITATION} PathMNIST shrinks 224 × 224 px tiles (0.5 µm/px) of H&E-stained colorectal tissue to 28 × 28 px,
so one pixel covers about 4 µm and a nucleus is only a pixel or two wide. Nine classes: {", ".join(CLASS_NAMES)}.

### Models
- **Generator** (`{assets.generator_backend}` backend{size}): a class-conditional diffusion model trained on the
  PathMNIST train split that draws 28 × 28 tiles of a requested tissue type.
- **Classifier**: ResNet-18 adapted to 28 × 28 input, trained on the PathMNIST train split and calibrated by
  temperature scaling on the validation split (T = {metric(c, "temperature", digits=3)}).{tta}
- **Validation filter**: a generated tile is kept only if the classifier's top class is the requested one with
  calibrated probability ≥ the threshold ({assets.threshold:.2f} for the bank); rejected tiles are regenerated.
- **Image bank**: {len(assets.bank)} validated tiles ({", ".join(f"{n} {t.key}" for n, t in zip(counts, TISSUE_CLASSES,
                                                                                             strict=True))}).{near_copies}

### Measured figures
Classifier (val: PathMNIST validation split; test: CRC-VAL-HE-7K, another centre):

| Figure | Val | Test |
|---|---|---|
{classifier_rows}

Test recall per class: {recall or "n/a"}.

Generator (`metrics/generator.json`, rebuilt by `{REBUILD["metrics/generator.json"]}`):

| Figure | Value |
|---|---|
{generator_rows}

Acceptance rate per class: {acceptance or "n/a"}.

### Limitations
- 28 × 28 px is far below what a pathologist reads: fine nuclear detail, mitoses and grading cannot be taught here.
- "Validated" means *the classifier* agrees, not a pathologist; tiles can pass yet carry artefacts, and the
  classifier's own blind spots pass straight into the bank. No pathologist has reviewed the tiles one by one.
- The training data come from two centres' archives, so stain and scanner variety is narrow.
- Quiz difficulty follows the classifier's confidence, which is only a proxy for how hard a tile is for people.

### Builds on
1. K. Choudhary, *Aiding Medical Diagnosis through Image Synthesis and Classification*, arXiv:2506.00786 (2025):
   Stable Diffusion fine-tuned with LoRA on PathMNIST, with a ResNet-18 classifier that filters and regenerates
   outputs; its best generator reached classifier-agreement F1 0.6727 (as reported there).
2. *AI-Driven Cytomorphology Image Synthesis for Medical Diagnostics*, arXiv:2507.05063 (2025): Stable Diffusion
   with LoRA guided by few-shot real samples (white blood cells); adding synthetic images lifted a ResNet
   classifier's accuracy from 27.3% to 78.4% (as reported there).
"""


def create_app(assets_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """Builds the app; raises AssetError when an asset is missing or corrupt."""
    assets = load_assets(assets_dir or os.environ.get(ASSETS_ENV) or DEFAULT_ASSETS)
    bank = assets.bank
    confidence = bank.confidence()
    # Explore shows the same tiles per class every time, so their order is worked out once.
    synthetic_by_class = []
    for c in range(NUM_CLASSES):
        ranked = bank.indices_of(c)[np.argsort(-confidence[bank.indices_of(c)], kind="stable")]
        # Evenly spread over the confidence ranking: the clearest tiles and some nearer the threshold.
        spread = np.unique(np.linspace(0, len(ranked) - 1, min(EXPLORE_SYNTHETIC, len(ranked))).round().astype(int))
        synthetic_by_class.append(ranked[spread])
    real_by_class = [np.flatnonzero(assets.real_labels == c)[:EXPLORE_REAL] for c in range(NUM_CLASSES)]

    # ----- Explore -----------------------------------------------------------------------------------------
    def explore_rows(images: np.ndarray, probabilities: np.ndarray, kind: str, c: int) -> tuple[list, list]:
        """Gallery items captioned with the classifier's probability for class c, and the rows kept per session
        so that a clicked tile's full probabilities can be shown."""
        gallery = [(enlarge(im), f"{p[c]:.0%}") for im, p in zip(images, probabilities, strict=True)]
        return gallery, [[kind, [float(x) for x in p]] for p in probabilities]

    @user_errors(0, 8)
    def explore_show(tissue: str):
        """Teaching description, bank tiles and real tiles of one tissue type."""
        c = resolve_class(tissue).index
        picks, real = synthetic_by_class[c], real_by_class[c]
        synthetic_gallery, synthetic_view = explore_rows(bank.images[picks], bank.probabilities[picks], "synthetic", c)
        real_gallery, real_view = explore_rows(assets.real_images[real], assets.real_probabilities[real], "real", c)
        note = "" if len(picks) else "\n\n*The bank has no tiles of this class yet; try **Generate fresh examples**.*"
        description = f"### {TISSUE_CLASSES[c].name}\n{TISSUE_CLASSES[c].description}\n\n_{RESOLUTION_NOTE}_{note}"
        return (description, synthetic_gallery, real_gallery, synthetic_view + real_view, None,
                "Click any tile to see what the classifier thinks of it.", None, "")

    @user_errors(1, 2)
    def tile_confidence(view: list, position):
        """Classifier probabilities for one shown tile (its position: synthetic tiles first, then real)."""
        if position is None:
            return None, "Click any tile to see what the classifier thinks of it."
        if not view:
            raise ValueError("No tiles are shown yet.")
        kind, probabilities = view[whole_number(position, "Tile position", 0, len(view) - 1)]
        return as_label(probabilities), f"The classifier's view of this **{kind}** tile."

    @user_errors(1, 5)
    def explore_generate(tissue: str, view: list, progress=gr.Progress()):  # noqa: B008 (gradio's progress idiom)
        """Runs the live generate-and-validate loop for a few fresh tiles of one tissue type."""
        c = resolve_class(tissue).index
        batch = generate_validated(assets.generator, assets.classifier, c, EXPLORE_FRESH, threshold=assets.threshold,
                                   max_attempts=GENERATE_ATTEMPTS, progress=progress)
        gallery, fresh_view = explore_rows(batch.images, batch.probabilities, "synthetic", c)
        real_view = [row for row in view if row[0] == "real"]
        stats = (f"**{batch.accepted} accepted, {batch.generated - batch.accepted} rejected** "
                 f"(acceptance rate {batch.acceptance_rate:.0%}, threshold {batch.threshold:.2f}).")
        return gallery, stats, fresh_view + real_view, None, None

    # ----- Quiz --------------------------------------------------------------------------------------------
    def show_question(session: QuizSession) -> tuple:
        quiz = session.quiz
        status = (f"**Question {quiz.position + 1} of {quiz.total}** · score {quiz.score} / {quiz.position} · "
                  f"{quiz.kind} round")
        return (session, enlarge(bank.images[quiz.current_question]), status, None, "", None, "",
                gr.Plot(None, visible=False))

    @user_errors(2, 8)
    def quiz_start(n_questions, difficulty: str, focus: list[str] | None):
        """Starts a round of n slides (easy, hard or mixed), optionally only from the focus classes."""
        n = whole_number(n_questions, "Number of questions", 1, MAX_QUESTIONS)
        quiz = new_quiz(bank, n, difficulty, focus_classes=list(focus or []), threshold=assets.threshold)
        return show_question(QuizSession(quiz))

    @user_errors(2, 8)
    def quiz_answer(session: QuizSession | None, choice: str | None):
        """Marks the answer to the slide on screen and explains the right one."""
        if session is None:
            raise ValueError("Start a quiz first.")
        if session.revealed and not session.quiz.finished:
            raise ValueError("You have answered this slide; press “Next question” to go on.")
        if not choice:
            raise ValueError("Pick one of the nine tissue types first.")
        feedback = answer(session.quiz, choice)
        quiz = feedback.state
        verdict = ("✓ **Correct!**" if feedback.correct else f"✗ **Not quite.** You said *{feedback.chosen.name}*.")
        text = (f"{verdict} This is **{feedback.truth.name}**.\n\n{feedback.description}\n\n"
                "The bars show what the classifier thought of this slide.")
        status = f"**{quiz.position} of {quiz.total} answered** · score {quiz.score} / {quiz.position}"
        finished = quiz.finished
        return (QuizSession(quiz, revealed=True), gr.skip(), status + (" · finished" if finished else ""), gr.skip(),
                text, dict(feedback.classifier_top3), summary_markdown(quiz) if finished else "",
                gr.Plot(confusion_figure(summary(quiz).confusion), visible=True) if finished else gr.skip())

    @user_errors(2, 8)
    def quiz_next(session: QuizSession | None):
        """Shows the next slide of the round."""
        if session is None:
            raise ValueError("Start a quiz first.")
        if session.quiz.finished:
            raise ValueError("That was the last slide: see your summary, review your mistakes or start a new quiz.")
        if not session.revealed:
            raise ValueError("Answer this slide first.")
        return show_question(QuizSession(session.quiz))

    @user_errors(2, 8)
    def quiz_review(session: QuizSession | None):
        """Starts a new round over the slides answered wrongly so far."""
        if session is None:
            raise ValueError("Start a quiz first.")
        return show_question(QuizSession(review_mistakes(session.quiz)))

    # ----- Generate ----------------------------------------------------------------------------------------
    @user_errors(1, 5)
    def generate(tissue: str, n, seed, steps, guidance, threshold, progress=gr.Progress()):  # noqa: B008
        """Generates n tiles of one class and keeps those the classifier accepts."""
        c = resolve_class(tissue).index
        n = whole_number(n, "Number of images", 1, MAX_GENERATE)
        seed = optional_seed(seed)
        steps = whole_number(steps, "Steps", 1, MAX_UI_STEPS)
        guidance = number(guidance, "Guidance", 0.0, MAX_UI_GUIDANCE)
        threshold = number(threshold, "Threshold", MIN_THRESHOLD, 1.0)
        batch = generate_validated(assets.generator, assets.classifier, c, n, threshold=threshold,
                                   max_attempts=GENERATE_ATTEMPTS, seed=seed, steps=steps, guidance=guidance,
                                   progress=progress)
        rounds = int(batch.attempts.max()) if batch.complete and batch.accepted else GENERATE_ATTEMPTS
        outcome = (f"**{batch.accepted} of {n} accepted**" if batch.complete else
                   f"**Only {batch.accepted} of {n} passed** the classifier after {GENERATE_ATTEMPTS} rounds; "
                   "try a lower threshold, more steps or other guidance.")
        stats = (f"{outcome} Generated {batch.generated} in {rounds} round(s), acceptance rate "
                 f"{batch.acceptance_rate:.0%}, threshold {batch.threshold:.2f}. Seed {batch.seed} repeats this run.")
        gallery, view = explore_rows(batch.images, batch.probabilities, "synthetic", c)
        return gallery, stats, view, None, None

    # ----- Layout and events -------------------------------------------------------------------------------
    with gr.Blocks(title="PathGen: synthetic histopathology for teaching", delete_cache=(3600, 3600)) as demo:
        gr.HTML(BANNER)
        gr.Markdown("# PathGen\nLearn the nine tissue types of colorectal H&E histology from synthetic tiles, "
                    "each checked by a calibrated classifier before you see it.")
        with gr.Tabs():
            with gr.Tab("Explore", id="explore"):
                with gr.Row():
                    tissue = gr.Dropdown(TISSUE_CHOICES, value=TISSUE_CLASSES[0].key, label="Tissue type", scale=3)
                    fresh = gr.Button("Generate fresh examples", variant="secondary", scale=1)
                description = gr.Markdown()
                with gr.Row():
                    with gr.Column(scale=3):
                        synthetic = tile_gallery(f"Validated synthetic tiles ({CAPTION_NOTE})", 6, 230,
                                                 elem_id="synthetic-gallery")
                        fresh_stats = gr.Markdown()
                        real = tile_gallery(f"Real PathMNIST tiles ({CAPTION_NOTE})", 6, 125, elem_id="real-gallery")
                        gr.Markdown(f"<small>{assets.attribution}</small>")
                    with gr.Column(scale=2):
                        explore_label = gr.Label(num_top_classes=5, label="What the classifier thinks")
                        explore_caption = gr.Markdown()
                explore_view = gr.State([])
                explore_selected = gr.Number(visible="hidden", precision=0)

            with gr.Tab("Quiz", id="quiz"):
                with gr.Row():
                    quiz_n = gr.Slider(1, MAX_QUESTIONS, value=10, step=1, label="Questions")
                    quiz_difficulty = gr.Radio(list(DIFFICULTIES), value="mixed", label="Difficulty",
                                               info="easy: clear-cut tiles · hard: tiles near the acceptance line")
                    quiz_focus = gr.CheckboxGroup(TISSUE_CHOICES, value=[c.key for c in TISSUE_CLASSES],
                                                  label="Focus on these tissue types")
                start = gr.Button("Start quiz", variant="primary")
                quiz_status = gr.Markdown("Choose your settings and press **Start quiz**.")
                with gr.Row():
                    with gr.Column(scale=2):
                        quiz_image = gr.Image(label="Which tissue is this? (28 × 28 px, shown 8× enlarged)",
                                              format="png", interactive=False, height=300, elem_id="quiz-image")
                    with gr.Column(scale=3):
                        quiz_choice = gr.Radio(TISSUE_CHOICES, label="Your answer", elem_id="quiz-choice")
                        with gr.Row():
                            submit = gr.Button("Submit answer", variant="primary")
                            next_button = gr.Button("Next question")
                            review = gr.Button("Review my mistakes")
                        quiz_feedback = gr.Markdown(elem_id="quiz-feedback")
                        quiz_label = gr.Label(num_top_classes=3, label="What the classifier thought")
                quiz_summary = gr.Markdown()
                quiz_plot = gr.Plot(label="Your confusion matrix", visible=False)
                quiz_session = gr.State(None)

            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    gen_tissue = gr.Dropdown(TISSUE_CHOICES, value=TISSUE_CLASSES[0].key, label="Tissue type")
                    gen_n = gr.Slider(1, MAX_GENERATE, value=8, step=1, label="Number of images")
                    # A textbox, because gr.Number shows and sends 0 when left empty; blank here means random.
                    gen_seed = gr.Textbox("", label="Seed (blank: random)", placeholder="random")
                with gr.Row():
                    defaults = getattr(assets.generator, "defaults", None)
                    gen_steps = gr.Slider(1, MAX_UI_STEPS, value=getattr(defaults, "steps", 12), step=1,
                                          label="Sampling steps")
                    gen_guidance = gr.Slider(0.0, MAX_UI_GUIDANCE, value=getattr(defaults, "guidance", 3.0),
                                             step=0.5, label="Guidance scale")
                    gen_threshold = gr.Slider(MIN_THRESHOLD, 1.0, value=assets.threshold, step=0.01,
                                              label="Acceptance threshold (classifier probability)")
                gen_button = gr.Button("Generate", variant="primary")
                gen_stats = gr.Markdown()
                with gr.Row():
                    gen_gallery = tile_gallery(f"Accepted tiles ({RESOLUTION_NOTE})", 8, 280, scale=3)
                    with gr.Column(scale=2):
                        gen_label = gr.Label(num_top_classes=5, label="What the classifier thinks")
                        gen_caption = gr.Markdown("Click any tile to see what the classifier thinks of it.")
                gen_view = gr.State([])
                gen_selected = gr.Number(visible="hidden", precision=0)

            with gr.Tab("About", id="about"):
                gr.Markdown(model_card(assets))

        explore_outputs = [description, synthetic, real, explore_view, explore_label, explore_caption,
                           explore_selected, fresh_stats]
        gr.on([demo.load, tissue.change], explore_show, tissue, explore_outputs, api_name="explore_show")
        fresh.click(explore_generate, [tissue, explore_view],
                    [synthetic, fresh_stats, explore_view, explore_label, explore_selected],
                    api_name="explore_generate", concurrency_limit=1, concurrency_id="generator")

        # Gallery clicks only record which tile was picked; the lookup is a named endpoint clients can call.
        def pick_synthetic(evt: gr.SelectData) -> int:
            return evt.index

        def pick_real(view: list, evt: gr.SelectData) -> int:
            return sum(row[0] == "synthetic" for row in view) + evt.index

        synthetic.select(pick_synthetic, None, explore_selected, api_visibility="private", queue=False)
        real.select(pick_real, explore_view, explore_selected, api_visibility="private", queue=False)
        explore_selected.change(tile_confidence, [explore_view, explore_selected], [explore_label, explore_caption],
                                api_name="explore_confidence")

        quiz_outputs = [quiz_session, quiz_image, quiz_status, quiz_choice, quiz_feedback, quiz_label, quiz_summary,
                        quiz_plot]
        start.click(quiz_start, [quiz_n, quiz_difficulty, quiz_focus], quiz_outputs, api_name="quiz_start")
        submit.click(quiz_answer, [quiz_session, quiz_choice], quiz_outputs, api_name="quiz_answer")
        next_button.click(quiz_next, quiz_session, quiz_outputs, api_name="quiz_next")
        review.click(quiz_review, quiz_session, quiz_outputs, api_name="quiz_review")

        gen_button.click(generate, [gen_tissue, gen_n, gen_seed, gen_steps, gen_guidance, gen_threshold],
                         [gen_gallery, gen_stats, gen_view, gen_label, gen_selected], api_name="generate",
                         concurrency_limit=1, concurrency_id="generator")
        gen_gallery.select(pick_synthetic, None, gen_selected, api_visibility="private", queue=False)
        gen_selected.change(tile_confidence, [gen_view, gen_selected], [gen_label, gen_caption],
                            api_name="generate_confidence")
    # Quiz and browsing handlers are light; generation is capped at one at a time by its own limit.
    demo.queue(default_concurrency_limit=8)
    return demo


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    try:
        demo = create_app()
    except AssetError as error:
        print(f"PathGen cannot start: {error}", file=sys.stderr)
        return 1
    port = os.environ.get("GRADIO_SERVER_PORT")
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), server_port=int(port) if port else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Explore tab: a tissue type's description, validated synthetic tiles beside real ones, and the classifier's view."""

import gradio as gr
import numpy as np

from pathgen.data import NUM_CLASSES, TISSUE_CLASSES

from . import inputs, widgets
from .errors import bind, guard
from .generate import bounded_generation
from .services import Services
from .widgets import CAPTION_NOTE, PICK_HINT, RESOLUTION_NOTE, as_label, tile_gallery, tile_rows

EXPLORE_SYNTHETIC = 12
EXPLORE_REAL = 6
EXPLORE_FRESH = 6
PREDICT_HINT = "Predict first: pick the tissue type you see, then the classifier's view is shown."


def explore_picks(services: Services) -> list[np.ndarray]:
    """Bank tiles Explore shows per class, worked out once: evenly spread over the confidence ranking, so the
    clearest tiles and some nearer the threshold."""
    if "explore_picks" not in services.extras:
        bank, confidence, picks = services.bank, services.bank.confidence(), []
        for c in range(NUM_CLASSES):
            ranked = bank.indices_of(c)[np.argsort(-confidence[bank.indices_of(c)], kind="stable")]
            spread = np.unique(np.linspace(0, len(ranked) - 1, min(EXPLORE_SYNTHETIC, len(ranked))).round().astype(int))
            picks.append(ranked[spread])
        services.extras["explore_picks"] = picks
    return services.extras["explore_picks"]


def explore_show(services: Services, tissue: object) -> tuple:
    """Teaching description, bank tiles and real tiles of one tissue type."""
    c = inputs.tissue(tissue).index
    picks, real = explore_picks(services)[c], services.real_of(c)[:EXPLORE_REAL]
    bank = services.bank
    synthetic_gallery, synthetic_view = tile_rows(bank.images[picks], bank.probabilities[picks], "synthetic", c)
    real_gallery, real_view = tile_rows(services.real_images[real], services.real_probabilities[real], "real", c)
    note = "" if len(picks) else "\n\n*The bank has no tiles of this class yet; try **Generate fresh examples**.*"
    description = f"### {TISSUE_CLASSES[c].name}\n{TISSUE_CLASSES[c].description}\n\n_{RESOLUTION_NOTE}_{note}"
    return description, synthetic_gallery, real_gallery, synthetic_view + real_view, None, PICK_HINT, None, ""


def tile_confidence(view: list, position: object, predict_first: object = False, guess: object = None) -> tuple:
    """Classifier probabilities for one shown tile (its position: synthetic tiles first, then real).

    With predict-first on, the bars stay hidden until the trainee has picked a tissue type for the tile."""
    if predict_first in (None, False) or not inputs.flag(predict_first, "Predict first"):
        return widgets.tile_confidence(view, position)
    index = inputs.position(position, len(view or []))
    if index is None:
        return None, PICK_HINT
    if guess in (None, ""):
        return None, PREDICT_HINT
    kind, probabilities = view[index]
    guessed = inputs.tissue(guess, "Your prediction")
    top = TISSUE_CLASSES[int(np.argmax(probabilities))]
    verdict = "agrees with" if top.index == guessed.index else f"says **{top.name}**, not"
    return as_label(probabilities), f"The classifier {verdict} your *{guessed.name}* for this **{kind}** tile."


def explore_generate(services: Services, tissue: object, view: list, progress=gr.Progress()) -> tuple:  # noqa: B008
    """Runs the live generate-and-validate loop for a few fresh tiles of one tissue type."""
    c = inputs.tissue(tissue).index
    batch, note = bounded_generation(services, c, EXPLORE_FRESH, threshold=services.threshold, progress=progress)
    gallery, fresh_view = tile_rows(batch.images, batch.probabilities, "synthetic", c, shared=False)
    real_view = [row for row in (view or []) if row[0] == "real"]
    stats = (f"**{batch.accepted} accepted, {batch.generated - batch.accepted} rejected** "
             f"(acceptance rate {batch.acceptance_rate:.0%}, threshold {batch.threshold:.2f}).{note}")
    return gallery, stats, fresh_view + real_view, None, None


# A click clears the last prediction too, so that with predict-first on a new tile's bars stay hidden.
def pick_synthetic(evt: gr.SelectData) -> tuple:
    return evt.index, None


def pick_real(view: list, evt: gr.SelectData) -> tuple:
    return sum(row[0] == "synthetic" for row in view) + evt.index, None


def build(services: Services) -> None:
    default = TISSUE_CLASSES[0].key
    first = explore_show(services, default)
    with gr.Row():
        tissue = gr.Dropdown(inputs.TISSUE_CHOICES, value=default, label="Tissue type", scale=3)
        fresh = gr.Button("Generate fresh examples", variant="secondary", scale=1)
    description = gr.Markdown(first[0])
    with gr.Row():
        with gr.Column(scale=3):
            synthetic = tile_gallery(f"Validated synthetic tiles ({CAPTION_NOTE})", 6, value=first[1],
                                     elem_id="synthetic-gallery")
            fresh_stats = gr.Markdown()
            real = tile_gallery(f"Real PathMNIST tiles ({CAPTION_NOTE})", 6, value=first[2], elem_id="real-gallery")
            gr.Markdown(f"<small>{services.attribution}</small>")
        with gr.Column(scale=2):
            predict_first = gr.Checkbox(False, label="Predict first (hide the classifier until I have chosen)",
                                        elem_id="predict-first")
            guess = gr.Radio(inputs.TISSUE_CHOICES, label="Your prediction for the clicked tile", visible=False,
                             elem_id="explore-guess")
            label = gr.Label(num_top_classes=5, label="What the classifier thinks")
            caption = gr.Markdown(PICK_HINT)
    try:
        from . import variations
    except ModuleNotFoundError as error:  # mounted once that module exists; its own missing imports still fail
        if error.name != "ui.variations":
            raise
        variations = None
    if variations is not None:
        with gr.Accordion("Variations of this tile", open=False):
            variations.build(services)
    view = gr.State(first[3])
    selected = gr.Number(visible="hidden", precision=0)

    outputs = [description, synthetic, real, view, label, caption, selected, fresh_stats]
    tissue.change(guard(bind(explore_show, services), outputs, description), tissue, outputs,
                  api_name="explore_show", preprocess=False)
    fresh_outputs = [synthetic, fresh_stats, view, label, selected]
    fresh.click(guard(bind(explore_generate, services), fresh_outputs, fresh_stats), [tissue, view], fresh_outputs,
                api_name="explore_generate", concurrency_limit=1, concurrency_id="generator", preprocess=False)
    # Gallery clicks only record which tile was picked; the lookup is a named endpoint clients can call.
    synthetic.select(pick_synthetic, None, [selected, guess], api_visibility="private", queue=False)
    real.select(pick_real, view, [selected, guess], api_visibility="private", queue=False)
    confidence_outputs = [label, caption]
    confidence_inputs = [view, selected, predict_first, guess]
    gr.on([selected.change, guess.input], guard(tile_confidence, confidence_outputs, caption), confidence_inputs,
          confidence_outputs, api_name="explore_confidence", preprocess=False)
    predict_first.change(lambda on: (gr.Radio(visible=on, value=None), None), predict_first, [guess, label],
                         api_visibility="private", queue=False)

"""Real or synthetic? tab: a round of real and bank tiles; the trainee says which each is, optionally naming it."""

import logging

import gradio as gr

from pathgen.data import TISSUE_CLASSES
from pathgen.realism import MAX_TILES, RealismRound, detection, judge, new_round

from . import inputs
from .errors import bind, guard
from .services import Services
from .sessions import SessionBox
from .widgets import tile_file

CALLS = ("real", "synthetic")
logger = logging.getLogger("pathgen.app")


def tile_image(services: Services, state: RealismRound):
    source, index = state.current
    return tile_file(services.real_images[index] if source == "real" else services.bank.images[index])


def summary_markdown(state: RealismRound) -> str:
    result = detection(state)
    tissue = (f" You named the tissue right on {result.tissue_correct} of {result.tissue_named} tiles."
              if result.tissue_named else "")
    return (f"### Detection: {result.correct} / {result.judged} ({result.accuracy:.0%})\n\n"
            f"95% interval {result.low:.0%} to {result.high:.0%} (exact binomial); p = {result.p_value:.2f} "
            f"against guessing. **{result.verdict}**{tissue}\n\n"
            "50% is what guessing gives: tiles that fool most people are those the bank renders most realistically.")


def status_of(state: RealismRound) -> str:
    if state.finished:
        return f"**Round finished** · {state.total} tiles judged"
    return f"**Tile {state.position + 1} of {state.total}** · real or synthetic?"


def real_or_synthetic_start(services: Services, box: SessionBox, n: object, name_tissue: object = False) -> tuple:
    """Starts a round of n tiles, about half real PathMNIST tiles and half from the validated bank."""
    n = inputs.whole_number(n, "Number of tiles", 2, MAX_TILES)
    name_tissue = inputs.flag(bool(name_tissue) if name_tissue is None else name_tissue, "Name the tissue too")
    state = new_round(services.bank.labels, services.real_labels, n)
    with box.lock:
        box.value, box.options = state, {"name_tissue": name_tissue}
    return (box, tile_image(services, state), status_of(state), None, gr.Radio(visible=name_tissue, value=None), "",
            "")


def real_or_synthetic_answer(services: Services, box: SessionBox, call: object, tissue: object = None) -> tuple:
    """Judges the tile on screen (real or synthetic, and optionally its tissue) and shows the next one."""
    call = inputs.choice(call, "Your call", CALLS)
    guess = None if tissue in (None, "") else inputs.tissue(tissue, "Tissue type")
    with box.lock:
        if not isinstance(box.value, RealismRound):
            raise ValueError("Start a round first.")
        if box.value.finished:
            raise ValueError("This round is finished; start a new one.")
        if box.options.get("name_tissue") and guess is None:
            raise ValueError("Name the tissue type too (you asked to), then submit.")
        before = box.value
        box.value = state = judge(before, call == "synthetic", None if guess is None else guess.index)
    source, index = before.current
    if services.storage is not None:
        try:
            services.storage.record_realism_judgement(services.tile_key(source, index), source == "synthetic",
                                                      call == "synthetic")
        except Exception as error:  # the trainee's round goes on even if the shared counts cannot be written
            logger.warning("could not store a realism judgement: %s", error)
    truth = TISSUE_CLASSES[before.labels[before.position]]
    right = (call == "synthetic") == (source == "synthetic")
    feedback = (f"{'✓ Right' if right else '✗ Wrong'}: that tile was **{source}** ({truth.name})."
                + ("" if guess is None else f" You named it *{guess.name}*."))
    image = gr.skip() if state.finished else tile_image(services, state)
    return box, image, status_of(state), None, None, feedback, summary_markdown(state) if state.finished else ""


def build(services: Services) -> None:
    gr.Markdown("Each tile is either a **real** PathMNIST tile or a **synthetic** one from the validated bank. "
                "Say which. Your answers also count, anonymously, towards how realistic the bank's tiles are.")
    with gr.Row():
        n = gr.Slider(2, MAX_TILES, value=10, step=1, label="Tiles in the round")
        name_tissue = gr.Checkbox(False, label="Name the tissue type too")
    start = gr.Button("Start round", variant="primary")
    status = gr.Markdown("Press **Start round**.", elem_id="ros-status")
    with gr.Row():
        with gr.Column(scale=2, min_width=240):
            image = gr.Image(label="Real or synthetic? (28 × 28 px, shown 8× enlarged)", format="png",
                             interactive=False, height=300, elem_id="ros-image")
        with gr.Column(scale=3, min_width=240):
            call = gr.Radio(list(CALLS), label="This tile is", elem_id="ros-call")
            tissue = gr.Radio(inputs.TISSUE_CHOICES, label="Tissue type", visible=False, elem_id="ros-tissue")
            submit = gr.Button("Submit", variant="primary")
            feedback = gr.Markdown(elem_id="ros-feedback")
    summary = gr.Markdown(elem_id="ros-summary")
    box = gr.State(SessionBox())

    outputs = [box, image, status, call, tissue, feedback, summary]
    start.click(guard(bind(real_or_synthetic_start, services), outputs, status), [box, n, name_tissue], outputs,
                api_name="real_or_synthetic_start", preprocess=False)
    submit.click(guard(bind(real_or_synthetic_answer, services), outputs, status), [box, call, tissue], outputs,
                 api_name="real_or_synthetic_answer", preprocess=False)

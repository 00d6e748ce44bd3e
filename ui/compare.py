"""Compare tab: two tissue types side by side, real and synthetic tiles of each, and what tells them apart."""

import gradio as gr
from gradio.context import Context

from pathgen.comparisons import DEFAULT_PAIR, default_pair, pair_text

from . import inputs
from .errors import bind, guard
from .services import Services
from .widgets import tile_gallery, tile_rows

PER_KIND = 4


def tiles_of(services: Services, c: int) -> list:
    """A few real tiles, then a few synthetic ones, of class c, captioned with their origin."""
    real = services.real_of(c)[:PER_KIND]
    synthetic = services.bank.indices_of(c)[:PER_KIND]
    gallery_real, _ = tile_rows(services.real_images[real], services.real_probabilities[real], "real", c)
    gallery_synthetic, _ = tile_rows(services.bank.images[synthetic], services.bank.probabilities[synthetic],
                                     "synthetic", c)
    return [(image, "real") for image, _ in gallery_real] + [(image, "synthetic") for image, _ in gallery_synthetic]


def compare_show(services: Services, first: object, second: object) -> tuple:
    """Real and synthetic tiles of two tissue types and a short text on what tells them apart."""
    a, b = inputs.tissue(first, "First tissue"), inputs.tissue(second, "Second tissue")
    text = f"### {a.name} or {b.name}?\n\n{pair_text(a.key, b.key)}"
    return text, tiles_of(services, a.index), tiles_of(services, b.index)


def suggest(history: object) -> tuple:
    """The two dropdowns set to the trainee's most-confused pair (smooth muscle and stroma when there is none)."""
    return default_pair(history)


def build(services: Services) -> None:
    with gr.Row():
        first = gr.Dropdown(inputs.TISSUE_CHOICES, value=DEFAULT_PAIR[0], label="First tissue")
        second = gr.Dropdown(inputs.TISSUE_CHOICES, value=DEFAULT_PAIR[1], label="Second tissue")
        show = gr.Button("Compare", variant="primary")
    initial = compare_show(services, *DEFAULT_PAIR)
    text = gr.Markdown(initial[0], elem_id="compare-text")
    with gr.Row():
        left = tile_gallery("First tissue: real, then synthetic", 4, value=initial[1], elem_id="compare-first")
        right = tile_gallery("Second tissue: real, then synthetic", 4, value=initial[2], elem_id="compare-second")
    outputs = [text, left, right]
    gr.on([show.click, first.change, second.change], guard(bind(compare_show, services), outputs, text), [first, second],
          outputs, api_name="compare_show", preprocess=False, trigger_mode="always_last")
    if isinstance(Context.block, gr.Tab) and services.history is not None:
        Context.block.select(suggest, services.history, [first, second], api_visibility="private", preprocess=False)

"""Variations of this tile (inside Explore): pick a real tile, choose a strength, see validated synthetic variations
beside it, so a trainee sees what changes within a tissue type (layout) and what does not (stain, texture scale).

The variations are SDEdit starts from the picked tile (pathgen.guided) and pass the same classifier gate as every
other synthetic tile.
"""

from __future__ import annotations

import gradio as gr

from pathgen.data import TISSUE_CLASSES
from pathgen.validation import generate_validated

from . import inputs
from .errors import bind, guard
from .generate import rounds_allowed
from .services import Services
from .widgets import enlarge, tile_gallery

SOURCES = 12  # real tiles offered per class
VARIATIONS = 6
MIN_STRENGTH, DEFAULT_STRENGTH = 0.1, 0.5
PICK_FIRST = "Click a real tile above, then press **Make variations**."
STRENGTH_INFO = "low: close to the picked tile · 1: ignores it (a fresh tile of the same type)"


def sources(services: Services, c: int):
    return services.real_of(c)[:SOURCES]


def variation_sources(services: Services, tissue: object) -> tuple:
    """The real tiles of one tissue type to pick from; clears the picked tile and earlier variations."""
    c = inputs.tissue(tissue).index
    gallery = [(enlarge(services.real_images[i]), "real") for i in sources(services, c)]
    return gallery, None, [], PICK_FIRST


def explore_variations(services: Services, tissue: object, position: object, strength: object,
                       progress=gr.Progress()) -> tuple:  # noqa: B008 (gradio's progress idiom)
    """Validated variations of one real tile: the tile first, then the accepted variations with the classifier's
    probability for its type."""
    c = inputs.tissue(tissue).index
    picks = sources(services, c)
    index = inputs.position(position, len(picks), "Picked tile")
    if index is None:
        raise ValueError("Click a real tile first.")
    strength = inputs.number(strength, "Strength", MIN_STRENGTH, 1.0)
    steps = services.generator.defaults.steps
    batch = generate_validated(services.generator, services.classifier, c, VARIATIONS, threshold=services.threshold,
                               max_attempts=rounds_allowed(VARIATIONS, steps), examples=services.real_images[picks[index]][None],
                               strength=strength, progress=progress)
    gallery = [(enlarge(services.real_images[picks[index]]), "real: the picked tile")]
    gallery += [(enlarge(image), f"synthetic {p[c]:.0%}") for image, p in zip(batch.images, batch.probabilities, strict=True)]
    stats = (f"**{batch.accepted} of {VARIATIONS} variations accepted** at strength {strength:.2f} "
             f"({batch.generated} generated, threshold {batch.threshold:.2f}). The first tile is the real one; the "
             "others are synthetic, made from it.")
    return gallery, stats


def pick(evt: gr.SelectData) -> int:
    return evt.index


def build(services: Services) -> None:
    default = TISSUE_CLASSES[0].key
    first = variation_sources(services, default)
    gr.Markdown("Pick a real tile and make synthetic variations of it: the stain and texture stay, the layout "
                "changes. Every variation passed the classifier like any other synthetic tile.")
    with gr.Row():
        tissue = gr.Dropdown(inputs.TISSUE_CHOICES, value=default, label="Tissue type", scale=2)
        strength = gr.Slider(MIN_STRENGTH, 1.0, value=DEFAULT_STRENGTH, step=0.05, label="Strength",
                             info=STRENGTH_INFO, scale=2)
        make = gr.Button("Make variations", variant="primary", scale=1)
    real = tile_gallery("Real PathMNIST tiles: click one", 6, value=first[0], elem_id="variation-sources")
    picked = gr.Number(visible="hidden", precision=0)
    stats = gr.Markdown(first[3], elem_id="variation-stats")
    results = tile_gallery("The picked tile, then its validated variations (synthetic)", 7, value=first[2],
                           elem_id="variation-results")

    source_outputs = [real, picked, results, stats]
    tissue.change(guard(bind(variation_sources, services), source_outputs, stats), tissue, source_outputs,
                  api_name="explore_variation_sources", preprocess=False)
    real.select(pick, None, picked, api_visibility="private", queue=False)
    outputs = [results, stats]
    make.click(guard(bind(explore_variations, services), outputs, stats), [tissue, picked, strength], outputs,
               api_name="explore_variations", preprocess=False, concurrency_limit=1, concurrency_id="generator")

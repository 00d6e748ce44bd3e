"""Small display helpers shared by the tabs: enlarged tiles, galleries, label dicts, the banner and phone CSS."""

from __future__ import annotations

import gradio as gr
import numpy as np

from pathgen.data import CLASS_NAMES

from . import inputs

SCALE = 8  # 28 px -> 224 px; nearest-neighbour, so every square on screen is one real pixel
CAPTION_NOTE = "caption: the classifier's probability for this tissue type"
PICK_HINT = "Click any tile to see what the classifier thinks of it."
RESOLUTION_NOTE = "True resolution 28 × 28 px, shown 8× enlarged without smoothing (one square = one pixel)."
# Rules for narrow screens: galleries wrap to as many columns as fit instead of scrolling sideways, their
# titles sit above the tiles instead of over them, and the banner shrinks to one short line.
PHONE_CSS = """
<style>
.tile-gallery .grid-wrap .grid-container { grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)) !important; }
.tile-gallery .grid-wrap { overflow-x: hidden !important; min-height: 0 !important; max-height: none !important; }
.gallery-title p { margin: 0; }
@media (max-width: 480px) {
  .pathgen-banner { font-size: 0.8em; padding: 4px 8px !important; }
  .pathgen-banner .long { display: none; }
  .pathgen-title h1 { font-size: 1.3em; margin: 0; }
  .pathgen-title p { display: none; }
  .tile-gallery .grid-wrap .grid-container { grid-template-columns: repeat(auto-fill, minmax(72px, 1fr)) !important; }
}
</style>
"""
BANNER = (
    "<div class='pathgen-banner' style='background:#fff4d6;border:2px solid #e0a800;border-radius:8px;"
    "padding:8px 14px;color:#4a3800'><b>⚠️ Synthetic images, for education only.</b><span class='long'> Every "
    "tissue tile in this app is made by a diffusion model unless it is labelled <i>real</i>.</span> "
    "Not for diagnosis or any clinical decision.</div>"
)


def enlarge(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(image, SCALE, axis=0), SCALE, axis=1)


def tile_gallery(label: str, columns: int, height: int | str = "auto", **kwargs) -> gr.Gallery:
    """A gallery of enlarged tiles with its title above it (gradio's own label floats over the first tiles)."""
    gr.Markdown(f"**{label}**", elem_classes=["gallery-title"])
    # PNG, not gradio's default WebP: lossy compression would blur the enlarged pixels.
    classes = ["tile-gallery", *kwargs.pop("elem_classes", [])]
    return gr.Gallery(label=label, show_label=False, columns=columns, height=height, format="png",
                      object_fit="contain", elem_classes=classes, **kwargs)


def as_label(probabilities: np.ndarray | list[float]) -> dict[str, float]:
    return {name: float(p) for name, p in zip(CLASS_NAMES, probabilities, strict=True)}


def tile_rows(images: np.ndarray, probabilities: np.ndarray, kind: str, c: int) -> tuple[list, list]:
    """Gallery items captioned with the classifier's probability for class c, and the rows kept per session
    so that a clicked tile's full probabilities can be shown."""
    gallery = [(enlarge(im), f"{p[c]:.0%}") for im, p in zip(images, probabilities, strict=True)]
    return gallery, [[kind, [float(x) for x in p]] for p in probabilities]


def tile_confidence(view: list, position: object) -> tuple:
    """Classifier probabilities for one shown tile (its position in the session's view), and a caption."""
    index = inputs.position(position, len(view or []))
    if index is None:
        return None, PICK_HINT
    kind, probabilities = view[index]
    return as_label(probabilities), f"The classifier's view of this **{kind}** tile."

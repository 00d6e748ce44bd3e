"""Small display helpers shared by the tabs: enlarged tiles, galleries, label dicts, the banner and phone CSS."""

from __future__ import annotations

import hashlib
import html
import os
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

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


def tile_file(image: np.ndarray) -> str:
    """The enlarged tile as a PNG file, written once (atomically) and named by its content.

    For tiles many users see at once (bank and real tiles, an assignment's slides). gradio caches a returned
    array by rewriting the same file in place on every request, so a second user's request can truncate the
    file while the first is still downloading it; a returned path is copied into gradio's cache once, by rename.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    folder = Path(tempfile.gettempdir()) / "pathgen-tiles"
    path = folder / f"{hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()[:32]}.png"
    if not path.exists():
        folder.mkdir(exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=folder, suffix=".part")
        os.close(descriptor)
        Image.fromarray(enlarge(image)).save(partial, format="PNG")
        os.replace(partial, path)
    return str(path)


def tile_gallery(label: str, columns: int, height: int | str = "auto", **kwargs) -> gr.Gallery:
    """A gallery of enlarged tiles with its title above it (gradio's own label floats over the first tiles)."""
    gr.Markdown(f"**{label}**", elem_classes=["gallery-title"])
    # PNG, not gradio's default WebP: lossy compression would blur the enlarged pixels.
    classes = ["tile-gallery", *kwargs.pop("elem_classes", [])]
    return gr.Gallery(label=label, show_label=False, columns=columns, height=height, format="png",
                      object_fit="contain", elem_classes=classes, **kwargs)


def as_label(probabilities: np.ndarray | list[float]) -> dict[str, float]:
    return {name: float(p) for name, p in zip(CLASS_NAMES, probabilities, strict=True)}


def tile_rows(images: np.ndarray, probabilities: np.ndarray, kind: str, c: int,
              shared: bool = True) -> tuple[list, list]:
    """Gallery items captioned with the classifier's probability for class c, and the rows kept per session
    so that a clicked tile's full probabilities can be shown. `shared` tiles (bank, real) go as files written
    once; freshly generated ones, seen by one user, as arrays."""
    show = tile_file if shared else enlarge
    gallery = [(show(im), f"{p[c]:.0%}") for im, p in zip(images, probabilities, strict=True)]
    return gallery, [[kind, [float(x) for x in p]] for p in probabilities]


def tile_confidence(view: list, position: object) -> tuple:
    """Classifier probabilities for one shown tile (its position in the session's view), and a caption."""
    index = inputs.position(position, len(view or []))
    if index is None:
        return None, PICK_HINT
    kind, probabilities = view[index]
    return as_label(probabilities), f"The classifier's view of this **{kind}** tile."


def confusion_html(matrix: np.ndarray, labels: tuple[str, ...] | list[str], caption: str) -> str:
    """A confusion matrix as a shaded HTML table (rows: truth, columns: the answer).

    A table rather than a rendered plot: it costs microseconds instead of a quarter of a second of server CPU per
    finished quiz, wraps on a phone, and screen readers can read it."""
    matrix = np.asarray(matrix, dtype=np.int64)
    top = max(1, int(matrix.max()))
    header = "".join(f"<th scope='col' style='writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;"
                     f"padding:2px'>{html.escape(name)}</th>" for name in labels)
    rows = []
    for name, counts in zip(labels, matrix, strict=True):
        cells = "".join(
            f"<td style='text-align:center;min-width:1.6em;background:rgba(31,119,180,{0.9 * n / top:.2f});"
            f"color:{'white' if n > top / 2 else 'inherit'}'>{n if n else ''}</td>" for n in counts)
        rows.append(f"<tr><th scope='row' style='text-align:right;font-weight:normal;padding-right:4px'>"
                    f"{html.escape(name)}</th>{cells}</tr>")
    return (f"<div style='overflow-x:auto'><table class='confusion' style='border-collapse:collapse;font-size:0.8em'>"
            f"<caption style='caption-side:top;text-align:left'>{html.escape(caption)}</caption>"
            f"<tr><th></th>{header}</tr>{''.join(rows)}</table></div>")

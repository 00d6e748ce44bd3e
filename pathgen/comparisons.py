"""What tells two commonly confused tissue types apart at 28 × 28 px, and which pair a trainee should compare."""

from __future__ import annotations

from .data import TISSUE_CLASSES
from .learning import confused_pairs

DEFAULT_PAIR = ("smooth_muscle", "stroma")
KEYS = tuple(c.key for c in TISSUE_CLASSES)
# Written for the pairs trainees and the classifier most often mix up; keys in class order.
PAIR_TEXTS = {
    ("smooth_muscle", "stroma"):
        "Both are pink and fibrous. **Smooth muscle** is brighter and more uniform, with long cigar-shaped nuclei "
        "lined up in parallel bundles. **Cancer-associated stroma** is looser and messier: wavy paler fibres, "
        "fewer and plumper nuclei pointing every way, often with a few inflammatory cells.",
    ("mucus", "normal_mucosa"):
        "**Mucus** is pale blue-grey to lilac and nearly acellular, with streaks but no edges. **Normal mucosa** has "
        "structure: round crypts edged by a tidy row of dark basal nuclei, with pale goblet cells between them.",
    ("normal_mucosa", "tumour_epithelium"):
        "Look at the glands. **Normal mucosa**: evenly spaced round crypts, one neat row of small nuclei, goblet cells. "
        "**Tumour epithelium**: crowded, irregular glands back to back, with big dark nuclei piled up in layers "
        "and few goblet cells.",
    ("debris", "tumour_epithelium"):
        "**Debris** is smudgy necrotic material with scattered nuclear dust and no architecture. **Tumour epithelium** "
        "keeps gland shapes with intact, enlarged nuclei, even when it sits next to necrosis.",
    ("debris", "lymphocytes"):
        "Both are speckled with purple. **Lymphocytes** are evenly packed, round, dark nuclei of one size. "
        "**Debris** has broken fragments of many sizes in a pink, smeared background.",
    ("adipose", "background"):
        "Both look white. **Adipose tissue** has thin pink membranes outlining polygonal empty cells, like a "
        "honeycomb. **Background** has no outlines at all: flat glass, at most dust or blur.",
    ("mucus", "stroma"):
        "**Mucus** is watery blue-grey and wispy with almost no cells. **Stroma** is pink connective tissue with "
        "fibres and scattered spindle or plump nuclei.",
    ("lymphocytes", "tumour_epithelium"):
        "**Lymphocytes** are small, round and all alike, with no glands. **Tumour epithelium** has larger, elongated "
        "nuclei arranged along gland borders.",
}


def pair_key(first: str, second: str) -> tuple[str, str]:
    if first not in KEYS or second not in KEYS:
        raise ValueError("Unknown tissue class.")
    return tuple(sorted((first, second), key=KEYS.index))


def pair_text(first: str, second: str) -> str:
    """The written comparison of two classes, or a general hint when the pair has none."""
    if first == second:
        raise ValueError("Pick two different tissue types to compare.")
    key = pair_key(first, second)
    return PAIR_TEXTS.get(key, "These two are rarely confused. Compare colour first (pink, purple, pale), then "
                               "whether there are glands, fibres or loose cells, and how crowded the nuclei are.")


def default_pair(history: object) -> tuple[str, str]:
    """The trainee's most-confused pair from their history, else smooth muscle against stroma."""
    pairs = confused_pairs(history)
    return pairs[0][0] if pairs else DEFAULT_PAIR

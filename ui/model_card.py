"""The model card shown in the About tab, written from the metrics files that ship with the models."""

import numpy as np

from pathgen.data import CLASS_NAMES, DATA_CITATION, NUM_CLASSES, TISSUE_CLASSES

from .services import REBUILD, Services


def metric(metrics: dict, *path: str, digits: int = 4, percent: bool = False) -> str:
    """One number from a nested metrics dict, formatted, or "n/a" when the file lacks it."""
    value = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.{digits}f}"


LIMITATIONS_AND_SOURCES = """### Limitations
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


def realism_section(realism: dict) -> str:
    """People's real-or-synthetic judgements of the bank, per class, or how that figure will be made."""
    if not realism.get("per_class"):
        return ("No human realism figure yet. The *Real or synthetic?* tab stores anonymous per-tile counts; "
                f"`{REBUILD['metrics/realism.json']}` turns them into this figure.")
    rows = "\n".join(
        f"| {row['name']} | {metric(row, 'synthetic_spotted', 'rate', percent=True)} "
        f"({row['synthetic_spotted']['judgements']}) | {metric(row, 'real_called_synthetic', 'rate', percent=True)} "
        f"({row['real_called_synthetic']['judgements']}) |" for row in realism["per_class"])
    return (f"{metric(realism, 'judgements', digits=0)} judgements of {metric(realism, 'tiles_judged', digits=0)} "
            f"tiles; synthetic tiles spotted overall: {metric(realism, 'synthetic_spotted_overall', percent=True)} "
            "(50% would mean people cannot tell).\n\n"
            "| Tissue | Synthetic tiles called synthetic (judgements) | Real tiles called synthetic (judgements) |\n"
            f"|---|---|---|\n{rows}")


def model_card(services: Services) -> str:
    """The About tab, built from the shipped metrics files so that its figures match the shipped models."""
    c, g = services.classifier_metrics, services.generator_metrics
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
        ("Coverage of real tissue variety (k-NN, independent judge's features), unfiltered: mean / lowest class "
         "(a second real set: mean)",
         " / ".join(metric(g, "feature_spaces", "judge", "generated", "prdc", "summary", "coverage", k, digits=2)
                    for k in ("mean", "min", "real_vs_real_mean"))),
        ("Near-copies of training tiles among generated / accepted / bank tiles",
         " / ".join(metric(g, "memorisation", k, "near_copy_fraction", percent=True)
                    for k in ("generated", "accepted", "bank"))),
    ))
    unet = getattr(getattr(services.generator, "pipeline", None), "unet", None)
    size = f", {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters" if unet is not None else ""
    counts = np.bincount(services.bank.labels, minlength=NUM_CLASSES)
    near_copies = ""
    if (exclusion := services.bank.info.get("near_copy_exclusion")) is not None:
        discarded = sum(v.get("near_copies_discarded", 0) for v in services.bank.info.get("acceptance", {}).values())
        near_copies = (f" Tiles that passed the classifier but sat closer to a training tile than "
                       f"{100 - exclusion['percentile']:g}% of real held-out tiles of their class do were discarded "
                       f"too, as near-copies of patient tissue ({discarded} while the bank was built).")
    tta = (" Each prediction averages the eight flips and rotations of the tile, since tissue has no orientation."
           if services.classifier.config.dihedral_tta else "")
    return f"""
## Model card

**Every tissue image in this app is synthetic** unless it is labelled *real* (real PathMNIST tiles appear in
Explore, in quizzes, where a tile says so after you answer, and in *Real or synthetic?*). The app is for
teaching pattern recognition only: **it is not a medical device and must not be used for diagnosis.**

### Data
{DATA_CITATION} PathMNIST shrinks 224 × 224 px tiles (0.5 µm/px) of H&E-stained colorectal tissue to 28 × 28 px,
so one pixel covers about 4 µm and a nucleus is only a pixel or two wide. Nine classes: {", ".join(CLASS_NAMES)}.

### Models
- **Generator** (`{services.generator_backend}` backend{size}): a class-conditional diffusion model trained on the
  PathMNIST train split that draws 28 × 28 tiles of a requested tissue type.
- **Classifier**: ResNet-18 adapted to 28 × 28 input, trained on the PathMNIST train split and calibrated by
  temperature scaling on the validation split (T = {metric(c, "temperature", digits=3)}).{tta}
- **Validation filter**: a generated tile is kept only if the classifier's top class is the requested one with
  calibrated probability ≥ the threshold ({services.threshold:.2f} for the bank); rejected tiles are regenerated.
- **Image bank**: {len(services.bank)} validated tiles ({", ".join(f"{n} {t.key}" for n, t in zip(counts, TISSUE_CLASSES,
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

### How real do the tiles look to people?
{realism_section(services.realism_metrics)}

{LIMITATIONS_AND_SOURCES}"""

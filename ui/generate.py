"""Generate tab: the live generate-and-validate loop with the user's own settings, bounded per request."""

import gradio as gr

from pathgen.data import TISSUE_CLASSES
from pathgen.generation import PROFILES
from pathgen.validation import ValidatedBatch, generate_validated

from . import inputs
from .errors import bind, guard
from .services import Services
from .widgets import RESOLUTION_NOTE, tile_confidence, tile_gallery, tile_rows

MAX_GENERATE = 32
MAX_UI_STEPS = 50
MAX_UI_GUIDANCE = 10.0
GENERATE_ATTEMPTS = 10
MIN_THRESHOLD = 0.05
# One request may sample at most this many tile-steps (tiles x sampling steps, over all its rounds): one round
# of the largest request, or several rounds of smaller ones. Generation runs one request at a time, so this
# caps how long everyone else can wait behind a request that cannot succeed.
MAX_TILE_STEPS = MAX_GENERATE * MAX_UI_STEPS
PROFILE_INFO = "live: fast, for trying things · bank: the slower quality settings the shipped bank was made with"


def rounds_allowed(n: int, steps: int) -> int:
    """How many generate-and-validate rounds a request of n tiles at `steps` may run within MAX_TILE_STEPS."""
    return max(1, min(GENERATE_ATTEMPTS, MAX_TILE_STEPS // (n * steps)))


def bounded_generation(services: Services, c: int, n: int, *, threshold: float, steps: int | None = None,
                       guidance: float | None = None, seed: int | None = None, profile: str = "live",
                       progress=None) -> tuple[ValidatedBatch, str]:
    """generate_validated within the per-request budget, and a note for the user when the budget stopped it."""
    settings = services.generator.profiles.get(profile)
    rounds = rounds_allowed(n, steps or settings.steps)
    batch = generate_validated(services.generator, services.classifier, c, n, threshold=threshold,
                               max_attempts=rounds, seed=seed, steps=steps, guidance=guidance, profile=profile,
                               progress=progress)
    note = ""
    if not batch.complete and rounds < GENERATE_ATTEMPTS:
        note = (f" This request was stopped after {rounds} round(s): one request may sample at most "
                f"{MAX_TILE_STEPS} tile-steps (tiles × steps) so that other users do not wait long. "
                "Ask for fewer tiles or fewer steps to allow more rounds.")
    return batch, note


def generate(services: Services, tissue: object, n: object, seed: object, steps: object, guidance: object,
             threshold: object, profile: object = "live", progress=gr.Progress()) -> tuple:  # noqa: B008
    """Generates n tiles of one class and keeps those the classifier accepts."""
    c = inputs.tissue(tissue).index
    n = inputs.whole_number(n, "Number of images", 1, MAX_GENERATE)
    seed = inputs.optional_seed(seed)
    steps = inputs.whole_number(steps, "Steps", 1, MAX_UI_STEPS)
    guidance = inputs.number(guidance, "Guidance", 0.0, MAX_UI_GUIDANCE)
    threshold = inputs.number(threshold, "Threshold", MIN_THRESHOLD, 1.0)
    profile = inputs.choice("live" if profile is None else profile, "Sampling profile", PROFILES)
    batch, note = bounded_generation(services, c, n, threshold=threshold, steps=steps, guidance=guidance, seed=seed,
                                     profile=profile, progress=progress)
    rounds = int(batch.attempts.max()) if batch.complete and batch.accepted else rounds_allowed(n, steps)
    outcome = (f"**{batch.accepted} of {n} accepted**" if batch.complete else
               f"**Only {batch.accepted} of {n} passed** the classifier after {rounds} round(s); "
               "try a lower threshold, more steps or other guidance.")
    stats = (f"{outcome} Generated {batch.generated} in {rounds} round(s), acceptance rate "
             f"{batch.acceptance_rate:.0%}, threshold {batch.threshold:.2f}, {profile} profile. "
             f"Seed {batch.seed} repeats this run.{note}")
    gallery, view = tile_rows(batch.images, batch.probabilities, "synthetic", c, shared=False)
    return gallery, stats, view, None, None


def profile_settings(services: Services, profile: object, tissue: object) -> tuple:
    """The steps and guidance sliders set to a profile's own values for the chosen tissue."""
    settings = services.generator.profiles.get(inputs.choice(profile, "Sampling profile", PROFILES))
    c = inputs.tissue(tissue).index
    return min(settings.steps, MAX_UI_STEPS), min(settings.guidance_for(c), MAX_UI_GUIDANCE), gr.skip()


def class_guidance(services: Services, profile: object, tissue: object) -> tuple:
    """On a change of tissue, the guidance slider moves to that class's scale if the profile has one per class;
    otherwise the user's guidance stays."""
    settings = services.generator.profiles.get(inputs.choice(profile, "Sampling profile", PROFILES))
    if not settings.class_guidance:
        return gr.skip(), gr.skip()
    return min(settings.guidance_for(inputs.tissue(tissue).index), MAX_UI_GUIDANCE), gr.skip()


def pick(evt: gr.SelectData) -> int:
    return evt.index


def build(services: Services) -> None:
    live = services.generator.profiles.get("live")
    with gr.Row():
        tissue = gr.Dropdown(inputs.TISSUE_CHOICES, value=TISSUE_CLASSES[0].key, label="Tissue type")
        n = gr.Slider(1, MAX_GENERATE, value=8, step=1, label="Number of images")
        # A textbox, because gr.Number shows and sends 0 when left empty; blank here means random.
        seed = gr.Textbox("", label="Seed (blank: random)", placeholder="random", max_length=40)
    with gr.Row():
        profile = gr.Radio(list(PROFILES), value="live", label="Sampling profile", info=PROFILE_INFO)
        steps = gr.Slider(1, MAX_UI_STEPS, value=min(live.steps, MAX_UI_STEPS), step=1, label="Sampling steps")
        guidance = gr.Slider(0.0, MAX_UI_GUIDANCE, value=min(live.guidance_for(0), MAX_UI_GUIDANCE), step=0.25,
                             label="Guidance scale")
        threshold = gr.Slider(MIN_THRESHOLD, 1.0, value=services.threshold, step=0.01,
                              label="Acceptance threshold (classifier probability)")
    button = gr.Button("Generate", variant="primary")
    stats = gr.Markdown(f"One request may sample at most {MAX_TILE_STEPS} tile-steps (tiles × steps).")
    with gr.Row():
        gallery = tile_gallery(f"Accepted tiles ({RESOLUTION_NOTE})", 8, scale=3, elem_id="generate-gallery")
        with gr.Column(scale=2):
            label = gr.Label(num_top_classes=5, label="What the classifier thinks")
            caption = gr.Markdown("Click any tile to see what the classifier thinks of it.")
    view = gr.State([])
    selected = gr.Number(visible="hidden", precision=0)

    outputs = [gallery, stats, view, label, selected]
    button.click(guard(bind(generate, services), outputs, stats),
                 [tissue, n, seed, steps, guidance, threshold, profile], outputs, api_name="generate",
                 concurrency_limit=1, concurrency_id="generator", preprocess=False)
    profile_outputs = [steps, guidance, stats]
    profile.change(guard(bind(profile_settings, services), profile_outputs, stats), [profile, tissue],
                   profile_outputs, api_visibility="private", preprocess=False)
    tissue.change(guard(bind(class_guidance, services), [guidance, stats], stats), [profile, tissue],
                  [guidance, stats], api_visibility="private", preprocess=False)
    gallery.select(pick, None, selected, api_visibility="private", queue=False)
    selected.change(guard(tile_confidence, [label, caption], caption), [view, selected], [label, caption],
                    api_name="generate_confidence", preprocess=False)

"""My progress tab: this browser's answer history as totals, real vs synthetic, per class and over time."""

import datetime

import gradio as gr
from gradio.context import Context
from matplotlib.figure import Figure

from pathgen import learning

from .errors import guard
from .services import Services

EMPTY = ("No answers recorded in this browser yet. Take a quiz: every answer is kept here, in this browser only "
         "(no account, nothing sent elsewhere), until you press **Forget my progress**.")


def ratio(tally: tuple[int, int]) -> str:
    return f"{tally[0]} / {tally[1]} ({tally[0] / tally[1]:.0%})" if tally[1] else "–"


def progress_markdown(result: learning.Progress) -> str:
    rows = "\n".join(f"| {learning.NAMES[key]} | {ratio(t['all'])} | {ratio(t['real'])} | {ratio(t['synthetic'])} |"
                     for key, t in result.per_class.items())
    pairs = ", ".join(f"{learning.NAMES[a]} ↔ {learning.NAMES[b]} ({n}×)" for (a, b), n in result.confused_pairs[:3])
    answers = "1 answer" if result.total[1] == 1 else f"{result.total[1]} answers"
    return (f"### {answers}, {ratio(result.total)} right\n\n"
            f"Real tiles: {ratio(result.by_source['real'])} · synthetic tiles: {ratio(result.by_source['synthetic'])}"
            f"\n\n| Tissue | All | Real | Synthetic |\n|---|---|---|---|\n{rows}\n\n"
            f"Most often confused: {pairs or 'nothing yet'}.")


def progress_figure(history: list[dict]) -> Figure | None:
    series = learning.accuracy_over_time(history)
    if not series:
        return None
    # A bare Figure, not pyplot: pyplot keeps global state that concurrent sessions would share.
    figure = Figure(figsize=(8, 4), layout="tight")
    axis = figure.add_subplot()
    for key, points in series.items():
        times = [datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc) for t, _ in points]
        axis.plot(times, [100 * a for _, a in points], marker="o", markersize=3, label=learning.NAMES[key])
    axis.set_ylim(-5, 105)
    axis.set_ylabel("accuracy over the last 10 answers (%)")
    axis.set_xlabel("time of answer (UTC)")
    axis.legend(fontsize=7, loc="lower left")
    figure.autofmt_xdate()
    return figure


def progress_show(history: object) -> tuple:
    """Totals, real vs synthetic, per-class accuracy and the accuracy-over-time plot of one browser's history."""
    records = learning.clean(history)
    if not records:
        return EMPTY, None
    return progress_markdown(learning.summarise(records)), progress_figure(records)


def forget() -> tuple:
    return [], EMPTY, None


def build(services: Services) -> None:
    text = gr.Markdown(EMPTY, elem_id="progress-text")
    plot = gr.Plot(label="Accuracy per tissue type over time")
    with gr.Row():
        refresh = gr.Button("Refresh")
        forget_button = gr.Button("Forget my progress", variant="stop")
    history = services.history
    triggers = [refresh.click, history.change]
    if isinstance(Context.block, gr.Tab):
        triggers.append(Context.block.select)
    gr.on(triggers, guard(progress_show, [text, plot], text), history, [text, plot], api_name="progress_show",
          preprocess=False)
    forget_button.click(forget, None, [history, text, plot], api_name="progress_forget")

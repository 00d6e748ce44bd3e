"""About tab: the model card."""

import gradio as gr

from .model_card import model_card
from .services import Services


def build(services: Services) -> None:
    gr.Markdown(model_card(services))

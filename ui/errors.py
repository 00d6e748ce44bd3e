"""One error wrapper for every event handler: a failure becomes the app's own short, escaped message.

A handler raises ValueError with a message fit for the trainee; the wrapper shows it as a warning toast and in
one output component, leaves the other outputs as they were, and never lets a traceback reach the user or the
log (unexpected errors are logged once, with their traceback, and the user sees a generic message).
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from collections.abc import Callable, Sequence

import gradio as gr

ECHO_CHARS = 80  # an echoed input is cut to this many characters
MESSAGE_CHARS = 400  # a whole message is never longer than this
GENERIC = "Something went wrong on the server; please try again."
logger = logging.getLogger("pathgen.app")


def shown(value: object, limit: int = ECHO_CHARS) -> str:
    """A user's input as it may be echoed back in a message: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_message(text: str) -> str:
    """Cut to MESSAGE_CHARS and HTML-escaped, so that typed HTML is shown as text, never rendered."""
    text = text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"
    return html.escape(text, quote=False)


def guard(handler: Callable, outputs: Sequence[gr.components.Component], message: gr.components.Component,
          prefix: str = "⚠️ ") -> Callable:
    """Wraps `handler` so that a failure puts the message into `message` (one of `outputs`) and skips the rest.

    The message's position is looked up among `outputs`, so the layout can change without counting by hand.
    """
    outputs = list(outputs)
    index = next(i for i, component in enumerate(outputs) if component is message)

    @functools.wraps(handler)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except ValueError as error:
            text = safe_message(str(error))
        except Exception:
            logger.exception("%s failed", getattr(handler, "__name__", "handler"))
            text = GENERIC
        gr.Warning(text)
        values = [gr.skip()] * len(outputs)
        values[index] = f"{prefix}{text}"
        return values[0] if len(values) == 1 else tuple(values)

    return run


def bind(handler: Callable, services: object) -> Callable:
    """`handler(services, *args)` as a function of `*args` alone, keeping the rest of its signature, which gradio
    reads to pass gr.Request and gr.Progress."""

    @functools.wraps(handler)
    def run(*args, **kwargs):
        return handler(services, *args, **kwargs)

    signature = inspect.signature(handler)
    run.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return run

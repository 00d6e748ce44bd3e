"""A per-session box for gr.State that lets one session's concurrent events take turns.

gr.State deep-copies its initial value once per session and then hands handlers the same object on every
call, so a box holding a lock serialises that session's events: two answers to one slide sent at the same
moment are checked one after the other, and only the first is accepted.
"""

from __future__ import annotations

import threading
from typing import Any


class SessionBox:
    """A mutable holder of one session's value, with a lock; deep-copying gives an empty box with a new lock."""

    def __init__(self, value: Any = None) -> None:
        self.value = value
        self.revealed = False  # the answer to the slide on screen has been given
        self.options: dict = {}  # settings of the round in progress
        self.pending: list[dict] = []  # answers not yet written to the browser's history
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> SessionBox:
        return SessionBox()

    def take_pending(self) -> list[dict]:
        with self.lock:
            pending, self.pending = self.pending, []
        return pending

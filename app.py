"""PathGen teaching app: explore, quiz on and generate synthetic colorectal histopathology tiles.

    python app.py    # serves on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (default 127.0.0.1:7860)

Models and the image bank come from ./assets (or $PATHGEN_ASSETS_DIR) and load once at start-up; every
per-user value lives in a session's gr.State or the browser's own storage. Each tab is a module of `ui/`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import gradio as gr

from ui.services import ASSETS_ENV, DEFAULT_ASSETS, AssetError, Services, load_services, open_storage
from ui.widgets import BANNER, PHONE_CSS

# (tab title, module under ui/, tab id); modules that others are still writing are mounted once they exist.
TABS = (("Explore", "explore", "explore"), ("Quiz", "quiz", "quiz"), ("Real or synthetic?", "real_or_synthetic", "ros"),
        ("Compare", "compare", "compare"), ("My progress", "progress", "progress"),
        ("Generate", "generate", "generate"), ("About", "about", "about"))
OPTIONAL_TABS = (("Class", "classroom", "class"), ("Instructor", "instructor", "instructor"))

HISTORY_KEY = "pathgen-history"

__all__ = ["ASSETS_ENV", "AssetError", "Services", "create_app", "load_services", "main"]


def tab_modules() -> list[tuple[str, Any, str]]:
    mounted = [(title, importlib.import_module(f"ui.{name}"), tab_id) for title, name, tab_id in TABS]
    for title, name, tab_id in OPTIONAL_TABS:
        try:
            mounted.append((title, importlib.import_module(f"ui.{name}"), tab_id))
        except ModuleNotFoundError as error:
            if error.name != f"ui.{name}":
                raise
    return mounted


def history_secret(storage: Any) -> str | None:
    return storage.secret("browser-history") if storage is not None else None


def create_app(assets_dir: str | os.PathLike | None = None, storage: Any = None) -> gr.Blocks:
    """Builds the app; raises AssetError when an asset is missing or corrupt. `storage` defaults to
    `pathgen.storage.Storage.from_url(None)` (the database in $PATHGEN_DATABASE_URL, else a local SQLite file)."""
    services = load_services(assets_dir or os.environ.get(ASSETS_ENV) or DEFAULT_ASSETS)
    services.storage = storage if storage is not None else open_storage()
    with gr.Blocks(title="PathGen: synthetic histopathology for teaching", delete_cache=(3600, 3600)) as demo:
        gr.HTML(BANNER, head=PHONE_CSS, padding=False)
        # Each browser's answers, kept in its own localStorage; the secret lives in the database, so a restart
        # of the app (or another replica) can still read what a browser kept.
        services.history = gr.BrowserState([], storage_key=HISTORY_KEY, secret=history_secret(services.storage))
        gr.Markdown("# PathGen\nLearn the nine tissue types of colorectal H&E histology from synthetic tiles, "
                    "each checked by a calibrated classifier before you see it.", elem_classes=["pathgen-title"])
        with gr.Tabs() as tabs:
            for title, module, tab_id in tab_modules():
                with gr.Tab(title, id=tab_id):
                    module.build(services)
                if hasattr(module, "tab_from_link"):  # a link that names this tab's content opens the tab
                    demo.load(module.tab_from_link, None, tabs, api_visibility="private", queue=False)
    # gradio's queue rebuilds a pandas summary of up to GRADIO_ANALYTICS_MAX_EVENTS past events after every event
    # (for its /monitoring page): a cost per answer that grows with the class. Every 200 events over the last
    # 2000 instead, unless the deployment sets them; read when the queue is made.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "200")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")
    # Quiz and browsing handlers are light; generation is capped at one at a time by its own limit.
    demo.queue(default_concurrency_limit=8)
    return demo


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    try:
        demo = create_app()
    except AssetError as error:
        print(f"PathGen cannot start: {error}", file=sys.stderr)
        return 1
    port = os.environ.get("GRADIO_SERVER_PORT")
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), server_port=int(port) if port else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

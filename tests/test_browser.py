"""A trainee's first minute in a real browser: pick a tissue, look at the tiles, answer a quiz question."""

import os
import socket
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

import app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get(app.ASSETS_ENV) or REPO / "assets")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from tests
    demo = app.create_app(ASSETS)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture
def page(url):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(url)
        yield page
        browser.close()


def test_explore_then_answer_a_quiz_question(page):
    ARTIFACTS.mkdir(exist_ok=True)
    expect(page.get_by_text("Synthetic images, for education only.")).to_be_visible()

    page.get_by_label("Tissue type").first.click()
    page.get_by_role("option", name="Lymphocytes").click()
    expect(page.get_by_role("heading", name="Lymphocytes")).to_be_visible()
    thumbnails = page.locator("#synthetic-gallery img")
    expect(thumbnails.first).to_be_visible()
    assert thumbnails.count() > 0
    thumbnails.first.click()
    expect(page.get_by_text("The classifier's view of this synthetic tile")).to_be_visible()
    page.keyboard.press("Escape")
    page.screenshot(path=ARTIFACTS / "explore.png", full_page=True)

    page.get_by_role("tab", name="Quiz").click()
    page.get_by_role("button", name="Start quiz").click()
    expect(page.get_by_text("Question 1 of 10")).to_be_visible()
    expect(page.locator("#quiz-image img")).to_be_visible()
    page.locator("#quiz-choice").get_by_text("Adipose tissue").click()
    page.get_by_role("button", name="Submit answer").click()
    expect(page.locator("#quiz-feedback")).to_contain_text("This is")
    expect(page.get_by_text("1 of 10 answered")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "quiz.png", full_page=True)

"""The web page in a real browser: Debian's Chromium driven by Playwright, against the app
served by uvicorn on 127.0.0.1. Skips when either is missing (CI installs both:
``apt-get install -y chromium`` and ``pip install playwright``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _service_fixtures import FakeRecommender, live_server, make_store

from movierec.service import create_app
from movierec.store import Store

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
expect = sync_api.expect

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = os.environ.get("MOVIEREC_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("MOVIEREC_SCREENSHOTS")  # a folder: save screenshots there


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """(Chromium, base URL) of the app over a fake recommender and a store of k=10."""
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    fake = FakeRecommender()
    store = Store.open(make_store(tmp_path_factory.mktemp("web") / "recs.sqlite", fake, k=10))
    with live_server(create_app(fake, store)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser, url
        finally:
            browser.close()
    store.close()


@pytest.fixture
def page(served: tuple[Any, str]) -> Iterator[Page]:
    """A fresh page at /; fails the test if the page logs a JavaScript error."""
    browser, url = served
    context = browser.new_context(base_url=url, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",  # a 404 the test asks for shows as "Failed to load resource"
        lambda m: m.type == "error" and "Failed to load" not in m.text and errors.append(m.text),
    )
    page.goto("/")
    yield page
    context.close()
    assert errors == [], errors


def _shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_type_a_title_pick_it_and_see_recommendations(page: Page) -> None:
    expect(page.locator("#model-info")).to_contain_text("fake-mf")
    page.fill("#search", "incep")
    suggestion = page.locator("#suggestions .suggestion").first
    expect(suggestion).to_contain_text("Inception")
    expect(suggestion).to_contain_text("2010")
    suggestion.click()
    expect(page.locator("#chips .chip")).to_have_count(1)
    expect(page.locator("#chips")).to_contain_text("Inception (2010)")
    recs = page.locator("#liked-recs .movie")
    expect(recs.first).to_contain_text("Interstellar")  # highest dot product with Inception
    expect(recs.first).to_contain_text("2014")
    expect(recs.first.locator(".genre").first).to_have_text("Drama")
    assert "Inception" not in page.locator("#liked-recs").inner_text()
    _shot(page, "liked")

    # keyboard: type, arrow down, enter adds a second movie; recommendations follow
    page.fill("#search", "toy")
    expect(page.locator("#suggestions .suggestion").first).to_contain_text("Toy Story")
    page.press("#search", "ArrowDown")
    page.press("#search", "Enter")
    expect(page.locator("#chips .chip")).to_have_count(2)
    expect(page.locator("#liked-recs")).to_contain_text("Jumanji")

    # removing a chip updates the list
    page.locator("#chips .chip-remove").first.click()
    expect(page.locator("#chips .chip")).to_have_count(1)
    expect(page.locator("#liked-recs .movie").first).to_contain_text("Jumanji")


def test_existing_user_history_beside_recommendations(page: Page) -> None:
    page.fill("#user-id", "3")
    page.click("#user-form button")
    expect(page.locator("#user-history .movie")).to_have_count(3)
    expect(page.locator("#user-history .movie").first).to_contain_text("Amélie")
    expect(page.locator("#user-source")).to_have_text("precomputed")
    expect(page.locator("#user-recs .movie").first).to_contain_text("Hamlet")
    _shot(page, "user")

    page.fill("#user-id", "4242")
    page.click("#user-form button")
    expect(page.locator("#user-error")).to_have_text("No user 4242.")


def test_clicking_a_movie_shows_similar_movies(page: Page) -> None:
    page.fill("#search", "matrix")
    page.locator("#suggestions .suggestion").first.click()
    first = page.locator("#liked-recs .movie .title-link").first
    expect(first).to_have_text("Inception")
    first.click()
    expect(page.locator("#similar-heading")).to_have_text("More like Inception")
    expect(page.locator("#similar-list .movie").first).to_contain_text("Alien")
    _shot(page, "similar")
    page.click("#similar-close")
    expect(page.locator("#similar")).to_be_hidden()

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


# A report as ``movierec report`` writes one: its CSS inline, admitted by the page policy's
# hash of it (no 'unsafe-inline'), so the colour below shows that the style applied.
REPORT = (
    b"<!doctype html><html><head><title>run report</title>"
    b"<style>h1 { color: rgb(1, 2, 3) }</style></head><body><h1>Report</h1></body></html>"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """(Chromium, base URL) of the app over a fake recommender, a store of k=10 and a
    report."""
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    fake = FakeRecommender()
    store = Store.open(make_store(tmp_path_factory.mktemp("web") / "recs.sqlite", fake, k=10))
    app = create_app(fake, store, report=REPORT)
    with live_server(app) as url, sync_api.sync_playwright() as pw:
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
    assert "Inception" not in page.locator("#liked-recs .title-link").all_inner_texts()
    expect(recs.first.locator(".because")).to_have_text("because you like Inception (2010)")
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


def rec_titles(page: Page, list_id: str) -> list[str]:
    return page.locator(f"#{list_id} .movie .title-link").all_inner_texts()


def test_filters_requery_the_lists(page: Page) -> None:
    page.fill("#user-id", "3")
    page.press("#user-id", "Enter")
    expect(page.locator("#user-recs .movie")).to_have_count(9)  # every unseen movie
    scifi = page.locator('#genre-chips [data-genre="Sci-Fi"]')
    expect(scifi).to_have_attribute("aria-label", "Sci-Fi: any")
    scifi.click()  # only Sci-Fi: 4 movies, answered from the store's 10 rows
    expect(scifi).to_have_attribute("aria-label", "Sci-Fi: only these")
    expect(page.locator("#user-recs .movie")).to_have_count(4)
    for card in page.locator("#user-recs .movie").all():
        expect(card.locator(".genre", has_text="Sci-Fi")).to_have_count(1)
    expect(page.locator("#user-source")).to_have_text("precomputed")
    assert rec_titles(page, "user-recs") == ["Interstellar", "Inception", "Alien", "Matrix, The"]
    _shot(page, "filtered")

    # the keyboard works the chips too: Enter on the focused chip leaves Sci-Fi out
    scifi.focus()
    page.keyboard.press("Enter")
    expect(scifi).to_have_attribute("aria-label", "Sci-Fi: left out")
    expect(page.locator("#user-recs .movie")).to_have_count(5)
    assert "Interstellar" not in rec_titles(page, "user-recs")

    # a year range on top: released from 1995
    page.fill("#year-from", "1995")
    expect(page.locator("#user-recs .movie")).to_have_count(4)
    assert set(rec_titles(page, "user-recs")) == {"Toy Story", "Jumanji", "Heat", "Hamlet"}
    page.fill("#year-to", "1990")
    expect(page.locator("#filters-error")).to_have_text("The first year is after the last.")
    page.click("#filters-clear")
    expect(page.locator("#user-recs .movie")).to_have_count(9)
    expect(page.locator("#filters-error")).to_be_hidden()

    # the liked list and similar movies follow the filters too
    page.locator('#genre-chips [data-genre="Drama"]').click()
    page.fill("#search", "incep")
    page.locator("#suggestions .suggestion").first.click()
    expect(page.locator("#liked-recs .movie").first).to_contain_text("Interstellar")
    for card in page.locator("#liked-recs .movie").all():
        expect(card.locator(".genre", has_text="Drama")).to_have_count(1)
    page.locator("#liked-recs .movie .title-link").first.click()
    expect(page.locator("#similar-heading")).to_have_text("More like Interstellar")
    expect(page.locator("#similar-list .movie").first).to_be_visible()
    for card in page.locator("#similar-list .movie").all():
        expect(card.locator(".genre", has_text="Drama")).to_have_count(1)


def test_because_line_and_imdb_link(page: Page) -> None:
    page.context.route(  # nothing leaves the machine: IMDb is answered here
        "https://www.imdb.com/**",
        lambda route: route.fulfill(body="<title>imdb</title>", content_type="text/html"),
    )
    page.fill("#user-id", "1")
    page.click("#user-form button")
    first = page.locator("#user-recs .movie").first
    expect(first.locator(".title-link")).to_have_text("Interstellar")
    expect(first.locator(".because")).to_have_text(
        "because you watched Jumanji (1995) and Toy Story (1995)"
    )
    imdb = first.locator("a.ext.imdb")
    expect(imdb).to_have_attribute("href", "https://www.imdb.com/title/tt0816692/")
    expect(imdb).to_have_attribute("rel", "noopener noreferrer")
    expect(first.locator("a.ext.tmdb")).to_have_attribute(
        "href", "https://www.themoviedb.org/movie/157336"
    )
    # Aliens has no links at all, Heat no TMDB page: no dead links are drawn
    aliens = page.locator("#user-recs .movie", has_text="Aliens")
    expect(aliens.locator("a.ext")).to_have_count(0)
    heat = page.locator("#user-recs .movie", has=page.locator(".title-link", has_text="Heat"))
    expect(heat.locator("a.ext")).to_have_count(1)
    with page.expect_popup() as opened:  # the policy lets the page navigate to IMDb
        imdb.click()
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url == "https://www.imdb.com/title/tt0816692/"
    assert popup.evaluate("document.referrer") == ""  # noreferrer
    assert popup.evaluate("window.opener") is None  # noopener


def test_report_link(page: Page) -> None:
    link = page.locator("#report-link a")
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url("**/report")
    expect(page.locator("h1")).to_have_css("color", "rgb(1, 2, 3)")  # its inline CSS applied

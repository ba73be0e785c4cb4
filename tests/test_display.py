"""One movie object for the API and the CLI, and the tables the CLI prints."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from _service_fixtures import FakeRecommender
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from movierec import display
from movierec.service import create_app


def text(renderable: object) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_movie_object_from_catalogue_fields() -> None:
    assert display.movie(np.int64(7), "Heat", np.int16(1995), "Action|Crime", 113277) == {
        "movie_id": 7,
        "title": "Heat",
        "year": 1995,
        "genres": ["Action", "Crime"],
        "imdb_url": "https://www.imdb.com/title/tt0113277/",
        "tmdb_url": None,
    }
    assert display.movie(8, "Untitled", 0, "(no genres listed)", tmdb_id=np.int64(862)) == {
        "movie_id": 8,
        "title": "Untitled",
        "year": None,
        "genres": [],
        "imdb_url": None,
        "tmdb_url": "https://www.themoviedb.org/movie/862",
    }
    assert display.movie(9, "x", 2000, "")["genres"] == []


def test_rows_drop_padding_carry_null_scores_and_share_objects() -> None:
    fake = FakeRecommender()
    rows = display.MovieRows(fake.catalog)
    scored = rows.scored(np.array([3, -1, 0]), np.array([0.5, 0.0, np.nan], dtype=np.float32))
    assert [m["movie_id"] for m in scored] == [50, 1]
    assert [m["score"] for m in scored] == [0.5, None]
    assert rows.movie(3) is rows.movie(3)  # built once
    assert "score" not in rows.movie(3)  # rows are copies around the shared object
    watched = rows.watched(np.array([1, 0]), np.array([300, 100]))
    assert [(m["movie_id"], m["timestamp"]) for m in watched] == [(2, 300), (1, 100)]
    aliens = {"movie_id": 120, "title": "Aliens", "year": 1986, "genres": []}
    assert rows.movies([11]) == [{**aliens, "imdb_url": None, "tmdb_url": None}]
    assert rows.movie(0)["imdb_url"] == "https://www.imdb.com/title/tt0114709/"  # links.csv


def test_the_cli_and_the_api_answer_with_the_same_movie_objects(monkeypatch) -> None:
    from movierec import cli

    fake = FakeRecommender()
    monkeypatch.setattr(cli.recommending, "_recommender", lambda run, device="cpu": fake)
    api = TestClient(create_app(fake)).get("/v1/movies/50/similar?k=4").json()
    out = CliRunner().invoke(cli.app, ["similar", "run", "--movie", "50", "--k", "4", "--json"])
    assert out.exit_code == 0, out.output
    mine = json.loads(out.stdout)
    assert mine["movie"] == api["movie"]
    assert mine["similar"] == api["items"]

    api = TestClient(create_app(fake)).get("/v1/users/3/history").json()
    out = CliRunner().invoke(cli.app, ["recommend", "run", "--user", "3", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["history"] == api["items"]


def test_movie_table_columns() -> None:
    rows = display.MovieRows(FakeRecommender().catalog)
    dated = text(display.movie_table("t", rows.watched(np.array([0]), np.array([86400])), "date"))
    assert "Toy Story (1995)" in dated and "1970-01-02" in dated
    scored = text(display.movie_table("t", rows.scored(np.array([4]), np.array([0.25])), "score"))
    assert "Interstellar (2014)" in scored and "0.250" in scored and "Drama, Sci-Fi" in scored
    blank = text(display.movie_table("t", rows.scored(np.array([4]), np.array([np.inf])), "score"))
    assert "None" not in blank and "inf" not in blank


def _row(model: str, hr: float, **params: object) -> SimpleNamespace:
    sampled = {"hr@10": hr, "ndcg@10": hr / 2}
    test = SimpleNamespace(sampled=sampled, full=sampled, coverage_at_10=0.1)
    return SimpleNamespace(model=model, test=test, train_seconds=1.25, params=params)


def test_one_leaderboard_table_best_first_in_bold() -> None:
    rows = [_row("popularity", 0.4), _row("ials", 0.6, alpha=4.0, factors=64, loss="bpr")]
    table = display.leaderboard_table(rows, "test, tiny, seed 0")
    lines = text(table).splitlines()
    assert lines[0].strip() == "test, tiny, seed 0"
    body = [line for line in lines if "popularity" in line or "ials" in line]
    assert "ials" in body[0] and "popularity" in body[1] and "0.600" in body[0]
    assert table.columns[0]._cells[0] == "[bold]ials[/]"
    settings = text(display.leaderboard(rows, "t")).splitlines()
    chosen = [
        line.strip() for line in settings if line.strip().startswith(("ials:", "popularity:"))
    ]
    assert chosen == ["ials: alpha=4, factors=64, loss=bpr", "popularity: (none)"]


def test_the_main_tables_fit_in_80_columns() -> None:
    """`run`'s leaderboard and its history / top-10 tables, rendered 80 wide: no line
    wider, no title broken into one-word lines, and the two movie tables one below the
    other (side by side where the terminal is wide)."""
    from rich.console import Console

    rows = [
        _row(m, 0.5, factors=64, regularization=0.01, learning_rate=0.05, iterations=300)
        for m in ("popularity", "bpr", "ials", "ease", "history", "tutorial", "neumf")
    ]
    movies = display.MovieRows(FakeRecommender().catalog)
    top = movies.scored(np.arange(12), np.linspace(1, 0, 12))
    watched = movies.watched(np.arange(12), np.full(12, 86400 * 9000))

    def render(width: int, renderable) -> list[str]:
        console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(renderable)
        return console.export_text().splitlines()

    board = render(80, display.leaderboard(rows, "test, ml-latest-small, seed 0"))
    assert max(map(len, board)) <= 80
    assert any("neumf" in line and "0.500" in line for line in board)  # one line a model
    pair = display.side_by_side(
        display.movie_table("user 1 watched", watched, "date"),
        display.movie_table("top 10", top, "score"),
    )
    narrow, wide = render(80, pair), render(200, pair)
    assert max(map(len, narrow)) <= 80
    assert any("Casablanca (1942)" in line for line in narrow)  # titles whole at 80
    assert len(wide) < len(narrow)  # side by side when there is room


@pytest.mark.parametrize("column", ["score", "date", "year"])
def test_movie_table_of_nothing(column: str) -> None:
    assert "#" in text(display.movie_table("empty", [], column))  # type: ignore[arg-type]


def test_recommendations_carry_their_reasons_and_fit_in_80_columns() -> None:
    rows = display.MovieRows(FakeRecommender().catalog)
    because = np.array([[8, 9, -1], [-1, -1, -1], [0, 1, 2]])
    scored = rows.scored(np.array([3, -1, 4]), np.array([0.5, 0.0, 0.25]), because)
    assert [m["movie_id"] for m in scored] == [50, 60]
    assert scored[0]["because"] == [
        {"movie_id": 90, "title": "Amélie (2001)"},
        {"movie_id": 100, "title": "Casablanca (1942)"},
    ]
    assert [b["movie_id"] for b in scored[1]["because"]] == [1, 2, 10]
    assert "because" not in rows.scored(np.array([3]), np.array([0.5]))[0]
    assert "because" not in rows.movie(3)  # the shared object is left alone

    top = rows.scored(np.arange(12), np.linspace(1, 0, 12), np.tile([[0, 8, 9]], (12, 1)))
    table = display.movie_table("top 12 for you", top, "score", "because you watched")
    for width in (80, 200):
        console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(table)
        lines = console.export_text().splitlines()
        assert max(map(len, lines)) <= width
        assert any("because you watched" in line for line in lines)
        assert sum("Toy Story" in line for line in lines) == 12  # one line a row
        assert any("Toy Story; Amélie; Casa…" in line for line in lines)  # one line, cut
    assert display.shortened("Heat; Alien") == "Heat; Alien"

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from _data_fixtures import MOVIES_CSV, RATINGS_CSV, RATINGS_HEADER, csv_release, write
from typer.testing import CliRunner

from movierec.cli import app
from movierec.data import Catalog, Dataset, IdMap, Interactions
from movierec.movielens import load
from movierec.prepare import PrepareReport, prepare

# (user, movie, rating); timestamps follow row order.
ROWS = [
    (10, 100, 5.0), (10, 200, 4.0), (10, 400, 3.0), (10, 300, 1.0),
    (20, 200, 2.0), (20, 400, 5.0), (20, 100, 4.0),
    (30, 100, 3.0), (30, 200, 4.0),
    (40, 400, 4.5),
]  # fmt: skip
MOVIES = {100: ("Old", 1999), 200: ("New", 2010), 300: ("Undated", 0), 400: ("Newer", 2015)}


def tiny() -> Dataset:
    users, items = IdMap.from_values([r[0] for r in ROWS]), IdMap.from_values([r[1] for r in ROWS])
    x = Interactions(
        users.index(np.array([r[0] for r in ROWS])),
        items.index(np.array([r[1] for r in ROWS])),
        np.arange(len(ROWS), dtype=np.int64) * 10,
        np.array([r[2] for r in ROWS], dtype=np.float32),
        len(users),
        len(items),
    )
    titles = np.array([MOVIES[m][0] for m in items.raw.tolist()], dtype=object)
    years = np.array([MOVIES[m][1] for m in items.raw.tolist()], dtype=np.int16)
    genres = np.array(["Drama"] * len(items), dtype=object)
    return Dataset(x, users, items, Catalog(items.raw.copy(), titles, years, genres), "tiny")


def triples(ds: Dataset) -> list[tuple[int, int, float]]:
    x = ds.interactions
    raw_u, raw_i = ds.users.to_raw(x.users), ds.items.to_raw(x.items)
    return [(int(u), int(i), float(r)) for u, i, r in zip(raw_u, raw_i, x.ratings, strict=True)]


def check_contiguous(ds: Dataset) -> None:
    x = ds.interactions
    assert x.n_users == len(ds.users) and x.n_items == len(ds.items)
    assert np.all(x.user_counts() > 0) and np.all(x.item_counts() > 0)
    assert x.users.dtype == np.int32 and x.items.dtype == np.int32
    assert np.array_equal(ds.catalog.movie_ids, ds.items.raw)


def test_default_drops_users_below_three() -> None:
    out, report = prepare(tiny())
    assert triples(out) == [r for r in ROWS if r[0] in (10, 20)]
    assert out.users.raw.tolist() == [10, 20]
    assert out.items.raw.tolist() == [100, 200, 300, 400]
    assert (report.users, report.movies, report.interactions) == (2, 4, 7)
    assert (report.users_in, report.movies_in, report.interactions_in) == (4, 4, 10)
    [step] = report.steps
    assert (step.interactions, step.users, step.movies) == (3, 2, 0)
    assert report.dropped == {"user with fewer than 3 interactions": 3}
    check_contiguous(out)
    assert out.name == "tiny"


def test_min_year_drops_old_and_undated_movies() -> None:
    out, report = prepare(tiny(), min_year=2010, min_user_interactions=2)
    assert out.items.raw.tolist() == [200, 400]
    assert out.catalog.titles.tolist() == ["New", "Newer"]
    assert out.catalog.years.tolist() == [2010, 2015]
    assert triples(out) == [(10, 200, 4.0), (10, 400, 3.0), (20, 200, 2.0), (20, 400, 5.0)]
    assert report.dropped == {
        "movie without a year": 1,
        "movie released before 2010": 3,
        "user with fewer than 2 interactions": 2,
    }
    steps = {s.reason: (s.users, s.movies) for s in report.steps}
    assert steps["movie without a year"] == (0, 1)
    assert steps["movie released before 2010"] == (0, 1)
    assert steps["user with fewer than 2 interactions"] == (2, 0)
    check_contiguous(out)


def test_nothing_dropped_returns_the_input() -> None:
    ds = tiny()
    out, report = prepare(ds, min_user_interactions=1)
    assert out is ds and report.steps == () and report.interactions == len(ROWS)


def test_undated_movies_kept_without_a_year_filter() -> None:
    out, _ = prepare(tiny(), min_user_interactions=1)
    assert 300 in out.items and len(out.interactions) == len(ROWS)


def test_min_rating() -> None:
    out, report = prepare(tiny(), min_rating=4.0, min_user_interactions=1)
    assert triples(out) == [r for r in ROWS if r[2] >= 4.0]
    assert out.items.raw.tolist() == [100, 200, 400]
    [step] = report.steps
    assert (step.reason, step.interactions, step.users, step.movies) == ("rating below 4", 4, 0, 1)
    out2, report2 = prepare(tiny(), min_rating=4.0, min_user_interactions=2)
    assert out2.users.raw.tolist() == [10, 20]
    assert report2.dropped["user with fewer than 2 interactions"] == 2


def test_order_dtypes_and_timestamps_preserved() -> None:
    ds = tiny()
    out, _ = prepare(ds, min_rating=3.0, min_user_interactions=1)
    keep = ds.interactions.ratings >= 3.0
    assert out.interactions.timestamps.tolist() == ds.interactions.timestamps[keep].tolist()
    assert out.interactions.ratings.dtype == np.float32
    assert out.interactions.timestamps.dtype == np.int64


def test_everything_filtered_gives_an_empty_dataset() -> None:
    out, report = prepare(tiny(), min_year=2100)
    assert len(out.interactions) == 0 and len(out.users) == 0 and len(out.items) == 0
    assert report.interactions == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_user_interactions must be at least 1"):
        prepare(tiny(), min_user_interactions=0)


def test_report_lines() -> None:
    _, report = prepare(tiny(), min_year=2010, min_user_interactions=2)
    assert isinstance(report, PrepareReport)
    lines = report.lines()
    assert lines[0] == "kept: 4 of 10 interactions, 2 of 4 users, 2 of 4 movies"
    assert "dropped 3 interactions (0 users, 1 movies): movie released before 2010" in lines


def test_embedded_set_known_counts() -> None:
    ds, _ = load("ml-latest-small")
    out, report = prepare(ds, min_year=2010)
    assert (report.users, report.movies, report.interactions) == (140, 1345, 5362)
    assert report.dropped == {
        "movie without a year": 3,
        "movie released before 2010": 94602,
        "user with fewer than 3 interactions": 37,
    }
    check_contiguous(out)
    assert out.catalog.years.min() >= 2010


# --------------------------------------------------------------------------- command line


def test_cli_prepare_prints_a_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["prepare", "--data", str(csv_release(tmp_path)), "--min-year", "2000"]
    )
    assert result.exit_code == 0, result.output
    assert "movie released before 2000" in result.output
    assert "kept" in result.output


def test_cli_prepare_bad_data_is_one_clean_line(tmp_path: Path) -> None:
    csv_release(tmp_path, ratings=RATINGS_CSV.replace("2,5,2.0,210", "2,5,7.5,210"))
    result = CliRunner().invoke(app, ["prepare", "--data", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert lines[0].endswith("ratings.csv line 6: rating '7.5' out of range 0.5..5")
    assert "Traceback" not in result.output


def test_cli_prepare_strict(tmp_path: Path) -> None:
    csv_release(tmp_path, ratings=RATINGS_CSV + "1,99,3.0,1\n")
    relaxed = CliRunner().invoke(app, ["prepare", "--data", str(tmp_path)])
    assert relaxed.exit_code == 0 and "movie absent from the movie file" in relaxed.output
    strict = CliRunner().invoke(app, ["prepare", "--data", str(tmp_path), "--strict"])
    assert strict.exit_code == 2
    assert "line 11: movie 99 is not in movies.csv" in strict.stderr


def _side_by_side(root: Path) -> Path:
    csv_release(root)
    return write(root / "ratings.csv.gz", gzip.compress(RATINGS_CSV.encode())).parent


BAD_DIRS = {  # case -> (make the folder, what the error line ends with)
    "stray-quote": (
        lambda root: csv_release(
            root, movies=MOVIES_CSV + '12,"Film (2001),Drama\n13,Other (2002)",Drama\n'
        ),
        "movies.csv line 7: a quoted field runs over the line end into line 8 (a stray '\"'?): "
        "'12,\"Film (2001),Drama'",
    ),
    "20-digit-id": (
        lambda root: csv_release(root, movies=MOVIES_CSV + "9" * 20 + ",F (1990),\n"),
        f"movies.csv line 7: movieId {'9' * 20} is too large (over 32 bits)",
    ),
    "5000-digits": (
        lambda root: csv_release(root, ratings=RATINGS_CSV + "1" * 5000 + ",1,4,1\n"),
        "ratings.csv line 11: userId 11111111111111111111... (5000 digits) is too large "
        "(over 32 bits)",
    ),
    "negative-time": (
        lambda root: csv_release(root, ratings=RATINGS_HEADER + "1,1,4.0,-7\n"),
        "ratings.csv line 2: timestamp -7 is negative (before 1970-01-01)",
    ),
    "side-by-side": (_side_by_side, "both ratings.csv and ratings.csv.gz are present: remove one"),
    "nul-title": (
        lambda root: csv_release(root, movies=MOVIES_CSV.replace("Hyena", "Hy\x00ena")),
        "movies.csv line 4: control character '\\x00' at column 5: NUL bytes and other control "
        "characters are not allowed",
    ),
}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("case", sorted(BAD_DIRS))
def test_cli_prepare_hostile_data_is_one_clean_line(tmp_path: Path, case: str, strict: bool):
    make, ending = BAD_DIRS[case]
    make(tmp_path)
    args = ["prepare", "--data", str(tmp_path)] + (["--strict"] if strict else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}"), result.stderr
    assert lines[0].endswith(ending), lines[0]
    assert "Traceback" not in result.output

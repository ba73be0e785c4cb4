from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.movielens import load
from movierec.synth import FIRST_TS, LAST_TS, synth

SCALE = 0.002  # 325 users, 2,792 movies, ~45k ratings


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    summary = synth(out, scale=SCALE, seed=3)
    assert summary.path == out
    return out


def test_shape(small: Path) -> None:
    ds, report = load(small, strict=True)  # strict: no unknown movies, no duplicates
    assert len(ds.users) == 325
    assert report.movies_listed == round(62_423 * SCALE**0.5)
    assert 0.95 * 22_600_000 * SCALE < len(ds.interactions) <= 22_600_000 * SCALE
    assert ds.interactions.user_counts().min() >= 20
    ratings = np.unique(ds.interactions.ratings)
    assert set(ratings.tolist()) <= {h / 2 for h in range(1, 11)} and len(ratings) == 10


def test_files_look_like_ml25m(small: Path) -> None:
    with open(small / "ratings.csv") as f:
        assert f.readline() == "userId,movieId,rating,timestamp\n"
        first = f.readline().rstrip("\n").split(",")
    assert first[2] in {f"{h / 2:.1f}" for h in range(1, 11)}
    with open(small / "movies.csv", encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("movieId,title,genres\n")
    assert re.search(r'^\d+,"[^"]+, The \(\d{4}\)",', text, re.MULTILINE)  # commas: quoted
    rows = list(csv.reader(text.splitlines()))[1:]
    assert all(len(r) == 3 and r[1].endswith(")") for r in rows)
    assert not any(line.count('"') and ", The" not in line for line in text.splitlines())


def test_links_like_ml25m(small: Path) -> None:
    lines = (small / "links.csv").read_text().splitlines()
    assert lines[0] == "movieId,imdbId,tmdbId"
    assert all(re.fullmatch(r"\d+,\d{7,},\d*", line) for line in lines[1:])
    c = load(small)[0].catalog
    assert (c.imdb_ids > 0).all() and len(np.unique(c.imdb_ids)) == len(c)
    assert 0 < (c.tmdb_ids < 0).sum() < 0.05 * len(c)  # a few empty, as in MovieLens


def test_sorted_by_user_then_movie(small: Path) -> None:
    raw = np.loadtxt(
        small / "ratings.csv", delimiter=",", skiprows=1, usecols=(0, 1), dtype=np.int64
    )
    key = raw[:, 0] * 10**7 + raw[:, 1]
    assert np.all(key[1:] > key[:-1])


def test_years_and_timestamps(small: Path) -> None:
    ds, _ = load(small)
    years = ds.catalog.years.astype(int)
    assert years.min() >= 1900 and years.max() <= 2019
    assert 0.25 < np.mean(years >= 2010) < 0.42
    x = ds.interactions
    assert x.timestamps.min() >= FIRST_TS and x.timestamps.max() <= LAST_TS
    release = (years[x.items] - 1970) * 365.25 * 86_400
    assert np.all(x.timestamps >= release.astype(np.int64))  # never before the release year
    share_recent = np.mean(years[x.items] >= 2010)
    assert 0.07 < share_recent < 0.2  # ML-25M: about one rating in eight


def test_popularity_is_skewed(small: Path) -> None:
    ds, _ = load(small)
    counts = np.sort(ds.interactions.item_counts())[::-1]
    assert counts[: len(counts) // 100].sum() > 0.1 * counts.sum()


def test_planted_taste(small: Path) -> None:
    """Genres follow the hidden clusters: users concentrate on a few and rate them higher."""
    ds, _ = load(small)
    x = ds.interactions
    genre_code = np.unique(ds.catalog.genres.astype(str), return_inverse=True)[1]

    def per_user(items: np.ndarray) -> np.ndarray:
        counts = np.zeros((x.n_users, genre_code.max() + 1))
        np.add.at(counts, (x.users, genre_code[items]), 1)
        return counts

    taste = per_user(x.items)
    shuffled = per_user(np.random.default_rng(0).permutation(x.items))  # same popularity
    top_share = (taste.max(axis=1) / taste.sum(axis=1)).mean()
    assert top_share > 2 * (shuffled.max(axis=1) / shuffled.sum(axis=1)).mean()
    favourite = taste.argmax(axis=1)[x.users] == genre_code[x.items]
    assert x.ratings[favourite].mean() > x.ratings[~favourite].mean() + 0.3


def test_deterministic(tmp_path: Path, small: Path) -> None:
    synth(tmp_path / "again", scale=SCALE, seed=3)
    synth(tmp_path / "other", scale=SCALE, seed=4)
    for name in ("ratings.csv", "movies.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (small / name).read_bytes()
    assert (tmp_path / "other" / "ratings.csv").read_bytes() != (small / "ratings.csv").read_bytes()
    assert not list((tmp_path / "again").glob(".*"))  # temp files renamed into place


def test_bad_scale(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale must be positive"):
        synth(tmp_path, scale=0)


def test_cli_synth(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "s"), "--scale", "0.001"])
    assert result.exit_code == 0, result.output
    assert "163 users" in result.output
    bad = CliRunner().invoke(app, ["synth", str(tmp_path / "s"), "--scale", "-1"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: scale must be positive")

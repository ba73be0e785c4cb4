"""links.csv: each movie's IMDb and TMDB ids, read when a CSV release has the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from _data_fixtures import csv_release, write, zip_dir

from movierec.data import Catalog
from movierec.errors import MovierecError
from movierec.movielens import DataError, load

# movies of MOVIES_CSV: 1, 2, 5, 10 rated; 11 listed, unrated
LINKS_CSV = (
    "movieId,imdbId,tmdbId\n"
    "1,0114709,862\n"
    "2,0112346,9087\n"
    "10,1022603,\n"  # no TMDB id
    "11,0000001,5\n"  # a movie without ratings: not in the catalogue
    "99,0000002,6\n"  # a movie the movie file does not list: ignored
)


def links_release(root: Path, links: str | bytes = LINKS_CSV) -> Path:
    csv_release(root)
    write(root / "links.csv", links)
    return root


def catalog_links(root: Path) -> dict[int, tuple[int, int]]:
    c = load(root)[0].catalog
    return {
        int(m): (int(i), int(t))
        for m, i, t in zip(c.movie_ids, c.imdb_ids, c.tmdb_ids, strict=True)
    }


def test_links_are_carried_in_the_catalogue(tmp_path: Path) -> None:
    ds, report = load(links_release(tmp_path / "ml-tiny"))
    assert ds.catalog.imdb_ids.dtype == np.int64 and ds.catalog.tmdb_ids.dtype == np.int64
    assert catalog_links(tmp_path / "ml-tiny") == {
        1: (114709, 862),
        2: (112346, 9087),
        5: (-1, -1),  # no row for movie 5
        10: (1022603, -1),
    }
    assert report.files[-1].endswith("links.csv")


def test_no_links_file_means_every_link_unknown(tmp_path: Path) -> None:
    ds, report = load(csv_release(tmp_path / "ml-tiny"))
    assert (ds.catalog.imdb_ids == -1).all() and (ds.catalog.tmdb_ids == -1).all()
    assert [Path(f).name for f in report.files] == ["ratings.csv", "movies.csv"]


def test_gzipped_zipped_crlf_bom_and_headerless_links(tmp_path: Path) -> None:
    want = catalog_links(links_release(tmp_path / "plain"))
    root = csv_release(tmp_path / "gz")
    (root / "links.csv.gz").write_bytes(gzip.compress(LINKS_CSV.encode()))
    assert catalog_links(root) == want
    assert catalog_links(zip_dir(links_release(tmp_path / "z"), tmp_path / "z.zip", "ml-z")) == want
    crlf = "\ufeff" + LINKS_CSV.replace("\n", "\r\n") + "\r\n\r\n"  # and trailing blank lines
    assert catalog_links(links_release(tmp_path / "crlf", crlf)) == want
    # the embedded ml-latest-small copy has no header: a first row of ids is data
    headerless = LINKS_CSV.split("\n", 1)[1]
    assert catalog_links(links_release(tmp_path / "bare", headerless)) == want


def test_the_embedded_set_has_links() -> None:
    c = load("ml-latest-small")[0].catalog
    richard = int(np.flatnonzero(c.movie_ids == 41)[0])  # "41,0114279,31174"
    assert (c.imdb_ids[richard], c.tmdb_ids[richard]) == (114279, 31174)
    assert (c.imdb_ids >= 0).sum() > 9000


@pytest.mark.parametrize(
    ("links", "line", "problem"),
    [
        ("movieId,imdb,tmdb\n1,1,1\n", 1, "expected header movieId,imdbId,tmdbId"),
        ("", 1, "empty file"),
        ("movieId,imdbId,tmdbId\n1,0114709\n", 2, "expected 3 fields, found 2 (truncated line?)"),
        ("movieId,imdbId,tmdbId\n1,0114709,862,9\n", 2, "expected 3 fields, found 4"),
        ("movieId,imdbId,tmdbId\n1,tt0114709,862\n", 2, "imdbId 'tt0114709' is not a number"),
        ("movieId,imdbId,tmdbId\n1,0114709,-862\n", 2, "tmdbId '-862' is not a number"),
        ("movieId,imdbId,tmdbId\n,0114709,862\n", 2, "movieId '' is not a number"),
        ("movieId,imdbId,tmdbId\n1,1,1\nx,1,1\n", 3, "movieId 'x' is not a number"),
        ("movieId,imdbId,tmdbId\n1,1,99999999999\n", 2, "tmdbId 99999999999 is too large"),
        (
            "movieId,imdbId,tmdbId\n1,1,1\n2,2,2\n1,3,3\n",
            4,
            "movieId 1 listed twice (also at line 2)",
        ),
        ("movieId,imdbId,tmdbId\n1,1,1\n\n2,2,2\n", 3, "empty line"),
        ("movieId,imdbId,tmdbId\n1,1,1\n2,\x002,2\n", 3, "control character"),
        (b"movieId,imdbId,tmdbId\n1,1,1\n2,\xff,2\n", 3, "undecodable bytes"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, links: str | bytes, line: int, problem: str) -> None:
    root = links_release(tmp_path / "ml-tiny", links)
    with pytest.raises(DataError) as caught:
        load(root)
    e = caught.value
    assert isinstance(e, MovierecError)
    assert (Path(e.path).name, e.line) == ("links.csv", line)
    assert problem in e.message, e.message
    assert str(e).startswith(f"{root}/links.csv line {line}: ") and "\n" not in str(e)


def test_plain_and_gzipped_links_side_by_side_are_refused(tmp_path: Path) -> None:
    root = links_release(tmp_path / "ml-tiny")
    (root / "links.csv.gz").write_bytes(gzip.compress(LINKS_CSV.encode()))
    with pytest.raises(DataError, match="both links.csv and links.csv.gz are present"):
        load(root)


def test_catalog_links_default_to_unknown_and_follow_subsets() -> None:
    ids = np.array([1, 2, 3])
    titles = np.array(["a", "b", "c"], dtype=object)
    plain = Catalog(ids, titles, np.zeros(3, np.int16), titles)
    assert plain.imdb_ids.tolist() == [-1, -1, -1] and plain.tmdb_ids.tolist() == [-1, -1, -1]
    linked = Catalog(ids, titles, np.zeros(3, np.int16), titles, np.array([7, 8, 9]), [4, -1, 6])
    part = linked.subset(np.array([2, 0]))
    assert (part.imdb_ids.tolist(), part.tmdb_ids.tolist()) == ([9, 7], [6, 4])
    with pytest.raises(ValueError, match="one id per movie"):
        Catalog(ids, titles, np.zeros(3, np.int16), titles, np.array([1, 2]))

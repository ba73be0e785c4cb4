from __future__ import annotations

import ast
import gzip
import re
import time
from pathlib import Path

import numpy as np
import pytest
from _data_fixtures import (
    FORMAT_FILES,
    MOVIES_CSV,
    MOVIES_DAT_1M,
    RATINGS_CSV,
    RATINGS_DAT,
    RATINGS_HEADER,
    U_DATA,
    U_GENRE,
    csv_release,
    dat_release,
    one_rating_release,
    u_item_row,
    write,
    zip_dir,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec import movielens
from movierec.errors import MovierecError
from movierec.movielens import (
    DROP_DUPLICATE,
    DROP_MISSING_MOVIE,
    DataError,
    FetchError,
    LoadReport,
    load,
    parse_title,
)

# --------------------------------------------------------------------------- titles


@pytest.mark.parametrize(
    ("raw", "title", "year"),
    [
        ("Toy Story (1995)", "Toy Story", 1995),
        ("Babylon 5 (1994)", "Babylon 5", 1994),
        ("Babylon 5", "Babylon 5", 0),
        ("(500) Days of Summer (2009)", "(500) Days of Summer", 2009),
        ("Tom and Huck (1995) ", "Tom and Huck", 1995),
        ("Rocky VI (1986) ", "Rocky VI", 1986),
        ("American President, The (1995)", "American President, The", 1995),
        ("City of Lost Children, The (Cité des enfants perdus, La) (1995)",
         "City of Lost Children, The (Cité des enfants perdus, La)", 1995),
        ("Big Bang Theory, The (2007-)", "Big Bang Theory, The", 2007),
        ("Fawlty Towers (1975-1979)", "Fawlty Towers", 1975),
        ("1984 (1984)", "1984", 1984),
        ("Hyena Road", "Hyena Road", 0),
        ("2001: A Space Odyssey (1968)", "2001: A Space Odyssey", 1968),
        ("Brazil (1985)   ", "Brazil", 1985),
        ("Nineteen Eighty-Four (198)", "Nineteen Eighty-Four (198)", 0),
        ("", "", 0),
    ],
)  # fmt: skip
def test_parse_title(raw: str, title: str, year: int) -> None:
    assert parse_title(raw) == (title, year)


# --------------------------------------------------------------------------- readers


def test_embedded_set_loads() -> None:
    ds, report = load("ml-latest-small")
    assert (len(ds.interactions), len(ds.users), len(ds.items)) == (100_004, 671, 9_066)
    assert report.movies_listed == 9_125 and report.dropped == {}
    assert ds.name == "ml-latest-small" and report.format == "csv"
    x = ds.interactions
    assert x.users.dtype == np.int32 and x.items.dtype == np.int32
    assert x.ratings.dtype == np.float32 and x.timestamps.dtype == np.int64
    assert x.ratings.min() == 0.5 and x.ratings.max() == 5.0
    toy = int(ds.items.index(1)[0])
    assert ds.catalog.display_title(toy) == "Toy Story (1995)"
    assert ds.catalog.genres[toy] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert ds.catalog.years.dtype == np.int16


def test_embedded_licence_ships_beside_the_data() -> None:
    from importlib import resources

    root = resources.files("movierec") / "datasets" / "ml-latest-small"
    assert "Usage License" in (root / "README.txt").read_text(encoding="utf-8")


def test_csv_release(tmp_path: Path) -> None:
    ds, report = load(csv_release(tmp_path / "ml-tiny"))
    assert ds.name == "ml-tiny"
    assert ds.users.raw.tolist() == [1, 2, 7]
    assert ds.items.raw.tolist() == [1, 2, 5, 10]  # movie 11 has no rating
    assert ds.catalog.titles.tolist() == [
        "Toy Story", "American President, The", "Hyena Road", "(500) Days of Summer",
    ]  # fmt: skip
    assert ds.catalog.years.tolist() == [1995, 1995, 0, 2009]
    assert ds.catalog.genres[2] == ""
    x = ds.interactions
    assert ds.users.to_raw(x.users).tolist() == [1, 1, 1, 2, 2, 7, 7, 7, 7]
    assert ds.items.to_raw(x.items).tolist() == [1, 2, 10, 1, 5, 2, 10, 1, 5]
    assert x.ratings.tolist() == [4.0, 3.5, 5.0, 0.5, 2.0, 4.5, 1.0, 3.0, 5.0]
    assert x.timestamps.tolist() == [100, 110, 120, 200, 210, 300, 310, 320, 330]
    assert (x.n_users, x.n_items) == (3, 4)
    assert (report.rows_read, report.movies_listed, report.interactions) == (9, 5, 9)
    assert report.encodings == {} and report.dropped == {}
    assert any("9 ratings read" in line for line in report.lines())


def test_crlf_line_endings_and_bom(tmp_path: Path) -> None:
    ratings = "\ufeff" + RATINGS_CSV.replace("\n", "\r\n")
    ds, _ = load(csv_release(tmp_path, ratings=ratings, movies=MOVIES_CSV.replace("\n", "\r\n")))
    assert len(ds.interactions) == 9
    assert ds.catalog.titles[1] == "American President, The"


def test_trailing_blank_lines_are_ignored(tmp_path: Path) -> None:
    ds, _ = load(csv_release(tmp_path, ratings=RATINGS_CSV + "\n\n", movies=MOVIES_CSV + "\n"))
    assert len(ds.interactions) == 9


def test_gzipped_files(tmp_path: Path) -> None:
    write(tmp_path / "ratings.csv.gz", gzip.compress(RATINGS_CSV.encode()))
    write(tmp_path / "movies.csv.gz", gzip.compress(MOVIES_CSV.encode()))
    ds, report = load(tmp_path)
    assert len(ds.interactions) == 9
    assert report.files[0].endswith("ratings.csv.gz")


@pytest.mark.parametrize("top", ["ml-tiny", None])
def test_zip_input(tmp_path: Path, top: str | None) -> None:
    archive = zip_dir(csv_release(tmp_path / "src"), tmp_path / "ml-tiny.zip", top)
    ds, report = load(archive)
    assert ds.name == "ml-tiny"
    assert len(ds.interactions) == 9 and len(ds.items) == 4
    assert report.files[0] == f"{archive}:{top + '/' if top else ''}ratings.csv"


def test_zip_error_names_the_member(tmp_path: Path) -> None:
    bad = RATINGS_CSV.replace("2,5,2.0,210", "2,5,9.0,210")
    archive = zip_dir(csv_release(tmp_path / "src", ratings=bad), tmp_path / "x.zip", "ml-x")
    with pytest.raises(DataError, match=r"x\.zip:ml-x/ratings\.csv line 6: rating '9'"):
        load(archive)


def test_dat_1m_latin1_movies(tmp_path: Path) -> None:
    ds, report = load(dat_release(tmp_path / "ml-1m"))
    assert report.format == "dat-1m"
    assert report.encodings == {"movies.dat": "latin-1"}
    assert any("latin-1" in line for line in report.lines())
    assert ds.catalog.titles.tolist() == ["Toy Story", "Misérables, Les", "Babylon 5"]
    assert ds.catalog.years.tolist() == [1995, 1995, 1994]
    assert ds.catalog.genres[0] == "Animation|Children's|Comedy"
    assert ds.users.to_raw(ds.interactions.users).tolist() == [1, 1, 2, 2]
    assert ds.items.to_raw(ds.interactions.items).tolist() == [1, 2, 3, 1]
    assert ds.interactions.ratings.tolist() == [5, 3, 4, 1]
    assert ds.interactions.timestamps.tolist() == [978300760, 978302109, 978301968, 978300275]


def test_dat_10m_utf8_and_half_stars(tmp_path: Path) -> None:
    root = dat_release(tmp_path / "ml-10M100K", one_m=False)
    write(root / "ratings.dat", RATINGS_DAT.replace("1::2::3::", "1::2::3.5::"))
    ds, report = load(root)
    assert report.format == "dat-10m" and report.encodings == {}
    assert ds.catalog.titles[1] == "Misérables, Les"
    assert ds.interactions.ratings[1] == 3.5


def test_dat_1m_rejects_half_stars(tmp_path: Path) -> None:
    root = dat_release(tmp_path)
    write(root / "ratings.dat", RATINGS_DAT.replace("2::3::4::", "2::3::0.5::"))
    with pytest.raises(DataError, match=r"ratings\.dat line 3: rating '0\.5' out of range 1\.\.5"):
        load(root)


def test_100k_with_genre_file(tmp_path: Path) -> None:
    write(tmp_path / "u.data", U_DATA)
    items = u_item_row(242, "Kolya (1996)", "24-Jan-1997", [0, 0, 1])
    items += u_item_row(302, "L.A. Confidential (1997)", "01-Jan-1997", [0, 1, 0])
    items += u_item_row(999, "unknown", "", [1, 0, 0])
    write(tmp_path / "u.item", items, encoding="latin-1")
    write(tmp_path / "u.genre", U_GENRE)
    ds, report = load(tmp_path)
    assert report.format == "100k" and report.encodings == {}
    assert ds.items.raw.tolist() == [242, 302]
    assert ds.catalog.genres.tolist() == ["Comedy", "Action"]
    assert ds.catalog.years.tolist() == [1996, 1997]
    assert ds.users.to_raw(ds.interactions.users).tolist() == [196, 186, 196]
    assert ds.interactions.ratings.tolist() == [3, 3, 5]


def test_100k_standard_genres_and_latin1(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t5\t4\t100\n")
    flags = [0] * 19
    flags[0] = flags[4] = flags[18] = 1  # unknown, Children's, Western
    write(tmp_path / "u.item", u_item_row(5, "Café (no year)", "01-Jan-1990", flags), "latin-1")
    ds, _ = load(tmp_path)
    assert ds.catalog.genres.tolist() == ["Children's|Western"]
    assert ds.catalog.titles.tolist() == ["Café (no year)"]
    assert ds.catalog.years.tolist() == [1990]  # from the release date


def test_release_name_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"run `movierec fetch ml-1m` first"):
        load("ml-1m")
    dat_release(tmp_path / "ml-1m")
    ds, _ = load("ml-1m")
    assert ds.name == "ml-1m" and len(ds.interactions) == 4


# --------------------------------------------------------------------------- bad input


def _rows(*extra: str, header: str = RATINGS_HEADER) -> str:
    return header + "".join(line + "\n" for line in extra)


BAD_RATINGS = [
    pytest.param(
        _rows("1,1,4.0,100", header="userId,itemId,rating,timestamp\n"),
        1,
        "expected header userId,movieId,rating,timestamp, found 'userId,itemId,rating,timestamp'",
        id="misnamed-column",
    ),
    pytest.param(
        "1,1,4.0,100\n",
        1,
        "expected header userId,movieId,rating,timestamp, found '1,1,4.0,100'",
        id="no-header",
    ),
    pytest.param(
        _rows("1,1,4.0,100", header="userId,movieId,rating\n"),
        1,
        "expected header userId,movieId,rating,timestamp, found 'userId,movieId,rating'",
        id="missing-column",
    ),
    pytest.param(b"", 1, "empty file", id="empty-file"),
    pytest.param(RATINGS_HEADER, 2, "no ratings after the header", id="header-only"),
    pytest.param(_rows("1,1,4.0,100", "1,abc,3.0,100"), 3, "movieId 'abc' is not an integer",
                 id="non-numeric-movie"),
    pytest.param(_rows("1,1,4.0,100", "1,2,3.0,100", "x7,2,3.0,100"), 4,
                 "userId 'x7' is not an integer", id="non-numeric-user"),
    pytest.param(_rows("1,1,4.0,100", "1,2,7.5,110"), 3, "rating '7.5' out of range 0.5..5",
                 id="rating-too-high"),
    pytest.param(_rows("1,1,0,100"), 2, "rating '0' out of range 0.5..5", id="rating-zero"),
    pytest.param(_rows("1,1,nan,100"), 2, "rating 'nan' out of range", id="rating-nan"),
    pytest.param(_rows("1,1,four,100"), 2, "rating 'four' is not a number", id="rating-text"),
    pytest.param(_rows("1,1,4.0,100", "1,2,3.0,"), 3, "missing timestamp (empty field)",
                 id="missing-timestamp"),
    pytest.param(_rows("1,1,4.0,100", ",2,3.0,5"), 3, "missing userId (empty field)",
                 id="missing-user"),
    pytest.param(_rows("1,1,4.0,100", "", "1,2,3.0,5"), 3, "empty line", id="blank-line"),
    pytest.param(RATINGS_HEADER + "1,1,4.0,100\n1,2,3.0", 3,
                 "expected 4 fields (userId,movieId,rating,timestamp) separated by ',', found 3 "
                 "(truncated line?): '1,2,3.0'", id="truncated-last-line"),
    pytest.param(_rows("1,1,4.0,100,9"), 2, "found 5: '1,1,4.0,100,9'", id="extra-field"),
    pytest.param(_rows("1,1,4.0,100", "-3,1,4.0,100"), 3, "negative userId -3", id="negative-id"),
    pytest.param(_rows("1,99999999999,4.0,100"), 2, "movieId 99999999999 is too large",
                 id="id-overflow"),
    pytest.param((_rows("1,1,4.0,100") + "1,\xff2,3.0,100\n").encode("latin-1"), 3,
                 r"undecodable bytes b'\xff' at column 3: the file must be UTF-8",
                 id="bad-encoding"),
]  # fmt: skip


@pytest.mark.parametrize(("ratings", "line", "problem"), BAD_RATINGS)
def test_bad_ratings_csv(tmp_path: Path, ratings: str | bytes, line: int, problem: str) -> None:
    csv_release(tmp_path, ratings=ratings)
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    err = caught.value
    assert (Path(err.path).name, err.line) == ("ratings.csv", line)
    assert f"ratings.csv line {line}: " in str(err)
    assert problem in str(err)
    assert "\n" not in str(err)


BAD_MOVIES = [
    pytest.param("movieId,name,genres\n1,Toy Story (1995),Comedy\n", 1,
                 "expected header movieId,title,genres, found 'movieId,name,genres'",
                 id="misnamed-column"),
    pytest.param(MOVIES_CSV + "12,Truncated (2001)", 7, "expected 3 fields, found 2 (truncated",
                 id="truncated-last-line"),
    pytest.param(MOVIES_CSV + "x12,Film (2001),Drama\n", 7, "movieId 'x12' is not an integer",
                 id="non-numeric-id"),
    pytest.param(MOVIES_CSV + "1,Toy Story again (1995),Comedy\n", 7,
                 "movieId 1 listed twice (also at line 2)", id="listed-twice"),
    pytest.param(MOVIES_CSV.encode() + "12,Misérables (1995),Drama\n".encode("latin-1"), 7,
                 r"undecodable bytes b'\xe9' at column 7: the file must be UTF-8",
                 id="bad-encoding"),
    pytest.param(b"", 1, "empty file", id="empty-file"),
    pytest.param("movieId,title,genres\n", 2, "no movies", id="header-only"),
    pytest.param(MOVIES_CSV.replace("2,", "\n2,", 1), 3, "empty line", id="blank-line"),
    pytest.param(MOVIES_CSV + '12,"Film" (2001),Drama\n', 7,
                 "malformed CSV: ',' expected after '\"': '12,\"Film\" (2001),Drama'",
                 id="text-after-closing-quote"),
    pytest.param(MOVIES_CSV + "-12,Film (2001),Drama\n", 7, "negative movieId -12",
                 id="negative-id"),
]  # fmt: skip


@pytest.mark.parametrize(("movies", "line", "problem"), BAD_MOVIES)
def test_bad_movies_csv(tmp_path: Path, movies: str | bytes, line: int, problem: str) -> None:
    csv_release(tmp_path, movies=movies)
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert f"movies.csv line {line}: " in str(caught.value)
    assert problem in str(caught.value)


def test_bad_dat_lines(tmp_path: Path) -> None:
    root = dat_release(tmp_path)
    write(root / "ratings.dat", RATINGS_DAT + "3::1:4::978300760\n")
    with pytest.raises(DataError, match=r"ratings\.dat line 5: expected 4 fields .* '::', found 3"):
        load(root)
    write(root / "ratings.dat", "1::1::5::978300760\n1::one::3::978302109\n")
    with pytest.raises(DataError, match=r"ratings\.dat line 2: movieId 'one' is not an integer"):
        load(root)
    write(root / "ratings.dat", RATINGS_DAT)
    write(root / "movies.dat", MOVIES_DAT_1M + "4::Broken\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"movies\.dat line 4: expected 3 fields, found 2"):
        load(root)


def test_bad_100k_item(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t5\t4\t100\n1\t6\t2\n")
    write(tmp_path / "u.item", u_item_row(5, "A (1990)", "", [0] * 19), "latin-1")
    with pytest.raises(DataError, match=r"u\.data line 2: expected 4 fields .* by tab, found 3"):
        load(tmp_path)
    write(tmp_path / "u.data", "1\t5\t4\t100\n")
    write(tmp_path / "u.item", u_item_row(5, "A (1990)", "", [0] * 18), "latin-1")
    with pytest.raises(DataError, match=r"u\.item line 1: expected 24 fields, found 23"):
        load(tmp_path)
    write(tmp_path / "u.item", u_item_row(5, "A (1990)", "", [0] * 3), "latin-1")
    write(tmp_path / "u.genre", "unknown|0\nAction|1\nDrama|" + "2" * 5000 + "\n")
    with pytest.raises(DataError, match=r"u\.genre line 3: expected 'name\|index', found 'Dra"):
        load(tmp_path)


def test_error_found_deep_in_a_large_file(tmp_path: Path) -> None:
    n = 60_000
    users = np.arange(n) // 20 + 1
    lines = [f"{u},{i % 5 + 1},3.5,{1000 + i}" for i, u in enumerate(users.tolist())]
    lines[43_210] = "2161,2,3.5,12x"
    ratings = RATINGS_HEADER + "\n".join(lines) + "\n"
    movies = "movieId,title,genres\n" + "".join(f"{m},M{m} (2000),Drama\n" for m in range(1, 6))
    csv_release(tmp_path, ratings=ratings, movies=movies)
    with pytest.raises(DataError, match=r"ratings\.csv line 43212: timestamp '12x' is not an"):
        load(tmp_path)


def test_missing_source_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load(tmp_path / "nope")
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(DataError, match="no MovieLens files: .* found notes.txt"):
        load(tmp_path)
    write(tmp_path / "ratings.csv", RATINGS_CSV)
    with pytest.raises(DataError, match="movies.csv is missing beside ratings.csv"):
        load(tmp_path)
    with pytest.raises(DataError, match="not a directory or a .zip archive"):
        load(tmp_path / "notes.txt")


# --------------------------------------------------------------------------- drops


def test_ratings_of_unknown_movies_are_dropped(tmp_path: Path) -> None:
    ratings = RATINGS_CSV + "1,99,3.0,130\n2,98,3.0,230\n"
    ds, report = load(csv_release(tmp_path, ratings=ratings))
    assert report.dropped == {DROP_MISSING_MOVIE: 2}
    assert (report.rows_read, report.interactions) == (11, 9)
    assert 99 not in ds.items and len(ds.items) == 4
    assert any("dropped 2 ratings" in line for line in report.lines())
    with pytest.raises(DataError, match=r"ratings\.csv line 11: movie 99 is not in movies\.csv"):
        load(tmp_path, strict=True)


def test_user_with_only_unknown_movies_disappears(tmp_path: Path) -> None:
    ds, _ = load(csv_release(tmp_path, ratings=RATINGS_CSV + "9,99,3.0,130\n"))
    assert ds.users.raw.tolist() == [1, 2, 7]


def test_duplicates_keep_the_latest(tmp_path: Path) -> None:
    # user 1 re-rates movie 2 earlier (dropped); user 2 re-rates movie 5 later (kept).
    ratings = RATINGS_CSV + "1,2,2.0,90\n2,5,4.0,500\n"
    ds, report = load(csv_release(tmp_path, ratings=ratings))
    assert report.dropped == {DROP_DUPLICATE: 2}
    x = ds.interactions
    pairs = {
        (int(u), int(m)): (float(r), int(t))
        for u, m, r, t in zip(
            ds.users.to_raw(x.users),
            ds.items.to_raw(x.items),
            x.ratings,
            x.timestamps,
            strict=True,
        )
    }
    assert len(pairs) == len(x) == 9
    assert pairs[(1, 2)] == (3.5, 110) and pairs[(2, 5)] == (4.0, 500)
    with pytest.raises(
        DataError, match=r"ratings\.csv line 11: user 1 rated movie 2 twice \(also at line 3\)"
    ):
        load(tmp_path, strict=True)


def test_duplicate_timestamp_tie_keeps_the_later_line(tmp_path: Path) -> None:
    ds, _ = load(csv_release(tmp_path, ratings=RATINGS_CSV + "1,1,1.5,100\n"))
    row = np.flatnonzero((ds.interactions.users == 0) & (ds.interactions.items == 0))
    assert ds.interactions.ratings[row].tolist() == [1.5]


def test_load_report_lines_is_plain_text(tmp_path: Path) -> None:
    _, report = load(csv_release(tmp_path))
    assert isinstance(report, LoadReport)
    assert all(isinstance(line, str) and "\n" not in line for line in report.lines())


# --------------------------------------------------------------------------- properties

_MOVIE_IDS = (1, 2, 5, 10, 11)
_row = st.tuples(
    st.integers(1, 40),
    st.sampled_from(_MOVIE_IDS),
    st.integers(1, 10).map(lambda h: h / 2),
    st.integers(0, 50),
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=60))
def test_load_matches_a_reference(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    root = tmp_path_factory.mktemp("prop")
    text = RATINGS_HEADER + "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in rows)
    ds, report = load(csv_release(root, ratings=text))
    latest: dict[tuple[int, int], tuple[float, int]] = {}
    for u, m, r, t in rows:
        if (u, m) not in latest or t >= latest[(u, m)][1]:
            latest[(u, m)] = (r, t)
    x = ds.interactions
    got = {
        (int(u), int(m)): (float(r), int(t))
        for u, m, r, t in zip(
            ds.users.to_raw(x.users),
            ds.items.to_raw(x.items),
            x.ratings,
            x.timestamps,
            strict=True,
        )
    }
    assert got == latest and len(x) == len(latest)
    assert report.dropped.get(DROP_DUPLICATE, 0) == len(rows) - len(latest)
    assert ds.users.raw.tolist() == sorted({u for u, *_ in rows})
    assert np.array_equal(ds.catalog.movie_ids, ds.items.raw)


_CORRUPTIONS = {
    "text-id": (lambda u, m, r, t: f"{u},m{m},{r},{t}", "movieId 'm"),
    "range": (lambda u, m, r, t: f"{u},{m},{r + 5},{t}", "out of range"),
    "empty": (lambda u, m, r, t: f"{u},{m},,{t}", "missing rating"),
    "short": (lambda u, m, r, t: f"{u},{m},{r}", "found 3"),
    "bytes": (lambda u, m, r, t: f"{u},{m},{r},{t}\udcff", "undecodable"),
    "past": (lambda u, m, r, t: f"{u},{m},{r},-{t + 1}", "is negative (before 1970-01-01)"),
    "future": (lambda u, m, r, t: f"{u},{m},{r},{t + 10**11}", "is in the future"),
    "huge": (lambda u, m, r, t: f"{u},{'9' * 5000},{r},{t}", "(5000 digits) is too large"),
}


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(_row, min_size=1, max_size=80),
    where=st.floats(0, 1, exclude_max=True),
    kind=st.sampled_from(sorted(_CORRUPTIONS)),
)
def test_first_bad_line_is_named(
    tmp_path_factory: pytest.TempPathFactory, rows: list, where: float, kind: str
) -> None:
    root = tmp_path_factory.mktemp("bad")
    lines = [f"{u},{m},{r},{t}" for u, m, r, t in rows]
    k = int(where * len(rows))
    corrupt, problem = _CORRUPTIONS[kind]
    lines[k] = corrupt(*rows[k])
    data = (RATINGS_HEADER + "\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    with pytest.raises(DataError) as caught:
        load(csv_release(root, ratings=data))
    assert caught.value.line == k + 2
    assert re.search(rf"ratings\.csv line {k + 2}: .*{re.escape(problem)}", str(caught.value))


# --------------------------------------------------------------------------- hostile input


def _load_error(root: Path, *, strict: bool = False) -> DataError:
    with pytest.raises(DataError) as caught:
        load(root, strict=strict)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300 + len(str(root)), message
    return caught.value


def test_errors_share_the_project_base_and_keep_their_old_bases() -> None:
    assert issubclass(DataError, MovierecError) and issubclass(DataError, ValueError)
    assert issubclass(FetchError, MovierecError) and issubclass(FetchError, RuntimeError)


STRAY_QUOTE = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Comedy\n"
    '5,"Movie 5 (1985),Drama\n'
    '6,Movie 6 (1986)",Drama\n'
    "7,Movie 7 (1987),Drama\n"
)


@pytest.mark.parametrize("strict", [False, True])
def test_stray_quote_in_movies_csv_is_reported_at_its_line(tmp_path: Path, strict: bool) -> None:
    # Before: the quoted field swallowed line 4, movie 6's rating was dropped as "movie
    # absent", and --strict blamed ratings.csv.
    ratings = RATINGS_HEADER + "1,1,4.0,100\n1,5,3.0,110\n1,6,2.0,120\n1,7,2.0,130\n"
    err = _load_error(csv_release(tmp_path, ratings=ratings, movies=STRAY_QUOTE), strict=strict)
    assert (Path(err.path).name, err.line) == ("movies.csv", 3)
    assert "quoted field runs over the line end" in str(err)


def test_unclosed_quote_on_the_last_line_of_movies_csv(tmp_path: Path) -> None:
    err = _load_error(csv_release(tmp_path, movies=MOVIES_CSV + '12,"Film (2001),Drama\n'))
    assert (Path(err.path).name, err.line) == ("movies.csv", 7)
    assert "quoted field never closes" in str(err)


@pytest.mark.parametrize("fmt", sorted(FORMAT_FILES))
@pytest.mark.parametrize("digits", [20, 5000])
def test_huge_movie_id_in_every_movie_file(tmp_path: Path, fmt: str, digits: int) -> None:
    movie_id = "9" * digits
    root, _, line = one_rating_release(tmp_path, fmt, movie_id=movie_id, rated=movie_id)
    err = _load_error(root)
    assert (Path(err.path).name, err.line) == (FORMAT_FILES[fmt][1], line)
    assert "movieId 9999" in str(err) and "is too large (over 32 bits)" in str(err)


@pytest.mark.parametrize("fmt", sorted(FORMAT_FILES))
@pytest.mark.parametrize("field", ["user", "rated", "timestamp"])
def test_5000_digit_number_in_every_ratings_file(tmp_path: Path, fmt: str, field: str) -> None:
    root, line, _ = one_rating_release(tmp_path, fmt, **{field: "1" * 5000})
    err = _load_error(root)
    assert (Path(err.path).name, err.line) == (FORMAT_FILES[fmt][0], line)
    assert "(5000 digits) is too large" in str(err)


@pytest.mark.parametrize("fmt", sorted(FORMAT_FILES))
@pytest.mark.parametrize(
    ("offset", "problem"),
    [(None, "timestamp -1 is negative (before 1970-01-01)"), (10 * 86_400, "is in the future")],
)
def test_timestamps_out_of_range(tmp_path: Path, fmt: str, offset: int | None, problem: str):
    timestamp = -1 if offset is None else int(time.time()) + offset
    root, line, _ = one_rating_release(tmp_path, fmt, timestamp=str(timestamp))
    err = _load_error(root)
    assert (Path(err.path).name, err.line) == (FORMAT_FILES[fmt][0], line)
    assert problem in str(err)


@pytest.mark.parametrize("timestamp", [0, int(time.time())])
def test_timestamps_at_the_ends_of_the_range_load(tmp_path: Path, timestamp: int) -> None:
    ds, _ = load(one_rating_release(tmp_path, "csv", timestamp=str(timestamp))[0])
    assert ds.interactions.timestamps.tolist() == [timestamp]


def test_titles_with_long_runs_of_spaces_parse_fast() -> None:
    spaces = " " * 100_000
    cases = [
        ("A" + spaces + "x (1995)", ("A" + spaces + "x", 1995)),
        ("A" + spaces + "(1995)", ("A", 1995)),
        ("A (1995-" + spaces + "x)", ("A (1995-" + spaces + "x)", 0)),
        ("A (" + spaces + "1995" + spaces + ")", ("A", 1995)),
        ("A (" + spaces, ("A (", 0)),
    ]
    start = time.perf_counter()
    for raw, expected in cases:
        assert parse_title(raw) == expected
    assert time.perf_counter() - start < 0.25


def test_long_title_loads_fast(tmp_path: Path) -> None:
    title = "A" + " " * 100_000 + "x (1995)"
    root = csv_release(tmp_path, movies=MOVIES_CSV + f"12,{title},Drama\n")
    start = time.perf_counter()
    ds, _ = load(root)
    assert time.perf_counter() - start < 1.0
    assert len(ds.interactions) == 9


@pytest.mark.parametrize("name", ["ratings.csv", "movies.csv"])
def test_plain_and_gzipped_copies_side_by_side_are_refused(tmp_path: Path, name: str) -> None:
    csv_release(tmp_path)
    write(tmp_path / f"{name}.gz", gzip.compress((tmp_path / name).read_bytes()))
    err = _load_error(tmp_path)
    assert str(err) == f"{tmp_path}: both {name} and {name}.gz are present: remove one"
    archive = zip_dir(tmp_path, tmp_path.parent / f"{tmp_path.name}.zip", "ml-x")
    with pytest.raises(DataError, match=rf"both {name} and {name}\.gz are present"):
        load(archive)


@pytest.mark.parametrize("fmt", sorted(FORMAT_FILES))
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\t", "\x7f", "\r"])
def test_control_characters_in_every_movie_file(tmp_path: Path, fmt: str, char: str) -> None:
    root, _, line = one_rating_release(tmp_path, fmt, title=f"Fil{char}m (1990)")
    err = _load_error(root)
    assert (Path(err.path).name, err.line) == (FORMAT_FILES[fmt][1], line)
    assert f"control character {char!r} at column " in str(err)


# --------------------------------------------------------------------------- package


def test_package_modules_import_in_one_direction() -> None:
    """Submodules import siblings, never the package itself, and the graph has no cycle."""
    root = Path(movielens.__file__).parent
    deps: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "movierec.movielens" not in names, path.name
        prefix = "movierec.movielens."
        deps[path.stem] = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
    done: set[str] = set()
    while len(done) < len(deps):
        ready = {m for m, d in deps.items() if m not in done and d <= done}
        assert ready, f"import cycle among {sorted(set(deps) - done)}"
        done |= ready


def test_public_api_is_exported() -> None:
    assert all(hasattr(movielens, name) for name in movielens.__all__)
    assert callable(movielens.load) and callable(movielens.fetch)
    assert issubclass(movielens.DataError, MovierecError)
    assert issubclass(movielens.FetchError, MovierecError)

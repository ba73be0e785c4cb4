"""Tiny MovieLens-shaped files, written by the tests themselves (no downloads)."""

from __future__ import annotations

import zipfile
from pathlib import Path

RATINGS_HEADER = "userId,movieId,rating,timestamp\n"
MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '2,"American President, The (1995)",Comedy|Drama|Romance\n'
    "5,Hyena Road,(no genres listed)\n"
    "10,(500) Days of Summer (2009),Comedy|Drama|Romance\n"
    "11,Unrated Movie (2001),Drama\n"
)
# user 1: movies 1, 2, 10; user 2: 1, 5; user 7: 2, 10, 1, 5 (not sorted by movie)
RATINGS_CSV = RATINGS_HEADER + (
    "1,1,4.0,100\n"
    "1,2,3.5,110\n"
    "1,10,5.0,120\n"
    "2,1,0.5,200\n"
    "2,5,2.0,210\n"
    "7,2,4.5,300\n"
    "7,10,1.0,310\n"
    "7,1,3.0,320\n"
    "7,5,5.0,330\n"
)

MOVIES_DAT_1M = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "2::Misérables, Les (1995)::Drama|Musical\n"
    "3::Babylon 5 (1994)::Sci-Fi\n"
)
RATINGS_DAT = "1::1::5::978300760\n1::2::3::978302109\n2::3::4::978301968\n2::1::1::978300275\n"
USERS_DAT = "1::F::1::10::48067\n2::M::56::16::70072\n"

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n"
U_GENRE = "unknown|0\nAction|1\nComedy|2\n\n"


def u_item_row(movie_id: int | str, title: str, release: str, flags: list[int]) -> str:
    return f"{movie_id}|{title}|{release}||http://x|" + "|".join(map(str, flags)) + "\n"


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content if isinstance(content, bytes) else content.encode(encoding)
    path.write_bytes(data)
    return path


def csv_release(
    root: Path, ratings: str | bytes = RATINGS_CSV, movies: str | bytes = MOVIES_CSV
) -> Path:
    write(root / "ratings.csv", ratings)
    write(root / "movies.csv", movies)
    return root


def dat_release(root: Path, *, one_m: bool = True) -> Path:
    write(root / "ratings.dat", RATINGS_DAT)
    write(root / "movies.dat", MOVIES_DAT_1M, encoding="latin-1" if one_m else "utf-8")
    if one_m:
        write(root / "users.dat", USERS_DAT)
    return root


def zip_dir(source: Path, archive: Path, top: str | None) -> Path:
    """Zip the files of ``source``, under folder ``top`` when given."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(source.iterdir()):
            z.write(f, f"{top}/{f.name}" if top else f.name)
    return archive


# The (ratings, movies) files of each format, for tests run over all of them.
FORMAT_FILES = {
    "csv": ("ratings.csv", "movies.csv"),
    "dat": ("ratings.dat", "movies.dat"),
    "100k": ("u.data", "u.item"),
}


def one_rating_release(
    root: Path,
    fmt: str,
    *,
    movie_id: str = "1",
    title: str = "Film (1990)",
    user: str = "1",
    rated: str = "1",
    timestamp: str = "100",
) -> tuple[Path, int, int]:
    """A release of format ``fmt`` with one movie and one rating, each field as given.

    Returns the folder and the lines (1-based) of the rating and of the movie.
    """
    ratings_name, movies_name = FORMAT_FILES[fmt]
    if fmt == "csv":
        ratings = RATINGS_HEADER + f"{user},{rated},4,{timestamp}\n"
        movies = f"movieId,title,genres\n{movie_id},{title},Drama\n"
    elif fmt == "dat":
        ratings = f"{user}::{rated}::4::{timestamp}\n"
        movies = f"{movie_id}::{title}::Drama\n"
    else:
        ratings = f"{user}\t{rated}\t4\t{timestamp}\n"
        movies = u_item_row(movie_id, title, "01-Jan-1990", [0] * 8 + [1] + [0] * 10)  # Drama
    write(root / ratings_name, ratings)
    write(root / movies_name, movies, encoding="utf-8" if fmt != "100k" else "latin-1")
    header = int(fmt == "csv")
    return root, 1 + header, 1 + header

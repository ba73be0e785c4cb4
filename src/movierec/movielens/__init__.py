"""Read and validate every MovieLens release; fetch releases from GroupLens.

``load(source)`` takes a directory, a ``.zip`` (read in place; one top folder such as
``ml-25m/`` is allowed) or a release name and returns a ``Dataset`` in index space plus a
``LoadReport``. The format is detected from the files present (each may be gzipped):

- CSV: ``ratings.csv`` + ``movies.csv`` (ml-latest, ml-latest-small, ml-20m, ml-25m,
  ml-32m). UTF-8, headers ``userId,movieId,rating,timestamp`` and ``movieId,title,genres``,
  titles quoted where they hold commas. Ratings 0.5..5. ``links.csv``
  (``movieId,imdbId,tmdbId``), when present, gives each movie's IMDb and TMDB ids
  (``Catalog.imdb_ids`` / ``tmdb_ids``, -1 where unknown); it is checked like the rest
  (``links``) but never decides what is loaded.
- DAT: ``ratings.dat`` + ``movies.dat`` with ``::`` separators and no header (ml-1m,
  ml-10m). Ratings are UTF-8/ASCII; ``movies.dat`` is read as UTF-8 and falls back to
  latin-1 (ml-1m), which the report records. Ratings 1..5 when ``users.dat`` is present
  (ml-1m), else 0.5..5 (ml-10m).
- 100K: ``u.data`` (tab separated, no header) + ``u.item`` (``|`` separated, latin-1,
  24 fields, 19 genre flags named by ``u.genre`` when present). Ratings 1..5.

Validation policy
-----------------
Structural problems are always errors: a ``DataError`` naming the file, the line and the
problem. They are: a missing or misnamed header, an empty file, a line with too few or
too many fields (a truncated last line), an empty field, a non-numeric or negative id, an
id over 32 bits (either file) or a timestamp over 64 bits, a non-numeric rating or
timestamp, a rating out of range, a timestamp out of range, bytes that are not valid in
the file's encoding, a control character (NUL, ESC, tab, a lone CR, ...) anywhere in a
movie file, a quoted field of ``movies.csv`` that runs over its line end (a stray ``"``:
no title holds a line break), a movie listed twice in the movie file, and a file present
both plain and gzipped (``ratings.csv`` beside ``ratings.csv.gz``: which one is meant is
not guessed).

Timestamps are seconds since 1970-01-01 UTC and must lie between 0 and a day after the
load (the slack absorbs clocks that disagree): a negative or future timestamp is damage,
like a rating out of range, so it is an error rather than a dropped row. MovieLens itself
begins in 1995; earlier non-negative times are accepted for other data in the format.

Two problems are repaired by dropping rows, counted by reason in ``LoadReport.dropped``:
ratings of movies absent from the movie file, and duplicated (user, movie) pairs, of which
the latest by timestamp is kept (the later line on a tie). With ``strict=True`` each of
these becomes a ``DataError`` naming the first offending line instead.

The fast path parses columns with pyarrow and validates with vectorised numpy; only when
something is wrong is the first offending line located (by bisecting the file with the
same parser) and described.

Modules: ``files`` (finding a release and its files), ``ratings``, ``movies`` and ``links``
(reading and validating each file), ``fields`` (checks and messages they share), ``dataset``
(``load``: encoding into a ``Dataset``), ``download`` (``fetch``), ``errors``.
"""

from movierec.movielens.dataset import DROP_DUPLICATE, DROP_MISSING_MOVIE, LoadReport, load
from movierec.movielens.download import DEFAULT_BASE_URL, fetch
from movierec.movielens.errors import DataError, FetchError
from movierec.movielens.files import EMBEDDED, RELEASES, default_cache_dir
from movierec.movielens.movies import GENRES_100K, parse_title

__all__ = [
    "DEFAULT_BASE_URL",
    "DROP_DUPLICATE",
    "DROP_MISSING_MOVIE",
    "EMBEDDED",
    "GENRES_100K",
    "RELEASES",
    "DataError",
    "FetchError",
    "LoadReport",
    "default_cache_dir",
    "fetch",
    "load",
    "parse_title",
]

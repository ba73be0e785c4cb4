"""Precomputed recommendations in one SQLite file, replaced atomically.

Writing: ``write_store`` builds the whole database in a temporary file beside ``path``
(same directory, so the rename stays on one file system), with ``synchronous=OFF`` and no
rollback journal while it fills (``atomic.replacing``): nobody else can see that file, and
a crash leaves only a ``.NAME.tmp-PID-HEX`` file behind, never a broken store. Before the
swap it switches the file to ``journal_mode=DELETE`` (so no ``-wal``/``-shm``/``-journal``
file belongs to it), closes it, fsyncs it, renames it over ``path`` and fsyncs the
directory. Any
``-wal``/``-shm``/``-journal`` file left next to ``path`` by some earlier writer describes
the *old* database and would corrupt the new one if SQLite ever replayed it, so those are
deleted right after the rename. A reader therefore sees either the whole previous store or
the whole new one; an interrupted write leaves the previous store untouched. (The next write
removes the temporary files of writers that were killed.)
``merge_stores`` builds one store the same way from part stores written in parallel (disjoint
users), copying their rows with SQL.
There is no WAL at any point: nothing ever writes to a store file that readers can see, so
WAL's reader/writer concurrency buys nothing, and a read-only WAL database would need a
writable ``-shm`` file beside it.

Reading: a store file is never modified after it is renamed into place (a new one replaces
it), so ``Store`` opens it read-only with ``immutable=1``: no locks, no journal look-ups.
An open connection keeps reading the file it opened even after a rename replaced it (the
inode lives until the last descriptor closes), which is what lets ``reload_if_changed``
swap to a new file while in-flight reads finish on the old one. Do not edit a store file in
place with another tool while a server reads it; write a new one.

Validation: every file is checked when it is opened, before it serves anything (the three
tables and their columns, the meta values' JSON types and ranges, and a probe of one user's
rows and one movie). ``Store.open`` raises ``StoreError`` naming the file and the problem; a
new file that fails the check during ``reload_if_changed`` is logged once (one line) and
never swapped in, and the store already open keeps serving. The check reads a handful of
rows, so a file damaged deeper than the probe reaches is not caught here: the writer is
what guarantees the rest.

Schema::

    recs(user_id INTEGER, rank INTEGER, movie_id INTEGER, score REAL,
         PRIMARY KEY (user_id, rank)) WITHOUT ROWID      -- rank 1 is the best
    movies(id INTEGER PRIMARY KEY, title TEXT, year INTEGER, genres TEXT)
    meta(key TEXT PRIMARY KEY, value TEXT)              -- values are JSON
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from movierec import atomic
from movierec.data import Catalog
from movierec.errors import MovierecError

log = logging.getLogger(__name__)

# (user raw ids (B,), movie raw ids (B, k) with -1 padding, scores (B, k))
Block = tuple[np.ndarray, np.ndarray, np.ndarray]

_SIDE_FILES = ("-wal", "-shm", "-journal")
_SCHEMA = """
CREATE TABLE recs (
    user_id INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    movie_id INTEGER NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (user_id, rank)
) WITHOUT ROWID;
CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT NOT NULL, year INTEGER NOT NULL,
                     genres TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = {
    "recs": ("user_id", "rank", "movie_id", "score"),
    "movies": ("id", "title", "year", "genres"),
    "meta": ("key", "value"),
}


class StoreError(MovierecError):
    """A store file that cannot be served; the message names the file and the problem."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No file at the store's path."""


class _RecsLike(Protocol):
    items: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class StoreSummary:
    """What ``write_store`` wrote."""

    path: Path
    users: int
    rows: int
    k: int
    seconds: float


def write_store(
    path: str | os.PathLike[str],
    user_raw_ids: np.ndarray,
    recs: _RecsLike | tuple[np.ndarray, np.ndarray],
    catalog: Catalog,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    block_size: int = 16_384,
) -> StoreSummary:
    """Write one store from whole arrays: ``recs.items`` are *raw movie ids* (-1 = padding)."""
    movie_ids, scores = (recs.items, recs.scores) if hasattr(recs, "items") else recs
    user_raw_ids = np.asarray(user_raw_ids)
    movie_ids, scores = np.asarray(movie_ids), np.asarray(scores)
    if movie_ids.ndim != 2 or movie_ids.shape != scores.shape:
        raise ValueError("recs items and scores must both have shape (users, k)")
    if len(user_raw_ids) != len(movie_ids):
        raise ValueError("one row of recommendations per user is required")

    def blocks() -> Iterator[Block]:
        for s in range(0, len(user_raw_ids), block_size):
            e = s + block_size
            yield user_raw_ids[s:e], movie_ids[s:e], scores[s:e]

    return write_store_chunks(
        path, blocks(), catalog, meta, progress=progress, total_users=len(user_raw_ids)
    )


def write_store_chunks(
    path: str | os.PathLike[str],
    chunks: Iterable[Block],
    catalog: Catalog,
    meta: dict[str, Any] | None = None,
    *,
    progress: bool = True,
    total_users: int | None = None,
) -> StoreSummary:
    """Stream ``(user ids, movie ids (B, k), scores (B, k))`` blocks into a new store.

    Only one block is held at a time. ``k`` is the widest block seen. -1 movie ids are
    padding and are not stored. A user appearing twice is an error (primary key).
    """
    start = time.perf_counter()
    final = Path(path)
    users = rows = k = 0
    with _new_store(final) as conn:
        conn.execute("BEGIN")
        _write_movies(conn, catalog)
        with _progress(progress, total_users) as advance:
            for user_ids, movie_ids, scores in chunks:
                n_users, n_rows, width = _write_block(conn, user_ids, movie_ids, scores)
                users += n_users
                rows += n_rows
                k = max(k, width)
                advance(n_users)
        _write_meta(conn, meta, k=k, users=users, rows=rows)
        conn.execute("COMMIT")
    return StoreSummary(final, users, rows, k, time.perf_counter() - start)


def merge_stores(
    path: str | os.PathLike[str],
    parts: Sequence[str | os.PathLike[str]],
    meta: dict[str, Any] | None = None,
) -> StoreSummary:
    """One store at ``path`` holding every part's recommendations (parts written by
    ``write_store_chunks`` for disjoint users), replaced atomically like ``write_store``.

    The movies come from the first part; ``k`` is the widest part's, users and rows are
    summed. A user in two parts is an error (primary key) and leaves ``path`` untouched.
    """
    start = time.perf_counter()
    final = Path(path)
    if not parts:
        raise ValueError("merge_stores needs at least one part")
    users = rows = k = 0
    with _new_store(final) as conn:
        for n, part in enumerate(parts):
            if not Path(part).is_file():  # ATTACH would create an empty database there
                raise FileNotFoundError(f"no store part at {part}")
            conn.execute("ATTACH DATABASE ? AS part", (str(part),))
            try:
                conn.execute("BEGIN")
                if n == 0:
                    conn.execute("INSERT INTO movies SELECT * FROM part.movies")
                conn.execute("INSERT INTO recs SELECT * FROM part.recs")
                info = {
                    key: json.loads(value)
                    for key, value in conn.execute("SELECT key, value FROM part.meta")
                }
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute("DETACH DATABASE part")
            users += int(info["users"])
            rows += int(info["rows"])
            k = max(k, int(info["k"]))
        conn.execute("BEGIN")
        _write_meta(conn, meta, k=k, users=users, rows=rows)
        conn.execute("COMMIT")
    return StoreSummary(final, users, rows, k, time.perf_counter() - start)


@contextlib.contextmanager
def _new_store(final: Path) -> Iterator[sqlite3.Connection]:
    """A connection (autocommit) to an empty store in a temporary file beside ``final``,
    swapped in over ``final`` when the block returns and removed when it raises."""
    with atomic.replacing(final, remove=_remove_with_side_files) as tmp:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;"
                + _SCHEMA
            )
            yield conn
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
    for suffix in _SIDE_FILES:  # they belong to the database that was just replaced
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{final}{suffix}")


def _write_meta(
    conn: sqlite3.Connection, meta: dict[str, Any] | None, *, k: int, users: int, rows: int
) -> None:
    info = {
        **(meta or {}),
        "created_at": (meta or {}).get("created_at")
        or datetime.now(UTC).isoformat(timespec="seconds"),
        "k": k,
        "users": users,
        "rows": rows,
    }
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [(key, json.dumps(value, default=_json_default)) for key, value in info.items()],
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return str(value)


def _write_movies(conn: sqlite3.Connection, catalog: Catalog) -> None:
    conn.executemany(
        "INSERT INTO movies VALUES (?, ?, ?, ?)",
        zip(
            np.asarray(catalog.movie_ids, dtype=np.int64).tolist(),
            [str(t) for t in catalog.titles],
            np.asarray(catalog.years, dtype=np.int64).tolist(),
            [str(g) for g in catalog.genres],
            strict=True,
        ),
    )


def _write_block(
    conn: sqlite3.Connection, user_ids: np.ndarray, movie_ids: np.ndarray, scores: np.ndarray
) -> tuple[int, int, int]:
    user_ids = np.asarray(user_ids, dtype=np.int64)
    movie_ids = np.asarray(movie_ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if movie_ids.ndim != 2 or movie_ids.shape != scores.shape:
        raise ValueError("each block needs movie ids and scores of shape (users, k)")
    if user_ids.shape != (movie_ids.shape[0],):
        raise ValueError("each block needs one user id per row of movie ids")
    b, width = movie_ids.shape
    keep = movie_ids >= 0
    if not np.all(np.isfinite(scores[keep])):
        raise ValueError("scores of stored recommendations must be finite")
    if width == 0:
        return b, 0, 0
    if max(int(np.abs(user_ids).max(initial=0)), int(movie_ids.max(initial=0))) >= 2**53:
        raise ValueError("ids must be below 2**53")
    # Fast path, one statement per user that has all ``width`` movies: binding Python
    # objects dominates the cost, so a user's row is bound as one float64 list (user, m0,
    # s0, m1, s1, ...) and the ranks are literals. The INTEGER columns' affinity stores the
    # integral floats as integers (exact below 2**53); about 2x the rows/s of one row per
    # statement.
    full = keep.all(axis=1)
    packed = np.empty((int(full.sum()), 1 + 2 * width), dtype=np.float64)
    packed[:, 0] = user_ids[full]
    packed[:, 1::2] = movie_ids[full]
    packed[:, 2::2] = scores[full]
    conn.executemany(_per_user_insert(width), packed.tolist())
    # Users with padding: one statement per stored row.
    part = keep & ~full[:, None]
    rows = np.broadcast_to(user_ids[:, None], (b, width))[part]
    ranks = np.broadcast_to(np.arange(1, width + 1, dtype=np.int64), (b, width))[part]
    conn.executemany(
        "INSERT INTO recs VALUES (?, ?, ?, ?)",
        zip(
            rows.tolist(),
            ranks.tolist(),
            movie_ids[part].tolist(),
            scores[part].tolist(),
            strict=True,
        ),
    )
    return b, int(keep.sum()), width


@functools.cache
def _per_user_insert(width: int) -> str:
    values = ",".join(f"(?1,{r + 1},?{2 + 2 * r},?{3 + 2 * r})" for r in range(width))
    return f"INSERT INTO recs VALUES {values}"


@contextlib.contextmanager
def _progress(enabled: bool, total: int | None) -> Iterator[Any]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress  # only when asked for

    with Progress(transient=True) as bar:
        task = bar.add_task("writing store", total=total)
        yield lambda n: bar.advance(task, n)


def _remove_with_side_files(path: Path) -> None:
    for suffix in ("", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


# --------------------------------------------------------------------------- reading


def _file_id(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _checked(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    """The meta of a store file that passes the open-time check; ``StoreError`` otherwise."""
    try:
        for table, want in _COLUMNS.items():
            have = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
            if have != want:
                found = f"columns {', '.join(have)}" if have else "no such table"
                raise StoreError(f"{path}: table {table!r}: {found}; expected {', '.join(want)}")
        meta = _checked_meta(conn.execute("SELECT key, value FROM meta").fetchall(), path)
        _probe(conn, meta, path)
    except sqlite3.Error as e:  # not a database, a damaged one, a wrong schema
        raise StoreError(f"{path}: not a readable store: {e}") from None
    return meta


def _checked_meta(rows: list[tuple[Any, Any]], path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in rows:
        try:
            meta[str(key)] = json.loads(value)
        except (TypeError, ValueError):
            raise StoreError(f"{path}: meta {key!r} is not JSON: {str(value)[:40]!r}") from None
    for key in ("k", "users", "rows"):
        value = meta.get(key)
        if not _is_int(value) or value < 0:
            shown = "missing" if key not in meta else f"{json.dumps(value)[:40]}"
            raise StoreError(f"{path}: meta {key!r} is {shown}; expected an integer >= 0")
    return meta


def _probe(conn: sqlite3.Connection, meta: dict[str, Any], path: Path) -> None:
    """One user's rows and one movie: the right types, ranks 1.. in order, at most k."""
    first = conn.execute("SELECT user_id FROM recs LIMIT 1").fetchone()
    if (first is None) != (meta["rows"] == 0):
        raise StoreError(f"{path}: meta says {meta['rows']} rows but table 'recs' disagrees")
    if first is not None:
        rows = conn.execute(
            "SELECT user_id, rank, movie_id, score FROM recs WHERE user_id = ? ORDER BY rank",
            first,
        ).fetchall()
        ranks = [r[1] for r in rows]
        typed = all(
            _is_int(u) and _is_int(r) and _is_int(m) and isinstance(s, int | float)
            for u, r, m, s in rows
        )
        if not typed or ranks[0] < 1 or ranks[-1] > meta["k"] or len(set(ranks)) != len(ranks):
            raise StoreError(
                f"{path}: user {rows[0][0]!r}'s rows are not integer ids and ranks 1..k "
                f"(k {meta['k']}) with numeric scores"
            )
    movie = conn.execute("SELECT id, title, year, genres FROM movies LIMIT 1").fetchone()
    if movie is not None and not (
        _is_int(movie[0])
        and isinstance(movie[1], str)
        and _is_int(movie[2])
        and isinstance(movie[3], str)
    ):
        raise StoreError(f"{path}: movie {movie[0]!r} is not (id, title, year, genres)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Generation:
    """One opened and validated store file: its identity, meta, one connection per thread."""

    def __init__(self, path: Path) -> None:
        # stat first, then open: if a newer file lands in between, the recorded id is stale
        # and the next reload_if_changed simply opens the newer file again.
        self.file_id = _file_id(os.stat(path))
        self.uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        try:
            self.meta: dict[str, Any] = _checked(self.conn(), path)
            self.k: int = self.meta["k"]
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.uri, uri=True, check_same_thread=False)

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def __del__(self) -> None:  # the last call reading this file has returned
        self.close()


class Store:
    """Read-only view of a store file that follows atomic replacements.

    Thread-safe: each thread gets its own connection to the current file. A call holds a
    reference to the file it started on and finishes there; after a swap, the previous
    file's connections close when the last such call returns (reference counting), so no
    connection is ever closed under a running query.
    """

    def __init__(self, path: Path, generation: _Generation) -> None:
        self.path = path
        self._gen = generation
        self._rejected: tuple[int, int, int, int] | None = None  # the file refused last
        self._reload_lock = threading.Lock()
        self._last_check = time.monotonic()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Store:
        """Open and check the store at ``path``; ``StoreError`` (``StoreNotFoundError``
        when there is no file) names the file and what is wrong with it."""
        p = Path(path)
        if not p.is_file():
            raise StoreNotFoundError(f"no recommendation store at {p}")
        try:
            return cls(p, _Generation(p))
        except FileNotFoundError:  # replaced and removed between the two lines above
            raise StoreNotFoundError(f"no recommendation store at {p}") from None
        except OSError as e:
            raise StoreError(f"{p}: cannot open: {e.strerror or e}") from None

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._gen.meta)

    @property
    def k(self) -> int:
        """How many recommendations per user the store holds (at most)."""
        return self._gen.k

    def get(self, user_id: int, k: int) -> list[tuple[int, float]] | None:
        """The best ``min(k, stored k)`` (movie id, score) pairs of a user; None if absent."""
        gen = self._gen  # one read: a swap during this call does not affect it
        rows = (
            gen.conn()
            .execute(
                "SELECT movie_id, score FROM recs WHERE user_id = ? ORDER BY rank LIMIT ?",
                (int(user_id), int(k)),
            )
            .fetchall()
        )
        return rows or None

    def movies(self, movie_ids: Iterable[int]) -> dict[int, tuple[str, int, str]]:
        """Title, year and genres ("A|B") of movies the store knows, by id."""
        ids = [int(m) for m in movie_ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        q = f"SELECT id, title, year, genres FROM movies WHERE id IN ({marks})"
        return {r[0]: (r[1], r[2], r[3]) for r in self._gen.conn().execute(q, ids)}

    def reload_if_changed(self, min_interval: float = 0.0) -> bool:
        """Swap to a new file at ``path`` if one replaced the open one; True if swapped.

        Costs one ``os.stat`` (none when called again within ``min_interval`` seconds). A
        new file that cannot be read or fails the open-time check is logged once (one line)
        and never swapped in; while no file is there, nothing happens. Either way the
        current file keeps serving.
        """
        now = time.monotonic()
        if now - self._last_check < min_interval or not self._reload_lock.acquire(blocking=False):
            return False
        try:
            self._last_check = now
            try:
                file_id = _file_id(os.stat(self.path))
            except OSError:
                return False  # gone for now: keep the store we have
            if file_id in (self._gen.file_id, self._rejected):
                return False
            try:
                new = _Generation(self.path)
            except FileNotFoundError:
                return False  # replaced again while opening: the next check sees the newest
            except (StoreError, OSError) as e:
                self._rejected = file_id
                log.warning("new store rejected, still serving the previous one: %s", e)
                return False
            self._gen = new  # the old file closes once no call uses it any more
            return True
        finally:
            self._reload_lock.release()

    def close(self) -> None:
        self._gen.close()

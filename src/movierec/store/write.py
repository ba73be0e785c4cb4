"""Writing a store (``write_store``, ``write_store_chunks``) and merging part stores
(``merge_stores``), each into a temporary file swapped in by ``movierec.atomic``."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from movierec import atomic
from movierec.data import Catalog
from movierec.store.schema import SCHEMA, SIDE_FILES, VERSION, because_text

# (user raw ids (B,), movie raw ids (B, k) with -1 padding, scores (B, k)[, because raw
# movie ids (B, k, n) with -1 padding]); a block without the fourth array stores no reasons
Block = (
    tuple[np.ndarray, np.ndarray, np.ndarray]
    | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
)


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
    """Write one store from whole arrays: ``recs.items`` are *raw movie ids* (-1 = padding),
    as are ``recs.because`` (optional: (users, k, n)); ``recs`` may also be the tuple
    ``(items, scores)`` or ``(items, scores, because)``."""
    if hasattr(recs, "items"):
        arrays = (recs.items, recs.scores, getattr(recs, "because", None))
    else:
        arrays = (*recs, None)[:3]
    movie_ids, scores = np.asarray(arrays[0]), np.asarray(arrays[1])
    reasons = None if arrays[2] is None else np.asarray(arrays[2])
    user_raw_ids = np.asarray(user_raw_ids)
    if movie_ids.ndim != 2 or movie_ids.shape != scores.shape:
        raise ValueError("recs items and scores must both have shape (users, k)")
    if len(user_raw_ids) != len(movie_ids):
        raise ValueError("one row of recommendations per user is required")

    def blocks() -> Iterator[Block]:
        for s in range(0, len(user_raw_ids), block_size):
            e = s + block_size
            if reasons is None:
                yield user_raw_ids[s:e], movie_ids[s:e], scores[s:e]
            else:
                yield user_raw_ids[s:e], movie_ids[s:e], scores[s:e], reasons[s:e]

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
    """Stream ``(user ids, movie ids (B, k), scores (B, k)[, because (B, k, n)])`` blocks
    into a new store.

    Only one block is held at a time. ``k`` is the widest block seen. -1 movie ids are
    padding and are not stored (-1 reasons likewise). A user appearing twice is an error
    (primary key).
    """
    start = time.perf_counter()
    final = Path(path)
    users = rows = k = 0
    with _new_store(final) as conn:
        conn.execute("BEGIN")
        _write_movies(conn, catalog)
        with _progress(progress, total_users) as advance:
            for block in chunks:
                n_users, n_rows, width = _write_block(conn, *block)
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
                + SCHEMA
            )
            yield conn
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
    for suffix in SIDE_FILES:  # they belong to the database that was just replaced
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
        "version": VERSION,
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
    conn: sqlite3.Connection,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    because: np.ndarray | None = None,
) -> tuple[int, int, int]:
    user_ids = np.asarray(user_ids, dtype=np.int64)
    movie_ids = np.asarray(movie_ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if movie_ids.ndim != 2 or movie_ids.shape != scores.shape:
        raise ValueError("each block needs movie ids and scores of shape (users, k)")
    if user_ids.shape != (movie_ids.shape[0],):
        raise ValueError("each block needs one user id per row of movie ids")
    b, width = movie_ids.shape
    if because is None:
        because = np.full((b, width, 0), -1, dtype=np.int64)
    because = np.asarray(because, dtype=np.int64)
    if because.ndim != 3 or because.shape[:2] != (b, width):
        raise ValueError("each block's because ids need shape (users, k, n)")
    keep = movie_ids >= 0
    if not np.all(np.isfinite(scores[keep])):
        raise ValueError("scores of stored recommendations must be finite")
    if width == 0:
        return b, 0, 0
    top = max(int(np.abs(user_ids).max(initial=0)), int(movie_ids.max(initial=0)))
    if max(top, int(because.max(initial=0))) >= 2**53:
        raise ValueError("ids must be below 2**53")
    reasons = because_text(because)  # (b, width) object array of str
    # Fast path, one statement per user that has all ``width`` movies: binding Python
    # objects dominates the cost, so a user's row is bound as one flat list (user, m0, s0,
    # b0, m1, s1, b1, ...) with ids and scores as floats and the ranks as literals. The
    # INTEGER columns' affinity stores the integral floats as integers (exact below 2**53);
    # about 2x the rows/s of one row per statement.
    full = keep.all(axis=1)
    packed = np.empty((int(full.sum()), 1 + 3 * width), dtype=object)
    packed[:, 0] = user_ids[full].astype(np.float64)
    packed[:, 1::3] = movie_ids[full].astype(np.float64)
    packed[:, 2::3] = scores[full]
    packed[:, 3::3] = reasons[full]
    conn.executemany(_per_user_insert(width), packed.tolist())
    # Users with padding: one statement per stored row.
    part = keep & ~full[:, None]
    rows = np.broadcast_to(user_ids[:, None], (b, width))[part]
    ranks = np.broadcast_to(np.arange(1, width + 1, dtype=np.int64), (b, width))[part]
    conn.executemany(
        "INSERT INTO recs VALUES (?, ?, ?, ?, ?)",
        zip(
            rows.tolist(),
            ranks.tolist(),
            movie_ids[part].tolist(),
            scores[part].tolist(),
            reasons[part].tolist(),
            strict=True,
        ),
    )
    return b, int(keep.sum()), width


@functools.cache
def _per_user_insert(width: int) -> str:
    values = ",".join(f"(?1,{r + 1},?{2 + 3 * r},?{3 + 3 * r},?{4 + 3 * r})" for r in range(width))
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
    for suffix in ("", *SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")

"""Reading a store: ``Store`` serves one checked file (a generation) at a time and swaps to
a new one in ``reload_if_changed``."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from movierec.store.check import checked
from movierec.store.schema import StoreError, StoreNotFoundError, because_ids

log = logging.getLogger(__name__)


def _file_id(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


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
            self.meta: dict[str, Any] = checked(self.conn(), path)
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
        """How many recommendations per user the store holds (at most): its depth, which
        may exceed the k a request asks for (``movierec batch --depth``)."""
        return self._gen.k

    def get(self, user_id: int, k: int) -> list[tuple[int, float, tuple[int, ...]]] | None:
        """The best ``min(k, stored k)`` (movie id, score, because movie ids) of a user;
        None if absent."""
        gen = self._gen  # one read: a swap during this call does not affect it
        rows = (
            gen.conn()
            .execute(
                "SELECT movie_id, score, because FROM recs WHERE user_id = ? ORDER BY rank LIMIT ?",
                (int(user_id), int(k)),
            )
            .fetchall()
        )
        return [(m, s, because_ids(b)) for m, s, b in rows] or None

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

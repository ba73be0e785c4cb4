"""The check every store file passes when it is opened, before it serves anything."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from movierec.store.schema import COLUMNS, OLD_RECS, VERSION, StoreError, because_ids


def checked(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    """The meta of a store file that passes the open-time check; ``StoreError`` otherwise."""
    try:
        for table, want in COLUMNS.items():
            have = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
            if table == "recs" and have == OLD_RECS:
                raise StoreError(
                    f"{path}: written by an older movierec (store version 1, no reasons); "
                    f"write it again with `movierec batch`"
                )
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
    if meta.get("version") != VERSION:
        shown = json.dumps(meta["version"])[:40] if "version" in meta else "missing"
        raise StoreError(
            f"{path}: store version {shown}; this movierec reads version {VERSION}: "
            f"write it again with `movierec batch`"
        )
    for key in ("k", "users", "rows"):
        value = meta.get(key)
        if not _is_int(value) or value < 0:
            shown = "missing" if key not in meta else f"{json.dumps(value)[:40]}"
            raise StoreError(f"{path}: meta {key!r} is {shown}; expected an integer >= 0")
    return meta


def _probe(conn: sqlite3.Connection, meta: dict[str, Any], path: Path) -> None:
    """One user's rows and one movie: the right types, ranks 1.. in order, at most k,
    reasons as comma-separated movie ids."""
    first = conn.execute("SELECT user_id FROM recs LIMIT 1").fetchone()
    if (first is None) != (meta["rows"] == 0):
        raise StoreError(f"{path}: meta says {meta['rows']} rows but table 'recs' disagrees")
    if first is not None:
        rows = conn.execute(
            "SELECT user_id, rank, movie_id, score, because FROM recs WHERE user_id = ?"
            " ORDER BY rank",
            first,
        ).fetchall()
        ranks = [r[1] for r in rows]
        typed = all(
            _is_int(u) and _is_int(r) and _is_int(m) and isinstance(s, int | float)
            for u, r, m, s, _ in rows
        )
        if not typed or ranks[0] < 1 or ranks[-1] > meta["k"] or len(set(ranks)) != len(ranks):
            raise StoreError(
                f"{path}: user {rows[0][0]!r}'s rows are not integer ids and ranks 1..k "
                f"(k {meta['k']}) with numeric scores"
            )
        for row in rows:
            if not _is_because(row[4]):
                raise StoreError(
                    f"{path}: user {row[0]!r}'s reasons {str(row[4])[:40]!r} are not "
                    f"comma-separated movie ids"
                )
    movie = conn.execute("SELECT id, title, year, genres FROM movies LIMIT 1").fetchone()
    if movie is not None and not (
        _is_int(movie[0])
        and isinstance(movie[1], str)
        and _is_int(movie[2])
        and isinstance(movie[3], str)
    ):
        raise StoreError(f"{path}: movie {movie[0]!r} is not (id, title, year, genres)")


def _is_because(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        because_ids(value)
    except ValueError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

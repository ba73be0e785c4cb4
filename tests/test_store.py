"""The SQLite store: exact round trip, streaming blocks, atomic replacement, readers that
follow a replacement without ever failing."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _service_fixtures import FakeRecommender, make_store, raw_recommendations

from movierec.errors import MovierecError
from movierec.store import (
    Block,
    Store,
    StoreError,
    StoreNotFoundError,
    write_store,
    write_store_chunks,
)

USERS = np.array([3, 1, 7], dtype=np.int64)
MOVIES = np.array([[50, 60, 70], [1, 2, -1], [10, -1, -1]], dtype=np.int64)
SCORES = np.array([[0.9, 0.5, 0.25], [2.0, -1.5, -np.inf], [0.0, np.nan, 0.0]], np.float32)


@pytest.fixture
def catalog():
    return FakeRecommender().catalog


def _blocks(version: float, users: int = 200, k: int = 4, block: int = 64) -> Iterator[Block]:
    """Synthetic store content whose every score equals ``version``."""
    for start in range(0, users, block):
        ids = np.arange(start, min(start + block, users), dtype=np.int64) + 1
        movies = (ids[:, None] * 10 + np.arange(k)).astype(np.int64)
        yield ids, movies, np.full(movies.shape, version, np.float32)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_round_trip_in_rank_order_without_padding(tmp_path: Path, catalog) -> None:
    path = tmp_path / "recs.sqlite"
    meta = {"run_id": "r1", "epochs": np.int64(3), "hr": np.float32(0.5)}
    summary = write_store(path, USERS, (MOVIES, SCORES), catalog, meta, False)
    assert (summary.users, summary.rows, summary.k) == (3, 6, 3)
    store = Store.open(path)
    assert store.get(3, 10) == [(50, pytest.approx(0.9), ()), (60, 0.5, ()), (70, 0.25, ())]
    assert store.get(3, 2) == [(50, pytest.approx(0.9), ()), (60, 0.5, ())]
    assert store.get(1, 10) == [(1, 2.0, ()), (2, -1.5, ())]  # -1 padding is not stored
    assert store.get(7, 3) == [(10, 0.0, ())]
    assert store.get(2, 10) is None
    assert store.k == 3
    meta = store.meta
    assert meta["run_id"] == "r1" and meta["k"] == 3 and meta["users"] == 3 and meta["rows"] == 6
    assert meta["version"] == 2
    assert (meta["epochs"], meta["hr"]) == (3, 0.5)
    assert meta["created_at"].startswith("20")
    store.close()


def test_recommendations_like_object_and_movies_table(tmp_path: Path) -> None:
    fake = FakeRecommender()
    users, movie_ids, scores, because = raw_recommendations(fake, 4)

    class Recs:  # what batch code hands over: raw movie ids, scores, reasons
        items = movie_ids
        scores = None
        because = None

    Recs.scores, Recs.because = scores, because
    path = tmp_path / "recs.sqlite"
    write_store(path, users, Recs(), fake.catalog, {}, progress=False)
    store = Store.open(path)
    for u, row, s, b in zip(users, movie_ids, scores, because, strict=True):
        assert store.get(int(u), 4) == [
            (int(m), pytest.approx(float(x)), tuple(int(j) for j in why if j >= 0))
            for m, x, why in zip(row, s, b, strict=True)
            if m >= 0
        ]
    assert store.movies([70, 120, 999]) == {
        70: ("Matrix, The", 1999, "Action|Sci-Fi"),
        120: ("Aliens", 1986, "(no genres listed)"),
    }
    assert store.movies([]) == {}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM movies").fetchone()[0] == len(fake.catalog)
        ranks = conn.execute("SELECT rank FROM recs WHERE user_id = 3 ORDER BY rank").fetchall()
        assert [r for (r,) in ranks] == [1, 2, 3, 4]  # 1 is the best, as in batch's Parquet


def test_streams_blocks_from_a_generator(tmp_path: Path, catalog) -> None:
    consumed: list[int] = []

    def gen() -> Iterator[Block]:
        for block in _blocks(0.5, users=300, k=3, block=50):
            consumed.append(len(block[0]))
            yield block
        # a wider last block: k is the widest block
        yield np.array([1000]), np.array([[1, 2, 10, 50, 60]]), np.ones((1, 5), np.float32)

    summary = write_store_chunks(tmp_path / "s.sqlite", gen(), catalog, progress=False)
    assert consumed == [50] * 6
    assert (summary.users, summary.rows, summary.k) == (301, 905, 5)
    store = Store.open(tmp_path / "s.sqlite")
    assert store.get(300, 10) == [(3000, 0.5, ()), (3001, 0.5, ()), (3002, 0.5, ())]
    assert [m for m, _, _ in store.get(1000, 10)] == [1, 2, 10, 50, 60]


def test_file_is_self_contained_and_in_rollback_journal_mode(tmp_path: Path, catalog) -> None:
    path = tmp_path / "recs.sqlite"
    write_store_chunks(path, _blocks(1.0), catalog, progress=False)
    assert _files(tmp_path) == ["recs.sqlite"]
    header = path.read_bytes()[:20]
    assert header[18:20] == b"\x01\x01"  # legacy (rollback-journal) file format, not WAL
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_replacing_removes_stale_side_files_of_the_old_database(tmp_path: Path, catalog) -> None:
    path = tmp_path / "recs.sqlite"
    write_store_chunks(path, _blocks(1.0), catalog, progress=False)
    for suffix in ("-wal", "-shm", "-journal"):  # as a crashed foreign writer might leave
        Path(f"{path}{suffix}").write_bytes(b"stale")
    write_store_chunks(path, _blocks(2.0), catalog, progress=False)
    assert _files(tmp_path) == ["recs.sqlite"]
    assert Store.open(path).get(1, 1) == [(10, 2.0, ())]


@pytest.mark.parametrize(
    "bad_block",
    [
        (np.array([1]), np.array([1, 2]), np.array([0.1, 0.2])),  # 1-D recs
        (np.array([1, 2]), np.array([[1, 2]]), np.array([[0.1, 0.2]])),  # user count
        (np.array([1]), np.array([[1, 2]]), np.array([[0.1]])),  # shapes differ
        (np.array([1]), np.array([[1, 2]]), np.array([[0.1, np.nan]])),  # not finite
        (np.array([1]), np.array([[2**53, 2]]), np.array([[0.1, 0.2]])),  # id too large
        (np.array([1]), np.array([[5, 6]]), np.array([[0.1, 0.2]])),  # user 1 twice
    ],
)
def test_a_failed_write_leaves_the_previous_store_intact(
    tmp_path: Path, catalog, bad_block: Block
) -> None:
    path = tmp_path / "recs.sqlite"
    write_store_chunks(path, _blocks(1.0), catalog, progress=False)
    before = path.read_bytes()

    def gen() -> Iterator[Block]:
        yield from _blocks(2.0, users=10)
        yield bad_block

    with pytest.raises((ValueError, sqlite3.IntegrityError)):
        write_store_chunks(path, gen(), catalog, progress=False)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["recs.sqlite"]  # the temporary file is gone too


def test_an_interrupted_write_leaves_the_previous_store_intact(tmp_path: Path, catalog) -> None:
    path = tmp_path / "recs.sqlite"
    write_store_chunks(path, _blocks(1.0), catalog, progress=False)
    store = Store.open(path)

    def gen() -> Iterator[Block]:
        yield next(_blocks(2.0))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_store_chunks(path, gen(), catalog, progress=False)
    assert _files(tmp_path) == ["recs.sqlite"]
    assert not store.reload_if_changed()
    assert store.get(1, 1) == [(10, 1.0, ())]


def test_open_missing_store_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Store.open(tmp_path / "nope.sqlite")
    with pytest.raises(StoreNotFoundError, match="no recommendation store at .*nope.sqlite"):
        Store.open(tmp_path / "nope.sqlite")
    assert issubclass(StoreNotFoundError, StoreError) and issubclass(StoreError, MovierecError)


# (how to damage a good store, what the one-line error says)
DAMAGE = [
    ("UPDATE meta SET value = 'null' WHERE key = 'k'", "meta 'k' is null; expected an integer"),
    ("UPDATE meta SET value = '\"5\"' WHERE key = 'k'", "meta 'k' is \"5\""),
    ("UPDATE meta SET value = '-1' WHERE key = 'k'", "meta 'k' is -1"),
    ("UPDATE meta SET value = 'true' WHERE key = 'k'", "meta 'k' is true"),
    ("UPDATE meta SET value = '2.5' WHERE key = 'users'", "meta 'users' is 2.5"),
    ("DELETE FROM meta WHERE key = 'rows'", "meta 'rows' is missing"),
    ("UPDATE meta SET value = '{oops' WHERE key = 'run_id'", "meta 'run_id' is not JSON"),
    ("DROP TABLE recs", "table 'recs': no such table"),
    ("ALTER TABLE movies RENAME COLUMN title TO name", "table 'movies': columns id, name"),
    ("UPDATE recs SET score = 'high'", "numeric scores"),
    ("UPDATE recs SET rank = rank + 10", "ranks 1..k (k 5)"),
    ("UPDATE recs SET movie_id = 'x'", "integer ids"),
    ("DELETE FROM recs", "meta says 20 rows but table 'recs' disagrees"),
    ("UPDATE movies SET year = 'nineteen'", "is not (id, title, year, genres)"),
    ("UPDATE recs SET because = '1,x'", "reasons '1,x' are not comma-separated movie ids"),
    ("UPDATE recs SET because = X'07'", "are not comma-separated movie ids"),
    ("UPDATE meta SET value = '1' WHERE key = 'version'", "store version 1; this movierec reads"),
    ("DELETE FROM meta WHERE key = 'version'", "store version missing"),
    ("ALTER TABLE recs DROP COLUMN because", "written by an older movierec (store version 1"),
]


def _damaged(tmp_path: Path, sql: str | bytes) -> Path:
    """A copy of a good store with one thing wrong (``bytes``: the whole file)."""
    path = tmp_path / "damaged.sqlite"
    if isinstance(sql, bytes):
        path.write_bytes(sql)
        return path
    shutil.copy(make_store(tmp_path / "good.sqlite", FakeRecommender(), k=5), path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(sql)
        conn.commit()
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        *DAMAGE,
        (b"", "table 'recs': no such table"),
        (b"not a database at all, just text" * 4, "not a readable store: file is not a database"),
    ],
)
def test_a_damaged_store_is_refused_at_open_with_one_line(
    tmp_path: Path, damage: str | bytes, message: str
) -> None:
    path = _damaged(tmp_path, damage)
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


@pytest.mark.parametrize(("damage", "message"), DAMAGE[:1] + DAMAGE[7:8] + DAMAGE[9:10])
def test_a_damaged_replacement_is_logged_once_and_the_old_store_keeps_serving(
    tmp_path: Path, catalog, caplog: pytest.LogCaptureFixture, damage: str, message: str
) -> None:
    path = tmp_path / "recs.sqlite"
    write_store_chunks(path, _blocks(1.0), catalog, {"run_id": "old"}, progress=False)
    store = Store.open(path)
    bad = _damaged(tmp_path, damage)
    os.replace(bad, path)
    with caplog.at_level(logging.WARNING, logger="movierec.store"):
        for _ in range(3):
            assert store.reload_if_changed() is False
    assert store.get(1, 1) == [(10, 1.0, ())] and store.meta["run_id"] == "old"
    [record] = caplog.records
    line = record.getMessage()
    assert message in line and str(path) in line and "\n" not in line
    write_store_chunks(path, _blocks(2.0), catalog, {"run_id": "new"}, progress=False)
    assert store.reload_if_changed() is True  # a good file after a bad one is taken
    assert store.get(1, 1) == [(10, 2.0, ())] and store.meta["run_id"] == "new"
    store.close()


def test_reload_follows_a_replacement(tmp_path: Path, catalog) -> None:
    path = tmp_path / "recs.sqlite"
    write_store_chunks(path, _blocks(1.0), catalog, {"run_id": "a"}, progress=False)
    store = Store.open(path)
    assert store.get(5, 2) == [(50, 1.0, ()), (51, 1.0, ())]
    assert not store.reload_if_changed()

    write_store_chunks(path, _blocks(2.0, k=6), catalog, {"run_id": "b"}, progress=False)
    # until it reloads, the store keeps answering from the file it opened (now unlinked)
    assert store.get(5, 2) == [(50, 1.0, ()), (51, 1.0, ())]
    assert store.reload_if_changed(min_interval=3600) is False  # checked just now: throttled
    assert store.reload_if_changed()
    assert store.get(5, 2) == [(50, 2.0, ()), (51, 2.0, ())]
    assert (store.meta["run_id"], store.k) == ("b", 6)
    assert not store.reload_if_changed()

    path.unlink()  # a store that disappears: keep serving the last one
    assert not store.reload_if_changed()
    assert store.get(5, 1) == [(50, 2.0, ())]
    path.write_bytes(b"not a database")  # nor is a broken file picked up
    assert not store.reload_if_changed()
    assert store.get(5, 1) == [(50, 2.0, ())]
    store.close()


def test_concurrent_readers_see_old_or_new_data_never_an_error(tmp_path: Path, catalog) -> None:
    path = tmp_path / "recs.sqlite"
    write_store_chunks(path, _blocks(0.0), catalog, progress=False)
    store = Store.open(path)
    stop = threading.Event()
    seen: list[set[float]] = [set() for _ in range(4)]
    errors: list[BaseException] = []

    def reader(slot: int) -> None:
        u = 0
        try:
            while not stop.is_set():
                u = u % 200 + 1
                store.reload_if_changed()
                rows = store.get(u, 4)
                assert rows is not None and [m for m, _, _ in rows] == [
                    u * 10 + j for j in range(4)
                ]
                versions = {s for _, s, _ in rows}
                assert len(versions) == 1  # one store per answer, never a mix
                seen[slot] |= versions
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for version in range(1, 8):
        write_store_chunks(path, _blocks(float(version)), catalog, progress=False)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert store.reload_if_changed() or store.get(1, 1) == [(10, 7.0, ())]
    assert store.get(1, 1) == [(10, 7.0, ())]
    versions = set().union(*seen)
    assert versions <= {float(v) for v in range(8)} and len(versions) >= 2, versions
    store.close()


def test_store_written_from_the_fake_matches_the_model(tmp_path: Path) -> None:
    fake = FakeRecommender()
    store = Store.open(make_store(tmp_path / "recs.sqlite", fake, k=3))
    assert [m for m, _, _ in store.get(1, 3)] == [60, 50, 90]
    assert [m for m, _, _ in store.get(2, 3)] == [60, 120, 110]


def test_reasons_round_trip_and_survive_a_merge(tmp_path: Path, catalog) -> None:
    from movierec.store import merge_stores

    because = np.array(
        [
            [[1, 2, 10], [1, -1, -1], [-1, -1, -1]],
            [[70, 50, -1], [-1, -1, -1], [-1, -1, -1]],
            [[2, -1, -1], [-1, -1, -1], [-1, -1, -1]],
        ]
    )
    path = tmp_path / "recs.sqlite"
    write_store(path, USERS, (MOVIES, SCORES, because), catalog, progress=False)
    store = Store.open(path)
    assert store.get(3, 10) == [
        (50, pytest.approx(0.9), (1, 2, 10)),
        (60, 0.5, (1,)),
        (70, 0.25, ()),
    ]
    assert store.get(1, 1) == [(1, 2.0, (70, 50))]
    with sqlite3.connect(path) as conn:
        cells = [b for (b,) in conn.execute("SELECT because FROM recs WHERE user_id = 3")]
    assert cells == ["1,2,10", "1", ""]
    other = write_store(tmp_path / "b", np.array([9]), (MOVIES[:1], SCORES[:1]), catalog, {}, False)
    merged = merge_stores(tmp_path / "m.sqlite", [path, other.path])
    both = Store.open(merged.path)
    assert both.get(7, 5) == [(10, 0.0, (2,))] and both.get(9, 1) == [(50, pytest.approx(0.9), ())]
    assert both.meta["version"] == 2


def test_a_version_1_store_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            "CREATE TABLE recs (user_id INTEGER, rank INTEGER, movie_id INTEGER, score REAL,"
            " PRIMARY KEY (user_id, rank)) WITHOUT ROWID;"
            "CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT, year INTEGER, genres TEXT);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO recs VALUES (1, 1, 10, 0.5);"
            "INSERT INTO meta VALUES ('k', '1'), ('users', '1'), ('rows', '1');"
        )
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    assert str(caught.value) == (
        f"{path}: written by an older movierec (store version 1, no reasons); "
        "write it again with `movierec batch`"
    )

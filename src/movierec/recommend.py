"""Recommendations from a trained run: known users, a new person's liked list, similar movies.

Everything goes through ``topk.top_k``: batch-first, index space, seen movies excluded as an
argument. Only the model protocol is used (``movierec.models.protocol``): a known user's
input is formed from everything they watched (train, validation and test), which is also
what is excluded; a new person is the model's ``score_new_user`` of their liked list;
similar movies are the nearest items by cosine over the model's ``item_vectors()``.

Batch for every user in several processes (``write_batch`` with ``devices`` > 1): the users
are split into ``devices`` contiguous ranges (in user index order; the first ``n % devices``
ranges one user longer). The calling process is rank 0 and scores the first range; ranks
1..N-1 are worker processes started with ``multiprocessing``'s spawn (never fork: a forked
child of a process that already ran torch's OpenMP thread pool can hang), each loading the
run itself. Each rank writes its part as a complete store (and
Parquet file) to a hidden temporary file in the output's directory; when every part is
done, rank 0 merges them in rank order into one store (``store.merge_stores``: built
beside the output, renamed over it) and one Parquet file, then deletes the parts. Any
failure deletes the parts and leaves the previous output untouched. On CPU, each process
gets ``cores // devices`` torch threads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from movierec import atomic
from movierec.artifacts import Run, load_run
from movierec.data import Catalog, IdMap
from movierec.errors import ParameterError
from movierec.foldin import FoldInConfig
from movierec.models import TorchScorer, inputs_for
from movierec.split import concat
from movierec.titles import MovieMatch, TitleIndex
from movierec.topk import Recommendations, top_k
from movierec.training.ranks import piece  # the split DDP ranks take of a step's examples
from movierec.training.runtime import available_cores, threads_per_rank


@dataclass
class History:
    """Per user, watched items latest first: CSR layout over (items, timestamps)."""

    indptr: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray

    @classmethod
    def build(cls, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, n_users: int):
        order = np.lexsort((items, -timestamps, users))  # equal times: split's tie-break
        indptr = np.concatenate(([0], np.cumsum(np.bincount(users, minlength=n_users))))
        return cls(indptr, items[order], timestamps[order])

    def of(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.indptr[user], self.indptr[user + 1]
        return self.items[s:e], self.timestamps[s:e]


class Recommender:
    """A trained run ready to answer: ``for_users``, ``for_liked``, ``similar``, ``history``.

    Every method only reads the run (the served model included), so threads may call them
    concurrently; the one lazily built value (item vectors) is built under a lock.
    """

    def __init__(self, run: Run, fold: FoldInConfig = FoldInConfig()) -> None:
        scorer = run.model  # serve from everything each user watched (a history model reads it)
        model = scorer.model.with_inputs(inputs_for(run.split, "all"))
        self.run = dataclasses.replace(run, model=TorchScorer(model, scorer.device))
        self.users: IdMap = run.users
        self.items: IdMap = run.items
        self.catalog: Catalog = run.catalog
        self.fold = fold
        everything = concat(run.split.train, run.split.validation, run.split.test)
        self.seen: sp.csr_matrix = everything.to_csr()
        self.popularity = everything.item_counts()
        self.timeline = History.build(
            everything.users, everything.items, everything.timestamps, len(self.users)
        )
        self.titles = TitleIndex(self.catalog, self.items, self.popularity)
        self._item_vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | None = "cpu") -> Recommender:
        return cls(load_run(run_dir, device=device))

    @property
    def model(self) -> torch.nn.Module:
        return self.run.model.model

    @property
    def info(self) -> dict[str, Any]:
        manifest_time = (self.run.path / "manifest.json").stat().st_mtime
        return {
            "model": self.run.config.model,
            "trained_at": dt.datetime.fromtimestamp(manifest_time, dt.UTC).isoformat(),
            "data": self.run.data,
            "training": self.run.training,
            "metrics": self.run.metrics,
            "users": len(self.users),
            "movies": len(self.items),
        }

    def for_users(
        self, user_idx: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> Recommendations:
        user_idx = np.asarray(user_idx, dtype=np.int64)
        scores = self.run.model.score_all(user_idx)
        return top_k(scores, k, self.seen[user_idx] if exclude_seen else None)

    def for_liked(self, item_idx: np.ndarray, k: int) -> Recommendations:
        """Cold start from movies a person likes, most important first."""
        given = np.asarray(item_idx, dtype=np.int64)
        liked = given[np.sort(np.unique(given, return_index=True)[1])]  # first mention kept
        # reads the shared model and writes nothing (protocol.Model): safe across threads
        scores = self.model.score_new_user(torch.as_tensor(liked), self.fold)
        scores = scores.float().cpu().numpy()[None, :]
        scores[0, liked] = -np.inf  # never recommend what the person named
        return top_k(scores, k)

    def similar(self, item_idx: int, k: int) -> Recommendations:
        if self._item_vectors is None:
            with self._lock:  # built once, by the first request that needs them
                if self._item_vectors is None:
                    self._item_vectors = self.model.item_vectors().float().cpu().numpy()
        v = self._item_vectors
        scores = (v @ v[item_idx])[None, :]
        scores[0, item_idx] = -np.inf  # not the movie itself
        return top_k(scores, k)

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        return self.timeline.of(user_idx)

    def find_movie(self, query: str | int, limit: int = 10) -> MovieMatch:
        return self.titles.find(query, limit)

    def search(self, q: str, limit: int) -> np.ndarray:
        return self.titles.search(q, limit)


Block = tuple[np.ndarray, np.ndarray, np.ndarray]  # raw user ids, raw movie ids (B, k), scores


def batch_blocks(
    r: Recommender, k: int, chunk: int = 2048, users: range | None = None
) -> Iterator[Block]:
    """Every user's (or the ``users`` range's) top-k unseen movies over the full catalogue,
    ``chunk`` users at a time, in raw ids (-1 where a user has fewer than k unseen movies)."""
    span = range(len(r.users)) if users is None else users
    for start in range(span.start, span.stop, chunk):
        users = np.arange(start, min(start + chunk, span.stop))
        rec = r.for_users(users, k)
        movies = np.where(rec.items >= 0, r.items.raw[np.maximum(rec.items, 0)], -1)
        yield r.users.raw[users], movies, rec.scores


def write_parquet(path: str | Path, blocks: Iterable[Block]) -> Iterator[Block]:
    """Pass ``blocks`` through, writing them as rows (user_id, rank, movie_id, score) to a
    Parquet file that appears (atomically renamed) only once every block was written."""
    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("rank", pa.int16()),
            ("movie_id", pa.int64()),
            ("score", pa.float32()),
        ]
    )
    with atomic.replacing(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for users, movies, scores in blocks:
            keep = movies >= 0
            rank = np.broadcast_to(np.arange(1, movies.shape[1] + 1), movies.shape)
            writer.write_table(
                pa.table(
                    {
                        "user_id": np.repeat(users, keep.sum(axis=1)),
                        "rank": rank[keep].astype(np.int16),
                        "movie_id": movies[keep],
                        "score": scores[keep].astype(np.float32),
                    },
                    schema=schema,
                )
            )
            yield users, movies, scores


def merge_parquet(path: str | Path, parts: Sequence[str | Path]) -> Path:
    """Concatenate Parquet ``parts`` (same schema) in order into ``path``, which appears
    (atomically renamed) only once complete."""
    path = Path(path)
    schema = pq.ParquetFile(parts[0]).schema_arrow
    with atomic.replacing(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for part in parts:
            f = pq.ParquetFile(part)
            for g in range(f.num_row_groups):
                writer.write_table(f.read_row_group(g))
    return path


def user_ranges(n_users: int, parts: int) -> list[range]:
    """``parts`` contiguous ranges covering ``range(n_users)`` in order; the first
    ``n_users % parts`` are one user longer."""
    starts, sizes = piece(n_users, parts, np.arange(parts))
    return [range(int(a), int(a + n)) for a, n in zip(starts, sizes, strict=True)]


@dataclass(frozen=True)
class BatchPart:
    """One rank's share of a batch job: score ``users`` of ``run`` into ``store``."""

    run: str
    users: range
    k: int
    chunk: int
    store: Path
    parquet: Path | None
    meta: dict[str, Any]
    threads: int | None = None  # torch threads in this process (None: leave as is)
    device: str = "cpu"  # where this rank scores: "cpu" or its own "cuda:R"


def score_part(part: BatchPart, r: Recommender | None = None, progress: bool = False) -> None:
    """Write ``part``'s store (and Parquet file); a worker loads the run itself."""
    from movierec.store import write_store_chunks

    if part.threads is not None:
        torch.set_num_threads(part.threads)
    r = Recommender.load(part.run, device=part.device) if r is None else r
    blocks = batch_blocks(r, part.k, part.chunk, part.users)
    if part.parquet is not None:
        blocks = write_parquet(part.parquet, blocks)
    write_store_chunks(
        part.store, blocks, r.catalog, part.meta, progress=progress, total_users=len(part.users)
    )


def write_batch(
    r: Recommender,
    out: str | Path,
    k: int,
    meta: dict[str, Any],
    *,
    chunk: int = 2048,
    parquet: str | Path | None = None,
    devices: int = 1,
    progress: bool = True,
):
    """Every user's top-k into the store ``out`` (and ``parquet``), scored by ``devices``
    processes (see the module docstring); returns the ``store.StoreSummary``."""
    from movierec.store import merge_stores, write_store_chunks

    if devices < 1:
        raise ParameterError(f"--devices must be at least 1, got {devices}")
    out = Path(out)
    parts = min(devices, max(1, len(r.users)))
    if parts == 1:
        blocks = batch_blocks(r, k, chunk)
        if parquet is not None:
            blocks = write_parquet(parquet, blocks)
        return write_store_chunks(
            out, blocks, r.catalog, meta, progress=progress, total_users=len(r.users)
        )
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    threads = threads_per_rank(available_cores(), parts)
    on_gpu = r.run.model.device.type == "cuda"
    if on_gpu and parts > torch.cuda.device_count():
        raise ParameterError(
            f"--devices {parts}: this machine has {torch.cuda.device_count()} GPU(s)"
        )
    jobs = [
        BatchPart(
            run=str(r.run.path),
            users=users,
            k=k,
            chunk=chunk,
            store=out.with_name(f".{out.name}.{tag}.part{rank}"),
            parquet=None if parquet is None else out.with_name(f".{out.name}.{tag}.part{rank}.pq"),
            meta=meta,
            threads=threads,
            device=f"cuda:{rank}" if on_gpu else "cpu",
        )
        for rank, users in enumerate(user_ranges(len(r.users), parts))
    ]
    context = multiprocessing.get_context("spawn")
    before = torch.get_num_threads()
    try:
        with ProcessPoolExecutor(parts - 1, mp_context=context) as pool:
            workers = [pool.submit(score_part, job) for job in jobs[1:]]
            try:
                score_part(jobs[0], r, progress=progress)
            finally:
                torch.set_num_threads(before)
            for w in workers:
                w.result()  # re-raises a worker's error
        if parquet is not None:
            merge_parquet(parquet, [job.parquet for job in jobs if job.parquet is not None])
        summary = merge_stores(out, [job.store for job in jobs], meta)
        return dataclasses.replace(summary, seconds=time.perf_counter() - started)
    finally:
        for job in jobs:
            for f in (job.store, job.parquet):
                if f is not None:
                    f.unlink(missing_ok=True)

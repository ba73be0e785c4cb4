"""Every user's top movies into a store (and a Parquet file): ``movierec batch``.

``write_batch`` scores every user of a run against the full catalogue, seen movies
excluded, keeps the best ``depth`` per user with their reasons (``Recommender.for_users``
with ``because=True``) and streams them into the SQLite store (``movierec.store``), which
holds ``depth`` rows a user so that a reader can filter them and still answer top-k.

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
import multiprocessing
import os
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
import torch

from movierec import atomic
from movierec.errors import ParameterError
from movierec.recommend import Recommender
from movierec.store import StoreSummary, merge_stores, write_store_chunks
from movierec.training.ranks import piece  # the split DDP ranks take of a step's examples
from movierec.training.runtime import available_cores, threads_per_rank

DEPTH = 100  # rows stored per user unless asked (at least the k asked for)
MAX_DEPTH = 1000

# raw user ids (B,), raw movie ids (B, depth), scores (B, depth), because raw ids (B, depth, 3)
Block = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def depth_for(k: int, depth: int | None) -> int:
    """Rows a user gets in the store: ``depth``, or ``max(k, DEPTH)`` when not given."""
    depth = max(k, DEPTH) if depth is None else depth
    if not k <= depth <= MAX_DEPTH:
        raise ParameterError(
            f"--depth must lie in [{k}, {MAX_DEPTH}] (k to {MAX_DEPTH}), got {depth}"
        )
    return depth


def batch_blocks(
    r: Recommender, k: int, chunk: int = 2048, users: range | None = None
) -> Iterator[Block]:
    """Every user's (or the ``users`` range's) top-k unseen movies over the full catalogue
    and the movies of theirs behind each, ``chunk`` users at a time, in raw ids (-1 where
    a user has fewer than k unseen movies, or a movie fewer reasons)."""
    span = range(len(r.users)) if users is None else users
    for start in range(span.start, span.stop, chunk):
        users = np.arange(start, min(start + chunk, span.stop))
        rec = r.for_users(users, k, because=True)
        yield r.users.raw[users], _raw(r, rec.items), rec.scores, _raw(r, rec.because)


def _raw(r: Recommender, idx: np.ndarray) -> np.ndarray:
    return np.where(idx >= 0, r.items.raw[np.maximum(idx, 0)], -1)


PARQUET_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("rank", pa.int16()),
        ("movie_id", pa.int64()),
        ("score", pa.float32()),
        ("because", pa.list_(pa.int64())),
    ]
)


def write_parquet(path: str | Path, blocks: Iterable[Block]) -> Iterator[Block]:
    """Pass ``blocks`` through, writing them as rows (user_id, rank, movie_id, score,
    because: list of raw movie ids) to a Parquet file that appears (atomically renamed)
    only once every block was written."""
    with atomic.replacing(path) as tmp, pq.ParquetWriter(tmp, PARQUET_SCHEMA) as writer:
        for users, movies, scores, because in blocks:
            keep = movies >= 0
            rank = np.broadcast_to(np.arange(1, movies.shape[1] + 1), movies.shape)
            reasons = because[keep]  # (rows, 3), -1 padded at the end
            lengths = (reasons >= 0).sum(axis=1)
            offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
            writer.write_table(
                pa.table(
                    {
                        "user_id": np.repeat(users, keep.sum(axis=1)),
                        "rank": rank[keep].astype(np.int16),
                        "movie_id": movies[keep],
                        "score": scores[keep].astype(np.float32),
                        "because": pa.ListArray.from_arrays(offsets, reasons[reasons >= 0]),
                    },
                    schema=PARQUET_SCHEMA,
                )
            )
            yield users, movies, scores, because


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
) -> StoreSummary:
    """Every user's top-k (``k`` is the store's depth) into the store ``out`` (and
    ``parquet``), scored by ``devices`` processes (see the module docstring)."""
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

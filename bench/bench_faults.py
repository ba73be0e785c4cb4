"""Fault reproductions (issue 12) against an installed `movierec`, one line per case.

    python bench/bench_faults.py                      # every case, in a temporary directory
    python bench/bench_faults.py --cases load,kill-train --kills 10 --requests 600

Each case runs the real command line (`movierec ...` subprocesses, a real server on
loopback) the way a careful or unlucky user would, and prints what it observed:

  load        16 threads, mixed POST /v1/recommendations (5 liked) and GET
              /v1/users/{id}/recommendations against `serve` for every model kind
  worst       the most expensive cold-start request: 100 liked titles matching nothing
  idle        /health while 1,000 idle connections are held
  kill-train  kill -9 at a random moment of a retrain into a good run; the old run loads
  kill-batch  kill -9 at a random moment of `batch` over a good store; the old store reads
  files       bad movie/ratings files: exit code and the one-line error of `prepare`
  runs        serve on a truncated run (1 and 2 workers), resume on changed data or a
              truncated checkpoint, /v1/model after the run directory moves
  store       a store with malformed meta swapped in under a running server
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

KINDS = ("history", "tutorial", "gmf", "mlp", "neumf")
SMALL = "ml-latest-small"  # the embedded data set


def movierec(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["movierec", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    """Exit code, whether a traceback was printed, and the last line of stderr."""
    err = proc.stderr.strip().splitlines()
    tb = "traceback" if "Traceback" in proc.stderr else "no traceback"
    return f"exit {proc.returncode}, {tb}: {err[-1][:110] if err else '(no stderr)'}"


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, path: str, body: dict | None = None, timeout: float = 30) -> int:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return -1  # connection refused / reset / closed without a response


@contextlib.contextmanager
def served(
    run: Path, *extra: str, log: Path | None = None
) -> Iterator[tuple[int, subprocess.Popen]]:
    port = free_port()
    out = open(log or os.devnull, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        ["movierec", "serve", str(run), "--port", str(port), *extra], stdout=out, stderr=out
    )
    try:
        deadline = time.time() + 60
        while request(port, "/health", timeout=2) != 200:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"serve {run} did not start (exit {proc.poll()})")
            time.sleep(0.2)
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        proc.kill()
        out.close()


def run_users_and_titles(run: Path, n_titles: int = 50) -> tuple[list[int], list[str]]:
    import pyarrow.parquet as pq

    users = np.load(run / "users.npy", allow_pickle=False).tolist()
    cat = pq.read_table(run / "catalog.parquet").to_pydict()
    titles = [f"{t} ({y})" if y else str(t) for t, y in zip(cat["title"], cat["year"])]
    return users, titles[:n_titles]  # with the year: a title alone may name several movies


# --------------------------------------------------------------------------- cases


def train(work: Path, kind: str, epochs: int = 1) -> Path:
    out = work / f"run-{kind}"
    if not (out / "model.safetensors").exists():
        proc = movierec(
            "train",
            "--model",
            kind,
            "--epochs",
            str(epochs),
            "--out",
            str(out),
            "--no-progress",
            "--data",
            SMALL,
        )
        if proc.returncode:
            raise RuntimeError(f"train {kind}: {one_line(proc)}")
    return out


def case_load(work: Path, requests: int, **_) -> Iterator[str]:
    for kind in KINDS:
        run = train(work, kind)
        users, titles = run_users_and_titles(run)
        rng = random.Random(0)
        calls = [
            (f"/v1/users/{rng.choice(users)}/recommendations?k=10", None)
            if i % 2
            else ("/v1/recommendations", {"liked": rng.sample(titles, 5), "k": 10})
            for i in range(requests)
        ]
        with served(run) as (port, proc):
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(16) as pool:
                codes = Counter(pool.map(lambda c, p=port: request(p, *c), calls))
            seconds = time.perf_counter() - t0
            alive = proc.poll() is None and request(port, "/health") == 200
        failed = requests - codes.get(200, 0)
        yield (
            f"{kind}: {requests} requests from 16 threads in {seconds:.1f} s, "
            f"{failed} failed {dict(codes)}, server {'alive' if alive else 'GONE'}"
        )


def case_worst(work: Path, **_) -> Iterator[str]:
    run = train(work, "history")
    liked = [f"Zqx unmatched title number {i} (1999)" for i in range(100)]
    with served(run) as (port, _proc):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            code = request(port, "/v1/recommendations", {"liked": liked, "k": 10})
            times.append(time.perf_counter() - t0)
        with cf.ThreadPoolExecutor(4) as pool:
            t0 = time.perf_counter()
            list(
                pool.map(lambda _: request(port, "/v1/recommendations", {"liked": liked}), range(4))
            )
            par = time.perf_counter() - t0
    yield (
        f"100 unmatched liked titles: HTTP {code}, min {min(times) * 1e3:.0f} ms, "
        f"median {sorted(times)[2] * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms; "
        f"4 in parallel {par * 1e3:.0f} ms"
    )


def case_idle(work: Path, **_) -> Iterator[str]:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    run = train(work, "history")
    with served(run) as (port, proc):
        held = []
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append(s)
        t0 = time.perf_counter()
        code = request(port, "/health", timeout=10)
        took = time.perf_counter() - t0
        for s in held:
            s.close()
        alive = proc.poll() is None and request(port, "/health") == 200
    state = "alive" if alive else "GONE"
    yield f"/health with 1,000 idle connections held: HTTP {code} in {took * 1e3:.0f} ms; {state}"


def kill_at_random(args: list[str], seconds: float, rng: random.Random) -> float:
    proc = subprocess.Popen(
        ["movierec", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    at = rng.uniform(0.2, seconds)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(at)
    proc.kill()
    proc.wait()
    return at


def case_kill_train(work: Path, kills: int, **_) -> Iterator[str]:
    run = work / "kill-train"
    args = [
        "train",
        "--model",
        "history",
        "--epochs",
        "3",
        "--out",
        str(run),
        "--no-progress",
        "--data",
        SMALL,
    ]
    t0 = time.perf_counter()
    first = movierec(*args)
    full = time.perf_counter() - t0
    if first.returncode:
        yield f"first train failed: {one_line(first)}"
        return
    users, _ = run_users_and_titles(run)
    want = movierec("recommend", str(run), "--user", str(users[0]), "--json").stdout
    rng, lost, moments = random.Random(0), 0, []
    for _ in range(kills):
        moments.append(kill_at_random(args, full * 1.1, rng))
        got = movierec("recommend", str(run), "--user", str(users[0]), "--json")
        if got.returncode:  # neither the old run nor a complete new one
            lost += 1
        elif got.stdout != want:  # a complete new run replaced it: the new good state
            want = got.stdout
    left = sorted(
        p.name for p in work.iterdir() if p.name.startswith((".kill-train", "kill-train"))
    )
    yield (
        f"{kills} kills at {', '.join(f'{m:.1f}' for m in moments)} s of a {full:.1f} s train: "
        f"{lost} lost runs; left beside the run: {left}"
    )


def store_ok(path: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as c:
            meta = dict(c.execute("SELECT key, value FROM meta"))
            users = c.execute("SELECT COUNT(DISTINCT user_id) FROM recs").fetchone()[0]
        return json.loads(meta["users"]) == users > 0
    except (sqlite3.Error, KeyError, ValueError):
        return False


def case_kill_batch(work: Path, kills: int, **_) -> Iterator[str]:
    run = train(work, "neumf")
    store = work / "kill-batch.sqlite"
    args = ["batch", str(run), "--out", str(store), "--no-progress"]
    t0 = time.perf_counter()
    first = movierec(*args)
    full = time.perf_counter() - t0
    if first.returncode or not store_ok(store):
        yield f"first batch failed: {one_line(first)}"
        return
    rng, lost = random.Random(1), 0
    for _ in range(kills):
        kill_at_random(args, full * 1.1, rng)
        lost += not store_ok(store)
    tmp = [p.name for p in work.iterdir() if p.name.endswith(".tmp")]
    yield f"{kills} kills during a {full:.1f} s batch: {lost} lost stores; {len(tmp)} temp left"


def write_data(d: Path, movies: str, ratings: str | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "movies.csv").write_text("movieId,title,genres\n" + movies)
    if ratings is None:
        ratings = "".join(
            f"{u},{m},4.0,{1_000_000_000 + u * 10 + m}\n" for u in range(1, 6) for m in range(1, 7)
        )
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + ratings)
    return d


MOVIES = "".join(f"{m},Movie {m} ({1980 + m}),Drama\n" for m in range(1, 7))
BAD_FILES: dict[str, Callable[[Path], Path]] = {
    "stray quote in movies.csv": lambda d: write_data(
        d,
        MOVIES.replace("5,Movie 5 (1985)", '5,"Movie 5 (1985)').replace(
            "6,Movie 6 (1986)", '6,Movie 6 (1986)"'
        ),
    ),
    "20-digit movieId": lambda d: write_data(d, MOVIES + "12345678901234567890,Big (1990),Drama\n"),
    "5000-digit movieId in movies.csv": lambda d: write_data(
        d, MOVIES + "9" * 5000 + ",Huge (1990),Drama\n"
    ),
    "5000-digit userId in ratings.csv": lambda d: write_data(
        d, MOVIES, "9" * 5000 + ",1,4.0,1000000000\n"
    ),
    "negative timestamp": lambda d: write_data(d, MOVIES, "1,1,4.0,-5\n1,2,4.0,1000000000\n"),
    "timestamp in 2300": lambda d: write_data(
        d, MOVIES, "1,1,4.0,10500000000\n1,2,4.0,1000000000\n"
    ),
    "NUL in a title": lambda d: write_data(d, MOVIES + "7,Nul\x00 title (1990),Drama\n"),
    "ratings.csv and ratings.csv.gz": lambda d: (
        write_data(d, MOVIES),
        shutil.copy(d / "ratings.csv", d / "ratings.csv.gz"),
        d,
    )[-1],
}


def case_files(work: Path, **_) -> Iterator[str]:
    for name, make in BAD_FILES.items():
        d = make(work / "bad" / name.replace(" ", "-"))
        yield f"{name}: {one_line(movierec('prepare', '--data', str(d), '--strict', timeout=60))}"
    d = write_data(work / "bad" / "spaces", MOVIES + "8,A" + " " * 100_000 + "b (1990),Drama\n")
    t0 = time.perf_counter()
    proc = movierec("prepare", "--data", str(d), timeout=120)
    yield f"title with 100,000 spaces: {time.perf_counter() - t0:.1f} s, exit {proc.returncode}"


def case_runs(work: Path, **_) -> Iterator[str]:
    good = train(work, "neumf")
    broken = work / "truncated"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(good, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for workers in ("1", "2"):
        proc = movierec(
            "serve", str(broken), "--workers", workers, "--port", str(free_port()), timeout=60
        )
        yield f"serve a truncated run, {workers} worker(s): {one_line(proc)}"

    moved = work / "moving"
    shutil.rmtree(moved, ignore_errors=True)
    shutil.copytree(good, moved)
    with served(moved) as (port, _proc):
        before = request(port, "/v1/model")
        moved.rename(work / "moved")
        after = request(port, "/v1/model")
    shutil.rmtree(work / "moved")
    yield f"/v1/model before / after the run directory moved: HTTP {before} / {after}"

    run = work / "resume"
    args = ["train", "--model", "tutorial", "--epochs", "3", "--out", str(run), "--no-progress"]
    kill_at_random([*args, "--data", SMALL], 4.0, random.Random(2))
    other = movierec(*args, "--data", SMALL, "--min-year", "2000", "--resume")
    yield f"--resume on other data (--min-year 2000): {one_line(other)}"
    for ckpt in run.parent.rglob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    trunc = movierec(*args, "--data", SMALL, "--resume")
    yield f"--resume from a truncated checkpoint: {one_line(trunc)}"
    hist = movierec(
        "train",
        "--model",
        "history",
        "--epochs",
        "1",
        "--out",
        str(work / "h-resume"),
        "--no-progress",
        "--resume",
        "--data",
        SMALL,
    )
    said = hist.stderr.strip().splitlines()[:1]
    yield f"--resume, history model, nothing to resume: exit {hist.returncode}, says {said}"


def case_store(work: Path, **_) -> Iterator[str]:
    run = train(work, "history")
    store = work / "swap.sqlite"
    if movierec("batch", str(run), "--out", str(store), "--no-progress").returncode:
        yield "batch failed"
        return
    users, _ = run_users_and_titles(run)
    bad = work / "bad.sqlite"
    shutil.copy(store, bad)
    with sqlite3.connect(bad) as c:
        c.execute("UPDATE meta SET value = 'null' WHERE key = 'k'")
    log = work / "store-serve.log"
    with served(run, "--store", str(store), log=log) as (port, _proc):
        before = Counter(request(port, f"/v1/users/{u}/recommendations") for u in users[:50])
        os.replace(bad, store)
        time.sleep(2.5)  # past the store's check interval
        after = Counter(request(port, f"/v1/users/{u}/recommendations") for u in users[:50])
    logged = [ln for ln in log.read_text().splitlines() if "store" in ln.lower()][-1:]
    yield f"bad meta (k null) swapped in: before {dict(before)}, after {dict(after)}; log {logged}"
    startup = movierec(
        "serve", str(run), "--store", str(store), "--port", str(free_port()), timeout=60
    )
    yield f"serve with that store from the start: {one_line(startup)}"


CASES = {
    "load": case_load,
    "worst": case_worst,
    "idle": case_idle,
    "kill-train": case_kill_train,
    "kill-batch": case_kill_batch,
    "files": case_files,
    "runs": case_runs,
    "store": case_store,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--work", type=Path, default=None, help="default: a temporary directory")
    p.add_argument("--requests", type=int, default=600)
    p.add_argument("--kills", type=int, default=10)
    a = p.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="movierec-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in a.cases.split(","):
        t0 = time.perf_counter()
        try:
            for line in CASES[name](work, requests=a.requests, kills=a.kills):
                print(f"{name:>10} | {line}", flush=True)
        except Exception as e:  # a case that cannot run says so and the others go on
            print(f"{name:>10} | could not run: {type(e).__name__}: {e}", flush=True)
        print(f"{name:>10} | ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

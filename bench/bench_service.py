"""HTTP service benchmark: wrk on loopback against `movierec serve`, then schemathesis.

    # a trained run and its store (movierec train / movierec batch)
    python bench/bench_service.py --run RUN --store recs.sqlite
    # no trained run needed: an MF-shaped numpy recommender of ML-25M size (2010+ filter)
    python bench/bench_service.py --synthetic

Measures, each for --duration seconds with wrk (one thread, --connections connections):
  1. GET /v1/users/{id}/recommendations?k=10, ids drawn at random from the store's users
     (targets: >= 1,500 req/s, p99 <= 20 ms, no errors);
  2. POST /v1/recommendations with 10 liked movie ids drawn from the 500 most popular
     (targets: >= 300 req/s, p99 <= 50 ms);
  3. with --filtered GENRE: request 1 with &genre=GENRE, answered from the stored depth
     (targets: >= 1,000 req/s, p99 <= 20 ms), and with --fallback GENRE: a genre rare
     enough that the store runs short and the model answers live (p99 recorded); for each,
     the share of 500 sampled requests each path answered;
then runs schemathesis (all checks) against /openapi.json (target: no failure at all).
Needs `wrk` (apt-get install -y wrk) and `schemathesis` (pip install schemathesis).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- synthetic model


class SyntheticRecommender:
    """Dot-product MF with random factors, the shape of ML-25M filtered to 2010+ (161,900
    users x 20,482 movies, ~19 ratings a user). Same methods as ``Recommender``; its
    answers are meaningless, its costs are those of a 64-factor MF at that size."""

    def __init__(self, users: int, items: int, factors: int = 64, seed: int = 0) -> None:
        import scipy.sparse as sp

        from movierec.data import Catalog, IdMap
        from movierec.titles import TitleIndex

        rng = np.random.default_rng(seed)
        self.users = IdMap(np.arange(1, users + 1, dtype=np.int64))
        self.items = IdMap(np.arange(1, items + 1, dtype=np.int64) * 7)
        words = np.array(["Night", "City", "Love", "Dark", "Last", "Blue", "Star", "River"])
        titles = [f"{words[i % 8]} {words[(i // 8) % 8]} {i}" for i in range(items)]
        self.catalog = Catalog(
            self.items.raw,
            np.array(titles, dtype=object),
            (2010 + np.arange(items) % 10).astype(np.int16),
            np.array(["Drama|Comedy"] * items, dtype=object),
        )
        self.user_factors = rng.standard_normal((users, factors), dtype=np.float32) * 0.1
        self.item_factors = rng.standard_normal((items, factors), dtype=np.float32) * 0.1
        popularity = 1.0 / np.arange(1, items + 1) ** 0.8
        per_user = rng.poisson(19, users).clip(3, 200)
        rows = np.repeat(np.arange(users), per_user)
        cols = rng.choice(items, rows.size, p=popularity / popularity.sum())
        self.seen = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), (users, items))
        self.seen.sum_duplicates()
        self.timestamps = self.seen.copy()
        self.timestamps.data = rng.integers(1.26e9, 1.57e9, self.seen.nnz).astype(np.float64)
        self.popularity = np.asarray(self.seen.sum(axis=0)).ravel()
        self.titles = TitleIndex(self.catalog, self.items, self.popularity)
        self.info = {"model": "synthetic-mf64", "trained_at": None, "metrics": {}}

    def _allowed(self, scores, filters):
        if filters is not None and filters.active:
            scores[:, ~filters.allowed(self.catalog, self.items)] = -np.inf
        return scores

    def _because(self, rec, inputs):
        """Reasons as an id model gives them: the cosine of item factors, top 3 > 0."""
        import dataclasses

        from movierec.explain import INPUTS
        from movierec.topk import BECAUSE

        v = self.item_factors / np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        out = np.full((*rec.items.shape, BECAUSE), -1, dtype=np.int32)
        for b, given in enumerate(inputs):
            given = np.asarray(given)[:INPUTS]
            sim = v[np.maximum(rec.items[b], 0)] @ v[given].T  # (k, m)
            best = np.argsort(-sim, axis=1, kind="stable")[:, :BECAUSE]
            ids = np.where(np.take_along_axis(sim, best, 1) > 0, given[best], -1)
            out[b, :, : ids.shape[1]] = ids
        out[rec.items < 0] = -1
        return dataclasses.replace(rec, because=out)

    def for_users(self, user_idx, k, *, exclude_seen=True, filters=None, because=False):
        from movierec.topk import top_k

        scores = self._allowed(self.user_factors[user_idx] @ self.item_factors.T, filters)
        rec = top_k(scores, k, self.seen[user_idx] if exclude_seen else None)
        if not because:
            return rec
        return self._because(rec, [self.history(u)[0] for u in np.asarray(user_idx)])

    def for_liked(self, item_idx, k, *, filters=None, because=False):
        import scipy.sparse as sp

        from movierec.topk import top_k

        item_idx = np.asarray(item_idx)
        scores = self.item_factors[item_idx].mean(0, keepdims=True) @ self.item_factors.T
        n = len(item_idx)
        liked = sp.csr_matrix((np.ones(n), (np.zeros(n, int), item_idx)), (1, len(self.items)))
        rec = top_k(self._allowed(scores, filters), k, liked)
        return self._because(rec, [item_idx]) if because else rec

    def similar(self, item_idx, k, *, filters=None):
        import scipy.sparse as sp

        from movierec.topk import top_k

        scores = self._allowed(self.item_factors[[item_idx]] @ self.item_factors.T, filters)
        return top_k(scores, k, sp.csr_matrix(([1.0], ([0], [item_idx])), scores.shape))

    def history(self, user_idx):
        row = self.timestamps[user_idx]
        order = np.argsort(-row.data, kind="stable")
        return row.indices[order].astype(np.int32), row.data[order].astype(np.int64)

    def find_movie(self, query, limit=10):
        return self.titles.find(query, limit)

    def search(self, q, limit):
        return self.titles.search(q, limit)


def write_synthetic_store(path: Path, rec: SyntheticRecommender, k: int = 100) -> dict:
    """A store of k random movies per user (``movierec batch``'s default depth) with three
    random reasons each, streamed through ``write_store_chunks`` in blocks of 16,384 users
    (the HTTP benchmark needs the shape, not the answers)."""
    from movierec.store import write_store_chunks

    rng = np.random.default_rng(1)
    n_users, n_items = len(rec.users), len(rec.items)
    block = 16_384

    def blocks():
        for start in range(0, n_users, block):
            users = rec.users.raw[start : start + block]
            movies = rec.items.raw[rng.integers(0, n_items, (len(users), k))]
            scores = np.sort(rng.random((len(users), k), dtype=np.float32), axis=1)[:, ::-1]
            because = rec.items.raw[rng.integers(0, n_items, (len(users), k, 3))]
            yield users, movies, scores, because

    t = time.perf_counter()
    cpu = time.process_time()
    summary = write_store_chunks(
        path, blocks(), rec.catalog, {"run_id": "synthetic"}, progress=False
    )
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        "rows": summary.rows,
        "seconds": round(wall, 2),
        "rows_per_s": round(summary.rows / wall),
        "rows_per_cpu_s": round(summary.rows / cpu),
        "bytes": path.stat().st_size,
    }


def synthetic_app():
    """uvicorn factory: the synthetic model over the store named in the environment, set up
    as `movierec serve` sets up a real one."""
    from movierec.service import create_app, freeze_heap, limit_compute_threads
    from movierec.store import Store

    users, items, store = (os.environ[f"BENCH_{n}"] for n in ("USERS", "ITEMS", "STORE"))
    rec = SyntheticRecommender(int(users), int(items))
    limit_compute_threads(1)
    app = create_app(rec, Store.open(store))
    freeze_heap()
    return app


def serve_synthetic(args: argparse.Namespace) -> None:
    import uvicorn

    from movierec.service.limits import ServerLimits

    os.environ.update(
        BENCH_USERS=str(args.users), BENCH_ITEMS=str(args.items), BENCH_STORE=str(args.store)
    )
    uvicorn.run(
        "bench_service:synthetic_app",
        factory=True,
        app_dir=str(HERE),
        workers=args.workers,
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        log_level="warning",
        **ServerLimits().uvicorn_options(),  # what `movierec serve` runs with
    )


# --------------------------------------------------------------------------- measuring


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("server did not become healthy")


def lua_table(values: list) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


USERS_LUA = """
local ids = %s
init = function(args) math.randomseed(os.time()) end
request = function()
  return wrk.format("GET", "/v1/users/" .. ids[math.random(#ids)] .. "/recommendations?k=10%s")
end
"""
LIKED_LUA = """
local bodies = %s
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
init = function(args) math.randomseed(os.time()) end
request = function()
  return wrk.format("POST", "/v1/recommendations", nil, bodies[math.random(#bodies)])
end
"""


def answered_by(url: str, users: list[int], query: str) -> dict[str, int]:
    """How many of ``users``' requests with ``query`` each path answered (source/fallback)."""
    paths: dict[str, int] = {}
    for user in users:
        with urllib.request.urlopen(f"{url}/v1/users/{user}/recommendations?k=10{query}") as r:
            body = json.loads(r.read())
        key = body["source"] if not body.get("fallback") else f"model ({body['fallback']})"
        paths[key] = paths.get(key, 0) + 1
    return paths


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants (workers), from /proc."""
    parent, ticks = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry.name)] = int(fields[1])
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, args: argparse.Namespace, server_pid: int) -> dict:
    cpu = cpu_seconds(server_pid)
    cmd = [
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server_pid) - cpu

    def unit(value: str, suffix: str) -> float:
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[suffix]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p = {q: unit(*re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out).groups()) for q in ("50", "99")}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "command": " ".join(cmd[:-3] + [script.name, url]),
        "requests": total,
        "rps": round(rps),
        "p50_ms": round(p["50"], 2),
        "p99_ms": round(p["99"], 2),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, sock.groups())) if sock else 0,
        "server_cpu_ms_per_request": round(1e3 * cpu / max(total, 1), 3),
    }


def run_schemathesis(url: str, examples: int, workdir: Path) -> dict:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    cmd = [
        exe,
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "-w",
        "1",
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    cases = re.search(r"(\d+) generated, (\d+) passed", proc.stdout)
    return {
        "command": f"schemathesis run URL/openapi.json --checks all --max-examples {examples}",
        "exit_code": proc.returncode,
        "generated": int(cases.group(1)) if cases else None,
        "summary": tail.strip("= "),
        "seconds": round(time.perf_counter() - t),
        "output": proc.stdout[-4000:],  # failures, or the warnings of a passing run
    }


def popular_movie_ids(store: Path, n: int = 500) -> list[int]:
    """Movies the store recommends most often: a stand-in for "popular" without the model."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT movie_id FROM recs GROUP BY movie_id ORDER BY COUNT(*) DESC LIMIT ?", (n,)
        ).fetchall()
    return [r[0] for r in rows]


def store_users(store: Path, n: int, rng: np.random.Generator) -> list[int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        users = np.array([r[0] for r in conn.execute("SELECT DISTINCT user_id FROM recs")])
    return rng.choice(users, min(n, users.size), replace=False).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="run directory for `movierec serve`")
    ap.add_argument("--store", type=Path, help="store file (with --run; made for --synthetic)")
    ap.add_argument("--synthetic", action="store_true", help="numpy MF of ML-25M 2010+ size")
    ap.add_argument("--users", type=int, default=161_900)
    ap.add_argument("--items", type=int, default=20_482)
    ap.add_argument("--duration", type=int, default=60, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="server processes")
    ap.add_argument("--examples", type=int, default=100, help="schemathesis --max-examples")
    ap.add_argument("--filtered", default=None, help="a genre the stored depth can serve")
    ap.add_argument("--fallback", default=None, help="a genre the store runs short of")
    ap.add_argument("--skip-schemathesis", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--serve-synthetic", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_synthetic:
        return serve_synthetic(args)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    if bool(args.run) == args.synthetic:
        raise SystemExit("give either --run RUN --store STORE, or --synthetic")

    work = Path(tempfile.mkdtemp(prefix="bench_service_"))
    results: dict = {
        "load_average_before": os.getloadavg(),
        "cores": os.cpu_count(),
        "workers": args.workers,
    }
    if args.synthetic:
        args.store = args.store or work / "recs.sqlite"
        t = time.perf_counter()
        rec = SyntheticRecommender(args.users, args.items)
        print(f"synthetic model: {time.perf_counter() - t:.1f}s", file=sys.stderr)
        results["store_write"] = write_synthetic_store(args.store, rec)
        print(f"store: {results['store_write']}", file=sys.stderr)
        del rec
    elif args.store is None:
        raise SystemExit("--store is required with --run")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if args.synthetic:
        cmd = [
            sys.executable,
            __file__,
            "--serve-synthetic",
            "--port",
            str(port),
            "--store",
            str(args.store),
            "--users",
            str(args.users),
            "--items",
            str(args.items),
            "--workers",
            str(args.workers),
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "movierec.cli",
            "serve",
            args.run,
            "--store",
            str(args.store),
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ]
    server = subprocess.Popen(cmd)
    try:
        wait_healthy(url, server)
        rng = np.random.default_rng(0)
        users = store_users(args.store, 10_000, rng)
        popular = popular_movie_ids(args.store)
        bodies = [
            json.dumps({"liked": rng.choice(popular, 10, replace=False).tolist(), "k": 10})
            for _ in range(1000)
        ]
        (work / "users.lua").write_text(USERS_LUA % (lua_table(users), ""))
        (work / "liked.lua").write_text(LIKED_LUA % lua_table(bodies))
        # warm up (imports, caches), then measure
        subprocess.run(
            ["wrk", "-t1", "-c2", "-d3s", "-s", str(work / "users.lua"), url],
            capture_output=True,
            check=True,
        )
        results["stored_user_recs"] = run_wrk(url, work / "users.lua", args, server.pid)
        print(f"stored: {results['stored_user_recs']}", file=sys.stderr)
        results["cold_start_10_liked"] = run_wrk(url, work / "liked.lua", args, server.pid)
        print(f"cold start: {results['cold_start_10_liked']}", file=sys.stderr)
        for name, genre in (("filtered", args.filtered), ("fallback", args.fallback)):
            if genre is None:
                continue
            query = f"&genre={urllib.parse.quote(genre)}"
            script = work / f"{name}.lua"
            script.write_text(USERS_LUA % (lua_table(users), query))
            results[f"{name}_{genre}"] = {
                **run_wrk(url, script, args, server.pid),
                "answered_by": answered_by(url, users[:500], query),
            }
            print(f"{name} {genre}: {results[f'{name}_{genre}']}", file=sys.stderr)
        if not args.skip_schemathesis:
            results["schemathesis"] = run_schemathesis(url, args.examples, work)
            print(f"schemathesis: {results['schemathesis']['summary']}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
    results["load_average_after"] = os.getloadavg()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

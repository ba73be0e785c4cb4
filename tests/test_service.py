"""The HTTP API over the fake recommender: exact answers, every validation rule, JSON errors,
a store swapped underneath a running server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from _close import assert_same_ranking
from _service_fixtures import (
    FakeRecommender,
    live_server,
    make_store,
    raw_recommendations,
    tiny_run,
)
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec import service
from movierec.service import MAX_BODY_BYTES, BodyLimit, create_app, server
from movierec.service import app as service_app
from movierec.store import Store, write_store

INT32_MAX = 2**31 - 1


@pytest.fixture
def fake() -> FakeRecommender:
    return FakeRecommender()


@pytest.fixture
def store(tmp_path: Path, fake: FakeRecommender) -> Iterator[Store]:
    s = Store.open(make_store(tmp_path / "recs.sqlite", fake, k=5, created_at="2024-05-06"))
    yield s
    s.close()


@pytest.fixture
def client(fake: FakeRecommender, store: Store) -> TestClient:
    return TestClient(create_app(fake, store))


@pytest.fixture
def bare(fake: FakeRecommender) -> TestClient:
    """No store: every answer comes from the model."""
    return TestClient(create_app(fake, None))


def ids(items: list[dict]) -> list[int]:
    return [m["movie_id"] for m in items]


def error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    return body


# --------------------------------------------------------------------------- answers


def test_user_recommendations_from_the_store(client: TestClient) -> None:
    r = client.get("/v1/users/1/recommendations", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert (body["user_id"], body["k"], body["source"]) == (1, 3, "store")
    assert ids(body["items"]) == [60, 50, 90]
    first = body["items"][0]
    assert first == {
        "movie_id": 60,
        "title": "Interstellar",
        "year": 2014,
        "genres": ["Drama", "Sci-Fi"],
        "imdb_url": "https://www.imdb.com/title/tt0816692/",
        "tmdb_url": "https://www.themoviedb.org/movie/157336",
        "score": pytest.approx(0.28, abs=1e-6),
        "because": [
            {"movie_id": 2, "title": "Jumanji (1995)"},
            {"movie_id": 1, "title": "Toy Story (1995)"},
        ],
    }
    assert body["fallback"] is None


def test_store_and_model_agree(client: TestClient, bare: TestClient) -> None:
    for user in (1, 2, 3, 7):
        stored = client.get(f"/v1/users/{user}/recommendations?k=5").json()
        live = bare.get(f"/v1/users/{user}/recommendations?k=5").json()
        assert (stored["source"], live["source"]) == ("store", "model")
        assert_same_ranking(
            [ids(stored["items"])],
            [[i["score"] for i in stored["items"]]],
            [ids(live["items"])],
            [[i["score"] for i in live["items"]]],
        )


def test_more_than_the_store_holds_comes_from_the_model(client: TestClient) -> None:
    body = client.get("/v1/users/1/recommendations?k=10").json()
    assert body["source"] == "model"
    assert ids(body["items"]) == [60, 50, 90, 70, 120, 110, 10, 80, 81, 100]
    assert not {1, 2} & set(ids(body["items"]))  # seen movies excluded
    assert len(body["items"]) == 10


def test_fewer_than_k_unseen_movies_drops_padding(bare: TestClient) -> None:
    body = bare.get("/v1/users/3/recommendations?k=100").json()
    assert len(body["items"]) == 12 - 3
    assert all(isinstance(m["score"], float) for m in body["items"])


def test_users_missing_from_one_side(tmp_path: Path, fake: FakeRecommender) -> None:
    users, movie_ids, scores, _ = raw_recommendations(fake, 3, users=np.array([2]))
    # user 99 is in the store only (say, trained by an older run), user 1 in the model only
    write_store(
        tmp_path / "s.sqlite",
        np.append(users, 99),
        (np.vstack([movie_ids, [[100, 555, -1]]]), np.vstack([scores, [[0.5, 0.25, 0]]])),
        fake.catalog,
        progress=False,
    )
    client = TestClient(create_app(fake, Store.open(tmp_path / "s.sqlite")))
    assert client.get("/v1/users/1/recommendations?k=3").json()["source"] == "model"
    assert client.get("/v1/users/2/recommendations?k=3").json()["source"] == "store"
    only_store = client.get("/v1/users/99/recommendations?k=50").json()
    assert only_store["source"] == "store"  # the model cannot do better for this user
    # movie 555 is in neither catalogue: dropped rather than shown without a title
    assert ids(only_store["items"]) == [100]
    error(client.get("/v1/users/98/recommendations"), 404, "not_found")


def test_store_movie_unknown_to_the_model_uses_the_store_catalogue(
    tmp_path: Path, fake: FakeRecommender
) -> None:
    catalog = fake.catalog
    bigger = type(catalog)(
        np.append(catalog.movie_ids, 777),
        np.append(catalog.titles, "Brand New"),
        np.append(catalog.years, 0).astype(np.int16),
        np.append(catalog.genres, "Drama|Comedy"),
    )
    write_store(
        tmp_path / "s.sqlite",
        np.array([1]),
        (np.array([[777, 60]]), np.ones((1, 2))),
        bigger,
        progress=False,
    )
    client = TestClient(create_app(fake, Store.open(tmp_path / "s.sqlite")))
    items = client.get("/v1/users/1/recommendations?k=2").json()["items"]
    assert items[0] == {
        "movie_id": 777,
        "title": "Brand New",
        "year": None,
        "genres": ["Drama", "Comedy"],
        "imdb_url": None,  # the store's movies table has no links
        "tmdb_url": None,
        "score": 1.0,
        "because": [],  # a store written without reasons
    }
    assert items[1]["title"] == "Interstellar"


def test_cold_start_from_ids_and_titles(client: TestClient) -> None:
    r = client.post("/v1/recommendations", json={"liked": [50, "the matrix (1999)"], "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert ids(body["liked"]) == [50, 70]
    assert body["liked"][1] == {
        "movie_id": 70,
        "title": "Matrix, The",
        "year": 1999,
        "genres": ["Action", "Sci-Fi"],
        "imdb_url": "https://www.imdb.com/title/tt0133093/",
        "tmdb_url": "https://www.themoviedb.org/movie/603",
    }
    assert ids(body["items"]) == [60, 120, 110]
    assert not {50, 70} & set(ids(body["items"]))


def test_cold_start_deduplicates_and_defaults_to_k_10(client: TestClient) -> None:
    body = client.post("/v1/recommendations", json={"liked": [50, "Inception", " 50 "]}).json()
    assert ids(body["liked"]) == [50]
    assert body["k"] == 10 and len(body["items"]) == 10


def test_ambiguous_title_is_404_listing_candidates(client: TestClient) -> None:
    body = error(
        client.post("/v1/recommendations", json={"liked": ["hamlet"]}), 404, "unresolved_movies"
    )
    [unresolved] = body["unresolved"]
    assert unresolved["query"] == "hamlet"
    assert ids(unresolved["candidates"]) == [80, 81]  # the more popular first
    r = client.post("/v1/recommendations", json={"liked": ["Hamlet (1996)"], "k": 1})
    assert ids(r.json()["liked"]) == [81]


def test_unknown_title_or_id_is_404_with_closest_matches(client: TestClient) -> None:
    body = error(
        client.post("/v1/recommendations", json={"liked": [1, "Inceptoin", "zzqx", 4242]}),
        404,
        "unresolved_movies",
    )
    by_query = {u["query"]: u for u in body["unresolved"]}
    assert set(by_query) == {"Inceptoin", "zzqx", "4242"}
    assert ids(by_query["Inceptoin"]["candidates"])[0] == 50  # a typo still finds it
    assert by_query["zzqx"]["candidates"] == []
    for odd in ("²", "9" * 30, "-1", "0x10", "١٢"):  # digits find_movie may not parse
        r = client.post("/v1/recommendations", json={"liked": [odd]})
        assert error(r, 404, "unresolved_movies")["unresolved"][0]["query"] == odd
    blank = client.post("/v1/recommendations", json={"liked": ["   "]})
    assert error(blank, 404, "unresolved_movies")["unresolved"][0]["candidates"] == []


def test_similar_movies(client: TestClient) -> None:
    body = client.get("/v1/movies/50/similar?k=3").json()
    assert body["movie"]["title"] == "Inception"
    assert ids(body["items"]) == [110, 120, 70]
    assert 50 not in ids(client.get("/v1/movies/50/similar?k=100").json()["items"])
    error(client.get("/v1/movies/51/similar"), 404, "not_found")


def test_type_ahead_search(client: TestClient) -> None:
    body = client.get("/v1/movies", params={"q": "ali"}).json()
    assert body["query"] == "ali"
    assert ids(body["items"]) == [110, 120]
    assert body["items"][1]["genres"] == []  # "(no genres listed)"
    assert ids(client.get("/v1/movies?q=ali&limit=1").json()["items"]) == [110]
    assert client.get("/v1/movies?q=%E2%98%83").json()["items"] == []  # a snowman
    assert ids(client.get("/v1/movies?q=amelie").json()["items"]) == [90]


def test_history_latest_first(client: TestClient) -> None:
    body = client.get("/v1/users/3/history").json()
    assert body["total"] == 3
    assert ids(body["items"]) == [90, 80, 100]
    assert [m["timestamp"] for m in body["items"]] == [70, 60, 50]
    limited = client.get("/v1/users/3/history?limit=1").json()
    assert (limited["total"], ids(limited["items"])) == (3, [90])
    error(client.get("/v1/users/4/history"), 404, "not_found")


def test_health_and_model_info(client: TestClient, bare: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "store": True}
    assert bare.get("/health").json() == {"status": "ok", "store": False}
    info = client.get("/v1/model").json()
    assert info["model"] == "fake-mf"
    assert info["trained_at"].startswith("2024-01-02")
    assert info["metrics"] == {"sampled": {"hr@10": 0.7, "ndcg@10": 0.5, "mrr": None}}
    assert (info["users"], info["movies"]) == (4, 12)
    assert info["store"]["created_at"] == "2024-05-06"
    assert info["store"]["run_id"] == "fake-run"
    assert (info["store"]["k"], info["store"]["users"]) == (5, 4)
    assert bare.get("/v1/model").json()["store"] is None


def test_openapi_docs_and_web_page(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/users/{user_id}/recommendations",
        "/v1/recommendations",
        "/v1/movies/{movie_id}/similar",
        "/v1/movies",
        "/v1/users/{user_id}/history",
        "/health",
        "/v1/model",
    } <= set(schema["paths"])
    assert "ErrorBody" in schema["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "http" not in docs.text  # no CDN: every URL is ours
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert client.get(asset).status_code == 200  # served here: /docs works offline
    page = client.get("/")
    assert page.status_code == 200 and "<title>movierec</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    error(client.get("/static/nope.js"), 404, "not_found")
    error(client.get("/static/../app.py"), 404, "not_found")


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "url",
    [
        "/v1/users/1/recommendations?k=0",
        "/v1/users/1/recommendations?k=101",
        "/v1/users/1/recommendations?k=ten",
        "/v1/users/1/recommendations?k=1.5",
        f"/v1/users/1/recommendations?k={'9' * 5000}",
        "/v1/users/-1/recommendations",
        f"/v1/users/{INT32_MAX + 1}/recommendations",
        f"/v1/users/{'9' * 5000}/recommendations",
        "/v1/users/abc/recommendations",
        "/v1/users/1e3/recommendations",
        "/v1/users/-1/history",
        "/v1/users/1/history?limit=0",
        "/v1/users/1/history?limit=1001",
        "/v1/movies/-5/similar",
        f"/v1/movies/{INT32_MAX + 1}/similar",
        "/v1/movies/50/similar?k=0",
        "/v1/movies/50/similar?k=101",
        "/v1/movies",
        "/v1/movies?q=",
        f"/v1/movies?q={'a' * 101}",
        "/v1/movies?q=a&limit=0",
        "/v1/movies?q=a&limit=51",
    ],
)
def test_bad_parameters_are_422(client: TestClient, url: str) -> None:
    body = error(client.get(url), 422, "validation_error")
    assert body["detail"] and all({"loc", "msg", "type"} == set(d) for d in body["detail"])


def test_bounds_themselves_are_accepted(client: TestClient) -> None:
    assert client.get("/v1/users/1/recommendations?k=100").status_code == 200
    assert client.get("/v1/users/1/recommendations?k=1").status_code == 200
    error(client.get(f"/v1/users/{INT32_MAX}/recommendations"), 404, "not_found")
    error(client.get("/v1/users/0/history?limit=1000"), 404, "not_found")
    assert client.get(f"/v1/movies?q={'a' * 100}&limit=50").status_code == 200
    liked = {"liked": list(range(1, 101)), "k": 100}
    assert client.post("/v1/recommendations", json=liked).status_code == 404  # unknown ids


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        "Inception",
        None,
        {"liked": []},
        {"liked": "Inception"},
        {"liked": [1] * 101},
        {"liked": [1.5]},
        {"liked": [True]},
        {"liked": [None]},
        {"liked": [[1]]},
        {"liked": [{"id": 1}]},
        {"liked": [-1]},
        {"liked": [INT32_MAX + 1]},
        {"liked": [10**40]},
        {"liked": [""]},
        {"liked": ["x" * 301]},
        {"liked": [1], "k": 0},
        {"liked": [1], "k": 101},
        {"liked": [1], "k": "5"},
        {"liked": [1], "k": 2.5},
        {"liked": [1], "extra": True},
    ],
)
def test_bad_bodies_are_422(client: TestClient, body: object) -> None:
    error(client.post("/v1/recommendations", json=body), 422, "validation_error")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "application/json"),
        (b"{", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
        (b'{"liked": [1e999]}', "application/json"),
        (b'{"liked": [NaN]}', "application/json"),
        (b'{"liked": [' + b"9" * 5000 + b"]}", "application/json"),
        (b'{"liked": [1]}', "text/plain"),
        (b"liked=1", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_are_4xx_json(client: TestClient, content: bytes, content_type: str):
    r = client.post("/v1/recommendations", content=content, headers={"content-type": content_type})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"] in {"validation_error", "bad_request"}


def test_unknown_paths_and_methods_are_json(client: TestClient) -> None:
    error(client.get("/v2/anything"), 404, "not_found")
    r = client.delete("/v1/movies")
    error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["allow"]
    error(client.get("/v1/recommendations"), 405, "method_not_allowed")


# --------------------------------------------------------------------------- body limit


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = json.dumps({"liked": ["x" * MAX_BODY_BYTES]})
    error(
        client.post(
            "/v1/recommendations", content=big, headers={"content-type": "application/json"}
        ),
        413,
        "payload_too_large",
    )


def test_body_limit_counts_bytes_not_the_header(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length at all
        yield b'{"liked": ["'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"]}'

    r = client.post(
        "/v1/recommendations", content=chunks(), headers={"content-type": "application/json"}
    )
    error(r, 413, "payload_too_large")
    # a small chunked body passes through whole
    r = client.post(
        "/v1/recommendations",
        content=iter([b'{"liked": [', b'50], "k": 2}']),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200 and len(r.json()["items"]) == 2


def test_body_limit_ignores_a_lying_content_length() -> None:
    reached: list[bytes] = []

    async def app(scope, receive, send) -> None:
        reached.append((await receive())["body"])

    sent: list[dict] = []
    messages = iter(
        [
            {"type": "http.request", "body": b"a" * 600, "more_body": True},
            {"type": "http.request", "body": b"a" * 600, "more_body": False},
        ]
    )

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", b"10")]}
    asyncio.run(BodyLimit(app, max_bytes=1000)(scope, receive, send))
    assert reached == [] and sent[0]["status"] == 413

    messages = iter([{"type": "http.request", "body": b"a" * 1000, "more_body": False}])
    sent.clear()
    asyncio.run(BodyLimit(app, max_bytes=1000)(scope, receive, send))
    assert reached == [b"a" * 1000] and sent == []


# --------------------------------------------------------------------------- never 5xx

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    liked=st.lists(st.integers(-5, 2**40) | st.text(max_size=40) | JSON, max_size=6) | JSON,
    k=JSON | st.integers(-5, 200),
)
def test_arbitrary_bodies_never_5xx(client: TestClient, liked: object, k: object) -> None:
    r = client.post("/v1/recommendations", json={"liked": liked, "k": k})
    assert r.status_code in {200, 404, 422}, r.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(segment=st.text(max_size=30), q=st.text(max_size=120), k=st.text(max_size=12))
def test_arbitrary_parameters_never_5xx(client: TestClient, segment: str, q: str, k: str) -> None:
    from urllib.parse import quote

    s = quote(segment, safe="")
    for url, params in [
        (f"/v1/users/{s}/recommendations", {"k": k}),
        (f"/v1/users/{s}/history", {"limit": k}),
        (f"/v1/movies/{s}/similar", {"k": k}),
        ("/v1/movies", {"q": q, "limit": k}),
    ]:
        r = client.get(url, params=params)
        assert r.status_code < 500, (url, params, r.text)


# --------------------------------------------------------------------------- store swaps


def test_a_new_store_is_picked_up_without_restart(
    tmp_path: Path, fake: FakeRecommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_store(tmp_path / "recs.sqlite", fake, k=3, run_id="first")
    client = TestClient(create_app(fake, Store.open(path)))
    assert client.get("/v1/model").json()["store"]["run_id"] == "first"
    make_store(path, fake, k=5, run_id="second")
    # checked at most once a second: right after the swap the old store still answers
    assert client.get("/v1/model").json()["store"]["run_id"] == "first"
    monkeypatch.setattr(service_app, "STORE_CHECK_INTERVAL_S", 0.0)
    assert client.get("/v1/model").json()["store"]["run_id"] == "second"
    assert client.get("/v1/users/1/recommendations?k=5").json()["source"] == "store"


def test_requests_during_repeated_swaps_never_fail(
    tmp_path: Path, fake: FakeRecommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real server, client threads hammering it, the store rewritten under them."""
    monkeypatch.setattr(service_app, "STORE_CHECK_INTERVAL_S", 0.0)
    path = tmp_path / "recs.sqlite"
    users, movie_ids, scores, _ = raw_recommendations(fake, 5)

    def write(version: int) -> None:  # every score of version v is v
        write_store(
            path,
            users,
            (movie_ids, np.full(scores.shape, float(version))),
            fake.catalog,
            {"run_id": str(version)},
            progress=False,
        )

    write(0)
    store = Store.open(path)
    expected = {
        int(u): [int(m) for m in row if m >= 0] for u, row in zip(users, movie_ids, strict=True)
    }
    failures: list[str] = []
    versions: set[float] = set()
    stop = threading.Event()

    with live_server(create_app(fake, store)) as url:

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                n = 0
                while not stop.is_set():
                    user = int(users[n % len(users)])
                    n += 1
                    r = http.get(f"/v1/users/{user}/recommendations?k=5")
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                        continue
                    body = r.json()
                    got = {m["score"] for m in body["items"]}
                    if (
                        body["source"] != "store"
                        or ids(body["items"]) != expected[user]
                        or len(got) != 1
                    ):
                        failures.append(r.text)
                    versions.update(got)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        # on a loaded machine requests may be slow: each swap waits until a response of the
        # current version was seen (or a few seconds passed), so swaps and reads interleave
        for version in range(1, 16):
            write(version)
            deadline = time.monotonic() + 5.0
            while float(version) not in versions and time.monotonic() < deadline and not failures:
                threading.Event().wait(0.01)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failures == []
    assert len(versions) >= 2, versions
    store.close()


# --------------------------------------------------------------------------- wiring


@pytest.fixture
def fake_loader(fake: FakeRecommender, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``Recommender.load`` answers the fake and records the run directories it loads."""
    import sys
    import types

    loaded: list[str] = []
    fake_module = types.ModuleType("movierec.recommend")

    class Recommender:
        @staticmethod
        def load(run_dir: str) -> FakeRecommender:
            loaded.append(run_dir)
            return fake

    fake_module.Recommender = Recommender  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "movierec.recommend", fake_module)
    return loaded


def test_serve_loads_the_run_and_the_store(
    tmp_path: Path, fake: FakeRecommender, fake_loader: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    loaded = fake_loader
    ran: list[tuple] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.append((app, kw)))
    # process-wide settings: record them rather than apply them to the test session
    monkeypatch.setattr(server, "limit_compute_threads", lambda n: ran.append(("threads", n)))
    monkeypatch.setattr(server, "freeze_heap", lambda: ran.append(("freeze",)))
    monkeypatch.setattr(server, "raise_open_files_limit", lambda want: want)
    store_path = make_store(tmp_path / "recs.sqlite", fake)

    service.serve("runs/x", store_path, port=9123)
    assert ran[:2] == [("threads", 1), ("freeze",)]
    [(app, kw)] = ran[2:]
    assert loaded == ["runs/x"]
    assert (kw["host"], kw["port"], kw["access_log"]) == ("127.0.0.1", 9123, False)
    assert TestClient(app).get("/health").json() == {"status": "ok", "store": True}

    with pytest.raises(FileNotFoundError):  # a missing store fails before loading the model
        service.serve("runs/y", tmp_path / "missing.sqlite")
    with pytest.raises(FileNotFoundError):
        service.serve("runs/y", tmp_path / "missing.sqlite", workers=2)
    assert loaded == ["runs/x"]

    # several workers: the run is loaded here once to check it, then each worker builds
    # its app from the environment through the factory
    ran.clear()
    for name in server._ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: ran.append((target, kw)))
    service.serve("runs/z", store_path, workers=2)
    [(target, kw)] = ran
    factory = "movierec.service.server:app_from_env"
    assert (target, kw["factory"], kw["workers"]) == (factory, True, 2)
    assert loaded == ["runs/x", "runs/z"]
    app = service.app_from_env()
    assert loaded == ["runs/x", "runs/z", "runs/z"]
    assert TestClient(app).get("/v1/users/1/recommendations?k=2").json()["source"] == "store"


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_applies_the_limits(
    fake_loader: list[str], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    import pickle

    import uvicorn

    ran: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: ran.append(kw))
    monkeypatch.setattr(server, "limit_compute_threads", lambda n: None)
    monkeypatch.setattr(server, "freeze_heap", lambda: None)
    files: list[int] = []
    monkeypatch.setattr(server, "raise_open_files_limit", lambda want: files.append(want) or 0)
    limits = {"limit_concurrency": 77, "timeout_keep_alive": 3, "request_timeout": 2.5}
    service.serve("runs/x", workers=workers, max_head_bytes=9000, **limits)
    [kw] = ran
    assert {k: kw[k] for k in ("limit_concurrency", "timeout_keep_alive")} == {
        "limit_concurrency": 77,
        "timeout_keep_alive": 3,
    }
    protocol = pickle.loads(pickle.dumps(kw["http"]))  # workers receive it pickled
    assert protocol.func is service.GuardedHttpTools
    assert protocol.keywords == {"request_timeout": 2.5, "max_head_bytes": 9000}
    assert kw["ws"] == "none" and files == [77 + 256]
    with pytest.raises(ValueError, match="request_timeout"):  # before anything is loaded
        service.serve("runs/y", workers=workers, request_timeout=0)
    assert "runs/y" not in fake_loader


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("served") / "run", source="/srv/data/ml-secret")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    "damage",
    [
        lambda run: (run / "model.safetensors").write_bytes(
            (run / "model.safetensors").read_bytes()[:-10]
        ),
        lambda run: (run / "manifest.json").unlink(),
    ],
    ids=["truncated-weights", "no-manifest"],
)
def test_serve_refuses_a_damaged_run_before_uvicorn_starts(
    real_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, damage
) -> None:
    import shutil

    import uvicorn

    from movierec.artifacts import ArtifactError

    def no_uvicorn(*a: object, **kw: object) -> None:
        raise AssertionError("uvicorn started on a damaged run")

    monkeypatch.setattr(uvicorn, "run", no_uvicorn)
    run = Path(shutil.copytree(real_run, tmp_path / "run"))
    damage(run)
    with pytest.raises(ArtifactError) as caught:
        service.serve(run, workers=workers)
    assert str(run) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_refuses_a_bad_store_before_loading_the_model(
    tmp_path: Path, fake: FakeRecommender, fake_loader: list[str], monkeypatch, workers: int
) -> None:
    import sqlite3

    import uvicorn

    from movierec.errors import MovierecError
    from movierec.store import StoreError

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("uvicorn started"))
    path = make_store(tmp_path / "recs.sqlite", fake)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'null' WHERE key = 'k'")
    conn.close()
    with pytest.raises(StoreError, match="meta 'k' is null") as caught:
        service.serve("runs/x", path, workers=workers)
    assert isinstance(caught.value, MovierecError) and fake_loader == []


def test_model_info_is_what_was_loaded_even_after_the_run_moves(
    real_run: Path, tmp_path: Path, fake: FakeRecommender
) -> None:
    import shutil

    run = Path(shutil.copytree(real_run, tmp_path / "run"))
    store = make_store(tmp_path / "recs.sqlite", fake, run=str(run.resolve()))
    client = TestClient(service.load_app(run, store.resolve()))
    before = client.get("/v1/model")
    assert before.status_code == 200, before.text
    run.rename(tmp_path / "moved")  # e.g. an operator tidying up runs/ while it serves
    after = client.get("/v1/model")
    assert after.status_code == 200, after.text
    assert after.json() == before.json()
    body = after.json()
    assert body["model"] == "gmf" and body["info"]["data"]["source"] == "ml-secret"
    assert body["store"]["path"] == "recs.sqlite" and body["store"]["meta"]["run"] == "run"
    assert str(tmp_path) not in after.text and "/srv/" not in after.text


def test_a_damaged_store_swapped_in_is_logged_and_the_old_one_keeps_serving(
    tmp_path: Path,
    fake: FakeRecommender,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import os
    import sqlite3

    path = make_store(tmp_path / "recs.sqlite", fake, k=5, run_id="good")
    client = TestClient(create_app(fake, Store.open(path)))
    monkeypatch.setattr(service_app, "STORE_CHECK_INTERVAL_S", 0.0)
    bad = make_store(tmp_path / "bad.sqlite", fake, k=5, run_id="bad")
    with sqlite3.connect(bad) as conn:
        conn.execute("UPDATE meta SET value = 'null' WHERE key = 'k'")
    conn.close()
    os.replace(bad, path)
    with caplog.at_level(logging.WARNING, logger="movierec.store"):
        for _ in range(3):
            assert client.get("/health").status_code == 200
            r = client.get("/v1/users/1/recommendations?k=3")
            assert r.status_code == 200 and r.json()["source"] == "store"
            assert client.get("/v1/model").json()["store"]["run_id"] == "good"
    [record] = caplog.records  # one line, once, however often the file is looked at
    assert "meta 'k' is null" in record.getMessage() and "\n" not in record.getMessage()


def test_cli_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from movierec.cli import app

    calls: list[tuple] = []
    monkeypatch.setattr(service, "serve", lambda *a, **kw: calls.append((a, kw)))
    result = CliRunner().invoke(app, ["serve", "runs/x", "--store", "s.sqlite", "--port", "9000"])
    assert result.exit_code == 0, result.output
    options = {"host": "127.0.0.1", "port": 9000, "workers": 1, "access_log": False}
    [(args, kwargs)] = calls
    assert args == ("runs/x", "s.sqlite") and kwargs.items() >= options.items()
    limits = service.ServerLimits()  # the CLI's defaults are the library's
    assert [kwargs[f] for f in ("limit_concurrency", "timeout_keep_alive")] == [
        limits.limit_concurrency,
        limits.timeout_keep_alive,
    ]
    assert [kwargs[f] for f in ("request_timeout", "max_head_bytes")] == [
        limits.request_timeout,
        limits.max_head_bytes,
    ]

    def missing(*a: object, **kw: object) -> None:
        raise FileNotFoundError("no recommendation store at s.sqlite")

    monkeypatch.setattr(service, "serve", missing)
    result = CliRunner().invoke(app, ["serve", "runs/x", "--store", "s.sqlite"])
    assert result.exit_code == 2
    assert "no recommendation store at s.sqlite" in result.output

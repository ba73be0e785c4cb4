"""The HTTP API's filters, ``because`` lists, IMDb/TMDB links, genre list and /report, over
the fake recommender (answers checkable by eye) and over a real run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _service_fixtures import MOVIES, USERS, FakeRecommender, make_store, tiny_run
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec import service
from movierec.filters import MAX_EXCLUDE
from movierec.recommend import Recommender
from movierec.service import create_app
from movierec.store import Store, write_store

GENRES = {m[0]: set(m[3].split("|")) - {"(no genres listed)"} for m in MOVIES}
YEARS = {m[0]: m[2] for m in MOVIES}
TITLES = {m[0]: f"{m[1]} ({m[2]})" for m in MOVIES}  # as a ``because`` entry names them


@pytest.fixture
def fake() -> FakeRecommender:
    return FakeRecommender()


@pytest.fixture
def store(tmp_path: Path, fake: FakeRecommender) -> Iterator[Store]:
    """k=5 per user; user 1's rows: 60, 50, 90, 70, 120."""
    s = Store.open(make_store(tmp_path / "recs.sqlite", fake, k=5))
    yield s
    s.close()


@pytest.fixture
def client(fake: FakeRecommender, store: Store) -> TestClient:
    return TestClient(create_app(fake, store))


@pytest.fixture
def bare(fake: FakeRecommender) -> TestClient:
    return TestClient(create_app(fake, None))


def ids(items: list[dict]) -> list[int]:
    return [m["movie_id"] for m in items]


def user_recs(client: TestClient, user: int = 1, **params: object) -> dict:
    r = client.get(f"/v1/users/{user}/recommendations", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------- known users


def test_filters_answered_from_the_store(client: TestClient) -> None:
    body = user_recs(client, k=2, genre="sci-fi")  # case-insensitive
    assert (body["source"], body["fallback"]) == ("store", None)
    assert ids(body["items"]) == [60, 50]  # the stored rows with Sci-Fi, in stored order
    assert body["filters"] == {
        "genre": ["Sci-Fi"],
        "exclude_genre": [],
        "years": None,
        "exclude": [],
    }
    # a movie without genres has none of the excluded ones: kept
    body = user_recs(client, k=2, exclude_genre=["Sci-Fi", "Drama"])
    assert (body["source"], ids(body["items"])) == ("store", [90, 120])
    body = user_recs(client, k=3, years="2000-2019")
    assert (body["source"], ids(body["items"])) == ("store", [60, 50, 90])
    body = user_recs(client, k=3, exclude=[60, 50])
    assert (body["source"], ids(body["items"])) == ("store", [90, 70, 120])
    assert body["filters"]["exclude"] == [60, 50]


def test_store_running_short_falls_back_to_the_model(client: TestClient) -> None:
    body = user_recs(client, k=3, genre="Drama")  # one stored row is a drama
    assert (body["source"], body["fallback"]) == ("model", "filter")
    assert ids(body["items"]) == [60, 80, 81]
    assert all("Drama" in GENRES[m] for m in ids(body["items"]))
    body = user_recs(client, k=2, years="-1980")  # no stored row is that old
    assert (body["source"], body["fallback"], ids(body["items"])) == ("model", "filter", [110, 100])
    assert body["filters"]["years"] == [0, 1980]


def test_fallback_says_why_the_model_answered(
    client: TestClient, bare: TestClient, tmp_path: Path, fake: FakeRecommender
) -> None:
    assert user_recs(client, k=5)["fallback"] is None
    deep = user_recs(client, k=6)
    assert (deep["source"], deep["fallback"]) == ("model", "depth")
    live = user_recs(bare, k=3, genre="Drama")
    assert (live["source"], live["fallback"], ids(live["items"])) == ("model", None, [60, 80, 81])
    # a store without user 1
    users, movies = np.array([2]), np.array([[60, 110]])
    write_store(
        tmp_path / "two.sqlite", users, (movies, np.ones((1, 2))), fake.catalog, progress=False
    )
    other = TestClient(create_app(fake, Store.open(tmp_path / "two.sqlite")))
    missing = user_recs(other, k=2)
    assert (missing["source"], missing["fallback"]) == ("model", "missing")


def test_store_answers_what_the_model_cannot_improve(tmp_path: Path, fake: FakeRecommender) -> None:
    """A user only the store knows, and a user whose every unseen movie is stored (fewer
    rows than the store's depth), are answered by the store even when the filters leave
    fewer than k."""
    users = np.array([2, 3, 99])
    unseen_of_3 = [60, 50, 110, 10, 70, 120, 1, 2, 81, -1]  # all 9, in a depth-10 store
    movies = np.array(
        [[60, 110, 120, 1, 2, 10, 80, 81, 90, 100], unseen_of_3, [100, 60, 555] + [-1] * 7]
    )
    scores = np.where(movies >= 0, 1.0, 0.0)
    write_store(tmp_path / "s.sqlite", users, (movies, scores), fake.catalog, progress=False)
    client = TestClient(create_app(fake, Store.open(tmp_path / "s.sqlite")))
    only_store = user_recs(client, 99, k=5, genre="Drama")
    assert (only_store["source"], ids(only_store["items"])) == ("store", [100, 60])
    every = user_recs(client, 3, k=2, genre="Horror")
    assert (every["source"], every["fallback"], ids(every["items"])) == ("store", None, [110])
    full = user_recs(client, 2, k=2, genre="Romance")  # 10 rows: the model may know more
    assert (full["source"], full["fallback"]) == ("store", None)
    assert user_recs(client, 2, k=3, genre="Romance")["fallback"] == "filter"
    # movies the model does not know (555) never pass a filter
    assert 555 not in ids(user_recs(client, 99, k=3, exclude=[1])["items"])


def test_filtered_model_answers_match_a_filtered_top_k(bare: TestClient) -> None:
    full = ids(user_recs(bare, 3, k=100)["items"])
    for params in ({"genre": "Sci-Fi"}, {"years": "1990-1999"}, {"exclude_genre": "Action"}):
        got = ids(user_recs(bare, 3, k=100, **params)["items"])
        assert got == [m for m in full if m in got] and got  # the same order, a subset
        assert set(full) - set(got)  # something was filtered out
    both = user_recs(bare, 3, k=100, genre=["Sci-Fi", "Action"], years="1995-2014", exclude=[60])
    assert all(GENRES[m] & {"Sci-Fi", "Action"} for m in ids(both["items"]))
    assert all(1995 <= YEARS[m] <= 2014 for m in ids(both["items"]))
    assert 60 not in ids(both["items"]) and ids(both["items"])
    nothing = user_recs(bare, 3, genre="Horror", exclude=110)  # Alien: the one horror movie
    assert nothing["items"] == []


# --------------------------------------------------------------------------- because


def test_because_lists_the_users_own_movies(client: TestClient, bare: TestClient) -> None:
    for c in (client, bare):
        for user, (_, history) in USERS.items():
            watched = {m for m, _ in history}
            body = user_recs(c, user, k=5)
            for item in body["items"]:
                assert len(item["because"]) <= 3
                for entry in item["because"]:
                    assert set(entry) == {"movie_id", "title"}
                    assert entry["movie_id"] in watched
                    assert entry["title"] == TITLES[entry["movie_id"]]
    stored, live = user_recs(client, 2, k=5), user_recs(bare, 2, k=5)
    assert [m["because"] for m in stored["items"]] == [m["because"] for m in live["items"]]
    first = stored["items"][0]  # Interstellar: most like Inception, then The Matrix
    assert (first["movie_id"], ids(first["because"])) == (60, [50, 70])


def test_liked_list_with_filters_and_because(client: TestClient) -> None:
    body = {"liked": [50], "k": 3, "genre": ["drama"]}
    r = client.post("/v1/recommendations", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert ids(answer["items"]) == [60, 100, 80]
    assert answer["filters"]["genre"] == ["Drama"]
    assert [m["because"] for m in answer["items"]] == [
        [{"movie_id": 50, "title": "Inception (2010)"}]
    ] * 3
    body = {"liked": [50, "Toy Story"], "k": 12, "exclude_genre": ["Sci-Fi"], "years": "1990-"}
    items = client.post("/v1/recommendations", json=body).json()["items"]
    assert items and all("Sci-Fi" not in GENRES[m] and YEARS[m] >= 1990 for m in ids(items))
    assert {b["movie_id"] for m in items for b in m["because"]} <= {50, 1}
    excluded = client.post("/v1/recommendations", json={"liked": [50], "k": 3, "exclude": [60]})
    assert 60 not in ids(excluded.json()["items"])


def test_similar_with_filters(client: TestClient) -> None:
    r = client.get("/v1/movies/50/similar", params={"k": 3, "years": "1990-1999"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert ids(body["items"])[0] == 70
    assert all(1990 <= YEARS[m] <= 1999 for m in ids(body["items"]))
    assert body["filters"]["years"] == [1990, 1999]
    same_genre = client.get("/v1/movies/50/similar?k=100&genre=Horror&exclude=110").json()
    assert ids(same_genre["items"]) == []  # Alien was the one horror movie
    assert "because" not in body["items"][0]


# --------------------------------------------------------------------------- bad filters


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("genre=Nope", "genre", "unknown genre 'Nope'"),
        ("exclude_genre=Westerns", "exclude_genre", "unknown genre 'Westerns'"),
        ("years=abc", "years", "expected YEAR"),
        ("years=2020-2000", "years", "reversed"),
        ("years=1999-2000-2001", "years", "expected YEAR"),
        ("years=" + "1" * 21, "years", "at most 20 characters"),
        ("exclude=-1", "exclude", "greater than or equal to 0"),
        ("exclude=abc", "exclude", "valid integer"),
        (f"exclude={2**31}", "exclude", "less than or equal to"),
        ("genre=" + "x" * 51, "genre", "at most 50 characters"),
        ("genre=", "genre", "at least 1 character"),
        ("&".join(["genre=Drama"] * 31), "genre", "at most 30 items"),
        ("&".join(["exclude=1"] * (MAX_EXCLUDE + 1)), "exclude", f"at most {MAX_EXCLUDE} items"),
    ],
)
def test_bad_filter_parameters_are_422(client: TestClient, query: str, field: str, says: str):
    for path in ("/v1/users/1/recommendations", "/v1/movies/50/similar"):
        r = client.get(f"{path}?{query}")
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "validation_error"
        [problem] = body["detail"]
        assert problem["loc"][:2] == ["query", field]
        assert says in problem["msg"], problem
        assert "\n" not in problem["msg"]


def test_unknown_genre_lists_the_known_ones(client: TestClient) -> None:
    msg = client.get("/v1/users/1/recommendations?genre=Nope").json()["detail"][0]["msg"]
    assert "Sci-Fi" in msg and "Romance" in msg


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"genre": ["Nope"]}, "genre"),
        ({"genre": "Drama"}, "genre"),
        ({"genre": [1]}, "genre"),
        ({"genre": ["Drama"] * 31}, "genre"),
        ({"exclude_genre": ["x" * 51]}, "exclude_genre"),
        ({"years": 1999}, "years"),
        ({"years": "nineties"}, "years"),
        ({"exclude": ["5"]}, "exclude"),
        ({"exclude": [1.5]}, "exclude"),
        ({"exclude": [-1]}, "exclude"),
        ({"exclude": list(range(MAX_EXCLUDE + 1))}, "exclude"),
    ],
)
def test_bad_filter_fields_are_422(client: TestClient, extra: dict, field: str) -> None:
    r = client.post("/v1/recommendations", json={"liked": [50], **extra})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert any(field in d["loc"] for d in r.json()["detail"]), r.json()


def test_bounds_are_accepted(client: TestClient) -> None:
    many = {"exclude": list(range(MAX_EXCLUDE)), "genre": ["Drama"] * 30}
    assert client.get("/v1/users/1/recommendations", params=many).status_code == 200
    r = client.post("/v1/recommendations", json={"liked": [50], **many})
    assert r.status_code == 200, r.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    genre=st.lists(st.text(max_size=12), max_size=3),
    years=st.text(max_size=12),
    exclude=st.lists(st.text(max_size=12), max_size=3),
)
def test_arbitrary_filters_never_5xx(
    client: TestClient, genre: list[str], years: str, exclude: list[str]
) -> None:
    params = {"genre": genre, "exclude_genre": genre, "years": years, "exclude": exclude}
    for path in ("/v1/users/1/recommendations", "/v1/movies/50/similar"):
        r = client.get(path, params=params)
        assert r.status_code in {200, 422}, r.text
    body = {"liked": [50], "genre": genre, "years": years, "exclude_genre": genre}
    assert client.post("/v1/recommendations", json=body).status_code in {200, 422}


# --------------------------------------------------------------------------- links, genres


def test_movies_link_to_imdb_and_tmdb(client: TestClient) -> None:
    movie = client.get("/v1/movies/1/similar?k=1").json()["movie"]
    assert movie["imdb_url"] == "https://www.imdb.com/title/tt0114709/"
    assert movie["tmdb_url"] == "https://www.themoviedb.org/movie/862"
    found = {m["movie_id"]: m for m in client.get("/v1/movies?q=a&limit=50").json()["items"]}
    assert found[10]["imdb_url"] == "https://www.imdb.com/title/tt0113277/"
    assert found[10]["tmdb_url"] is None  # Heat has no TMDB id here
    assert (found[120]["imdb_url"], found[120]["tmdb_url"]) == (None, None)
    big = client.get("/v1/movies?q=inception").json()["items"][0]
    assert big["imdb_url"] == "https://www.imdb.com/title/tt1375666/"  # 7 digits, no padding
    history = client.get("/v1/users/3/history").json()["items"]
    assert all(m["imdb_url"].startswith("https://www.imdb.com/title/tt") for m in history)


def test_genre_list(client: TestClient) -> None:
    genres = client.get("/v1/genres").json()["genres"]
    names = [g["name"] for g in genres]
    assert names == sorted(names) and "(no genres listed)" not in names
    counts = {g["name"]: g["movies"] for g in genres}
    assert (counts["Drama"], counts["Sci-Fi"], counts["Horror"]) == (4, 4, 1)
    for name in names:  # every listed genre is accepted by the filters
        assert client.get("/v1/users/1/recommendations", params={"genre": name}).status_code == 200


# --------------------------------------------------------------------------- report, docs

REPORT = b"<!doctype html><html><head><style>h1 { color: red }</style></head><h1>run</h1></html>"


def test_report_is_served_with_the_strict_policy(fake: FakeRecommender) -> None:
    r = TestClient(create_app(fake, report=REPORT)).get("/report")
    assert r.status_code == 200 and r.content == REPORT
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert "style-src 'self' 'sha256-" in csp  # the report's own <style>, by its hash
    assert r.headers["x-content-type-options"] == "nosniff"
    none = TestClient(create_app(fake)).get("/report")
    assert none.status_code == 404 and none.json()["error"] == "not_found"
    # /v1/model says whether there is one (the page shows its link only then)
    assert TestClient(create_app(fake, report=REPORT)).get("/v1/model").json()["report"] is True
    assert TestClient(create_app(fake)).get("/v1/model").json()["report"] is False


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("filters") / "run")


def test_load_app_serves_the_runs_report(real_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(real_run, tmp_path / "run"))
    assert TestClient(service.load_app(run)).get("/report").status_code == 404
    (run / "report.html").write_bytes(REPORT)
    assert TestClient(service.load_app(run)).get("/report").content == REPORT


def test_real_run_filters_and_because(real_run: Path) -> None:
    rec = Recommender.load(real_run)
    client = TestClient(create_app(rec))
    genres = [g["name"] for g in client.get("/v1/genres").json()["genres"]]
    assert genres
    user = int(rec.users.raw[0])
    body = user_recs(client, user, k=5, genre=genres[0])
    watched = {
        m["movie_id"] for m in client.get(f"/v1/users/{user}/history?limit=1000").json()["items"]
    }
    assert body["source"] == "model" and body["items"]
    assert all(genres[0] in m["genres"] for m in body["items"])
    assert any(m["because"] for m in body["items"])
    assert all({b["movie_id"] for b in m["because"]} <= watched for m in body["items"])
    liked = client.post("/v1/recommendations", json={"liked": sorted(watched)[:3], "k": 5})
    assert liked.status_code == 200, liked.text
    assert all(len(m["because"]) <= 3 for m in liked.json()["items"])


def test_real_run_and_its_batch_store(real_run: Path, tmp_path: Path) -> None:
    """``movierec batch``'s store of a real run: a filtered request is answered from the
    stored depth while it lasts, by the model past it; both with the same reasons."""
    from movierec.batch import write_batch

    rec = Recommender.load(real_run)
    path = tmp_path / "recs.sqlite"
    write_batch(rec, path, 8, {"run": "real"}, progress=False)
    store = Store.open(path)
    client, bare = TestClient(create_app(rec, store)), TestClient(create_app(rec))
    user = int(rec.users.raw[0])
    stored = [m["movie_id"] for m in user_recs(client, user, k=8)["items"]]
    liked_genre = {m["genres"][0] for m in user_recs(client, user, k=8)["items"] if m["genres"]}
    genre = sorted(liked_genre)[0]
    kept = [m for m in stored if genre in rec.catalog.genres[rec.items.index(m)[0]].split("|")]
    from_store = user_recs(client, user, k=len(kept), genre=genre)
    assert (from_store["source"], ids(from_store["items"])) == ("store", kept)
    live = user_recs(bare, user, k=len(kept), genre=genre)
    assert ids(live["items"]) == kept
    assert [m["because"] for m in live["items"]] == [m["because"] for m in from_store["items"]]
    short = user_recs(client, user, k=len(kept) + 1, genre=genre)
    assert (short["source"], short["fallback"]) == ("model", "filter")
    assert ids(short["items"])[: len(kept)] == kept
    store.close()


def test_openapi_documents_the_additions(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/genres", "/report"} <= set(schema["paths"])
    for path in ("/v1/users/{user_id}/recommendations", "/v1/movies/{movie_id}/similar"):
        params = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert {"genre", "exclude_genre", "years", "exclude"} <= set(params)
        assert all(params[n].get("description") for n in ("genre", "exclude_genre", "years"))
        assert "2000-2019" in params["years"]["description"]
        assert params["exclude"]["schema"]["maxItems"] == MAX_EXCLUDE
    parts = schema["components"]["schemas"]
    assert {"genre", "exclude_genre", "years", "exclude"} <= set(
        parts["LikedRequest"]["properties"]
    )
    assert parts["RecommendedMovie"]["properties"]["because"]["description"]
    assert parts["Movie"]["properties"]["imdb_url"]["description"]
    assert parts["UserRecommendations"]["properties"]["fallback"]["description"]
    report = schema["paths"]["/report"]["get"]["responses"]
    assert "text/html" in report["200"]["content"]

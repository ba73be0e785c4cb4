"""The server's connection limits against a real uvicorn in a thread: idle and slow clients,
oversized request heads, the concurrency limit, and that none of it hurts normal clients."""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from _service_fixtures import FakeRecommender, live_server

from movierec.service import create_app
from movierec.service.limits import MAX_HEAD_BYTES, ServerLimits

IDLE = 1000
# request line never ends / headers never end / nothing at all / only a stray blank line
PARTIAL = [b"GET /he", b"GET /health HTTP/1.1\r\nHost: x\r\n", b"", b"\r\n"]


@pytest.fixture
def open_files() -> Iterator[None]:
    """Room for IDLE client sockets plus the server's end of each, in this one process."""
    want = 2 * IDLE + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} open files; the hard limit (ulimit -Hn) is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def connect(url: str, data: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port_of(url)), timeout=10)
    if data:
        s.sendall(data)
    return s


def read_all(s: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes; raises TimeoutError if it does not."""
    s.settimeout(timeout)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_health_answers_while_1000_idle_connections_are_held_and_they_time_out(
    open_files: None,
) -> None:
    limits = ServerLimits(request_timeout=5.0)
    with live_server(create_app(FakeRecommender()), limits) as url:
        started = time.monotonic()
        idle = [connect(url, PARTIAL[i % len(PARTIAL)]) for i in range(IDLE)]
        try:
            t = time.monotonic()
            # accepted after all of them (one listen queue): the server holds the 1,000 now
            r = httpx.get(f"{url}/health", timeout=5)
            answered = time.monotonic()
            assert r.status_code == 200 and r.json()["status"] == "ok"
            assert answered - t < 2.0, f"/health took {answered - t:.2f}s"
            assert answered - started < limits.request_timeout, "too slow to test while held"
            # then every one of them is answered 408 and closed at the request timeout
            for s in idle:
                left = started + limits.request_timeout + 10 - time.monotonic()
                answer = read_all(s, max(left, 0.1))
                assert status(answer) == 408 and b'"request_timeout"' in answer
            assert time.monotonic() - started >= limits.request_timeout - 0.5
        finally:
            for s in idle:
                s.close()
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200


def test_past_the_concurrency_limit_requests_get_503_not_a_hang() -> None:
    with live_server(create_app(FakeRecommender()), ServerLimits(limit_concurrency=20)) as url:
        idle = [connect(url) for _ in range(25)]
        try:
            r = httpx.get(f"{url}/health", timeout=5)
            assert r.status_code == 503
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 5
        while httpx.get(f"{url}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "still 503 after the idle clients left"
            time.sleep(0.05)


@pytest.mark.parametrize(
    "request_bytes",
    [
        # a complete head with one huge header
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        # a huge request line
        b"GET /v1/movies?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        # many small headers
        b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n",
    ],
)
def test_an_oversized_request_head_gets_431(request_bytes: bytes) -> None:
    with live_server(create_app(FakeRecommender())) as url:
        answer = read_all(connect(url, request_bytes), 5)
        assert status(answer) == 431 and b'"headers_too_large"' in answer
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200


def test_a_head_that_keeps_growing_is_cut_off_at_the_limit() -> None:
    """No end of headers ever comes: the server must answer (and stop buffering) once the
    head passes the limit, not wait for the end or the timeout."""
    with live_server(create_app(FakeRecommender()), ServerLimits(request_timeout=30)) as url:
        s = connect(url, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, t = 0, time.monotonic()
        try:
            while sent < 100 * MAX_HEAD_BYTES:
                s.sendall(b"a" * 1024)
                sent += 1024
                time.sleep(0.0005)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed while we were still sending: fine
        answer = read_all(s, 5)
        assert time.monotonic() - t < 10
        assert sent < 100 * MAX_HEAD_BYTES or answer, "the server took all of it"
        assert answer == b"" or status(answer) == 431


def test_heads_under_the_limit_and_keep_alive_clients_are_unaffected() -> None:
    limits = ServerLimits(request_timeout=1.5, timeout_keep_alive=10)
    with live_server(create_app(FakeRecommender()), limits) as url:
        big = {"x-ok": "a" * (MAX_HEAD_BYTES // 2)}
        with httpx.Client(base_url=url, timeout=5) as http:
            # one connection, requests further apart than the request timeout in total
            for _ in range(3):
                assert http.get("/health", headers=big).status_code == 200
                time.sleep(0.9)
            assert http.get("/v1/movies?q=ali").status_code == 200


def test_a_slow_answer_is_not_cut_by_the_request_timeout() -> None:
    class Slow(FakeRecommender):
        def similar(self, item_idx: int, k: int, **options: object):
            time.sleep(1.5)
            return super().similar(item_idx, k, **options)

    with live_server(create_app(Slow()), ServerLimits(request_timeout=0.5)) as url:
        r = httpx.get(f"{url}/v1/movies/50/similar?k=2", timeout=10)
        assert r.status_code == 200 and len(r.json()["items"]) == 2


def test_a_body_that_never_finishes_is_dropped_at_the_timeout() -> None:
    with live_server(create_app(FakeRecommender()), ServerLimits(request_timeout=1.0)) as url:
        head = (
            b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        t = time.monotonic()
        answer = read_all(connect(url, head + b'{"liked": '), 5)
        assert answer == b"" and time.monotonic() - t < 4  # closed; the app saw a disconnect
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"limit_concurrency": 0},
        {"limit_concurrency": 1.5},
        {"max_head_bytes": -1},
        {"request_timeout": 0},
        {"timeout_keep_alive": float("nan")},
        {"request_timeout": True},
    ],
)
def test_limits_must_be_positive(bad: dict) -> None:
    [name] = bad
    with pytest.raises(ValueError, match=name):
        ServerLimits(**bad)


def test_serve_raises_the_open_files_soft_limit_up_to_the_hard_one() -> None:
    from movierec.service.limits import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_open_files_limit(200) == 200  # already enough: untouched
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 256
        want = 300 if hard == resource.RLIM_INFINITY else min(300, hard)
        assert raise_open_files_limit(want) == want
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == want
        if hard != resource.RLIM_INFINITY:  # never past the hard limit
            assert raise_open_files_limit(hard + 1) == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

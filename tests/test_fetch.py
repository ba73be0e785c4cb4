"""fetch against a local HTTP server on 127.0.0.1: nothing here touches the internet."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _data_fixtures import dat_release, zip_dir
from typer.testing import CliRunner

from movierec.cli import app
from movierec.movielens import FetchError, fetch, load


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, the folder it serves)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/datasets", root / "datasets"
    finally:
        httpd.shutdown()
        httpd.server_close()


def publish_ml10m(tmp_path: Path, www: Path, md5: str | None = None) -> bytes:
    """An ml-10m.zip shaped like GroupLens's (one folder, ml-10M100K) and its .md5."""
    www.mkdir(parents=True, exist_ok=True)
    release = dat_release(tmp_path / "build", one_m=False)
    archive = zip_dir(release, www / "ml-10m.zip", "ml-10M100K")
    data = archive.read_bytes()
    digest = md5 or hashlib.md5(data).hexdigest()
    (www / "ml-10m.zip.md5").write_text(f"MD5 (ml-10m.zip) = {digest}\n")
    return data


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_fetch_verifies_unpacks_and_loads(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, www = server
    publish_ml10m(tmp_path, www)
    cache = tmp_path / "cache"
    path = fetch("ml-10m", cache, base_url=base, progress=False)
    assert path == cache / "ml-10m"
    assert sorted(p.name for p in path.iterdir()) == ["movies.dat", "ratings.dat"]
    assert leftovers(cache) == ["ml-10m"]  # no temp files, the ml-10M100K folder renamed
    monkeypatch.setenv("MOVIEREC_DATA", str(cache))
    ds, report = load("ml-10m")
    assert ds.name == "ml-10m" and report.format == "dat-10m" and len(ds.interactions) == 4


def test_fetch_again_is_a_no_op(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, www = server
    publish_ml10m(tmp_path, www)
    cache = tmp_path / "cache"
    first = fetch("ml-10m", cache, base_url=base, progress=False)
    (www / "ml-10m.zip").unlink()  # a second download would now fail
    assert fetch("ml-10m", cache, base_url=base, progress=False) == first
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch("ml-10m", cache, base_url=base, progress=False, force=True)
    assert leftovers(cache) == ["ml-10m"]


def test_force_replaces_an_existing_copy(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, www = server
    publish_ml10m(tmp_path, www)
    cache = tmp_path / "cache"
    (cache / "ml-10m").mkdir(parents=True)
    (cache / "ml-10m" / "stale.txt").write_text("old")
    path = fetch("ml-10m", cache, base_url=base, progress=False, force=True)
    assert sorted(p.name for p in path.iterdir()) == ["movies.dat", "ratings.dat"]
    assert leftovers(cache) == ["ml-10m"]


def test_checksum_mismatch_leaves_nothing(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, www = server
    publish_ml10m(tmp_path, www, md5="0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(
        FetchError, match=r"checksum mismatch .* expected md5 0{32}, got [0-9a-f]{32}"
    ):
        fetch("ml-10m", cache, base_url=base, progress=False)
    assert leftovers(cache) == []


def test_caller_checksum(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, www = server
    data = publish_ml10m(tmp_path, www)
    (www / "ml-10m.zip.md5").unlink()
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match=r"no checksum published .* --checksum"):
        fetch("ml-10m", cache, base_url=base, progress=False)
    wrong = "sha256:" + "f" * 64
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch("ml-10m", cache, base_url=base, progress=False, checksum=wrong)
    assert leftovers(cache) == []
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    assert fetch("ml-10m", cache, base_url=base, progress=False, checksum=good).is_dir()
    with pytest.raises(FetchError, match="not md5:HEX"):
        fetch("ml-1m", cache, base_url=base, progress=False, checksum="crc:1234")


def test_base_url_from_the_environment(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, www = server
    publish_ml10m(tmp_path, www)
    monkeypatch.setenv("MOVIEREC_BASE_URL", base)
    monkeypatch.setenv("MOVIEREC_DATA", str(tmp_path / "env-cache"))
    assert fetch("ml-10m", progress=False) == tmp_path / "env-cache" / "ml-10m"


def test_corrupt_archive(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, www = server
    www.mkdir(parents=True)
    (www / "ml-1m.zip").write_bytes(b"not a zip at all")
    (www / "ml-1m.zip.md5").write_text(hashlib.md5(b"not a zip at all").hexdigest())
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match="cannot unpack"):
        fetch("ml-1m", cache, base_url=base, progress=False)
    assert leftovers(cache) == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_is_a_clear_error(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{closed_port()}/datasets"
    with pytest.raises(FetchError, match=r"cannot reach .*ml-25m\.zip\.md5 .* are you offline"):
        fetch("ml-25m", tmp_path / "cache", base_url=base, progress=False)
    assert leftovers(tmp_path / "cache") == []


def test_unknown_release(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unknown release 'ml-5m'"):
        fetch("ml-5m", tmp_path)


def test_cli_fetch(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, www = server
    publish_ml10m(tmp_path, www)
    monkeypatch.setenv("MOVIEREC_BASE_URL", base)
    result = CliRunner().invoke(app, ["fetch", "ml-10m", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "c" / "ml-10m") in result.output


def test_cli_fetch_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    result = CliRunner().invoke(app, ["fetch", "ml-1m", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach")

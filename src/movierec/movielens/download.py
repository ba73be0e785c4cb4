"""Fetching a release from GroupLens: download, verify the checksum, unpack into the cache.

Nothing is left behind on failure and the unpacked folder appears atomically
(``movierec.atomic``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from movierec import atomic
from movierec.movielens.errors import FetchError
from movierec.movielens.files import RELEASES, default_cache_dir

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"


def fetch(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    checksum: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Download, verify and unpack release ``name`` into ``cache_dir/name``; return that path.

    The checksum is ``checksum`` (``md5:HEX``, ``sha256:HEX`` or bare hex) when given, else the
    ``.md5`` file GroupLens publishes beside each zip. ``base_url`` defaults to
    ``$MOVIEREC_BASE_URL``, then GroupLens. Nothing is left behind on failure; the unpacked
    folder appears atomically. An existing copy is returned as is unless ``force``.
    """
    if name not in RELEASES:
        raise FetchError(f"unknown release {name!r}; known: {', '.join(RELEASES)}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / name
    if target.is_dir() and not force:
        return target
    base = (base_url or os.environ.get("MOVIEREC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{name}.zip"
    algorithm, expected = _parse_checksum(checksum) if checksum else ("md5", _published_md5(url))
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as cleanup:
        atomic.remove_stale(target)  # downloads and unpacked folders of killed fetches
        part = atomic.beside(target)
        cleanup.callback(part.unlink, missing_ok=True)
        digest = _download(url, part, algorithm, progress)
        if digest != expected:
            raise FetchError(
                f"checksum mismatch for {url}: expected {algorithm} {expected}, got {digest}; "
                "the download was discarded"
            )
        unpacked = atomic.beside(target)
        unpacked.mkdir()
        cleanup.callback(shutil.rmtree, unpacked, ignore_errors=True)
        try:
            with zipfile.ZipFile(part) as archive:
                archive.extractall(unpacked)
        except (OSError, zipfile.BadZipFile) as e:
            raise FetchError(f"cannot unpack {url}: {e}") from None
        entries = [p for p in unpacked.iterdir() if p.name != "__MACOSX"]
        content = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        _move_into_place(content, target, unpacked)
    return target


def _move_into_place(content: Path, target: Path, scratch: Path) -> None:
    if target.exists():
        old = scratch / ".replaced"
        os.rename(target, old)  # directories: renamed, never replaced
    try:
        os.rename(content, target)
    except OSError as e:  # another process finished first
        if not target.is_dir():
            raise FetchError(f"cannot move the release into {target}: {e}") from None


def _parse_checksum(text: str) -> tuple[str, str]:
    algorithm, _, value = text.strip().rpartition(":")
    value = value.lower()
    if not algorithm:
        algorithm = {32: "md5", 64: "sha256"}.get(len(value), "")
    if algorithm not in ("md5", "sha256") or not re.fullmatch(r"[0-9a-f]+", value):
        raise FetchError(f"checksum {text!r} is not md5:HEX, sha256:HEX or a bare md5/sha256 hex")
    if len(value) != {"md5": 32, "sha256": 64}[algorithm]:
        raise FetchError(f"checksum {text!r}: wrong length for {algorithm}")
    return algorithm, value


def _urlopen(url: str) -> IO[bytes]:
    try:
        return urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as e:
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(
            f"cannot reach {url} ({reason}); are you offline? You can download the zip "
            "yourself and pass its path to --data"
        ) from None


def _published_md5(url: str) -> str:
    try:
        with _urlopen(url + ".md5") as response:
            text = response.read(4096).decode("ascii", "replace")
    except FetchError as e:
        if "HTTP 404" in str(e):
            raise FetchError(
                f"no checksum published at {url}.md5: pass --checksum md5:HEX or sha256:HEX"
            ) from None
        raise
    m = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if m is None:
        raise FetchError(f"{url}.md5 holds no md5 checksum")
    return m.group(0).lower()


def _download(url: str, dest: Path, algorithm: str, progress: bool) -> str:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    hasher = hashlib.new(algorithm)
    with _urlopen(url) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        received = 0
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task(url.rsplit("/", 1)[-1], total=total)
            try:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    hasher.update(chunk)
                    received += len(chunk)
                    bar.update(task, advance=len(chunk))
            except (OSError, TimeoutError) as e:
                raise FetchError(f"download of {url} interrupted: {e}") from None
    if total is not None and received != total:
        raise FetchError(f"download of {url} truncated: {received:,} of {total:,} bytes")
    return hasher.hexdigest()

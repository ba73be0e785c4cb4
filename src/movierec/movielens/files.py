"""Finding a release's files: in a directory, a ``.zip``, the cache or the embedded set.

Which format a release is in follows from the files present (each may be gzipped); a file
present both plain and gzipped (``ratings.csv`` beside ``ratings.csv.gz``) is refused.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO, TypeVar

import pyarrow as pa

from movierec.movielens.errors import DataError

# Release name -> the folder its GroupLens zip unpacks into.
RELEASES: dict[str, str] = {
    "ml-latest-small": "ml-latest-small",
    "ml-100k": "ml-100k",
    "ml-1m": "ml-1m",
    "ml-10m": "ml-10M100K",
    "ml-20m": "ml-20m",
    "ml-25m": "ml-25m",
    "ml-32m": "ml-32m",
}
EMBEDDED = "ml-latest-small"

# What reading a file, a zip member or a gzip stream may raise when the file is damaged.
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile)

_FORMATS = (  # (format, ratings file, movies file), in order of preference
    ("csv", "ratings.csv", "movies.csv"),
    ("dat", "ratings.dat", "movies.dat"),
    ("100k", "u.data", "u.item"),
)

_T = TypeVar("_T")


def default_cache_dir() -> Path:
    """``$MOVIEREC_DATA``, else ``~/.cache/movierec``."""
    env = os.environ.get("MOVIEREC_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "movierec"


@dataclass(frozen=True)
class File:
    """One file of a release: on disk or a zip member, maybe gzip-compressed."""

    display: str  # how messages name it
    path: Path  # the file, or the zip archive holding it
    member: str | None = None

    @property
    def gzipped(self) -> bool:
        return (self.member or self.path.name).endswith(".gz")

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        with ExitStack() as stack:
            if self.member is None:
                f: BinaryIO = stack.enter_context(open(self.path, "rb"))
            else:
                archive = stack.enter_context(zipfile.ZipFile(self.path))
                f = stack.enter_context(archive.open(self.member))
            if self.gzipped:
                f = stack.enter_context(gzip.GzipFile(fileobj=f))
            yield f

    @contextmanager
    def arrow_stream(self) -> Iterator[pa.NativeFile | BinaryIO]:
        """A stream for pyarrow: native for files on disk, Python's for zip members."""
        if self.member is None:
            codec = "gzip" if self.gzipped else None
            with pa.input_stream(str(self.path), compression=codec) as s:
                yield s
        else:
            with self.open() as f:
                yield f

    def unreadable(self, e: Exception) -> DataError:
        return DataError(self.display, None, f"cannot read the file: {e}")

    def read_bytes(self) -> bytes:
        return self._read(lambda f: f.read())

    def first_line(self) -> bytes:
        return self._read(lambda f: f.readline(1 << 16))

    def _read(self, how: Callable[[BinaryIO], _T]) -> _T:
        try:
            with self.open() as f:
                return how(f)
        except READ_ERRORS as e:
            raise self.unreadable(e) from None


@dataclass(frozen=True)
class Release:
    name: str
    display: str
    format: str  # "csv" | "dat-1m" | "dat-10m" | "100k"
    ratings: File
    movies: File
    genres: File | None = None  # u.genre
    links: File | None = None  # links.csv (CSV releases; optional)


def find_release(source: str | Path) -> Release:
    """The release at ``source``: a directory, a ``.zip`` or a release name."""
    text = str(source)
    path = Path(source).expanduser()
    if text in RELEASES and not path.exists():
        return _named_release(text)
    if path.is_dir():
        return _dir_release(path, name=path.name, display=text.rstrip("/") or text)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(text, None, "not a directory or a .zip archive")
        return _zip_release(path)
    raise DataError(
        text, None, f"no such file or directory, nor a release name ({', '.join(RELEASES)})"
    )


def _named_release(name: str) -> Release:
    if name == EMBEDDED:
        root = resources.files("movierec") / "datasets" / EMBEDDED
        if not isinstance(root, Path) or not root.is_dir():
            raise DataError(name, None, "the embedded data set is missing from this install")
        return _dir_release(root, name=name, display=EMBEDDED)
    cache = default_cache_dir()
    if (cache / name).is_dir():
        return _dir_release(cache / name, name=name, display=str(cache / name))
    if (cache / f"{name}.zip").is_file():
        return _zip_release(cache / f"{name}.zip", name=name)
    raise DataError(
        name, None, f"not downloaded (looked in {cache}): run `movierec fetch {name}` first"
    )


def _pick(available: dict[str, list[File]], display: str, name: str) -> Release:
    """``available``: the files present by name without ``.gz``; a name may have two."""
    for fmt, ratings, movies in _FORMATS:
        if ratings in available:
            if movies not in available:
                raise DataError(display, None, f"{movies} is missing beside {ratings}")
            if fmt == "dat":
                fmt = "dat-1m" if "users.dat" in available else "dat-10m"
            genres = links = None
            if fmt == "100k" and "u.genre" in available:
                genres = _only(available, "u.genre", display)
            if fmt == "csv" and "links.csv" in available:
                links = _only(available, "links.csv", display)
            return Release(
                name,
                display,
                fmt,
                _only(available, ratings, display),
                _only(available, movies, display),
                genres,
                links,
            )
    found = ", ".join(sorted(available)) or "nothing"
    raise DataError(
        display,
        None,
        "no MovieLens files: expected ratings.csv + movies.csv, ratings.dat + movies.dat "
        f"or u.data + u.item; found {found}",
    )


def _only(available: dict[str, list[File]], base: str, display: str) -> File:
    """The one file named ``base`` (maybe gzipped): both ``x`` and ``x.gz`` is an error."""
    files = available[base]
    if len(files) > 1:
        a, b = sorted(Path(f.member or f.path).name for f in files)
        raise DataError(display, None, f"both {a} and {b} are present: remove one")
    return files[0]


def _by_base(files: Iterator[tuple[str, File]]) -> dict[str, list[File]]:
    out: dict[str, list[File]] = {}
    for filename, f in files:
        out.setdefault(_base(filename), []).append(f)
    return out


def _dir_release(path: Path, *, name: str, display: str) -> Release:
    entries = [p for p in path.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    files = _by_base((p.name, File(f"{display}/{p.name}", p)) for p in entries if p.is_file())
    subdirs = [p for p in entries if p.is_dir()]
    if not any(f[1] in files for f in _FORMATS) and len(subdirs) == 1:
        return _dir_release(subdirs[0], name=name, display=f"{display}/{subdirs[0].name}")
    return _pick(files, display, name)


def _zip_release(path: Path, name: str | None = None) -> Release:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(str(path), None, f"cannot read the archive: {e}") from None
    members = [m for m in members if not m.startswith("__MACOSX/")]
    tops = {m.split("/", 1)[0] for m in members if "/" in m}
    prefix = f"{tops.pop()}/" if len(tops) == 1 and all("/" in m for m in members) else ""
    files = _by_base(
        (m[len(prefix) :], File(f"{path}:{m}", path, m))
        for m in members
        if "/" not in m[len(prefix) :]
    )
    default_name = prefix.rstrip("/") or path.stem
    return _pick(files, str(path), name or default_name)


def _base(filename: str) -> str:
    return filename[:-3] if filename.endswith(".gz") else filename

"""The errors of reading and fetching MovieLens data."""

from __future__ import annotations

from pathlib import Path

from movierec.errors import MovierecError


class DataError(MovierecError, ValueError):
    """A problem in a data file: ``str`` reads ``<file> line <n>: <problem>``."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path} line {line}"
        super().__init__(f"{where}: {message}")


class FetchError(MovierecError, RuntimeError):
    """A release could not be downloaded, verified or unpacked."""

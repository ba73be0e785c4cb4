"""Writing so that a reader sees the old content or the new one, never a part of either.

Every writer of a file or directory that someone may read (a run, a store, a checkpoint, a
log, a Parquet export, a data set) writes beside its target and renames:

- ``replacing(target)`` yields a temporary path in the target's directory (one file
  system, so the rename is atomic); when the block ends it fsyncs the file, renames it
  over ``target`` and fsyncs the directory; when the block raises, it removes the file.
  Before it starts, it removes what killed writers of ``target`` left (``remove_stale``).
- ``beside(target, kind)`` names such siblings, one scheme for files and directories:
  ``.NAME.KIND-PID-HEX`` (``KIND`` is ``tmp`` for what is being written, ``old`` for a
  replaced directory kept for the instant between two renames). The writer's process id
  in the name lets the next writer tell a leftover of a killed process (``stale``) from
  the work of a live one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

SIDE = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-(?P<hex>[0-9a-f]+)")


def tag() -> str:
    """``PID-HEX``: this process and a random part (threads and repeated writes differ)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def beside(target: str | os.PathLike[str], kind: str = "tmp", tag_: str | None = None) -> Path:
    """The sibling ``.NAME.KIND-PID-HEX`` of ``target``."""
    target = Path(target)
    return target.with_name(f".{target.name}.{kind}-{tag_ or tag()}")


def fsync(path: str | os.PathLike[str]) -> None:
    """Flush a file's or a directory's data to disk (directories: where they can be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def publish(written: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Make the finished file ``written`` durable and rename it over ``target``."""
    fsync(written)
    os.replace(written, target)
    fsync(Path(target).parent)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(
    target: str | os.PathLike[str], *, remove: Callable[[Path], None] = _remove
) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it when the block ends (see the
    module docstring); ``remove`` cleans up after a failed block."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = beside(target)
    try:
        yield tmp
        publish(tmp, target)
    except BaseException:
        remove(tmp)
        raise


def write_text(target: str | os.PathLike[str], text: str) -> None:
    with replacing(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (someone else's counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def siblings(target: str | os.PathLike[str]) -> list[Path]:
    """Every ``.NAME.KIND-PID-HEX`` beside ``target``, newest first."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    found = []
    for p in target.parent.iterdir():
        m = SIDE.fullmatch(p.name)
        if m and m["name"] == target.name:
            with contextlib.suppress(FileNotFoundError):
                found.append((p.stat().st_mtime_ns, p))
    return [p for _, p in sorted(found, reverse=True)]


def stale(path: Path) -> bool:
    """A sibling whose writer is no longer running."""
    m = SIDE.fullmatch(path.name)
    return bool(m) and not running(int(m["pid"]))


def remove_stale(target: str | os.PathLike[str]) -> list[Path]:
    """Delete the siblings of ``target`` left by killed processes; what was removed."""
    removed = []
    for p in siblings(target):
        if stale(p):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed

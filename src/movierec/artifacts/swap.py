"""Replacing a run whole (package docstring): its work directory, the publish / carry swap,
and the repair of a swap a killed process left half done."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from movierec import atomic
from movierec.artifacts.layout import CHECKPOINTS, MANIFEST, ArtifactError
from movierec.artifacts.manifest import describe, verify, write_manifest
from movierec.training.files import CHECKPOINT, TRAIN_LOG

_WORK_FILES = {CHECKPOINTS, TRAIN_LOG}  # what fit() left in a run_dir before work dirs existed


def check_replaceable(path: str | Path) -> None:
    """Raise ArtifactError unless ``path`` is absent, empty, a run, or fit's working files."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ArtifactError(path, "exists and is not a directory")
    names = {p.name for p in path.iterdir()}
    if names and MANIFEST not in names and not names <= _WORK_FILES:
        raise ArtifactError(path, "exists and is not a movierec run directory; not replacing it")


def work_dir(path: str | Path) -> Path:
    """Where a training that will become the run ``path`` keeps its working files."""
    path = Path(path)
    return path.parent / f".{path.name}.work"


def begin_run(
    path: str | Path, *, resume: bool = False, main: bool = True
) -> tuple[Path, list[str]]:
    """Prepare to train the run ``path``: ``(work directory for fit's run_dir, notes)``.

    Repairs an interrupted replacement of ``path`` first (``recover``) and refuses a
    ``path`` that is not a run. A fresh training removes the work directory (an interrupted
    training's files); ``resume`` keeps it, or, when it has no checkpoint, starts from the
    checkpoint of the run at ``path`` (a finished run trained further). The notes are
    one-line sentences for the user. ``main``: False on DDP ranks other than 0, which
    only get the path.
    """
    path = Path(path)
    work = work_dir(path)
    if not main:
        return work, []
    notes = recover(path)
    check_replaceable(path)
    if not resume and work.exists():
        shutil.rmtree(work)
        notes.append(f"removed {work}: an interrupted training's files (--resume continues one)")
    if resume:
        if (work / CHECKPOINT).is_file():
            notes.append(f"resuming the interrupted training in {work}")
        elif (path / CHECKPOINT).is_file():
            _carry(path / CHECKPOINTS, work / CHECKPOINTS)
            notes.append(f"resuming from {path / CHECKPOINT}")
        else:
            notes.append(f"nothing to resume in {work} or {path}: training from the start")
    return work, notes  # fit creates it with its first file


def recover(path: str | Path) -> list[str]:
    """Finish what a killed ``publish`` of ``path`` left: when ``path`` is missing, rename
    the complete new run (or else the backup of the old one) back into place; remove the
    temporary directories of processes that are no longer running. Returns what it did,
    one sentence each."""
    path = Path(path)
    notes: list[str] = []
    dead = [p for p in atomic.siblings(path) if p.is_dir() and atomic.stale(p)]
    if not path.exists():
        for where in candidates(path, dead):
            if _complete(where):
                os.rename(where, path)
                atomic.fsync(path.parent)
                notes.append(f"restored {path} from {where.name} (an interrupted replacement)")
                break
    notes += [f"removed {p}: left by a killed process" for p in atomic.remove_stale(path)]
    return notes


def candidates(path: Path, sides: list[Path]) -> list[Path]:
    """Where the run ``path`` is while ``path`` itself is missing: for each backup (newest
    first), the new run written by the same process, then the backup itself."""
    out = []
    for old in (p for p in sides if atomic.SIDE.fullmatch(p.name)["kind"] == "old"):
        new = old.with_name(old.name.replace(".old-", ".tmp-", 1))
        out += [p for p in (new, old) if p in sides]
    return out


def _complete(where: Path) -> bool:
    try:
        verify(where)
    except ArtifactError:
        return False
    return True


def publish(
    path: Path,
    writers: dict[str, Callable[[Path], None]],
    carry: Path,
    keep: Sequence[Path] = (),
) -> Path:
    """Write every file into a temporary sibling, add the manifest, the ``carry``
    directory's files and the ``keep`` files that exist (linked, outside the manifest), swap
    it in (package docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = atomic.tag()
    tmp = atomic.beside(path, "tmp", tag)
    tmp.mkdir()
    try:
        files = {}
        for name, write in writers.items():
            write(tmp / name)
            files[name] = describe(tmp / name)
        write_manifest(tmp, files)
        for f in tmp.iterdir():
            atomic.fsync(f)
        atomic.fsync(tmp)
        _carry(carry, tmp / carry.name)
        for f in keep:
            if f.is_file():
                link_or_copy(f, tmp / f.name)
        if path.exists():
            old = atomic.beside(path, "old", tag)
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            atomic.fsync(path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
            atomic.fsync(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _carry(src: Path, dst: Path) -> None:
    """Link (or copy) the finished files of directory ``src`` into ``dst``."""
    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not atomic.SIDE.fullmatch(f.name):  # not a file being written
            link_or_copy(f, dst / f.name)


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src``, or a copy where linking is not possible."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

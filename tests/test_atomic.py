"""atomic: a reader sees the old file or the new one; leftovers of killed writers go."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from movierec import atomic

SRC = Path(__file__).resolve().parents[1] / "src" / "movierec"


def test_replacing_swaps_in_the_finished_file_and_leaves_nothing_beside(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic.replacing(target) as tmp:
        assert tmp.parent == tmp_path and atomic.SIDE.fullmatch(tmp.name)
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_killed_writer_leaves_the_old_file_and_the_next_write_removes_its_leftover(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    code = (
        "import os, sys; from movierec import atomic\n"
        "with atomic.replacing(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half'); os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code, str(target)]).returncode == 9
    [left] = [p for p in tmp_path.iterdir() if p != target]
    assert target.read_text() == "old" and atomic.stale(left)
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_remove_stale_keeps_the_work_of_live_processes_and_other_targets(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    names = [
        f".run.tmp-{dead}-0123abcd",  # a killed writer's file
        f".run.old-{dead}-0123abcd",  # and directory
        f".run.tmp-{os.getpid()}-0123abcd",  # this process's, being written
        f".runs.tmp-{dead}-0123abcd",  # another target's
    ]
    for i, name in enumerate(names):
        (tmp_path / name).mkdir() if i == 1 else (tmp_path / name).write_text("")
    removed = atomic.remove_stale(tmp_path / "run")
    assert sorted(p.name for p in removed) == sorted(names[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_beside_is_one_scheme_for_files_and_directories(tmp_path: Path) -> None:
    a, b = atomic.beside(tmp_path / "x.sqlite"), atomic.beside(tmp_path / "x.sqlite", "old")
    assert a != b and a.parent == tmp_path
    assert atomic.SIDE.fullmatch(a.name)["name"] == "x.sqlite"
    assert atomic.SIDE.fullmatch(b.name)["kind"] == "old"
    assert int(atomic.SIDE.fullmatch(a.name)["pid"]) == os.getpid()


def test_every_file_replacement_goes_through_atomic() -> None:
    """One mechanism: no module renames a file over another by itself (directories are
    swapped with os.rename by artifacts/swap.py and movielens/download.py)."""
    offenders = [
        f"{p.name}:{n}"
        for p in SRC.rglob("*.py")
        if p.name != "atomic.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"os\.replace\(|\.replace\(\s*path\)|tempfile\.mk", line)
    ]
    assert offenders == [], offenders

"""Dependency floors: versions below them have known security faults (issue 12, item 11)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FLOORS = {
    "torch": "2.6",  # torch.load(weights_only=True) can be bypassed before 2.6
    "starlette": "0.49.1",  # Range-header denial of service before 0.49.1
}


def _requirements() -> dict[str, Requirement]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {r.name: r for r in map(Requirement, deps)}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_declared_floor_excludes_the_faulty_releases(name: str) -> None:
    req = _requirements()[name]
    floor = Version(FLOORS[name])
    below = Version(f"{floor.major}.{floor.minor}.{max(floor.micro - 1, 0)}")
    if floor.micro == 0:
        below = Version(f"{floor.major}.{floor.minor - 1}.99")
    assert below not in req.specifier, f"{req} admits {below}"
    assert floor in req.specifier, f"{req} refuses {floor}"


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_installed_version_is_above_the_floor(name: str) -> None:
    assert Version(version(name).split("+")[0]) >= Version(FLOORS[name])

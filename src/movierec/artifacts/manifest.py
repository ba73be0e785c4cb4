"""The manifest: every file's sha256 and size, written last, checked before anything is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from movierec.artifacts.layout import FORMAT, MANIFEST, REQUIRED, VERSION, ArtifactError
from movierec.checkpoint import file_sha256


def write_json(path: Path, obj: Any) -> None:
    """A run's JSON file (config, metrics, the manifest)."""
    path.write_text(json.dumps(obj, indent=2, allow_nan=True) + "\n")


def describe(path: Path) -> dict[str, Any]:
    """A file's entry in the manifest."""
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def write_manifest(directory: Path, files: dict[str, dict[str, Any]]) -> None:
    """The manifest of ``directory``, listing ``files`` (name -> ``describe``)."""
    write_json(directory / MANIFEST, {"format": FORMAT, "version": VERSION, "files": files})


def verify(path: Path) -> dict[str, Any]:
    """The manifest of the run directory ``path``, once every file it lists is present and
    unaltered; ``ArtifactError`` naming the first one that is not."""
    mpath = path / MANIFEST
    if not path.is_dir():
        raise ArtifactError(path, "no such run directory")
    if not mpath.is_file():
        raise ArtifactError(mpath, "missing: not a movierec run directory, or an incomplete one")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
        ok = manifest.get("format") == FORMAT and isinstance(files, dict)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ArtifactError(mpath, f"unreadable: {e}") from None
    if not ok:
        raise ArtifactError(mpath, f"not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise ArtifactError(mpath, f"version {manifest.get('version')!r}; expected {VERSION}")
    for name in REQUIRED:
        if name not in files:
            raise ArtifactError(path / name, "not listed in the manifest")
    for name, want in files.items():
        p = path / name
        if Path(name).name != name or name == MANIFEST:
            raise ArtifactError(mpath, f"invalid file name {name!r}")
        if not p.is_file():
            raise ArtifactError(p, "missing")
        size = p.stat().st_size
        if size != want.get("bytes"):
            expected = want.get("bytes")
            raise ArtifactError(p, f"truncated or extended: {size} bytes, manifest says {expected}")
        if file_sha256(p) != want.get("sha256"):
            raise ArtifactError(p, "altered: its sha256 does not match the manifest")
    return manifest

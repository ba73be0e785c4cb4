"""Training checkpoints a resume can trust: digest-checked and tied to their data.

``publish(tmp, path)`` puts a finished checkpoint file in place: its sha256 first goes into
the side file ``path + ".sha256"``, which lists the digest of the checkpoint being put in
place and of the one it replaces (each write is a temporary file and a rename), then the
file is renamed over ``path``. A kill at any moment leaves a checkpoint whose digest is
listed; a truncated or altered file is not.

``read(path, fingerprint)`` gives the checkpoint to resume from after checking, in order:
its digest, that ``torch.load(weights_only=True)`` reads it, that it is a movierec
checkpoint, and that it was trained on the same prepared data (``fingerprint``: the sha256
of the split's arrays, ``data_fingerprint``). The training settings are compared by the
caller (``training.files.check_resumable``). Every refusal is a ``ResumeError``: one line naming
the file, the problem and what to do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from movierec import atomic
from movierec.errors import MovierecError
from movierec.split import Split

DIGEST_SUFFIX = ".sha256"
STATE = "movierec"  # the checkpoint's key holding movierec's own state
DATA = "data_sha256"  # key in STATE: data_fingerprint of the split trained on
AFRESH = "train without --resume to start afresh"


class ResumeError(MovierecError, ValueError):
    """A checkpoint that cannot be resumed from; the message says why and what to do."""


def data_fingerprint(split: Split) -> str:
    """sha256 over every part's users, items, timestamps and ratings and the index spaces:
    another data source, filter or split gives another fingerprint."""
    h = hashlib.sha256(f"{split.n_users} {split.n_items}".encode())
    for part in (split.train, split.validation, split.test):
        h.update(len(part).to_bytes(8, "little"))
        for column, dtype in (("users", "<i4"), ("items", "<i4"), ("timestamps", "<i8")):
            h.update(np.ascontiguousarray(getattr(part, column), dtype=dtype).data)
        h.update(np.ascontiguousarray(part.ratings, dtype="<f4").data)
    return h.hexdigest()


def digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def publish(tmp: Path, path: Path) -> None:
    """Rename the written checkpoint ``tmp`` over ``path``, its digest listed first."""
    new = file_sha256(tmp)
    side = digest_path(path)
    old = file_sha256(path) if path.is_file() else None
    atomic.write_text(side, "".join(f"{d}\n" for d in (new, old) if d))
    atomic.publish(tmp, path)


def read(path: Path, fingerprint: str) -> dict[str, Any]:
    """The verified checkpoint at ``path`` (see the module docstring), or ResumeError."""
    side = digest_path(path)
    try:
        listed = side.read_text().split()
    except OSError:
        raise ResumeError(f"{path}: no digest beside it ({side.name}); {AFRESH}") from None
    if file_sha256(path) not in listed:
        raise ResumeError(
            f"{path}: damaged (truncated or altered: its sha256 is not the one in "
            f"{side.name}); {AFRESH}"
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling / zip failure of a file whose digest matched
        first = str(e).splitlines()[0] if str(e) else ""
        raise ResumeError(f"{path}: unreadable ({type(e).__name__}: {first}); {AFRESH}") from None
    state = saved.get(STATE) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or "config" not in state:
        raise ResumeError(f"{path}: not a movierec training checkpoint; {AFRESH}")
    if state.get(DATA) != fingerprint:
        was = str(state.get(DATA) or "not recorded")[:12]
        raise ResumeError(
            f"{path}: trained on other data (fingerprint {was}, this data {fingerprint[:12]}: "
            f"another --data, --min-year or release); {AFRESH}"
        )
    return saved


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()

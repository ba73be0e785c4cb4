""" "Because you watched": the input movies behind each recommendation, batch-first.

A user's input is their latest ``INPUTS`` watched movies, latest first (a liked list,
most important first, for a new person); the model's ``explain`` (``movierec.models.
protocol``) says how much each input accounts for each recommended item, and ``because``
keeps, per recommendation, the ``BECAUSE`` inputs that account for most of it. Only inputs
that push the score *up* are reasons: a recommendation that owes nothing to any of them
(e.g. carried by the item's own bias) gets none, -1 all along.

The cost is bounded by ``INPUTS``: (B, k, INPUTS) contributions per call, one batched
product whatever the model.
"""

from __future__ import annotations

import numpy as np
import torch

from movierec.models import Model
from movierec.topk import BECAUSE

INPUTS = 50  # M: the latest movies of a user that may be given as reasons


def because(
    model: Model,
    inputs: np.ndarray,
    items: np.ndarray,
    device: torch.device | str = "cpu",
    n: int = BECAUSE,
) -> np.ndarray:
    """``inputs`` (B, M) item indices, latest / most important first, -1 as padding;
    ``items`` (B, k) recommended item indices (-1: none) -> (B, k, n) int32 item indices
    of the inputs contributing most to each item, best first, -1 padded."""
    inputs = np.asarray(inputs, dtype=np.int64)
    items = np.asarray(items)
    b, k = items.shape
    out = np.full((b, k, n), -1, dtype=np.int32)
    if inputs.shape[1] == 0 or k == 0 or b == 0:
        return out
    with torch.inference_mode():
        given = torch.as_tensor(inputs, device=device)
        wanted = torch.as_tensor(np.maximum(items, 0).astype(np.int64), device=device)
        share = model.explain(given, wanted).float()
        m = min(n, share.shape[-1])
        best, col = torch.topk(share, m, dim=-1)  # (B, k, m)
        ids = torch.gather(given[:, None, :].expand(b, k, -1), 2, col)
        ids = torch.where(best > 0, ids, -1)  # only inputs that raise the score
    got = ids.cpu().numpy().astype(np.int32)
    got[items < 0] = -1
    out[..., :m] = got
    return out

"""Which source answers a known user: the precomputed store, or the model now.

The store holds ``Store.k`` rows per user (its depth). Unfiltered, it answers when ``k`` is
within that depth; filtered, the whole depth is read and filtered, and it answers when at
least ``k`` rows remain. Either way it also answers when the model cannot do better: the
model does not know the user, or the store already holds every unseen movie of the user
(fewer rows than its depth). Otherwise the model answers, and the reason is said.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from movierec.service.shaping import StoreRow
from movierec.store import Store

Fallback = Literal["depth", "filter", "missing"]


def from_store(
    store: Store,
    user_id: int,
    k: int,
    allowed: Callable[[int], bool] | None,
    model_knows_user: bool,
) -> tuple[list[StoreRow] | None, Fallback | None]:
    """(the store's rows answering, None), or (None, why the model answers instead).

    ``allowed``: the filters as a test of a raw movie id; None when no filter is active.
    """
    rows = store.get(user_id, k if allowed is None else store.k)
    if rows is None:
        return None, "missing"
    complete = len(rows) < store.k or not model_knows_user
    if allowed is None:
        return (rows, None) if k <= store.k or complete else (None, "depth")
    kept = [row for row in rows if allowed(row[0])]
    return (kept[:k], None) if len(kept) >= k or complete else (None, "filter")

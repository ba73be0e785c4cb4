"""The report's arithmetic: pure functions of arrays (no run, no figure)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

OTHER = "other"  # the colour group of genres beyond the most common ones


def spread_users(n_users: int, at_most: int) -> np.ndarray:
    """Every user index when there are at most ``at_most``, else ``at_most`` of them evenly
    spread over the index range (deterministic: no sampling)."""
    if n_users <= at_most:
        return np.arange(n_users, dtype=np.int64)
    return np.unique(np.linspace(0, n_users - 1, at_most).round().astype(np.int64))


def head_share(items: np.ndarray, counts: np.ndarray, head: float = 0.1) -> float:
    """Share of ``items`` (occurrences, -1 ignored) among the ``head`` most popular fraction
    of the catalogue (ties at the edge broken by the lower index)."""
    items = np.asarray(items).ravel()
    items = items[items >= 0]
    if not items.size:
        return float("nan")
    n_head = max(1, int(round(head * len(counts))))
    top = np.zeros(len(counts), dtype=bool)
    top[np.argsort(-np.asarray(counts), kind="stable")[:n_head]] = True
    return float(top[items].mean())


def concentration(items: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative share of ``items`` (occurrences, -1 ignored) that goes to the 1, 2, ...
    most popular movies of the catalogue (by ``counts``, ties by the lower index)."""
    items = np.asarray(items).ravel()
    items = items[items >= 0]
    order = np.argsort(-np.asarray(counts), kind="stable")
    per_item = np.bincount(items, minlength=len(counts))[order]
    return np.cumsum(per_item) / max(items.size, 1)


def project_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vectors`` on their first two principal components (exact SVD, signs fixed
    by scikit-learn's convention: deterministic) and the share of variance of each."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.shape[0] < 2 or v.shape[1] < 2:
        return np.zeros((v.shape[0], 2)), np.zeros(2)
    pca = PCA(n_components=2, svd_solver="full")
    return pca.fit_transform(v), pca.explained_variance_ratio_


def main_genres(genres: np.ndarray, groups: int = 8) -> tuple[np.ndarray, list[str]]:
    """Each movie's first listed genre, the ``groups`` most common kept and the rest (and
    none listed) as ``OTHER``; returns (label per movie, labels most common first)."""
    first = np.array([str(g).split("|")[0] or OTHER for g in genres], dtype=object)
    first[first == "(no genres listed)"] = OTHER
    names, n = np.unique(first[first != OTHER], return_counts=True)
    kept = [str(names[i]) for i in np.lexsort((names, -n))[:groups]]
    labels = np.where(np.isin(first, kept), first, OTHER)
    return labels, kept + ([OTHER] if (labels == OTHER).any() else [])


def years_of(timestamps: np.ndarray) -> np.ndarray:
    """Calendar year (UTC) of each timestamp (seconds since the epoch)."""
    t = np.asarray(timestamps, dtype=np.int64).astype("datetime64[s]")
    return t.astype("datetime64[Y]").astype(np.int64) + 1970


def log_bins(values: np.ndarray, per_decade: int = 8) -> np.ndarray:
    """Histogram edges for counts (integers >= 1): about ``per_decade`` bins per power of
    ten, each edge half-way between two integers (no bin is empty by construction)."""
    top = max(int(np.max(values, initial=1)), 1)
    n = int(np.ceil(np.log10(top) * per_decade)) + 1
    starts = np.unique(np.floor(np.logspace(0, np.log10(top), n)))
    return np.concatenate([starts - 0.5, [top + 0.5]])


def spread_labels(xy: np.ndarray, order: np.ndarray, n: int, distance: float) -> list[int]:
    """Up to ``n`` rows of ``xy`` taken in ``order`` (most popular first), each at least
    ``distance`` (a fraction of the plot's larger extent) from those taken before."""
    if not len(xy):
        return []
    extent = float(np.ptp(xy, axis=0).max()) or 1.0
    taken: list[int] = []
    for row in np.asarray(order).tolist():
        if all(np.hypot(*(xy[row] - xy[t])) >= distance * extent for t in taken):
            taken.append(row)
            if len(taken) == n:
                break
    return taken

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.sampling import is_seen, sample_candidates, sample_negatives, seen_keys


@st.composite
def seen_matrices(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(110, 140))
    dense = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        k = draw(st.integers(0, n_items - 100))
        cols = draw(st.lists(st.integers(0, n_items - 1), min_size=k, max_size=k, unique=True))
        dense[u, cols] = 1
    return sp.csr_matrix(dense)


@settings(max_examples=60, deadline=None)
@given(seen_matrices(), st.integers(0, 2**32 - 1))
def test_candidates_are_distinct_unseen_and_counted(seen, seed):
    users = np.arange(seen.shape[0])
    cand = sample_candidates(seen, users, np.random.default_rng(seed), n=99)
    assert cand.shape == (len(users), 99)
    dense = seen.toarray()
    for u in users:
        assert len(set(cand[u].tolist())) == 99
        assert not dense[u, cand[u]].any()


@settings(max_examples=60, deadline=None)
@given(seen_matrices(), st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_negatives_are_never_seen(seen, seed, n):
    users = np.repeat(np.arange(seen.shape[0]), 3)
    neg = sample_negatives(seen, users, n, np.random.default_rng(seed))
    assert neg.shape == (len(users), n)
    assert not seen.toarray()[users[:, None], neg].any()


def test_candidates_fixed_by_seed_and_uniform():
    seen = sp.csr_matrix(np.eye(1, 200, dtype=np.float32))  # item 0 seen
    users = np.zeros(4000, dtype=np.int64)
    a = sample_candidates(seen, users, np.random.default_rng(7))
    b = sample_candidates(seen, users, np.random.default_rng(7))
    assert np.array_equal(a, b)
    counts = np.bincount(a.ravel(), minlength=200)
    assert counts[0] == 0
    expected = 4000 * 99 / 199
    assert np.abs(counts[1:] - expected).max() < 6 * np.sqrt(expected)


def test_too_few_unseen_items_is_a_clear_error():
    seen = sp.csr_matrix(np.ones((1, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="unseen items"):
        sample_candidates(seen, np.array([0]), np.random.default_rng(0))


def test_is_seen_matches_dense_lookup():
    rng = np.random.default_rng(1)
    dense = (rng.random((7, 30)) < 0.3).astype(np.float32)
    keys = seen_keys(sp.csr_matrix(dense))
    u = rng.integers(0, 7, 500)
    i = rng.integers(0, 30, 500)
    assert np.array_equal(is_seen(keys, u, i, 30), dense[u, i] > 0)

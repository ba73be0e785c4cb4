import numpy as np
import pytest
import scipy.sparse as sp
from _close import assert_ranking_settled, assert_same_ranking, assert_scores_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from movierec.topk import top_k


@settings(max_examples=100, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(1, 30)),
        elements=st.sampled_from([0.0, 0.5, 1.0, -2.0, 3.25]),
    ),
    st.integers(1, 35),
)
def test_top_k_matches_a_full_stable_sort(scores, k):
    rec = top_k(scores, k)
    order = np.lexsort((np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1)), -scores), axis=1)
    kk = min(k, scores.shape[1])
    assert np.array_equal(rec.items[:, :kk], order[:, :kk])
    assert (rec.items[:, kk:] == -1).all()


def test_excluded_items_never_appear():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 40)).astype(np.float32)
    seen = sp.random(50, 40, density=0.5, random_state=1, format="csr")
    rec = top_k(scores, 25, seen)
    dense = seen.toarray() > 0
    for b in range(50):
        got = rec.items[b][rec.items[b] >= 0]
        assert not dense[b, got].any()
        assert len(got) == min(25, (~dense[b]).sum())


# ----------------------------------------------------------- tests/_close.py: ranking checks


def _lists():
    items = np.array([[4, 7, 1, 9], [2, 3, -1, -1]])
    scores = np.array([[3.0, 2.0, 1.0, 1.0], [0.5, 0.25, -np.inf, -np.inf]], np.float32)
    return items, scores


def test_same_ranking_allows_what_rounding_can_do():
    items, scores = _lists()
    assert_same_ranking(items, scores, items, scores)
    nudged = scores + np.float32(1e-7) * np.abs(scores).clip(0, 10)
    assert_same_ranking(items, scores, items, nudged)
    swapped = items.copy()
    swapped[0, 2:] = [9, 1]  # a tie at 1.0 broken the other way
    assert_same_ranking(items, scores, swapped, scores)
    cut = items.copy()
    cut[0, 3] = 5  # another item of score 1.0 at the cut
    assert_same_ranking(items, scores, cut, scores)


@pytest.mark.parametrize(
    "change",
    [
        lambda i, s: (i.__setitem__((0, slice(0, 2)), [7, 4]), s),  # 3.0 and 2.0 swapped
        lambda i, s: (i.__setitem__((0, 1), 8), s),  # a wrong item mid-list
        lambda i, s: (i.__setitem__((0, slice(None)), i[0] + 1), s),  # shifted ids
        lambda i, s: (i, s.__setitem__((0, 1), 2.001)),  # a wrong score
        lambda i, s: (i.__setitem__((1, 2), 5), s.__setitem__((1, 2), 0.1)),  # an extra item
        lambda i, s: (i.__setitem__((1, 1), 6), s),  # replaced in a row that is not full
    ],
)
def test_same_ranking_catches_real_differences(change):
    items, scores = _lists()
    other_items, other_scores = items.copy(), scores.copy()
    change(other_items, other_scores)
    with pytest.raises(AssertionError):
        assert_same_ranking(items, scores, other_items, other_scores)


def test_scores_close_and_settled_rankings():
    assert_scores_close([1.0, -np.inf, 0.0], [1.0 + 1e-6, -np.inf, 1e-6])
    for a, b in ([1.0], [1.001]), ([0.0], [1e-4]), ([-np.inf], [np.inf]), ([1.0, 2.0], [1.0]):
        with pytest.raises(AssertionError):
            assert_scores_close(a, b)
    s = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 4.0, 3.0, 3.0 - 1e-7]])
    assert_ranking_settled(s, targets=[1, 0], k=2)
    with pytest.raises(AssertionError, match="targets"):
        assert_ranking_settled(s, targets=[1, 2])
    with pytest.raises(AssertionError, match="k-th"):
        assert_ranking_settled(s, k=3)
    assert_ranking_settled(s, targets=[1, 2], excluded=[[0, 0, 0, 0], [0, 0, 0, 1]], k=3)

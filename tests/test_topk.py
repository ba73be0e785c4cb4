import numpy as np
import scipy.sparse as sp
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

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from movierec.metrics import coverage, hit_rate, ndcg, rank_of_target, ties_of_target


def test_rank_of_target_hand_computed():
    target = np.array([0.5, 0.9, 3.0, 0.0])
    others = np.array(
        [
            [0.1, 0.5, 0.7],  # one above, one tie -> 2
            [0.9, 0.95, 0.1],  # one tie, one above -> 2
            [1.0, 2.0, 2.9],  # target on top -> 0
            [0.0, 0.0, 0.0],  # constant -> last
        ]
    )
    np.testing.assert_array_equal(rank_of_target(target, others), [2, 2, 0, 3])
    np.testing.assert_array_equal(ties_of_target(target, others), [1, 1, 0, 3])


def test_nan_counts_against_the_target():
    others = np.array([[0.1, np.nan, 0.2], [0.1, 0.2, 0.3]])
    target = np.array([1.0, np.nan])
    np.testing.assert_array_equal(rank_of_target(target, others), [1, 3])
    np.testing.assert_array_equal(ties_of_target(target, others), [0, 0])


def test_hit_rate_and_ndcg_hand_computed():
    ranks = np.array([0, 3, 9, 10, 50])
    assert hit_rate(ranks, 10) == pytest.approx(3 / 5)
    assert hit_rate(ranks, 1) == pytest.approx(1 / 5)
    expected = (1.0 + 1 / math.log2(5) + 1 / math.log2(11)) / 5
    assert ndcg(ranks, 10) == pytest.approx(expected)
    assert ndcg(np.array([0]), 10) == 1.0
    assert ndcg(np.array([1]), 10) == pytest.approx(1 / math.log2(3))


def test_ties_give_the_expectation_over_random_tie_order():
    # constant model, 99 candidates: position uniform over 0..99
    ranks, ties = np.array([99]), np.array([99])
    assert hit_rate(ranks, 10, ties) == pytest.approx(0.10, abs=1e-15)
    gains = 1 / np.log2(np.arange(10) + 2)
    assert ndcg(ranks, 10, ties) == pytest.approx(gains.sum() / 100)
    # 3 strictly above, tied with 4 more: position uniform over 3..7
    assert hit_rate(np.array([7]), 5, np.array([4])) == pytest.approx(2 / 5)
    assert hit_rate(np.array([7]), 5) == 0.0  # pessimistic without ties
    assert ndcg(np.array([7]), 5, np.array([4])) == pytest.approx(
        (1 / math.log2(5) + 1 / math.log2(6)) / 5
    )


def test_empty_and_invalid_inputs():
    assert hit_rate(np.array([], dtype=np.int64), 10) == 0.0
    assert ndcg(np.array([], dtype=np.int64), 10) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        hit_rate(np.array([1]), 0)
    with pytest.raises(ValueError, match="non-negative"):
        ndcg(np.array([-1]), 10)
    with pytest.raises(ValueError, match="ties"):
        hit_rate(np.array([1]), 10, np.array([2]))
    with pytest.raises(ValueError, match="1-D"):
        hit_rate(np.zeros((2, 2), dtype=np.int64), 10)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        rank_of_target(np.zeros(3), np.zeros((2, 4)))


def test_coverage():
    topk = np.array([[0, 1], [1, 2], [-1, -1]])
    assert coverage(topk, 10) == pytest.approx(0.3)
    assert coverage(np.arange(4).reshape(2, 2), 4) == 1.0
    with pytest.raises(ValueError, match="outside"):
        coverage(np.array([[5]]), 5)


scores_strategy = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 6), st.integers(1, 30)),
    elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, np.inf]),
)


@settings(max_examples=60, deadline=None)
@given(scores=scores_strategy, data=st.data())
def test_rank_is_invariant_to_candidate_order(scores, data):
    target = scores[:, 0]
    others = scores[:, 1:] if scores.shape[1] > 1 else np.zeros((scores.shape[0], 0), np.float32)
    perm = data.draw(st.permutations(range(others.shape[1])))
    np.testing.assert_array_equal(
        rank_of_target(target, others), rank_of_target(target, others[:, list(perm)])
    )


@settings(max_examples=60, deadline=None)
@given(scores=scores_strategy, k=st.integers(1, 40))
def test_tie_aware_metrics_lie_between_pessimistic_and_optimistic(scores, k):
    target, others = scores[:, 0], scores[:, 1:]
    worst = rank_of_target(target, others)
    ties = ties_of_target(target, others)
    best = worst - ties
    for metric in (hit_rate, ndcg):
        mid = metric(worst, k, ties)
        assert metric(worst, k) - 1e-12 <= mid <= metric(best, k) + 1e-12
    assert hit_rate(worst, k, ties) <= hit_rate(worst, k + 1, ties) + 1e-12
    assert 0.0 <= ndcg(worst, k, ties) <= hit_rate(worst, k, ties) + 1e-12


def test_per_user_figures_average_to_the_metrics() -> None:
    from movierec.metrics import gains, hits

    ranks, ties = np.array([0, 3, 12, 9]), np.array([0, 1, 0, 2])
    assert hits(ranks, 10, ties).tolist() == [1.0, 1.0, 0.0, 1.0]
    np.testing.assert_allclose(gains(ranks, 10)[:1], [1.0])
    assert hits(ranks, 10, ties).mean() == pytest.approx(hit_rate(ranks, 10, ties))
    assert gains(ranks, 10, ties).mean() == pytest.approx(ndcg(ranks, 10, ties))
    assert hits(np.array([10]), 10, np.array([1])).tolist() == [0.5]  # tied across the cut


def test_paired_bootstrap_tells_a_real_difference_from_noise() -> None:
    from movierec.metrics import paired_bootstrap

    rng = np.random.default_rng(0)
    a = rng.random(600) < 0.5
    assert paired_bootstrap(a, a, np.random.default_rng(1)) == (0.0, 0.0, 0.0)
    better = a | (rng.random(600) < 0.3)  # the same users, plus more hits
    d, low, high = paired_bootstrap(better, a, np.random.default_rng(1))
    assert 0 < low < d < high
    noise = rng.permutation(a)  # the same hit rate, other users: no real difference
    d, low, high = paired_bootstrap(noise, a, np.random.default_rng(1))
    assert low < 0 < high and high - low < 0.15
    with pytest.raises(ValueError):
        paired_bootstrap(np.array([]), np.array([]), np.random.default_rng(0))

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.data import Interactions
from movierec.split import leave_last_out


@st.composite
def interactions(draw):
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 12))
    n = draw(st.integers(0, 60))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))  # many ties
    return Interactions(
        np.array(users, np.int32),
        np.array(items, np.int32),
        np.array(times, np.int64),
        np.ones(n, np.float32),
        n_users,
        n_items,
    )


def rows(inter):
    return sorted(zip(inter.users.tolist(), inter.items.tolist(), inter.timestamps.tolist()))


@settings(max_examples=200, deadline=None)
@given(interactions())
def test_every_interaction_lands_in_exactly_one_part(inter):
    s = leave_last_out(inter)
    assert rows(s.all()) == rows(inter)
    assert len(s.train) + len(s.validation) + len(s.test) == len(inter)


@settings(max_examples=200, deadline=None)
@given(interactions())
def test_test_item_is_latest_and_validation_second_latest(inter):
    s = leave_last_out(inter)
    counts = inter.user_counts()
    assert set(s.test.users.tolist()) == set(np.flatnonzero(counts >= 3).tolist())
    assert np.array_equal(s.test.users, s.validation.users)
    assert np.all(np.diff(s.test.users) > 0)
    for u, item, t in zip(s.test.users, s.test.items, s.test.timestamps):
        mine = s.train.users == u
        key = (t, -item)  # equal timestamps: the lowest item counts as the latest
        v = s.validation.users == u
        vkey = (s.validation.timestamps[v][0], -s.validation.items[v][0])
        assert vkey <= key
        assert all(
            (tt, -ii) <= vkey for tt, ii in zip(s.train.timestamps[mine], s.train.items[mine])
        )


@settings(max_examples=50, deadline=None)
@given(interactions(), st.randoms(use_true_random=False))
def test_split_does_not_depend_on_row_order(inter, rnd):
    perm = np.array(rnd.sample(range(len(inter)), len(inter)), dtype=np.int64)
    a, b = leave_last_out(inter), leave_last_out(inter.subset(perm))
    for part in ("train", "validation", "test"):
        assert rows(getattr(a, part)) == rows(getattr(b, part))


def test_users_with_fewer_than_three_interactions_stay_in_train():
    inter = Interactions(
        np.array([0, 0, 1, 1, 1], np.int32),
        np.array([0, 1, 0, 1, 2], np.int32),
        np.array([1, 2, 1, 2, 3], np.int64),
        np.ones(5, np.float32),
        2,
        3,
    )
    s = leave_last_out(inter)
    assert s.test.users.tolist() == [1] and s.test.items.tolist() == [2]
    assert s.validation.items.tolist() == [1]
    assert sorted(s.train.users.tolist()) == [0, 0, 1]


def test_seen_sets():
    inter = Interactions(
        np.array([0, 0, 0], np.int32),
        np.array([2, 1, 0], np.int32),
        np.array([1, 2, 3], np.int64),
        np.ones(3, np.float32),
        1,
        4,
    )
    s = leave_last_out(inter)
    assert s.seen_before_test().toarray().tolist() == [[0, 1, 1, 0]]
    assert s.seen_anywhere().toarray().tolist() == [[1, 1, 1, 0]]


def test_equal_timestamps_make_the_lowest_movie_the_latest():
    inter = Interactions(
        np.zeros(4, np.int32),
        np.array([3, 0, 2, 1], np.int32),
        np.array([5, 7, 7, 7], np.int64),
        np.ones(4, np.float32),
        1,
        4,
    )
    s = leave_last_out(inter)
    assert s.test.items.tolist() == [0] and s.validation.items.tolist() == [1]
    assert sorted(s.train.items.tolist()) == [2, 3]

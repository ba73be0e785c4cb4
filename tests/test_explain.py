""" "Because you watched" on small models whose right answer is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from movierec.explain import because
from movierec.models import GMF, ModelConfig, SASRec, build_model
from movierec.models.history import HistoryModel

N_ITEMS = 6
TARGET, TWIN, OTHER, OPPOSITE, HALF = 0, 1, 2, 3, 4  # item roles; N_ITEMS pads


def e(*x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def history_model() -> HistoryModel:
    """Target's output vector (1, 0, 0, 0); inputs: its twin (1, 0, 0, 0), an unrelated
    (0, 1, 0, 0), the opposite (-1, 0, 0, 0), half the twin (0.5, 0, 0, 0)."""
    model = HistoryModel(n_users=1, n_items=N_ITEMS, factors=4, L=4).eval()
    with torch.no_grad():
        model.item_out.weight.zero_()
        model.item_out.weight[TARGET] = e(1, 0, 0, 0)
        model.item_in.weight[:N_ITEMS] = torch.stack(
            [
                e(0, 0, 0, 1),
                e(1, 0, 0, 0),
                e(0, 1, 0, 0),
                e(-1, 0, 0, 0),
                e(0.5, 0, 0, 0),
                e(0, 0, 1, 0),
            ]
        )
        model.item_bias[TARGET] = 0.25
    return model


def test_history_shares_are_exact_and_sum_to_the_score() -> None:
    model = history_model()
    inputs = torch.tensor([[OTHER, TWIN, OPPOSITE, HALF, N_ITEMS, TWIN]])  # 6 columns, L = 4
    share = model.explain(inputs, torch.tensor([[TARGET]]))
    assert share.shape == (1, 1, 6)
    w = torch.exp(model.position_logits[:4])
    w = w / w.sum()  # all four read positions are real items
    expected = torch.stack([0 * w[0], w[1], -w[2], 0.5 * w[3]])
    torch.testing.assert_close(share[0, 0, :4], expected)
    assert torch.isinf(share[0, 0, 4:]).all() and (share[0, 0, 4:] < 0).all()  # past L
    score = model.score_items_for_history(inputs)[0, TARGET]
    torch.testing.assert_close(share[0, 0, :4].sum() + model.item_bias[TARGET], score)


def test_history_reasons_put_the_twin_first_and_never_a_negative_share() -> None:
    model = history_model()
    inputs = np.array([[OTHER, OPPOSITE, HALF, TWIN], [OPPOSITE, OTHER, -1, -1]])
    got = because(model, inputs, np.array([[TARGET, -1], [TARGET, TARGET]]))
    assert got.shape == (2, 2, 3) and got.dtype == np.int32
    # the twin's share w_3 * 1 beats half the twin's w_2 * 0.5 (w_2 > w_3 but not 2x)
    assert got[0, 0].tolist() == [TWIN, HALF, -1]  # OTHER adds 0, OPPOSITE subtracts
    assert got[0, 1].tolist() == [-1, -1, -1]  # no recommendation, no reasons
    assert got[1].tolist() == [[-1, -1, -1]] * 2  # nothing raises this user's score


def test_padding_in_the_middle_is_skipped() -> None:
    model = history_model()
    got = because(model, np.array([[-1, TWIN, N_ITEMS, HALF]]), np.array([[TARGET]]))
    assert got[0, 0].tolist() == [TWIN, HALF, -1]


def _cosine_models() -> list[torch.nn.Module]:
    """GMF and SASRec whose item vectors are set by hand: the twin points like the target,
    half-way is 60 degrees off, the opposite points away."""
    table = torch.stack([e(1, 0), e(1, 0), e(0, 1), e(-1, 0), e(0.5, 0.866), e(0, -1)])
    gmf = GMF(n_users=2, n_items=N_ITEMS, factors=2).eval()
    sasrec = SASRec(n_users=2, n_items=N_ITEMS, factors=2, max_len=5, dropout=0.0).eval()
    with torch.no_grad():
        gmf.mf.item.weight.copy_(table)
        gmf.predict.weight.fill_(1.0)
        sasrec.item_emb.weight[:N_ITEMS] = table
    return [gmf, sasrec]


@pytest.mark.parametrize("model", _cosine_models(), ids=["gmf", "sasrec"])
def test_id_and_sequence_models_give_the_cosine_of_item_vectors(model) -> None:
    inputs = torch.tensor([[OTHER, HALF, OPPOSITE, TWIN, N_ITEMS]])
    share = model.explain(inputs, torch.tensor([[TARGET, OTHER]]))
    assert share.shape == (1, 2, 5)
    torch.testing.assert_close(share[0, 0, :4], e(0, 0.5, -1, 1), atol=1e-3, rtol=0)
    assert share[0, 0, 4] == -torch.inf
    v = model.item_vectors()
    torch.testing.assert_close(share[0, 1, :4], v[[OTHER, HALF, OPPOSITE, TWIN]] @ v[OTHER])
    got = because(model, inputs.numpy(), np.array([[TARGET, OTHER]]))
    assert got[0, 0].tolist() == [TWIN, HALF, -1]
    assert got[0, 1].tolist() == [OTHER, HALF, -1]  # a movie is its own best reason


def test_because_is_bounded_by_the_inputs_and_batch_first() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig("history", 3, 40, factors=8, init_std=0.5)).eval()
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 40, (5, 7))
    items = rng.integers(0, 40, (5, 4))
    together = because(model, inputs, items)
    for b in range(5):
        alone = because(model, inputs[b : b + 1], items[b : b + 1])
        np.testing.assert_array_equal(alone[0], together[b])
        for row in together[b]:
            real = row[row >= 0]
            assert set(real) <= set(inputs[b]) and (row[len(real) :] == -1).all()
    assert because(model, np.zeros((5, 0), np.int64), items).shape == (5, 4, 3)
    assert because(model, inputs[:, :2], items, n=3)[..., 2].max() == -1  # two inputs only

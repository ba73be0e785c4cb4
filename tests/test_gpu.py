"""The same contracts on a CUDA device: skipped where there is none (CI has no GPU).

Run by ``bench/gpu.sh`` on a GPU machine: training on the device learns the planted blocks,
the chunked whole-catalogue scoring agrees with the CPU's, and the history model trains.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from _close import assert_scores_close
from _train_fixtures import fast_config, planted_split

from movierec.evaluate import evaluate
from movierec.models import ModelConfig, TorchScorer, build_model
from movierec.train import TrainConfig, fit

DEVICE = os.environ.get("MOVIEREC_TEST_GPU", "cuda")  # "cpu" checks these tests' own logic
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA device"
)


@pytest.fixture(scope="module")
def split():
    return planted_split()


@pytest.mark.parametrize("model", ["tutorial", "neumf"])
def test_training_on_the_gpu_learns_the_planted_blocks(split, model: str) -> None:
    result = fit(split, fast_config(model, device=DEVICE), progress=False)
    assert result.device.type == torch.device(DEVICE).type
    assert evaluate(result.scorer(), split, full=False).sampled["hr@10"] >= 0.9


@pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf", "history"])
def test_gpu_scores_match_the_cpu(kind: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(kind, 50, 3000, factors=16, layers=(32, 16), init_std=0.3)
    model = build_model(config)
    users = np.arange(50)
    cpu = TorchScorer(model, "cpu").score_all(users)
    gpu = TorchScorer(build_model(config), DEVICE)
    gpu.model.load_state_dict(model.state_dict())
    # other kernels, other summation orders: float32 rounding on scores up to ~10
    assert_scores_close(gpu.score_all(users), cpu, rtol=1e-4, atol=1e-4)
    items = np.random.default_rng(0).integers(0, 3000, (50, 100))
    assert_scores_close(gpu.score(users, items), cpu[users[:, None], items], rtol=1e-4, atol=1e-4)


def test_history_model_trains_on_the_gpu(split) -> None:
    fast = dict(factors=16, epochs=6, batch_size=128, lr=2e-2, negatives=16)
    config = TrainConfig.for_model("history", **fast, device=DEVICE)
    result = fit(split, config, progress=False)
    assert result.model.history.device.type == torch.device(DEVICE).type
    assert evaluate(result.scorer(), split, full=False).sampled["hr@10"] >= 0.9

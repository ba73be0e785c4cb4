"""What ``fit`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from movierec.models import ModelConfig, TorchScorer
from movierec.training.config import TrainConfig
from movierec.training.files import EpochLog


@dataclass
class TrainResult:
    model: nn.Module  # best-validation weights, eval mode, on the training device; users'
    # inputs formed from train + validation (ready for test)
    config: TrainConfig  # as run: automatic batch size and learning rate made concrete
    model_config: ModelConfig
    history: list[EpochLog]  # one row per epoch run, including any before a resume
    best_epoch: int  # 1-based epoch whose weights ``model`` holds
    stopped_early: bool
    device: torch.device
    seconds: float = field(default=0.0)  # wall time of this call
    rank: int = 0  # global rank of this process: only rank 0 saves the run and reports

    @property
    def best(self) -> EpochLog:
        return self.history[self.best_epoch - 1]

    def scorer(self) -> TorchScorer:
        return TorchScorer(self.model, self.device)

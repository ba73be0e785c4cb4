"""Every model, built from one typed config, behind one protocol (``protocol.Model``).

``build_model(ModelConfig(kind=...))`` builds a fresh model of any registered kind; a new
model type is one class implementing ``protocol.Model`` plus an entry in ``MODELS``.

- ``protocol``: what every model implements and every consumer may use;
- ``ncf``: GMF, MLP (also the tutorial's model) and NeuMF; ``layers``: their parts;
- ``history``: the sequence model whose user is their recent items;
- ``sasrec``: the transformer sequence model (causal self-attention over the last N items);
- ``scoring``: ``TorchScorer``, numpy in / numpy out over any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from movierec.models.history import HistoryModel
from movierec.models.ncf import GMF, MLP, NeuMF
from movierec.models.protocol import Model, inputs_for
from movierec.models.sasrec import SASRec
from movierec.models.scoring import CHUNK_ROWS, CUDA_CHUNK_ROWS, Bounded, TorchScorer, scorer_for


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # key into MODELS: "gmf" | "mlp" | "neumf" | "tutorial" | "history" | "sasrec"
    n_users: int  # size of the user index space
    n_items: int  # size of the item index space
    factors: int = 8  # GMF latent size; also the MLP embedding size unless mlp_factors is set
    layers: tuple[int, ...] = (64, 32)  # MLP tower: hidden sizes after concat(user, item)
    mlp_factors: int | None = None  # NeuMF only: MLP embedding size when it differs from factors
    dropout: float = 0.0  # dropout after each tower layer (training only)
    init_std: float | None = 0.01  # embeddings ~ N(0, init_std); None keeps the model's own
    alpha: float = 0.5  # NeuMF from pre-trained parts: weight of GMF in the predict layer
    loss: str = "auto"  # sasrec: "full" softmax, "sampled" softmax, "auto" (by catalogue size)
    negatives: int = 1000  # sasrec, loss "sampled": uniform negatives per batch
    length: int | None = None  # history / sasrec: latest items a user is read as (None: default)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if self.kind not in MODELS:
            raise ValueError(f"unknown model {self.kind!r}; known: {', '.join(MODELS)}")
        if self.n_users < 1 or self.n_items < 1:
            raise ValueError("n_users and n_items must be positive")
        if self.factors < 1 or (self.mlp_factors is not None and self.mlp_factors < 1):
            raise ValueError("factors must be positive")
        if any(x < 1 for x in self.layers):
            raise ValueError(f"layer sizes must be positive, got {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.loss not in ("auto", "full", "sampled"):
            raise ValueError(f"loss must be 'auto', 'full' or 'sampled', got {self.loss!r}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be positive, got {self.negatives}")
        if self.length is not None and self.length < 1:
            raise ValueError(f"length must be positive, got {self.length}")


MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "gmf": GMF.from_config,
    "mlp": MLP.from_config,
    "neumf": NeuMF.from_config,
    "tutorial": MLP.from_config,
    "history": HistoryModel.from_config,
    "sasrec": SASRec.from_config,
}


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model. Draws from torch's global RNG: seed it first."""
    model = MODELS[config.kind](config)
    if config.init_std is not None:
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, config.init_std)
    return model


__all__ = [
    "CHUNK_ROWS",
    "CUDA_CHUNK_ROWS",
    "GMF",
    "MLP",
    "MODELS",
    "Bounded",
    "HistoryModel",
    "Model",
    "ModelConfig",
    "NeuMF",
    "SASRec",
    "TorchScorer",
    "build_model",
    "inputs_for",
    "scorer_for",
]

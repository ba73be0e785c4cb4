"""Training settings: ``TrainConfig`` (one typed dataclass, a comment per field) and the
per-model presets it starts from."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from movierec.errors import ParameterError
from movierec.models import ModelConfig

RESUMABLE_CHANGES = {"epochs", "patience", "device"}  # may differ between a run and its resume


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tutorial"  # key into movierec.models.MODELS (tutorial, gmf, ..., sasrec)
    factors: int = 8  # embedding size: GMF latent size; MLP per-side embedding (unless mlp_factors)
    layers: tuple[int, ...] = (64, 32)  # MLP tower hidden sizes after concat(user, item)
    mlp_factors: int | None = None  # NeuMF: MLP embedding size when it differs from factors
    dropout: float = 0.0  # dropout after each MLP tower layer; sasrec: in every block
    init_std: float | None = None  # embeddings ~ N(0, init_std); None keeps torch's N(0, 1)
    epochs: int = 5  # maximum passes over the training positives
    batch_size: int | None = 512  # rows (positives + negatives) per step; None: auto_batch_size
    lr: float | None = 1e-3  # Adam learning rate; None: 1e-3 * sqrt(batch_size / 512)
    weight_decay: float = 0.0  # L2 penalty on every parameter (Adam's coupled weight decay)
    negatives: int = 4  # unseen items sampled per training positive, fresh every epoch
    # (sasrec: uniform negatives per batch of its sampled softmax)
    length: int | None = None  # history: L, sasrec: N, the latest items read (None: default)
    loss: str = "auto"  # sasrec: "full" | "sampled" softmax; "auto": full up to 30k items
    seed: int = 0  # initial weights, negatives and shuffling
    eval_seed: int = 0  # validation candidates: fixed, so that runs compare on the same ones
    val_users: int | None = 20_000  # per-epoch validation on at most this many users; None: all
    patience: int | None = None  # stop after this many epochs without a better val HR@10
    device: str = "auto"  # auto | cpu | cuda | cuda:N (auto: $MOVIEREC_DEVICE, cuda, cpu)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size is None or self.batch_size >= 1,
            "lr": self.lr is None or self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "negatives": self.negatives >= 1,
            "patience": self.patience is None or self.patience >= 1,
            "val_users": self.val_users is None or self.val_users >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ParameterError(f"TrainConfig.{name} is out of range: {getattr(self, name)!r}")
        try:
            self.model_config(1, 1)  # validates the model fields
        except ValueError as e:
            raise ParameterError(str(e)) from None

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The preset for ``model`` with ``overrides`` applied.

        None means "not given" (the preset stays), as for an omitted command-line option;
        ``dataclasses.replace`` sets a field to None (e.g. an automatic batch size).
        """
        if model not in PRESETS:
            raise ParameterError(f"unknown model {model!r}; known: {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{"model": model, **PRESETS[model], **given})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ParameterError(f"unknown TrainConfig fields: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    def resolved(self, rows_per_epoch: int) -> TrainConfig:
        """This config with an automatic batch size and learning rate made concrete."""
        batch = self.batch_size or auto_batch_size(rows_per_epoch)
        lr = self.lr or BASE_LR * math.sqrt(batch / BASE_BATCH)
        return dataclasses.replace(self, batch_size=batch, lr=lr)

    def model_config(self, n_users: int, n_items: int) -> ModelConfig:
        return ModelConfig(
            kind=self.model,
            n_users=n_users,
            n_items=n_items,
            factors=self.factors,
            layers=self.layers,
            mlp_factors=self.mlp_factors,
            dropout=self.dropout,
            init_std=self.init_std,
            loss=self.loss,
            negatives=self.negatives,
            length=self.length,
        )


BASE_BATCH, BASE_LR = 512, 1e-3  # the tutorial's batch and Adam learning rate
MAX_AUTO_BATCH = 16384
MIN_AUTO_STEPS = 500  # an automatic batch size leaves at least this many steps per epoch


def auto_batch_size(rows_per_epoch: int) -> int:
    """The largest power of two in [512, 16384] that leaves >= 500 steps per epoch.

    Dense Adam touches every embedding row at every step, so on a CPU a step costs about
    the same at batch 512 as at 16,384 once the tables are large (ML-25M shaped data:
    ~4x the rows/s at 16,384). Small data needs the steps: ml-latest-small keeps 512.
    """
    batch = BASE_BATCH
    while batch * 2 <= MAX_AUTO_BATCH and rows_per_epoch / (batch * 2) >= MIN_AUTO_STEPS:
        batch *= 2
    return batch


# Per-model defaults (TrainConfig's own field defaults are the tutorial's as written).
PRESETS: dict[str, dict[str, Any]] = {
    # The tutorial's NCF: embeddings of 8, MLP 64 -> 32 -> 1, Adam, 4 negatives, 5 epochs.
    # It trained at batch 512, lr 1e-3; the batch here grows with the data (auto_batch_size)
    # and the learning rate with the square root of the batch: 512 and 1e-3 on
    # ml-latest-small, 16,384 and 5.7e-3 on ML-25M-shaped data (bench/RESULTS.md).
    "tutorial": dict(factors=8, layers=(64, 32), init_std=None, epochs=5, batch_size=None, lr=None),
    "gmf": dict(factors=32, layers=(), init_std=0.01, epochs=20, batch_size=256, lr=1e-3),
    # He et al.'s pyramid [64, 32, 16, 8]: embeddings of 32 per side, then 32, 16, 8.
    "mlp": dict(factors=32, layers=(32, 16, 8), init_std=0.01, epochs=20, batch_size=256),
    # Predictive factors 32: GMF of 32 beside an MLP [128 -> 64 -> 32].
    "neumf": dict(
        factors=32, mlp_factors=64, layers=(64, 32), init_std=0.01, epochs=20, batch_size=256
    ),
    # The user is a learned recency-weighted mean of their last 20 items; sampled softmax
    # over 64 negatives. Chosen on ml-latest-small validation sampled HR@10, mean of seeds
    # 0-2, among d in {64, 128}, L in {10, 20, 50}, batch in {512, 1024}, negatives in
    # {16, 64}, lr in {2e-3, 5e-3} (bench/RESULTS.md, "Our models"): 0.787 against 0.773
    # for the previous preset (batch 1024, 16 negatives). Batches count positives, each
    # with its negatives; init_std None keeps the model's own N(0, 0.05).
    "history": dict(
        factors=64,
        layers=(),
        init_std=None,
        epochs=20,
        batch_size=512,
        lr=5e-3,
        negatives=64,
        patience=3,
    ),
    # SASRec+'s settings (Klenitskiy & Vasilev, RecSys 2023), untuned here: d 64, 2 pre-norm
    # blocks of 1 head, the last 200 movies, Adam lr 1e-3, batches of 128 sequences;
    # dropout 0.2 (theirs 0.1 on ML-1M; ml-latest-small has a tenth of its users).
    # Epochs: every training user once per epoch (ml-latest-small: 5 steps), so many are
    # needed; validation HR@10 plateaus for 10+ epochs there while NDCG still rises, hence
    # a patience of 20. loss "auto": the full softmax up to 30k movies (ml-latest-small's
    # 9k: a batch's logits, real positions x movies, fit a CPU's memory), else a sampled
    # softmax over 1,000 uniform negatives per batch (ML-25M's 62k). batch_size counts
    # sequences; negatives is the sampled softmax's.
    "sasrec": dict(
        factors=64,
        layers=(),
        dropout=0.2,
        init_std=None,
        epochs=200,
        batch_size=128,
        lr=1e-3,
        negatives=1000,
        loss="auto",
        patience=20,
    ),
}

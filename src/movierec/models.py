"""Neural Collaborative Filtering models (He et al., WWW 2017) as plain torch modules.

Every model maps (user, item) index pairs to logits. ``forward(users, items)`` broadcasts:
aligned 1-D tensors give one logit per pair, ``users[:, None]`` against ``items`` of shape
``(B, C)`` gives ``(B, C)``. ``score_all(users)`` scores every item for each user without
pushing ``B * n_items`` rows through the parts of the network that factorise:

- GMF is one matrix product.
- The MLP tower's first layer acts on ``concat(user, item)``, so it splits into a user half
  and an item half, each computed once; the layers after the first ReLU still see
  ``B * n_items`` rows: on a CPU a two-layer tower runs in the fused C kernel
  (``movierec.fused``), otherwise in tiles of at most ``chunk_rows`` pairs.
- NeuMF adds the two.

A new model type is one module class with ``from_config`` + an entry in ``MODELS``.
``TorchScorer`` wraps any of them as a numpy-in / numpy-out scorer for evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from movierec import fused
from movierec.history import HistoryModel

CHUNK_ROWS = 1 << 13  # (user, item) pairs per chunk on a CPU: 2 MB at width 64, fits L2
CUDA_CHUNK_ROWS = 1 << 22  # on a GPU, larger chunks keep it busy


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # key into MODELS: "gmf" | "mlp" | "neumf" | "tutorial"
    n_users: int  # size of the user index space
    n_items: int  # size of the item index space
    factors: int = 8  # GMF latent size; also the MLP embedding size unless mlp_factors is set
    layers: tuple[int, ...] = (64, 32)  # MLP tower: hidden sizes after concat(user, item)
    mlp_factors: int | None = None  # NeuMF only: MLP embedding size when it differs from factors
    dropout: float = 0.0  # dropout after each tower layer (training only)
    init_std: float | None = 0.01  # embeddings ~ N(0, init_std); None keeps torch's N(0, 1)
    alpha: float = 0.5  # NeuMF from pre-trained parts: weight of GMF in the predict layer

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


class Recommender(Protocol):
    n_users: int
    n_items: int

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor: ...


class Embedding(nn.Embedding):
    """``nn.Embedding`` whose CPU lookups and gradients run in ``fused.embedding``."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        plain = self.padding_idx is None and self.max_norm is None and not self.sparse
        if plain and fused.rows_available(self.weight):
            return fused.embedding(self.weight, idx)
        return super().forward(idx)


class Factors(nn.Module):
    """User and item embeddings combined by an element-wise product (the GMF layer)."""

    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.user = Embedding(n_users, factors)
        self.item = Embedding(n_items, factors)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user(users) * self.item(items)

    def dot_all(
        self, users: torch.Tensor, w: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(p_u * q_i) @ w`` for every item: ``(B, n_items)`` (into ``out`` if given)."""
        return torch.matmul(self.user(users) * w, self.item.weight.T, out=out)


class Tower(nn.Module):
    """The MLP part: concat(user, item) embeddings through Linear+ReLU layers.

    The first layer's weight is stored whole but applied as a user half plus an item half,
    which is the same map and lets users and items broadcast against each other.
    """

    def __init__(
        self, n_users: int, n_items: int, factors: int, layers: tuple[int, ...], dropout: float
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("the MLP tower needs at least one layer")
        self.user = Embedding(n_users, factors)
        self.item = Embedding(n_items, factors)
        sizes = (2 * factors, *layers)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        self.out_features = layers[-1]

    def _split_first(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        first, f = self.linears[0], self.user.embedding_dim
        return first.weight[:, :f], first.weight[:, f:], first.bias

    def user_part(self, users: torch.Tensor) -> torch.Tensor:
        w_user, _, bias = self._split_first()
        return F.linear(self.user(users), w_user, bias)

    def item_part(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """First-layer contribution of ``items`` (every item when None)."""
        _, w_item, _ = self._split_first()
        emb = self.item.weight if items is None else self.item(items)
        return F.linear(emb, w_item)

    def rest(self, pre: torch.Tensor) -> torch.Tensor:
        """From the first layer's pre-activation (overwritten) to the last hidden layer.

        ReLU runs in place on fresh layer outputs: no backward needs them, and on a CPU
        every avoided allocation of a large activation is a measurable saving.
        """
        h = self.dropout(pre.relu_())
        for linear in self.linears[1:]:
            h = self.dropout(linear(h).relu_())
        return h

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.rest(self.user_part(users) + self.item_part(items))

    def from_user_rows(self, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``forward`` with the user embeddings given as ``rows`` (..., f) instead of looked
        up, broadcast against ``items``. Reads the tower, writes nothing; differentiable."""
        w_user, _, bias = self._split_first()
        return self.rest(F.linear(rows, w_user, bias) + self.item_part(items))

    @torch.no_grad()
    def quantized(self, w: torch.Tensor) -> fused.QuantizedTower | None:
        """This tower, with ``w`` on its output, on 16-bit integers for ``fused.tower2q_into``;
        None where that kernel does not run (not two layers, no kernel, non-finite weights).
        """
        if len(self.linears) != 2 or self.user.weight.device.type != "cpu":
            return None
        hu, hi = self.user_part(torch.arange(self.user.num_embeddings)), self.item_part()
        second = self.linears[1]
        params = (hu, hi, second.weight, second.bias, w)
        if not fused.available(hu.shape[1]) or not all(p.isfinite().all() for p in params):
            return None
        limit = hu.abs().amax(0) if len(hu) else torch.zeros(hu.shape[1])
        arrays = [x.detach().float().numpy() for x in (limit, *params[1:])]
        return fused.quantize_tower2(*arrays, lanes=fused.LANES)

    @torch.no_grad()
    def dot_all(
        self, users: torch.Tensor, w: torch.Tensor, chunk_rows: int, out: torch.Tensor
    ) -> torch.Tensor:
        """Adds ``tower(u, i) @ w`` for every item into ``out`` (B, n_items). Inference only.

        On a CPU with the fused kernel (``movierec.fused``) a tower of two layers runs there.
        Otherwise pairs go in tiles of at most ``chunk_rows``: a slice of the items against
        one user (several users when the whole catalogue fits a tile). On a CPU a tile of
        ~8k pairs keeps every layer's activations in the L2 cache, ~1.7x faster than
        whole-catalogue chunks (bench/RESULTS.md). The second layer's bias rides in the
        first layer's output as an extra column (0 for users, 1 for items, so relu leaves
        it 1), which saves a pass over every tile; each layer writes into a buffer
        allocated once.
        """
        hu, hi = self.user_part(users), self.item_part()
        on_cpu = out.device.type == "cpu" and out.dtype == torch.float32
        if len(self.linears) == 2 and on_cpu and fused.available(hu.shape[1]):
            second = self.linears[1]
            return fused.tower2_into(out, hu, hi, second.weight, second.bias, w)
        n_users, n_items = hu.shape[0], hi.shape[0]
        weights: list[torch.Tensor] = [lin.weight.T.contiguous() for lin in self.linears[1:]]
        biases: list[torch.Tensor | None] = [lin.bias for lin in self.linears[1:]]
        if weights:  # fold the second layer's bias into its matmul
            hu, hi = F.pad(hu, (0, 1)), F.pad(hi, (0, 1), value=1.0)
            weights[0] = torch.cat([weights[0], biases[0][None, :]])
            biases[0] = None
        tile_items = min(n_items, chunk_rows)
        tile_users = max(1, chunk_rows // n_items)
        rows_max = tile_users * tile_items
        bufs = [hu.new_empty((rows_max, hu.shape[1]))]
        bufs += [hu.new_empty((rows_max, wt.shape[1])) for wt in weights]
        for j in range(0, n_items, tile_items):
            items = hi[j : j + tile_items]
            ni = items.shape[0]
            for s in range(0, n_users, tile_users):
                user = hu[s : s + tile_users]
                nu, rows = user.shape[0], user.shape[0] * ni
                h = torch.add(user[:, None, :], items, out=bufs[0][:rows].view(nu, ni, -1))
                h = h.view(rows, -1).clamp_min_(0)  # relu; clamp_min_ is the faster kernel here
                for wt, bias, buf in zip(weights, biases, bufs[1:]):
                    h = torch.mm(h, wt, out=buf[:rows])
                    if bias is not None:
                        h.add_(bias)
                    h.clamp_min_(0)
                out[s : s + nu, j : j + ni] += (h @ w).view(nu, ni)
        return out


@dataclass(frozen=True)
class Bounded:
    """Approximate scores (B, n_items) with ``|scores[u, i] - exact| <= err_users[u] +
    err_items[i]``: what a ranking needs to settle most items without exact scores."""

    scores: torch.Tensor | np.ndarray  # a tensor from the models, numpy from TorchScorer
    err_users: np.ndarray  # (B,) float64
    err_items: np.ndarray  # (n_items,) float64


def _logit(predict: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    return F.linear(h, predict.weight, predict.bias).squeeze(-1)


class GMF(nn.Module):
    """Generalized Matrix Factorization: ``h . (p_u * q_i) + b``."""

    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.mf = Factors(n_users, n_items, factors)
        self.predict = nn.Linear(factors, 1)

    @classmethod
    def from_config(cls, c: ModelConfig) -> GMF:
        return cls(c.n_users, c.n_items, c.factors)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return _logit(self.predict, self.mf(users, items))

    def score_user_rows(self, rows: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """``forward`` for users given by rows of their user tables (``rows[name]`` (..., f),
        keyed by parameter name) instead of indices, broadcast against ``items``. Reads the
        model, writes nothing; differentiable in ``rows`` (``foldin`` fits them)."""
        return _logit(self.predict, rows["mf.user.weight"] * self.mf.item(items))

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
        return self.mf.dot_all(users, self.predict.weight[0]) + self.predict.bias


class MLP(nn.Module):
    """Multi-Layer Perceptron over concatenated embeddings: ``h . tower(u, i) + b``.

    Also the tutorial's model: embeddings of 8, layers (64, 32), then the 32 -> 1 output.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        layers: tuple[int, ...],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.tower = Tower(n_users, n_items, factors, layers, dropout)
        self.predict = nn.Linear(self.tower.out_features, 1)

    @classmethod
    def from_config(cls, c: ModelConfig) -> MLP:
        return cls(c.n_users, c.n_items, c.factors, c.layers, c.dropout)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return _logit(self.predict, self.tower(users, items))

    def score_user_rows(self, rows: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """As ``GMF.score_user_rows``."""
        return _logit(self.predict, self.tower.from_user_rows(rows["tower.user.weight"], items))

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
        out = self.predict.bias.expand(len(users), self.n_items).contiguous()
        return self.tower.dot_all(users, self.predict.weight[0], chunk_rows, out)

    @torch.no_grad()
    def bounded_scorer(self) -> Callable[[torch.Tensor, torch.Tensor], Bounded] | None:
        """``score_all`` to within a known error and faster, for many user blocks (the items
        are prepared once): ``score(users, out)`` fills ``out`` (B, n_items, float32);
        None where not available."""
        q = self.tower.quantized(self.predict.weight[0])
        if q is None:
            return None

        def score(users: torch.Tensor, out: torch.Tensor) -> Bounded:
            out.fill_(float(self.predict.bias))
            err = fused.tower2q_into(out, q, self.tower.user_part(users))
            return Bounded(out, err, q.err_items)

        return score


class NeuMF(nn.Module):
    """GMF and MLP side by side, their last layers concatenated into one predict layer."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        mlp_factors: int,
        layers: tuple[int, ...],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.mf = Factors(n_users, n_items, factors)
        self.tower = Tower(n_users, n_items, mlp_factors, layers, dropout)
        self.predict = nn.Linear(factors + self.tower.out_features, 1)

    @classmethod
    def from_config(cls, c: ModelConfig) -> NeuMF:
        mlp_factors = c.mlp_factors or c.factors
        return cls(c.n_users, c.n_items, c.factors, mlp_factors, c.layers, c.dropout)

    @classmethod
    def from_pretrained(cls, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> NeuMF:
        """NeuMF initialised from trained GMF and MLP (the paper's pre-training).

        Embeddings and tower are copied; the predict layer is ``[alpha * h_gmf, (1 - alpha)
        * h_mlp]`` with bias ``alpha * b_gmf + (1 - alpha) * b_mlp``, so the new model's
        logit is exactly ``alpha * gmf + (1 - alpha) * mlp`` before any further training.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if (gmf.n_users, gmf.n_items) != (mlp.n_users, mlp.n_items):
            raise ValueError("GMF and MLP were trained on different index spaces")
        tower = mlp.tower
        model = cls(
            gmf.n_users,
            gmf.n_items,
            gmf.mf.user.embedding_dim,
            tower.user.embedding_dim,
            tuple(lin.out_features for lin in tower.linears),
            tower.dropout.p,
        )
        model.mf.load_state_dict(gmf.mf.state_dict())
        model.tower.load_state_dict(tower.state_dict())
        with torch.no_grad():
            w = torch.cat([alpha * gmf.predict.weight, (1 - alpha) * mlp.predict.weight], dim=1)
            model.predict.weight.copy_(w)
            model.predict.bias.copy_(alpha * gmf.predict.bias + (1 - alpha) * mlp.predict.bias)
        return model

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.mf(users, items), self.tower(users, items)], dim=-1)
        return _logit(self.predict, h)

    def score_user_rows(self, rows: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """As ``GMF.score_user_rows``."""
        mf = rows["mf.user.weight"] * self.mf.item(items)
        tower = self.tower.from_user_rows(rows["tower.user.weight"], items)
        return _logit(self.predict, torch.cat([mf, tower], dim=-1))

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
        f = self.mf.user.embedding_dim
        w = self.predict.weight[0]
        out = self.mf.dot_all(users, w[:f]).add_(self.predict.bias)
        return self.tower.dot_all(users, w[f:], chunk_rows, out)

    @torch.no_grad()
    def bounded_scorer(self) -> Callable[[torch.Tensor, torch.Tensor], Bounded] | None:
        """As ``MLP.bounded_scorer``; the GMF half is exact up to float32 rounding, which
        its user term allows for."""
        f = self.mf.user.embedding_dim
        w = self.predict.weight[0]
        q = self.tower.quantized(w[f:])
        if q is None:
            return None
        item_max = float(self.mf.item.weight.abs().max()) if self.n_items else 0.0

        def score(users: torch.Tensor, out: torch.Tensor) -> Bounded:
            self.mf.dot_all(users, w[:f], out=out).add_(self.predict.bias)
            err = fused.tower2q_into(out, q, self.tower.user_part(users))
            gmf = (self.mf.user(users) * w[:f]).abs().sum(1).double().numpy() * item_max
            return Bounded(out, err + fused.fp32_slack(f) * gmf, q.err_items)

        return score


MODELS = {
    "gmf": GMF.from_config,
    "mlp": MLP.from_config,
    "neumf": NeuMF.from_config,
    "tutorial": MLP.from_config,
    "history": HistoryModel.from_config,  # movierec.history: the user is their recent items
}


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model. Draws from torch's global RNG: seed it first."""
    model = MODELS[config.kind](config)
    if config.init_std is not None:
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, config.init_std)
    return model


@dataclass
class TorchScorer:
    """Numpy in, numpy out: the ``Scorer`` protocol over any model of this module."""

    model: nn.Module
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    chunk_rows: int | None = None  # pairs per forward; None: CHUNK_ROWS, CUDA_CHUNK_ROWS on cuda

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.model = self.model.to(self.device).eval()
        if self.chunk_rows is None:
            self.chunk_rows = CUDA_CHUNK_ROWS if self.device.type == "cuda" else CHUNK_ROWS

    @property
    def n_users(self) -> int:
        return int(self.model.n_users)

    @property
    def n_items(self) -> int:
        return int(self.model.n_items)

    def _index(self, values: np.ndarray, size: int, what: str) -> torch.Tensor:
        values = np.asarray(values)
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{what} indices must lie in [0, {size})")
        return torch.as_tensor(values.astype(np.int64, copy=False), device=self.device)

    @torch.inference_mode()
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``users`` (B,), ``items`` (B, C) -> float32 logits (B, C)."""
        items = np.asarray(items)
        if items.ndim != 2 or items.shape[0] != np.asarray(users).shape[0]:
            raise ValueError("items must have shape (len(users), C)")
        u = self._index(users, self.n_users, "user")
        i = self._index(items, self.n_items, "item")
        out = np.empty(items.shape, dtype=np.float32)
        step = max(1, self.chunk_rows // max(items.shape[1], 1))
        for s in range(0, len(u), step):
            out[s : s + step] = self.model(u[s : s + step, None], i[s : s + step]).float().cpu()
        return out

    @torch.inference_mode()
    def score_all(self, users: np.ndarray) -> np.ndarray:
        """``users`` (B,) -> float32 logits for every item (B, n_items)."""
        u = self._index(users, self.n_users, "user")
        return self.model.score_all(u, chunk_rows=self.chunk_rows).float().cpu().numpy()

    def bounded_scorer(self) -> Callable[[np.ndarray, np.ndarray], Bounded] | None:
        """``score_all`` to within ``Bounded``'s error, where the model has a faster way on
        this device: ``score(users, out)`` fills ``out`` (B, n_items) float32 and returns
        it as ``scores``; None otherwise."""
        make = getattr(self.model, "bounded_scorer", None)
        if make is None or self.device.type != "cpu":
            return None
        with torch.inference_mode():
            inner = make()
        if inner is None:
            return None

        @torch.inference_mode()
        def score(users: np.ndarray, out: np.ndarray) -> Bounded:
            if out.dtype != np.float32 or out.shape != (len(users), self.n_items):
                raise ValueError(f"out must be float32 of shape {(len(users), self.n_items)}")
            got = inner(self._index(users, self.n_users, "user"), torch.from_numpy(out))
            return Bounded(out, got.err_users, got.err_items)

        return score

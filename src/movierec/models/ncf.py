"""Neural Collaborative Filtering (He et al., WWW 2017): GMF, MLP and NeuMF, each a ``Model``.

Every model maps (user, item) index pairs to logits; a user is an id (``user_input = "id"``)
with one learned row per user table. ``score_all(users)`` scores every item for each user
without pushing ``B * n_items`` rows through the parts of the network that factorise:

- GMF is one matrix product.
- MLP: the tower's user and item halves are computed once (``movierec.models.layers``).
- NeuMF adds the two.

The tutorial's model is the MLP with embeddings of 8 and layers (64, 32).

A new person is folded in (``movierec.foldin``) through ``user_tables()`` (the user tables,
keyed by part) and the pure ``score_user_rows(rows, items)``, which reads those rows in
place of looked-up ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from movierec import foldin, fused
from movierec.data import Interactions
from movierec.models.layers import Factors, Tower
from movierec.models.protocol import UserInput, check_index_spaces, cosine_contributions
from movierec.models.scoring import CHUNK_ROWS, Bounded

if TYPE_CHECKING:
    from movierec.models import ModelConfig


class IdModel(nn.Module):
    """What GMF, MLP and NeuMF share as ``Model``s: a user is an id, training is BCE on
    (user, item, label) rows, a new person is folded in by fitting a private user row."""

    user_input: ClassVar[UserInput] = "id"
    history_len = 0
    n_users: int
    n_items: int

    def example_losses(
        self, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self(users, items), labels, reduction="none")

    def with_inputs(self, inter: Interactions) -> IdModel:
        check_index_spaces(self, inter)
        return self  # an id's input is its learned row: nothing to read

    def user_tables(self) -> dict[str, torch.Tensor]:
        """Every user table (n_users, f), keyed as ``score_user_rows`` reads them."""
        raise NotImplementedError

    def score_user_rows(self, rows: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """``forward`` for users given by rows of their user tables (``rows[key]`` (..., f),
        keyed as ``user_tables``) instead of indices, broadcast against ``items``. Reads the
        model, writes nothing; differentiable in ``rows`` (``foldin`` fits them)."""
        raise NotImplementedError

    def score_new_user(self, liked: torch.Tensor, fold: foldin.FoldInConfig) -> torch.Tensor:
        return torch.from_numpy(foldin.score_folded(self, foldin.fold_in(self, liked, fold)))

    def item_tables(self) -> list[torch.Tensor]:
        """The item tables as the model reads them (GMF's weighted by its predict layer)."""
        raise NotImplementedError

    @torch.no_grad()
    def item_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``item_vectors()`` of ``ids`` only: (..., D) unit rows."""
        parts = [F.normalize(t.detach().float()[ids], dim=-1) for t in self.item_tables()]
        return F.normalize(torch.cat(parts, dim=-1), dim=-1)

    def item_vectors(self) -> torch.Tensor:
        """Every item table, each row normalised, side by side, normalised again."""
        return self.item_rows(torch.arange(self.n_items, device=self.predict.weight.device))

    @torch.no_grad()
    def explain(self, inputs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The cosine of ``item_vectors`` between each input item and each target: a user
        is an id here, so no input movie has an exact share of the score; the movies they
        watched that are most like the recommended one are the honest reason."""
        return cosine_contributions(self.item_rows, self.n_items, inputs, items)


def _logit(predict: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    return F.linear(h, predict.weight, predict.bias).squeeze(-1)


class GMF(IdModel):
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

    def user_tables(self) -> dict[str, torch.Tensor]:
        return {"mf": self.mf.user.weight}

    def score_user_rows(self, rows: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        return _logit(self.predict, rows["mf"] * self.mf.item(items))

    def item_tables(self) -> list[torch.Tensor]:
        return [self.mf.item.weight * self.predict.weight[0].abs()]

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
        return self.mf.dot_all(users, self.predict.weight[0]) + self.predict.bias


class MLP(IdModel):
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

    def user_tables(self) -> dict[str, torch.Tensor]:
        return {"tower": self.tower.user.weight}

    def score_user_rows(self, rows: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        return _logit(self.predict, self.tower.from_user_rows(rows["tower"], items))

    def item_tables(self) -> list[torch.Tensor]:
        return [self.tower.item.weight]

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


class NeuMF(IdModel):
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

    def user_tables(self) -> dict[str, torch.Tensor]:
        return {"mf": self.mf.user.weight, "tower": self.tower.user.weight}

    def item_tables(self) -> list[torch.Tensor]:
        f = self.mf.item.embedding_dim
        return [self.mf.item.weight * self.predict.weight[0, :f].abs(), self.tower.item.weight]

    def score_user_rows(self, rows: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        mf = rows["mf"] * self.mf.item(items)
        tower = self.tower.from_user_rows(rows["tower"], items)
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

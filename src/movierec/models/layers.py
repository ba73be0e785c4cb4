"""The NCF building blocks: embeddings with a fused CPU path, the GMF product, the MLP tower.

The tower's first layer acts on ``concat(user, item)``, so it splits into a user half and an
item half, each computed once; the layers after the first ReLU still see ``B * n_items``
rows: on a CPU a two-layer tower runs in the fused C kernel (``movierec.fused``), otherwise
in tiles of at most ``chunk_rows`` pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from movierec import fused


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

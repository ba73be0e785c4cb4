"""The one door every model goes through: what training, evaluation and serving may ask of it.

A model is a ``torch.nn.Module`` that implements ``Model`` below. Consumers (the training
loop, ``evaluate`` through ``TorchScorer``, ``recommend``, ``compare``, ``artifacts``) use
these members only: never a model's class, never a parameter's name.

Life of a model:

1. **Built** from a typed config: ``build_model(ModelConfig)`` (``movierec.models``) calls
   the registered class's ``from_config``.
2. **Trained** by the one loop (``movierec.training``): the model's ``user_input`` says
   which examples an epoch holds (``movierec.training.epochs``):

   - ``"id"``: (user, item, label) rows, every training positive plus fresh unseen
     negatives, shuffled; ``example_losses(users, items, labels)`` is the per-row BCE;
   - ``"history"``: causal rows, every training positive with the ``history_len`` items
     before it (latest first, ``n_items`` as padding) and fresh unseen negatives;
     ``example_losses(histories, items)`` with the positive in column 0 of ``items``;
   - ``"sequence"``: whole sequences, each training user's last ``history_len + 1`` items
     (oldest first, right-aligned, ``n_items`` as padding), shuffled;
     ``example_losses(inputs, targets)`` with ``targets`` the inputs shifted by one: every
     position predicts the next item (negatives, if any, are the model's own business).

   ``example_losses`` returns one loss per example, (B,): the loop takes their mean (one
   process) or their sum scaled to the step (DDP), so models know nothing of ranks.
3. **Given its inputs**: a user is an id (learned) or a history of items (read from
   interactions). ``with_inputs(inter)`` returns a model whose users' inputs are formed
   from ``inter``, sharing the parameters and leaving this one untouched (an id model
   returns itself). Which interactions: ``inputs_for(split, part)``: train when scoring
   validation, train + validation for test, everything when serving.
4. **Scored**: ``forward(users, items)`` for users x given items (broadcasting: aligned
   (B,) and (B,), or (B, 1) against (B, C)), ``score_all(users)`` for users x all items.
   ``TorchScorer`` (``movierec.models.scoring``) wraps both as numpy in / numpy out.
5. **Asked about a new person** from the movies they like: ``score_new_user(liked, fold)``
   scores every item for them without writing any shared state (an id model fits a private
   user vector, ``movierec.foldin``; a history or sequence model reads the list as its
   input, the most important movie as the latest), so
   concurrent requests may share one model.
6. **Asked for item vectors** for "similar movies": ``item_vectors()``, unit-length rows.
7. **Asked why**: ``explain(inputs, items)`` says how much each of a user's input movies
   (their latest watched, latest first, or a liked list, most important first) accounts for
   each recommended item, batch-first: (B, M) inputs x (B, k) items -> (B, k, M). What that
   means is each model's own honest answer: the history model's exact share of the score
   (its score is a weighted mean of input vectors dotted with the item's), the cosine of
   item vectors for the others (``cosine_contributions``). ``movierec.explain`` turns it
   into "because you watched" lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, runtime_checkable

import torch

from movierec.data import Interactions
from movierec.split import Split, concat

if TYPE_CHECKING:
    from movierec.foldin import FoldInConfig
    from movierec.models import ModelConfig

UserInput = Literal["id", "history", "sequence"]
InputPart = Literal["validation", "test", "all"]


@runtime_checkable
class Model(Protocol):
    """What every model implements (see the module docstring for the life of a model)."""

    user_input: ClassVar[UserInput]  # what a user is to this model: an id, or their items
    n_users: int
    n_items: int
    history_len: int  # items a "history" / "sequence" model reads (0 for "id" models)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Model: ...

    def example_losses(self, *batch: torch.Tensor) -> torch.Tensor:
        """One training loss per example (B,), from one batch of the epoch's examples."""
        ...

    def with_inputs(self, inter: Interactions) -> Model:
        """This model with its users' inputs formed from ``inter`` (parameters shared)."""
        ...

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...

    def score_all(self, users: torch.Tensor, chunk_rows: int = ...) -> torch.Tensor: ...

    def score_new_user(self, liked: torch.Tensor, fold: FoldInConfig) -> torch.Tensor:
        """``liked`` (m,) item ids, most important first -> scores of every item (n_items,)."""
        ...

    def item_vectors(self) -> torch.Tensor:
        """(n_items, k) unit-length item representations."""
        ...

    def explain(self, inputs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``inputs`` (B, M) item ids, latest / most important first, any id outside
        [0, n_items) as padding; ``items`` (B, k) ids in [0, n_items) -> (B, k, M) float:
        how much input ``m`` accounts for item ``j``'s score, larger is more; ``-inf`` where
        column ``m`` is padding or a position the model does not read. Reads the model,
        writes nothing."""
        ...


def inputs_for(split: Split, part: InputPart) -> Interactions:
    """The interactions users' inputs are formed from when scoring ``part``: train for
    validation, train + validation for test, every interaction when serving ("all")."""
    if part == "validation":
        return split.train
    if part == "test":
        return concat(split.train, split.validation)
    if part == "all":
        return split.all()
    raise ValueError(f"part must be 'validation', 'test' or 'all', got {part!r}")


def cosine_contributions(
    unit_rows: Callable[[torch.Tensor], torch.Tensor],
    n_items: int,
    inputs: torch.Tensor,
    items: torch.Tensor,
) -> torch.Tensor:
    """``explain`` by similarity: the cosine between each input item's vector and each
    target's, from ``unit_rows(ids)`` (unit-length item vectors of ``ids``, (..., D));
    ``-inf`` at padding inputs. For models whose score has no exact per-input share."""
    inputs = inputs.long()
    valid = (inputs >= 0) & (inputs < n_items)
    given = unit_rows(torch.where(valid, inputs, 0))  # (B, M, D)
    targets = unit_rows(items.long().clamp(0, n_items - 1))  # (B, k, D)
    sim = targets @ given.transpose(1, 2)
    return sim.masked_fill(~valid[:, None, :], -torch.inf)


def check_index_spaces(model: Model, inter: Interactions) -> None:
    if (inter.n_users, inter.n_items) != (model.n_users, model.n_items):
        raise ValueError("interactions and model index spaces differ")

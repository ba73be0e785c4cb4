"""The one training loop, for every model: a LightningModule that knows the protocol only.

Each epoch: fresh examples (``movierec.training.epochs``: negatives for id models, causal
positions for history models), Adam steps on the mean of the model's ``example_losses``,
then the sampled validation HR/NDCG@10 (``batches.sampled_sums``), the best epoch's weights
kept, early stopping after ``patience`` epochs without a better validation HR@10, the epoch
logged (``train_log.csv``) and checkpointed (``files``); a non-finite loss stops training
with a ``DivergedError`` (the last good checkpoint stays).

Manual optimization with the plain torch optimizer: the whole update is visible in
``training_step``. Float32, no precision plugin. One process: each call runs several
optimizer steps (``GROUP_ROWS``). DDP: one optimizer step per call, on this rank's piece of
the step (``ranks.shard_epoch``), with ``manual_backward`` so that gradients sync. Each
rank's loss is its pieces' loss *sum* times ``world / examples in the step``; DDP averages
gradients over ranks, so a step's update is that of the whole step's mean loss, as in one
process (up to float summation order), even when the pieces differ in size or one is
empty. Validation: every validation batch is split the same way across ranks; hits, NDCG
gain and user counts are summed over ranks (all_reduce), so every rank sees the same
figures and takes the same best-epoch and early-stopping decisions.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from movierec import checkpoint as checkpoint_state
from movierec.errors import MovierecError
from movierec.training.batches import EpochBatches, Fixed, sampled_sums, shard_batches
from movierec.training.config import TrainConfig
from movierec.training.epochs import Examples
from movierec.training.files import (
    CHECKPOINT,
    TRAIN_LOG,
    EpochLog,
    remove_work_files,
    save_checkpoint,
    write_train_log,
)
from movierec.training.ranks import Shard, shard_epoch
from movierec.training.runtime import (
    available_cores,
    keep_freed_memory,
    mapped_large_blocks,
    threads_per_rank,
)

GROUP_ROWS = 16384  # examples per Lightning step: small batches run several optimizer steps


class DivergedError(MovierecError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochStats:
    """Running figures of the current epoch (a plain object: cheap to update every step)."""

    device: torch.device
    started: float = field(default_factory=time.perf_counter)
    loss_sum: torch.Tensor | None = None  # on the device: no sync per step
    steps: int = 0
    rows: int = 0  # training rows: examples times rows per example (a positive + negatives)
    train_start: float | None = None  # first batch (the epoch's examples are made before it)
    train_end: float | None = None  # validation start
    hits: float = 0.0
    gain: float = 0.0
    val_users: int = 0
    val: tuple[float, float] = (math.nan, math.nan)  # HR@10, NDCG@10
    live: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)

    def train_seconds(self) -> float:
        end = self.train_end or time.perf_counter()
        return end - (self.train_start or end)


class TrainingModule(L.LightningModule):
    """The loop over any ``movierec.models.protocol.Model`` and its ``Examples``.

    The loaders come from ``train_dataloader`` / ``val_dataloader``, called once the
    strategy has placed this module on its rank's device.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        examples: Examples,
        val: Fixed,
        run_dir: Path | None,
        fresh: bool = True,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__()
        self.model, self.config, self.examples, self.val = model, config, examples, val
        self.run_dir = run_dir
        self.fingerprint = fingerprint  # checkpoint.data_fingerprint of the split, saved with it
        self.fresh = fresh  # not a resume: remove a previous run's checkpoint and log first
        self.automatic_optimization = False
        self.history: list[EpochLog] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.stopped_early = False
        self.stats = EpochStats(torch.device("cpu"))
        self.shard: Shard | None = None  # DDP: this rank's share of every epoch
        self.row_width = examples.rows_per_example(config.negatives)

    @property
    def world(self) -> int:
        return self.trainer.world_size

    def setup(self, stage: str) -> None:
        if self.world > 1 and self.device.type == "cpu":
            torch.set_num_threads(threads_per_rank(available_cores(), self.trainer.num_devices))

    def on_fit_start(self) -> None:
        if self.fresh and self.run_dir is not None and self.trainer.is_global_zero:
            remove_work_files(self.run_dir)

    def train_dataloader(self) -> EpochBatches:
        """One process: groups of whole batches: one ``training_step`` call runs several
        optimizer steps when batches are small, so Lightning's per-call overhead (~1 ms on
        a CPU) is paid once per ``GROUP_ROWS`` examples. Batch boundaries are the same as
        without groups. DDP: this rank's piece of every step, one per call."""
        self.examples = self.examples.on(self.device)  # DDP: built on the CPU, this rank's now
        bs = self.config.batch_size
        n = self.examples.n_examples(self.config.negatives)
        if self.world == 1:
            return EpochBatches(self._make_epoch, n, max(1, GROUP_ROWS // bs) * bs)
        self.shard = shard_epoch(n, bs, self.world, self.trainer.global_rank)
        return EpochBatches(self._make_epoch, n, bs, sizes=self.shard.sizes)

    def val_dataloader(self) -> Fixed:
        return shard_batches(self.val, self.world, self.trainer.global_rank, self.device)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        c, params = self.config, self.model.parameters()
        fused = self.device.type in ("cpu", "cuda")  # one kernel for all tensors: far less overhead
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, fused=fused)

    def _make_epoch(self) -> tuple[torch.Tensor, ...]:
        c = self.config
        index = None if self.shard is None else self.shard.index
        with mapped_large_blocks():  # gigabytes, freed at the epoch's end: back to the system
            return self.examples.epoch(c.seed, self.current_epoch, c.negatives, index=index)

    # -- training
    def on_train_start(self) -> None:
        keep_freed_memory(True)  # after the examples and validation sets are built

    def on_train_end(self) -> None:
        keep_freed_memory(False)

    def on_train_epoch_start(self) -> None:
        self.stats = EpochStats(self.device)

    def training_step(self, group: tuple[torch.Tensor, ...], group_idx: int) -> None:
        st, opt = self.stats, self.optimizers(use_pl_optimizer=False)
        if st.train_start is None:
            st.train_start = time.perf_counter()
        if self.shard is not None:
            self._ddp_step(group, int(self.shard.step_rows[group_idx]), opt)
            return
        for columns in zip(*(c.split(self.config.batch_size) for c in group)):
            loss = self.model.example_losses(*self.examples.batch(columns)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            st.loss_sum += loss.detach()
            st.steps += 1
            st.rows += len(columns[0]) * self.row_width

    def _ddp_step(
        self, columns: tuple[torch.Tensor, ...], step_rows: int, opt: torch.optim.Optimizer
    ) -> None:
        """One optimizer step on this rank's piece of a step of ``step_rows`` examples.

        DDP averages gradients over the ranks, so scaling each rank's loss sum by
        ``world / step_rows`` makes the update that of the whole step's mean loss."""
        total = self.model.example_losses(*self.examples.batch(columns)).sum()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(total * (self.world / step_rows))
        opt.step()
        st = self.stats
        st.loss_sum += total.detach() / step_rows  # summed over ranks: the step's mean loss
        st.steps += 1
        st.rows += len(columns[0]) * self.row_width

    def sum_over_ranks(self, values: Sequence[float | torch.Tensor]) -> list[float]:
        """``values`` summed over every rank (as they are with one process)."""
        if self.world == 1:
            return [float(v) for v in values]
        t = torch.stack(
            [torch.as_tensor(v, dtype=torch.float64, device=self.device) for v in values]
        )
        return self.trainer.strategy.reduce(t, reduce_op="sum").tolist()

    def live_metrics(self) -> dict[str, float]:
        """Loss and rows/s for the progress bar; syncs with the device at most twice a second.

        DDP: rank 0's share times the world size (an estimate: no collective per refresh)."""
        st, now = self.stats, time.perf_counter()
        if st.steps and now - st.live.get("at", 0.0) > 0.5:
            elapsed = max(now - (st.train_start or now), 1e-9)
            share = 1 if self.shard is None else self.world
            loss = float(st.loss_sum) * share / st.steps
            st.live = {"at": now, "loss": loss, "rows/s": st.rows * share / elapsed}
        return {k: v for k, v in st.live.items() if k != "at"}

    # -- validation
    def on_validation_epoch_start(self) -> None:
        self.stats.train_end = time.perf_counter()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        users, items = batch
        hits, gain = sampled_sums(self.model(users[:, None], items))
        self.stats.hits += hits
        self.stats.gain += gain
        self.stats.val_users += users.numel()

    def on_validation_epoch_end(self) -> None:
        st = self.stats
        hits, gain, users = self.sum_over_ranks([st.hits, st.gain, st.val_users])
        n = max(users, 1)
        st.val = (hits / n, gain / n)
        self.log("val_hr@10", st.val[0], prog_bar=True)

    # -- bookkeeping after validation: NaN guard, best weights, early stopping, log, checkpoint
    def on_train_epoch_end(self) -> None:
        st = self.stats
        hr, ndcg = st.val
        loss_sum, rows = self.sum_over_ranks([st.loss_sum, st.rows])
        row = EpochLog(
            epoch=self.current_epoch + 1,
            loss=loss_sum / max(st.steps, 1),
            val_hr10=hr,
            val_ndcg10=ndcg,
            rows_per_s=rows / max(st.train_seconds(), 1e-9),
            seconds=time.perf_counter() - st.started,
        )
        if not math.isfinite(row.loss):
            raise DivergedError(
                f"training diverged: the {self.config.model} model's loss is {row.loss} in "
                f"epoch {row.epoch} (lr {self.config.lr:.3g}); give a smaller --lr"
            )
        self.history.append(row)
        best_hr = -1.0 if self.best_state is None else self.history[self.best_epoch - 1].val_hr10
        if self.best_state is None or not (hr <= best_hr):  # nan (no validation): keep latest
            self.best_epoch = row.epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        patience = self.config.patience
        if patience is not None and row.epoch - self.best_epoch >= patience:
            self.stopped_early = True
            self.trainer.should_stop = True
        if self.run_dir is not None:
            if self.trainer.is_global_zero:
                write_train_log(self.run_dir / TRAIN_LOG, self.history)
            save_checkpoint(self.trainer, self.run_dir / CHECKPOINT)

    # -- resume
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[checkpoint_state.STATE] = {
            "config": self.config.to_dict(),
            checkpoint_state.DATA: self.fingerprint,
            "history": [dataclasses.asdict(h) for h in self.history],
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "stopped_early": self.stopped_early,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.restore(checkpoint[checkpoint_state.STATE])

    def restore(self, state: dict[str, Any]) -> None:
        """Loop state from a checkpoint that ``files.resume_checkpoint`` verified."""
        self.history = [EpochLog(**h) for h in state["history"]]
        self.best_epoch = int(state["best_epoch"])
        self.best_state = state["best_state"]
        self.stopped_early = bool(state["stopped_early"])
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng") or []
        if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)

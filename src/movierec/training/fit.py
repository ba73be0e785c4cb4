"""``fit``: train any model on a split with the one loop (``movierec.training.loop``).

Randomness: the model's initial weights come from torch seeded with ``seed``; epoch ``e``
draws its examples from ``numpy.random.default_rng([seed, e])``. An interrupted run resumed
from its last checkpoint therefore replays exactly the epochs it would have run.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from movierec import checkpoint as checkpoint_state
from movierec.models import build_model, inputs_for
from movierec.split import Split
from movierec.training.batches import validation_batches
from movierec.training.config import TrainConfig
from movierec.training.epochs import examples_for
from movierec.training.files import CHECKPOINT, resume_checkpoint
from movierec.training.loop import TrainingModule
from movierec.training.progress import ProgressBar
from movierec.training.ranks import Parallel, check_parallel
from movierec.training.result import TrainResult
from movierec.training.runtime import launch_rank, resolve_device


def fit(
    split: Split,
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    init: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
    parallel: Parallel | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``split.train``; select the epoch by validation HR@10.

    While training, users' inputs are formed from train (``inputs_for(split,
    "validation")``); the returned model's from train + validation, ready for test.
    ``run_dir``: where the per-epoch checkpoint and ``train_log.csv`` go (none when None).
    ``resume``: continue from ``run_dir``'s last checkpoint (a fresh start when there is
    none); it must be intact and of the same data (``checkpoint.read``), and the settings
    must match except ``epochs``, ``patience`` and ``device`` (else ``ResumeError``).
    ``init``: a prepared model to start from instead of a fresh one (e.g.
    ``NeuMF.from_pretrained(gmf, mlp)``); it must match ``config``'s model shapes.
    ``callbacks``: extra Lightning callbacks.
    ``parallel``: several processes (DDP, ``movierec.training.ranks``); every rank calls
    ``fit`` with the same arguments (Lightning's launcher re-runs the calling command for
    ranks 1..N-1) and gets the same model; ``TrainResult.rank`` tells rank 0, the one that
    should save and report. As the examples of every step do not depend on the number of
    ranks, a checkpoint resumes with another ``parallel`` too.
    """
    parallel = parallel or Parallel()
    check_parallel(config, parallel)
    run_dir = Path(run_dir) if run_dir is not None else None
    if resume and run_dir is None:
        raise ValueError("resume=True needs the run_dir of the interrupted run")
    started = time.perf_counter()
    device = resolve_device(config.device)
    # DDP: the data is built on the CPU; each rank moves its share to its own device
    data_device = torch.device("cpu") if parallel.distributed else device
    model_config = config.model_config(split.n_users, split.n_items)
    torch.manual_seed(config.seed)
    model = build_model(model_config) if init is None else init
    if init is not None and _shapes(init) != _shapes(build_model(model_config)):
        raise ValueError("init does not match the model described by config")
    examples = examples_for(model, split, data_device)
    n_rows = examples.n_examples(config.negatives) * examples.rows_per_example(config.negatives)
    config = config.resolved(rows_per_epoch=n_rows)
    model = model.with_inputs(inputs_for(split, "validation"))
    val = validation_batches(split, config.eval_seed, data_device, config.val_users)

    fingerprint = checkpoint_state.data_fingerprint(split) if run_dir is not None else None
    saved = resume_checkpoint(run_dir, config, fingerprint) if resume else None
    resume_from = run_dir / CHECKPOINT if saved is not None and run_dir is not None else None
    module = TrainingModule(model, config, examples, val, run_dir, saved is None, fingerprint)
    rank = launch_rank(devices=parallel.devices)
    if saved is not None and _finished(saved, config):
        module.restore(saved[checkpoint_state.STATE])  # nothing left to run: skip the Trainer
    else:
        trainer = _trainer(config, device, progress, callbacks, parallel, validate=len(val) > 0)
        trainer.fit(module, ckpt_path=resume_from, weights_only=True)
        rank, device = trainer.global_rank, module.device
    if module.best_state is not None:
        model.load_state_dict(module.best_state)
    model = model.with_inputs(inputs_for(split, "test")).to(device).eval()
    return TrainResult(
        model=model,
        config=config,
        model_config=model_config,
        history=module.history,
        best_epoch=module.best_epoch,
        stopped_early=module.stopped_early,
        device=device,
        seconds=time.perf_counter() - started,
        rank=rank,
    )


def _trainer(
    config: TrainConfig,
    device: torch.device,
    progress: bool,
    callbacks: Sequence[Callback],
    parallel: Parallel,
    validate: bool = True,
) -> L.Trainer:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|num_workers).*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # lightning 2.6 on torch 2.13
    warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")  # reduced by the module
    accelerator = {"cuda": "gpu"}.get(device.type, device.type)
    devices: Any = [device.index or 0] if device.type == "cuda" else 1
    strategy: Any = "auto"
    if parallel.distributed:
        # gloo on CPUs, NCCL on GPUs; every rank builds the same buffers (a history
        # model's histories): no broadcast of them at every step
        devices, strategy = parallel.devices, DDPStrategy(broadcast_buffers=False)
    bars = [ProgressBar(leave=True)] if progress else []
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=parallel.num_nodes,
        strategy=strategy,
        use_distributed_sampler=False,  # the module shards its own examples
        limit_val_batches=None if validate else 0,
        max_epochs=config.epochs,
        logger=False,
        enable_checkpointing=False,  # our own per-epoch checkpoint (on_train_epoch_end)
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        callbacks=[*bars, *callbacks],
    )


def _finished(saved: dict[str, Any], config: TrainConfig) -> bool:
    state = saved[checkpoint_state.STATE]
    return bool(state["stopped_early"]) or len(state["history"]) >= config.epochs


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}

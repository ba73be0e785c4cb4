"""Training, in the order it happens; one loop (Lightning) for every model.

- ``config``: ``TrainConfig`` and the per-model ``PRESETS``;
- ``runtime``: the device, torch threads, glibc's allocator, the process's launch rank;
- ``ranks``: DDP arithmetic (``Parallel``, every rank's piece of every step);
- ``epochs``: each epoch's fresh examples (negatives for id models, causal rows for
  history models);
- ``batches``: batches as Lightning iterates them, validation chunks and figures;
- ``files``: ``train_log.csv`` and the checkpoint a resume verifies;
- ``loop``: the LightningModule; ``fit``: ``fit()`` itself; ``result``: ``TrainResult``.

Only ``loop`` and ``fit`` import Lightning: ``artifacts`` (and so serving and batch scoring)
reads configs, results and files without it. This package imports none of its modules
itself; import them by name (``from movierec.training.fit import fit``).
"""

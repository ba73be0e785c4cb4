"""The training's progress bar: Lightning's rich bar with the loop's running loss and rows/s."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Lightning's rich bar showing the running loss and rows/s without a sync per step."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        live = pl_module.live_metrics()  # type: ignore[operator]  # TrainingModule's
        if "loss" in live:
            items["loss"] = f"{live['loss']:.4f}"
            items["rows/s"] = f"{live['rows/s'] / 1e3:,.0f}k"
        return items

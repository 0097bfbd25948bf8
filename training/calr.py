"""CALR: Cyclically Annealed Learning Rate (Acharya et al., AAAI 2019).

Within an epoch the learning rate runs a triangular cycle between lr_low and lr_high with a
half-cycle of `step_size` iterations. At each epoch end lr_high is multiplied by `anneal`
(0.1); once it is no longer above lr_low, both go back to their start values.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def calr_lr(step: int, steps_per_epoch: int, step_size: int, lr_low: float, lr_high: float,
            anneal: float = 0.1) -> float:
    """The learning rate at global iteration `step` (0-based)."""
    epoch, i = divmod(step, steps_per_epoch)
    high = lr_high
    for _ in range(epoch):
        high *= anneal
        if high <= lr_low:
            high = lr_high
    cycle = math.floor(1 + i / (2 * step_size))
    x = abs(i / step_size - 2 * cycle + 1)  # 1 at a cycle's ends, 0 at its peak
    return lr_low + (high - lr_low) * max(0.0, 1.0 - x)


class CALR(LRScheduler):
    """Call `.step()` after every optimizer step (per iteration, not per epoch)."""

    def __init__(self, optimizer: Optimizer, lr_low: float, lr_high: float, steps_per_epoch: int,
                 step_size: int | None = None, anneal: float = 0.1, last_epoch: int = -1):
        if not 0.0 < lr_low < lr_high:
            raise ValueError(f"need 0 < lr_low < lr_high, got {lr_low}, {lr_high}")
        if steps_per_epoch < 1 or not 0.0 < anneal < 1.0:
            raise ValueError("steps_per_epoch must be >= 1 and anneal in (0, 1)")
        self.lr_low, self.lr_high, self.anneal = lr_low, lr_high, anneal
        self.steps_per_epoch = steps_per_epoch
        self.step_size = step_size or max(1, steps_per_epoch // 2)  # default: one cycle per epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lr = calr_lr(self.last_epoch, self.steps_per_epoch, self.step_size, self.lr_low, self.lr_high,
                     self.anneal)
        return [lr for _ in self.optimizer.param_groups]

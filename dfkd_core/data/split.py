"""The Split a distillation runs on: train/validation/test tensors, the prior for
synthetic points, and how the target was scaled."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .priors import Prior


@dataclass(frozen=True)
class Split:
    """One dataset split by the paper's protocol. Tensors are float32 on the CPU;
    x_* have shape (n, *input_shape), y_* have shape (n,).

    y_mean/y_std undo the target standardization (0 and 1 where none was applied);
    metrics are reported on the standardized scale, as the paper's tables are.
    note: a sentence the UI shows, e.g. "Offline: MNIST's 10 000 test images split 8000/2000".
    """

    name: str
    kind: str  # 'tabular' | 'image' | 'composition'
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    prior: Prior
    seed: int = 0
    y_mean: float = 0.0
    y_std: float = 1.0
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def dim(self) -> int:
        return int(self.x_train[0].numel())

"""The optimizer updates of the hand-written training code, each written once and elementwise in
place: torch.optim.RMSprop's and Adam's steps (their defaults), and Algorithm 2's fresh optimizer
of the synthetic points (FreshOptimizer). The fused MLP form (students, generators, the direct
sampler's points: engine.fused_mlp, engine.fused_parts) and the batched teacher trainer
(models.teacher_batch) use these and no other copy; `scalar` is the 0-dim operand they (and
engine.mlp_kernels) multiply by."""
from __future__ import annotations

import torch

RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8  # torch.optim.RMSprop defaults
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam defaults

_SCALARS: dict = {}


def scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """`value` as a 0-dim tensor of like's dtype and device, made once and cached. In-place ops
    given a Python float (x.mul_(0.99)) wrap it as a float64 number and, on float32 tensors,
    convert it with an aten::_to_copy on every call; a 0-dim tensor of the right dtype does
    the same arithmetic without it (and never syncs: it is read like any other operand)."""
    key = (value, like.dtype, like.device)
    t = _SCALARS.get(key)
    if t is None:
        t = _SCALARS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return t


def rmsprop_(param: torch.Tensor, grad: torch.Tensor, square_avg: torch.Tensor, lr: float,
             weight_decay: float = 0.0, alpha: float = RMSPROP_ALPHA, eps: float = RMSPROP_EPS,
             scratch: torch.Tensor | None = None, fresh: bool = False) -> None:
    """One torch.optim.RMSprop step (not centered, no momentum), elementwise, in place:
    g += wd·p; v = ρv + (1 − ρ)g²; p −= lr·g/(√v + eps). `grad` is overwritten when wd > 0;
    √v + eps goes to `scratch` (shaped like param) when given. `fresh`: the optimizer's first
    step (v = (1 − ρ)g², whatever square_avg held: Algorithm 2's fresh optimizer per batch)."""
    if weight_decay:
        grad.add_(param, alpha=weight_decay)
    if fresh:
        torch.mul(grad, grad, out=square_avg).mul_(scalar(1.0 - alpha, param))
    else:
        square_avg.mul_(scalar(alpha, param)).addcmul_(grad, grad, value=1.0 - alpha)
    param.addcdiv_(grad, torch.sqrt(square_avg, out=scratch).add_(scalar(eps, param)), value=-lr)


def adam_(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, step: int,
          lr: float, betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS) -> None:
    """Step number `step` (1, 2, …) of torch.optim.Adam (no weight decay, not amsgrad), elementwise,
    in place: m = β₁m + (1 − β₁)g; v = β₂v + (1 − β₂)g²; p −= lr/(1 − β₁ᵗ) · m/(√v/√(1 − β₂ᵗ) + eps)."""
    b1, b2 = betas
    exp_avg.lerp_(grad, 1.0 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
    denom = (exp_avg_sq.sqrt() / (1.0 - b2 ** step) ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / (1.0 - b1 ** step))


class FreshOptimizer:
    """Algorithm 2's optimizer of the points: a fresh torch.optim.RMSprop / Adam / SGD (their
    defaults, lr = direct_lr) started again on every batch, elementwise on stacked points, so one
    step moves every member's points as its own optimizer would. Its state lives in buffers made
    once, shaped like the points it moves (`like`)."""

    def __init__(self, name: str, lr: float, like: torch.Tensor) -> None:
        self.name, self.lr = name, lr
        self.square_avg = torch.empty_like(like) if name in ("rmsprop", "adam") else None
        self.exp_avg = torch.zeros_like(like) if name == "adam" else None
        self.scratch = torch.empty_like(like) if name == "rmsprop" else None  # √v + eps

    def step_(self, param: torch.Tensor, grad: torch.Tensor, tau: int) -> None:
        """Step τ (0, 1, …) of this batch's optimizer on `param`, in place."""
        if self.name == "rmsprop":  # fresh at τ = 0: v = 0·ρ + (1 − ρ)g²
            rmsprop_(param, grad, self.square_avg, self.lr, 0.0, scratch=self.scratch, fresh=tau == 0)
        elif self.name == "adam":
            if tau == 0:
                self.exp_avg.zero_()
                self.square_avg.zero_()
            adam_(param, grad, self.exp_avg, self.square_avg, tau + 1, self.lr)
        else:
            param.add_(grad, alpha=-self.lr)

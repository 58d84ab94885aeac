"""Priors: where random synthetic inputs come from and which constraints they obey
(N(0, I) for standardized tables, clipped per-pixel N(μ, σ) for images, the simplex
for amino-acid fractions), plus the box bounds that the QMC samplers use."""
from __future__ import annotations

from dataclasses import dataclass

import torch

PRIOR_KINDS = ("gaussian", "clipped_gaussian", "simplex")


@dataclass(frozen=True)
class Prior:
    """A distribution over inputs of shape `mean.shape` (= the dataset's input shape).

    kind: 'gaussian'          x ~ N(mean, std), no constraint (standardized tabular data);
          'clipped_gaussian'  x ~ N(mean, std) clipped to [lower, upper] (images in [0, 1]);
          'simplex'           x ~ N(mean, std) clipped to [0, 1], then divided by its sum
                              (compositions whose features sum to 1).
    lower/upper: box bounds for QMC samplers and for clipping.
    """

    kind: str
    mean: torch.Tensor
    std: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor

    def __post_init__(self) -> None:
        assert self.kind in PRIOR_KINDS, self.kind
        assert self.mean.shape == self.std.shape == self.lower.shape == self.upper.shape

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.mean.shape)

    @property
    def dim(self) -> int:
        return int(self.mean.numel())

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "Prior":
        move = lambda t: t.to(device=device, dtype=dtype or t.dtype)  # noqa: E731
        return Prior(self.kind, move(self.mean), move(self.std), move(self.lower), move(self.upper))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points of shape (n, *shape) on the prior's device, constraints applied."""
        noise = torch.randn((n, *self.shape), generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.project(self.mean + self.std * noise)

    def from_unit_cube(self, u: torch.Tensor) -> torch.Tensor:
        """Map points of [0, 1)^d (QMC output, shape (n, d)) into the prior's box, constraints applied."""
        u = u.to(device=self.mean.device, dtype=self.mean.dtype).reshape(-1, *self.shape)
        return self.project(self.lower + (self.upper - self.lower) * u)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the prior's constraints to x (n, *shape); identity for 'gaussian'."""
        if self.kind == "gaussian":
            return x
        x = torch.maximum(torch.minimum(x, self.upper), self.lower)
        if self.kind == "simplex":
            flat = x.reshape(x.shape[0], -1)
            total = flat.sum(dim=1, keepdim=True)
            # an all-zero row (possible after clipping) becomes the uniform composition
            flat = torch.where(total > 0, flat / total.clamp_min(1e-12), torch.full_like(flat, 1.0 / flat.shape[1]))
            x = flat.reshape(x.shape)
        return x

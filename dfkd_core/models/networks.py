"""The networks of the paper: MLP regressors (teacher 500, students 25/50 tanh units),
Kang & Kang's generator, the MNIST CNN of Table 2, and the RBF network of the protein
case study. Every regressor maps (n, *input_shape) to predictions of shape (n,); a model
string ('mlp500', 'cnn10', 'rbf100') names one through teachers.build_model, sized by limits.parse_arch."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..data.priors import Prior


def log_cosh(d: torch.Tensor) -> torch.Tensor:
    """log(cosh(d)), computed stably as |d| + softplus(−2|d|) − log 2 (the MNIST loss and objective term)."""
    a = d.abs()
    return a + F.softplus(-2.0 * a) - 0.6931471805599453


class MLPRegressor(nn.Module):
    """d → hidden (tanh) → 1, on flattened inputs (paper 3.4: teacher 500, students 25 or 50)."""

    activation = "tanh"  # between fc1 and fc2 (export's model.json names it)

    def __init__(self, input_shape: tuple[int, ...], hidden: int = 50) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.hidden = hidden
        d = math.prod(self.input_shape)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x.flatten(1)))).squeeze(-1)


class DigitCNN(nn.Module):
    """The MNIST regression CNN of the paper's Table 2 (after Wang et al. 2020):
    conv3×3·f ReLU → conv3×3·2f softplus → maxpool 2 → conv3×3·4f softplus → maxpool 2 →
    FC 500 softplus → dropout 0.5 → FC 100 softplus → dropout 0.25 → FC 20 softplus → FC 1 softplus.
    Teacher f = 10, student f = 5. Convolutions are padded ('same') so 8×8 digits fit too.

    Activations are kept channels-last (NHWC) when `channels_last` is set (the default):
    the same function, but oneDNN's convolutions and max-pooling run much faster in that
    layout on CPUs (`python -m dfkd_core bench --datasets mnist` times both, side by side)."""

    channels_last = True  # layout of new instances; a class attribute so the benchmark can time both

    def __init__(self, input_shape: tuple[int, ...], filters: int = 10) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.filters = filters
        channels, height, width = self.input_shape
        f = filters
        self.features = nn.Sequential(
            nn.Conv2d(channels, f, 3, padding=1), nn.ReLU(),
            nn.Conv2d(f, 2 * f, 3, padding=1), nn.Softplus(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * f, 4 * f, 3, padding=1), nn.Softplus(),
            nn.MaxPool2d(2),
        )
        flat = 4 * f * (height // 4) * (width // 4)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 500), nn.Softplus(), nn.Dropout(0.5),
            nn.Linear(500, 100), nn.Softplus(), nn.Dropout(0.25),
            nn.Linear(100, 20), nn.Softplus(),
            nn.Linear(20, 1), nn.Softplus(),
        )
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, *self.input_shape).contiguous(memory_format=self.memory_format)
        return self.head(self.features(x)).squeeze(-1)


class RBFNetwork(nn.Module):
    """Gaussian radial-basis layer (`units` centres with learnable widths) → linear output
    (the protein case study's student, 100 units). Centres start at prior samples."""

    def __init__(self, input_shape: tuple[int, ...], units: int = 100, prior: Prior | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        d = math.prod(self.input_shape)
        if prior is not None:
            centres = prior.to("cpu").sample(units, generator=generator).reshape(units, d)
        else:
            centres = torch.randn(units, d, generator=generator)
        self.centres = nn.Parameter(centres.clone())
        # start the width at the typical distance between centres
        spread = torch.cdist(centres, centres).median().clamp_min(1e-3)
        self.log_width = nn.Parameter(torch.full((units,), float(torch.log(spread))))
        self.out = nn.Linear(units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sq = torch.cdist(x.flatten(1), self.centres).pow(2)
        phi = torch.exp(-sq / (2 * torch.exp(2 * self.log_width)))
        return self.out(phi).squeeze(-1)


class Generator(nn.Module):
    """Kang & Kang's generator: z ∈ R^z_dim → hidden (tanh) → input space. The output layer
    respects the prior: linear for N(0, I) data, a sigmoid into [lower, upper] for images,
    a softmax onto the simplex for compositions."""

    def __init__(self, prior: Prior, z_dim: int = 50, hidden: int = 500) -> None:
        super().__init__()
        self.prior_kind = prior.kind
        self.shape = prior.shape
        self.z_dim = z_dim
        d = prior.dim
        self.fc1 = nn.Linear(z_dim, hidden)
        self.fc2 = nn.Linear(hidden, d)
        self.register_buffer("lower", prior.lower.reshape(-1).clone())
        self.register_buffer("upper", prior.upper.reshape(-1).clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.fc2(torch.tanh(self.fc1(z)))
        if self.prior_kind == "clipped_gaussian":
            out = self.lower + (self.upper - self.lower) * torch.sigmoid(out)
        elif self.prior_kind == "simplex":
            out = torch.softmax(out, dim=1)
        return out.reshape(-1, *self.shape)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

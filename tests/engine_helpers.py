"""Small hand-made splits and contexts for engine tests (no files needed)."""
from __future__ import annotations

import numpy as np
import torch

from dfkd_core.config import DistillConfig
from dfkd_core.data.priors import Prior
from dfkd_core.data.split import Split
from dfkd_core.models.networks import MLPRegressor
from dfkd_core.synth.objectives import build_objective
from dfkd_core.synth.samplers import SamplerContext
from dfkd_core.models.teachers import BlackBoxTeacher, TorchTeacher


def tabular_split(n: int = 600, d: int = 5, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.1 * torch.randn(n, generator=g)
    y = (y - y.mean()) / y.std()
    prior = Prior("gaussian", torch.zeros(d), torch.ones(d), x.min(0).values, x.max(0).values)
    a, b = int(0.6 * n), int(0.7 * n)
    return Split("hand", "tabular", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], prior, seed=seed)


def simplex_prior(d: int = 20) -> Prior:
    return Prior("simplex", torch.full((d,), 1.0 / d), torch.full((d,), 0.03), torch.zeros(d), torch.ones(d))


def random_mlp(d: int, hidden: int, seed: int) -> MLPRegressor:
    torch.manual_seed(seed)
    return MLPRegressor((d,), hidden)


def context(teacher, prior: Prior, cfg: DistillConfig | None = None, seed: int = 0) -> SamplerContext:
    cfg = cfg or DistillConfig()
    return SamplerContext(teacher, prior, build_objective(cfg), cfg, torch.device("cpu"),
                          torch.Generator().manual_seed(seed), np.random.default_rng(seed))


def torch_teacher(d: int = 5, hidden: int = 64, seed: int = 1) -> TorchTeacher:
    return TorchTeacher(random_mlp(d, hidden, seed), "mlp")


def svr_like_teacher(d: int = 20) -> BlackBoxTeacher:
    w = np.linspace(-1.0, 1.0, d)
    return BlackBoxTeacher(lambda x: np.tanh(x @ w * 5.0), kind="callable")

"""Synthetic-data samplers, one registry: random ('gaussian' and the QMC designs 'lhs',
'halton', 'sobol'), the adversarial 'generator' (Kang & Kang, eqs. 2–3), 'direct'
optimization of the inputs (the paper's Algorithm 2, eqs. 4–6) and 'evolution'
(differential evolution for black-box teachers, section 3.6)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .data.priors import Prior
from .errors import ModelError
from .models import Generator
from .objectives import Objective
from .registry import Registry
from .teachers import BlackBoxTeacher, Teacher


@dataclass
class SamplerContext:
    """What a sampler may use: the teacher, the prior (on the run's device), the objective,
    the run's config, a seeded torch generator on the device and a seeded numpy generator."""

    teacher: Teacher
    prior: Prior
    objective: Objective
    cfg: object  # DistillConfig
    device: torch.device
    generator: torch.Generator
    rng: np.random.Generator


class Sampler:
    """sample(student, n) -> a detached batch x_g of shape (n, *input_shape)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False  # needs a differentiable teacher
    searches: ClassVar[bool] = False  # looks for points with teacher queries (inner steps), not only draws them

    def __init__(self, ctx: SamplerContext) -> None:
        self.last_start: torch.Tensor | None = None  # a searching sampler's last batch before its search (for plots)
        if self.needs_gradients and not ctx.teacher.differentiable:
            raise ModelError(f"The {self.name!r} sampler needs the teacher's gradients, but the "
                             f"{ctx.teacher.kind} teacher is a black box; use 'evolution' or a random sampler.")
        self.ctx = ctx

    def begin_epoch(self) -> None:
        """Called before each epoch's n_s batches (a sampler that learns per epoch starts here)."""

    def sample(self, student: nn.Module, n: int) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


SAMPLERS: Registry[type[Sampler]] = Registry("sampler")


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    SAMPLERS.add(cls.name, cls)
    return cls


@register_sampler
class GaussianSampler(Sampler):
    name = "gaussian"
    description = "random points from the dataset's prior (N(0, I) for standardized tables)"

    def sample(self, student: nn.Module, n: int) -> torch.Tensor:
        return self.ctx.prior.sample(n, self.ctx.generator)


class _QMCSampler(Sampler):
    """A scipy.stats.qmc design over the prior's box [lower, upper], continued batch after batch."""

    def __init__(self, ctx: SamplerContext) -> None:
        super().__init__(ctx)
        self.engine = self._make_engine(ctx.prior.dim, ctx.rng)

    def _make_engine(self, d: int, rng: np.random.Generator):  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, student: nn.Module, n: int) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Sobol's balance warning for n not a power of 2
            u = self.engine.random(n)
        return self.ctx.prior.from_unit_cube(torch.from_numpy(u))


@register_sampler
class LatinHypercubeSampler(_QMCSampler):
    name = "lhs"
    description = "Latin hypercube designs over the prior's bounds (scipy.stats.qmc)"

    def _make_engine(self, d, rng):
        from scipy.stats import qmc

        return qmc.LatinHypercube(d, rng=rng)


@register_sampler
class HaltonSampler(_QMCSampler):
    name = "halton"
    description = "a scrambled Halton sequence over the prior's bounds (scipy.stats.qmc)"

    def _make_engine(self, d, rng):
        from scipy.stats import qmc

        return qmc.Halton(d, scramble=True, rng=rng)


@register_sampler
class SobolSampler(_QMCSampler):
    name = "sobol"
    description = "a scrambled Sobol sequence over the prior's bounds (scipy.stats.qmc)"

    def _make_engine(self, d, rng):
        from scipy.stats import qmc

        return qmc.Sobol(d, scramble=True, rng=rng)


@register_sampler
class GeneratorSampler(Sampler):
    """Kang & Kang's adversarial generator G_φ(z): once per epoch, before the epoch's first
    batch, `generator_steps` RMSprop updates of φ on L_G = mean objective(G(z)) (eq. 3, weight
    decay `generator_weight_decay`); every batch is a fresh G(z). (The paper's code: one update
    per epoch for the tabular data; "rounds per epoch" for MNIST in its text.)"""

    name = "generator"
    searches = True
    description = "an adversarially trained generator network (Kang & Kang, eq. 3)"
    needs_gradients = True

    def __init__(self, ctx: SamplerContext) -> None:
        super().__init__(ctx)
        cfg = ctx.cfg
        self.net = Generator(ctx.prior, cfg.generator_z_dim, cfg.generator_hidden).to(ctx.device)
        self.params = list(self.net.parameters())
        self.opt = torch.optim.RMSprop(self.params, lr=cfg.generator_lr, weight_decay=cfg.generator_weight_decay)
        self.last_objective: torch.Tensor | None = None  # detached, for tests and plots
        self.rounds_due = cfg.generator_steps  # updates to make before the next batch

    def begin_epoch(self) -> None:
        self.rounds_due = self.ctx.cfg.generator_steps

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.net.z_dim, generator=self.ctx.generator, device=self.ctx.device)

    def train_step(self, student: nn.Module, n: int) -> torch.Tensor:
        ctx = self.ctx
        x = self.net(self._z(n))
        y_rand = ctx.objective.draw_y_rand(n, ctx.generator, ctx.device)
        loss = ctx.objective(x, ctx.teacher.predict(x), student(x), y_rand).mean()
        grads = torch.autograd.grad(loss, self.params)  # only φ: teacher and student get no gradient
        for p, g in zip(self.params, grads):
            p.grad = g
        self.opt.step()
        self.last_objective = loss.detach()
        return self.last_objective

    def sample(self, student: nn.Module, n: int) -> torch.Tensor:
        for _ in range(self.rounds_due):
            self.train_step(student, n)
        self.rounds_due = 0
        with torch.no_grad():
            return self.net(self._z(n))


def make_input_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)  # torch defaults: smoothing 0.99, eps 1e-8
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


@register_sampler
class DirectOptimizationSampler(Sampler):
    """Algorithm 2: start from prior samples and take τ = direct_steps steps of a fresh
    optimizer (RMSprop, lr η = direct_lr) on the per-sample objective, e.g. eq. 5
    −(T(x) − S(x))² + β‖x‖² + γ·S(x)²; the prior's constraints are re-applied after each step.
    With RMSprop's defaults the first step moves every coordinate by ≈ 10·η·sign(∂L/∂x)."""

    name = "direct"
    searches = True
    description = "direct optimization of prior samples toward large teacher–student disagreement (Alg. 2)"
    needs_gradients = True

    def sample(self, student: nn.Module, n: int) -> torch.Tensor:
        ctx, cfg = self.ctx, self.ctx.cfg
        x = ctx.prior.sample(n, ctx.generator).detach()
        self.last_start = x.clone()
        x.requires_grad_(True)
        opt = make_input_optimizer(cfg.direct_optimizer, [x], cfg.direct_lr)
        y_rand = ctx.objective.draw_y_rand(n, ctx.generator, ctx.device)
        for _ in range(cfg.direct_steps):
            # per-sample objectives summed: each point's gradient is its own
            loss = ctx.objective(x, ctx.teacher.predict(x), student(x), y_rand).sum()
            (x.grad,) = torch.autograd.grad(loss, x)
            opt.step()
            with torch.no_grad():
                x.copy_(ctx.prior.project(x))
        return x.detach()


@register_sampler
class EvolutionSampler(Sampler):
    """Direct optimization without gradients (section 3.6): SciPy's differential evolution
    whose population *is* the synthetic batch, started from prior samples; vectorized with
    deferred updating, so each generation is one teacher query for the whole population;
    no polishing; points are projected onto the prior's constraints (e.g. the simplex)."""

    name = "evolution"
    searches = True
    description = "differential evolution of prior samples; queries a black-box teacher only"

    def sample(self, student: nn.Module, n: int) -> torch.Tensor:
        from scipy.optimize import differential_evolution

        ctx, cfg, prior = self.ctx, self.ctx.cfg, self.ctx.prior
        if n < 5:
            raise ModelError(f"The 'evolution' sampler needs a batch of at least 5 points. Got {n} instead.")
        lower = prior.lower.reshape(-1).double().cpu().numpy()
        upper = prior.upper.reshape(-1).double().cpu().numpy()
        upper = np.maximum(upper, lower + 1e-9)
        init = prior.sample(n, ctx.generator).reshape(n, -1).double().cpu().numpy()
        init = np.clip(init, lower, upper)
        self.last_start = torch.from_numpy(init).to(ctx.device, prior.mean.dtype).reshape(n, *prior.shape)
        y_rand = ctx.objective.draw_y_rand(n, ctx.generator, ctx.device)

        def objective(population_t: np.ndarray) -> np.ndarray:  # (d, S) -> (S,)
            x = torch.from_numpy(np.ascontiguousarray(population_t.T)).to(ctx.device, prior.mean.dtype)
            x = prior.project(x.reshape(-1, *prior.shape))
            with torch.no_grad():
                teacher = self._query(x)
                student_pred = student(x)
                value = ctx.objective(x, teacher, student_pred, None if y_rand is None else y_rand[: x.shape[0]])
            return value.double().cpu().numpy()

        result = differential_evolution(
            objective, list(zip(lower, upper)), strategy=cfg.de_strategy, maxiter=cfg.de_generations,
            init=init, vectorized=True, updating="deferred", polish=False, tol=0.0, atol=0.0,
            mutation=cfg.de_mutation, recombination=cfg.de_recombination,
            rng=np.random.default_rng(ctx.rng.integers(2**63)),
        )
        x = torch.from_numpy(result.population).to(ctx.device, prior.mean.dtype)
        return prior.project(x.reshape(n, *prior.shape))

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        teacher = self.ctx.teacher
        if isinstance(teacher, BlackBoxTeacher):
            flat = x.reshape(x.shape[0], -1).double().cpu().numpy()
            return torch.as_tensor(teacher.predict_numpy(flat), dtype=x.dtype, device=x.device)
        return teacher.predict(x)

"""Synthetic-data samplers, one registry: random ('gaussian' and the QMC designs 'lhs',
'halton', 'sobol'), the adversarial 'generator' (Kang & Kang, eqs. 2–3), 'direct'
optimization of the inputs (the paper's Algorithm 2, eqs. 4–6) and 'evolution'
(differential evolution for black-box teachers, section 3.6)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from ..data.priors import Prior
from ..errors import ModelError
from ..models.networks import Generator
from .objectives import INPUT_NORM_BATCH_FACTORS, Objective
from ..registry import Registry

if TYPE_CHECKING:  # the samplers see a teacher only through predict / predict_numpy: no import of
    from ..models.teachers import Teacher  # models.teachers (limits reads the samplers' declared costs)


@dataclass
class SamplerContext:
    """What a sampler may use: the teacher, the prior (on the run's device), the objective, the
    run's config, and per member of its group a seeded torch generator on the device and a
    seeded numpy generator (`generator` / `rng`: one, or a sequence of one per member). A sampler
    that owns networks initialises member k's from the global torch RNG state `init_states[k]`
    (the state right after that member's student was built), or from the current state."""

    teacher: Teacher
    prior: Prior
    objective: Objective
    cfg: object  # DistillConfig
    device: torch.device
    generator: torch.Generator | Sequence[torch.Generator]
    rng: np.random.Generator | Sequence[np.random.Generator]
    init_states: Sequence[torch.Tensor] | None = None

    @property
    def generators(self) -> tuple[torch.Generator, ...]:
        return (self.generator,) if isinstance(self.generator, torch.Generator) else tuple(self.generator)

    @property
    def rngs(self) -> tuple[np.random.Generator, ...]:
        return (self.rng,) if isinstance(self.rng, np.random.Generator) else tuple(self.rng)

    @property
    def size(self) -> int:
        return len(self.generators)


class Students(Protocol):
    """The K students of a sampler group, stacked: students(x) maps x (K, n, *shape) to (K, n),
    member k on its own points x[k], differentiably in x; member(k) is member k alone on (n, *shape)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def member(self, k: int) -> Callable[[torch.Tensor], torch.Tensor]: ...


class OneStudent:
    """One nn.Module (or none, for samplers that never look at the student) as a group of one."""

    def __init__(self, module: nn.Module | None) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x[0])[None]

    def member(self, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.module


class Sampler:
    """One implementation for a group of K stacked members: sample(students, n) → a detached
    batch x_g (K, n, *input_shape), member k's from its own random streams. Given a single
    nn.Module instead of a group, the batch of that one student, (n, *input_shape)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False  # needs a differentiable teacher
    searches: ClassVar[bool] = False  # looks for points with teacher queries (inner steps), not only draws them
    # --- capabilities: what the engine, the budget and the figures read (never the sampler's name)
    # the name of its part in the fused MLP form (engine.fused_parts.FUSED_PARTS: 'prior_draw',
    # 'unit_cube_design', 'input_descent', 'generator_net'), or None: its members train on the
    # generic form, beside the fused members of the same run
    fused: ClassVar[str | None] = None
    graph_safe: ClassVar[bool] = True  # its step runs on the device only: a CUDA graph can capture it
    uses_generator_net: ClassVar[bool] = False  # owns one generator network per member (memory estimate)
    cost_settings: ClassVar[tuple[str, ...]] = ()  # the settings its cost grows with (named in budget errors)
    input_norm_batch_factor: ClassVar[float] = 1.0  # objectives.sampler_objective's n·factor·β per point ('batch' scope)
    min_batch: ClassVar[int] = 1  # the smallest batch_size it works with
    min_batch_reason: ClassVar[str] = ""  # why, in the error that refuses a smaller one
    colour: ClassVar[int | None] = None  # its palette index in figures (None: the next free one)

    @classmethod
    def work_per_epoch(cls, cfg, teacher_flops: float, student_flops: float, generator_flops: float) -> float:
        """Floating-point operations one member adds per epoch to labelling its points and
        training its student (limits.estimate): the search for its points. Draws: nothing."""
        return 0.0

    def __init__(self, ctx: SamplerContext) -> None:
        self.last_start: torch.Tensor | None = None  # a searching sampler's last batch before its search (for plots)
        if self.needs_gradients and not ctx.teacher.differentiable:
            raise ModelError(f"The {self.name!r} sampler needs the teacher's gradients, but the "
                             f"{ctx.teacher.kind} teacher is a black box; use 'evolution' or a random sampler.")
        self.ctx = ctx

    def begin_epoch(self) -> None:
        """Called before each epoch's n_s batches (a sampler that learns per epoch starts here)."""

    def sample(self, students: Students | nn.Module | None, n: int) -> torch.Tensor:
        if isinstance(students, nn.Module) or students is None:
            x = self.sample_group(OneStudent(students), n)
            if self.last_start is not None:
                self.last_start = self.last_start[0]
            return x[0]
        return self.sample_group(students, n)

    def sample_group(self, students: Students, n: int) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    # helpers for the implementations
    def _prior_draws(self, n: int) -> torch.Tensor:
        """(K, n, *shape): each member's prior sample from its own stream."""
        return torch.stack([self.ctx.prior.sample(n, g) for g in self.ctx.generators])

    def _y_rand(self, n: int) -> torch.Tensor | None:
        """(K·n,) each member's random targets of the objective, or None."""
        ctx = self.ctx
        draws = [ctx.objective.draw_y_rand(n, g, ctx.device) for g in ctx.generators]
        return None if draws[0] is None else torch.cat(draws)

    def _objective(self, x: torch.Tensor, students: Students, y_rand: torch.Tensor | None) -> torch.Tensor:
        """The objective per point of x (K, n, *shape) → (K, n): ONE teacher call for the group."""
        ctx, (k, n) = self.ctx, x.shape[:2]
        flat = x.reshape(k * n, *x.shape[2:])
        value = ctx.objective(flat, ctx.teacher.predict(flat), students(x).reshape(-1), y_rand)
        return value.reshape(k, n)


SAMPLERS: Registry[type[Sampler]] = Registry("sampler", package=__package__)


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    SAMPLERS.add(cls.name, cls)
    INPUT_NORM_BATCH_FACTORS[cls.name] = cls.input_norm_batch_factor  # what objectives.sampler_objective reads
    return cls


@register_sampler
class GaussianSampler(Sampler):
    name = "gaussian"
    description = "random points from the dataset's prior (N(0, I) for standardized tables)"
    fused = "prior_draw"
    colour = 0  # the paper's Fig. 4: Gaussian blue, LHS orange, generator green, direct red, evolution purple

    def sample_group(self, students: Students, n: int) -> torch.Tensor:
        return self._prior_draws(n)


class _QMCSampler(Sampler):
    """A scipy.stats.qmc design over the prior's box [lower, upper], continued batch after batch
    (one design per member)."""

    fused = "unit_cube_design"
    graph_safe = False  # scipy draws on the host

    def __init__(self, ctx: SamplerContext) -> None:
        super().__init__(ctx)
        self.engines = [self._make_engine(ctx.prior.dim, rng) for rng in ctx.rngs]

    def _make_engine(self, d: int, rng: np.random.Generator):  # pragma: no cover - interface
        raise NotImplementedError

    def sample_group(self, students: Students, n: int) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Sobol's balance warning for n not a power of 2
            u = np.stack([engine.random(n) for engine in self.engines])
        x = self.ctx.prior.from_unit_cube(torch.from_numpy(u.reshape(-1, u.shape[-1])))
        return x.reshape(len(self.engines), n, *x.shape[1:])


@register_sampler
class LatinHypercubeSampler(_QMCSampler):
    name = "lhs"
    colour = 1
    description = "Latin hypercube designs over the prior's bounds (scipy.stats.qmc)"

    def _make_engine(self, d, rng):
        from scipy.stats import qmc

        return qmc.LatinHypercube(d, rng=rng)


@register_sampler
class HaltonSampler(_QMCSampler):
    name = "halton"
    colour = 5
    description = "a scrambled Halton sequence over the prior's bounds (scipy.stats.qmc)"

    def _make_engine(self, d, rng):
        from scipy.stats import qmc

        return qmc.Halton(d, scramble=True, rng=rng)


@register_sampler
class SobolSampler(_QMCSampler):
    name = "sobol"
    colour = 6
    description = "a scrambled Sobol sequence over the prior's bounds (scipy.stats.qmc)"

    def _make_engine(self, d, rng):
        from scipy.stats import qmc

        return qmc.Sobol(d, scramble=True, rng=rng)


@register_sampler
class GeneratorSampler(Sampler):
    """Kang & Kang's adversarial generator G_φ(z): once per epoch, before the epoch's first
    batch, `generator_steps` RMSprop updates of φ on L_G = mean objective(G(z)) (eq. 3, weight
    decay `generator_weight_decay`); every batch is a fresh G(z). (The paper's code: one update
    per epoch for the tabular data; "rounds per epoch" for MNIST in its text.) The group's K
    generators are stacked (torch.func) and share one RMSprop, which is elementwise: each
    member's update is its own."""

    name = "generator"
    searches = True
    description = "an adversarially trained generator network (Kang & Kang, eq. 3)"
    needs_gradients = True
    fused = "generator_net"
    uses_generator_net = True
    cost_settings = ("generator_steps",)
    colour = 2

    @classmethod
    def work_per_epoch(cls, cfg, teacher_flops, student_flops, generator_flops):
        points, m = cfg.batches_per_epoch * cfg.batch_size, cfg.batch_size
        return cfg.generator_steps * m * 3 * (generator_flops + teacher_flops + student_flops) + points * generator_flops

    def __init__(self, ctx: SamplerContext) -> None:
        super().__init__(ctx)
        cfg = ctx.cfg
        self.nets = []
        for k in range(ctx.size):
            if ctx.init_states is None:  # the nets follow each other in the global stream
                self.nets.append(Generator(ctx.prior, cfg.generator_z_dim, cfg.generator_hidden).to(ctx.device))
                continue
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(ctx.init_states[k])
                self.nets.append(Generator(ctx.prior, cfg.generator_z_dim, cfg.generator_hidden).to(ctx.device))
        self.params, self.buffers = torch.func.stack_module_state(self.nets)
        self.opt = torch.optim.RMSprop(list(self.params.values()), lr=cfg.generator_lr,
                                       weight_decay=cfg.generator_weight_decay, capturable=ctx.device.type == "cuda")
        self._base = self.nets[0]
        self.last_objective: torch.Tensor | None = None  # detached, for tests and plots
        self.rounds_due = cfg.generator_steps  # updates to make before the next batch

    @property
    def net(self) -> nn.Module:
        """Member 0's generator with the current (stacked) weights."""
        return self.member_net(0)

    def member_net(self, k: int) -> nn.Module:
        with torch.no_grad():
            for name, p in self.nets[k].named_parameters():
                p.copy_(self.params[name][k])
        return self.nets[k]

    def begin_epoch(self) -> None:
        self.rounds_due = self.ctx.cfg.generator_steps

    def _z(self, n: int) -> torch.Tensor:
        z_dim = self._base.z_dim
        return torch.stack([torch.randn(n, z_dim, generator=g, device=self.ctx.device) for g in self.ctx.generators])

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        call = lambda p, b, zk: torch.func.functional_call(self._base, (p, b), (zk,))  # noqa: E731
        return torch.func.vmap(call)(self.params, self.buffers, z)

    def train_step(self, students: Students | nn.Module, n: int) -> torch.Tensor:
        """One update of every member's generator; returns the mean of their losses (detached)."""
        if isinstance(students, nn.Module):
            students = OneStudent(students)
        z = self._z(n)
        y_rand = self._y_rand(n)
        x = self._generate(z)
        per_member = self._objective(x, students, y_rand).mean(1)  # (K,): each member's L_G
        params = list(self.params.values())
        grads = torch.autograd.grad(per_member.sum(), params)  # only φ: teacher and students get no gradient
        for p, g in zip(params, grads):
            p.grad = g
        self.opt.step()
        self.last_objective = per_member.detach().mean()
        return self.last_objective

    def sample_group(self, students: Students, n: int) -> torch.Tensor:
        for _ in range(self.rounds_due):
            self.train_step(students, n)
        self.rounds_due = 0
        with torch.no_grad():
            return self._generate(self._z(n))


def make_input_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """A fresh optimizer of the points (Algorithm 2); on a GPU one that a CUDA graph can capture."""
    capturable = params[0].is_cuda
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, capturable=capturable)  # torch defaults: smoothing 0.99, eps 1e-8
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, capturable=capturable)
    return torch.optim.SGD(params, lr=lr)


@register_sampler
class DirectOptimizationSampler(Sampler):
    """Algorithm 2: start from prior samples and take τ = direct_steps steps of a fresh
    optimizer (RMSprop, lr η = direct_lr) on the per-sample objective, e.g. eq. 5
    −(T(x) − S(x))² + β‖x‖² + γ·S(x)²; the prior's constraints are re-applied after each step.
    With RMSprop's defaults the first step moves every coordinate by ≈ 10·η·sign(∂L/∂x).
    The group's points are one tensor (K, n, *shape): one teacher call per step for all members,
    and the optimizer, elementwise, moves every point as its own would."""

    name = "direct"
    searches = True
    description = "direct optimization of prior samples toward large teacher–student disagreement (Alg. 2)"
    needs_gradients = True
    fused = "input_descent"
    cost_settings = ("direct_steps",)
    input_norm_batch_factor = 0.5  # the batch-mean loss with RMSprop weight decay β: (n·β/2)‖x‖² per point
    colour = 3

    @classmethod
    def work_per_epoch(cls, cfg, teacher_flops, student_flops, generator_flops):
        return cfg.batches_per_epoch * cfg.batch_size * cfg.direct_steps * 3 * (teacher_flops + student_flops)

    def sample_group(self, students: Students, n: int) -> torch.Tensor:
        ctx, cfg = self.ctx, self.ctx.cfg
        x = self._prior_draws(n).detach()
        y_rand = self._y_rand(n)
        self.last_start = x.clone()
        x.requires_grad_(True)
        opt = make_input_optimizer(cfg.direct_optimizer, [x], cfg.direct_lr)
        for _ in range(cfg.direct_steps):
            # per-sample objectives summed: each point's gradient is its own
            (x.grad,) = torch.autograd.grad(self._objective(x, students, y_rand).sum(), x)
            opt.step()
            with torch.no_grad():
                x.copy_(ctx.prior.project(x.reshape(-1, *x.shape[2:])).reshape(x.shape))
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
    graph_safe = False  # scipy's differential evolution runs on the host
    cost_settings = ("de_generations",)
    min_batch, min_batch_reason = 5, "its population"
    colour = 4

    @classmethod
    def work_per_epoch(cls, cfg, teacher_flops, student_flops, generator_flops):
        return cfg.batches_per_epoch * cfg.batch_size * (cfg.de_generations + 1) * (teacher_flops + student_flops)

    def sample_group(self, students: Students, n: int) -> torch.Tensor:
        """Each member's own evolution (its generations query the teacher for its population)."""
        out, starts = [], []
        for k in range(self.ctx.size):
            x, start = self._evolve(students.member(k), n, self.ctx.generators[k], self.ctx.rngs[k])
            out.append(x)
            starts.append(start)
        self.last_start = torch.stack(starts)
        return torch.stack(out)

    def _evolve(self, student, n: int, generator: torch.Generator,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        from scipy.optimize import differential_evolution

        ctx, cfg, prior = self.ctx, self.ctx.cfg, self.ctx.prior
        if n < 5:
            raise ModelError(f"The 'evolution' sampler needs a batch of at least 5 points. Got {n} instead.")
        lower = prior.lower.reshape(-1).double().cpu().numpy()
        upper = prior.upper.reshape(-1).double().cpu().numpy()
        upper = np.maximum(upper, lower + 1e-9)
        init = prior.sample(n, generator).reshape(n, -1).double().cpu().numpy()
        init = np.clip(init, lower, upper)
        start = torch.from_numpy(init).to(ctx.device, prior.mean.dtype).reshape(n, *prior.shape)
        y_rand = ctx.objective.draw_y_rand(n, generator, ctx.device)

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
            rng=np.random.default_rng(rng.integers(2**63)),
        )
        x = torch.from_numpy(result.population).to(ctx.device, prior.mean.dtype)
        return prior.project(x.reshape(n, *prior.shape)), start

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        teacher = self.ctx.teacher
        if hasattr(teacher, "predict_numpy"):  # a black box (models.teachers.BlackBoxTeacher): numpy in, numpy out
            flat = x.reshape(x.shape[0], -1).double().cpu().numpy()
            return torch.as_tensor(teacher.predict_numpy(flat), dtype=x.dtype, device=x.device)
        return teacher.predict(x)

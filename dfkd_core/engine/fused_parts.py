"""The fused MLP form's parts (engine.fused_mlp): what one group of members — stacked members
[k0, k1) that share a sampler and |x_g| — does in the fused step, one class per implementation
a sampler declares (samplers.Sampler.fused names it; FUSED_PARTS maps the name to the class;
a group with α ≡ 0 is a NoDraws). FusedMLPStack asks its groups these and never their names:

  searches, fast_path(cfg)   whether it takes teacher-gradient steps; whether the single-group
                             fast path (mlp_kernels.FusedTeacherStudents) runs it
  normal_noise_only          it draws nothing but N(0, 1) noise into fixed buffers (normal_views):
                             the stack's draw plan, made once, may draw for it
  draw(j, gen, step)         member j's random numbers of one step, in the plain loop's order
  start_batch()              a search's starting points from the drawn noise
  inner_steps(step)          teacher-gradient steps before batch `step` of an epoch
  points(τ), update(τ, g)    the points (Kg, m_g, d + 1) it sends through the teacher at step τ,
                             and its update from g = ∂(objective_scale·objective)/∂x of them (Kg, m_g, d)
  fill()                     its x_g into its rows of the student batch (rows)
  bind()                     the fast path: search in its rows of the student batch itself

The direct search's update is models.updates.FreshOptimizer, the generators' models.updates.rmsprop_: one
implementation each, for the general path and the fast path alike."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from ..registry import Registry
from ..synth.objectives import Objective
from ..synth.samplers import SAMPLERS, Sampler
from .mlp_kernels import StackedGenerators
from ..models.updates import FreshOptimizer, rmsprop_

if TYPE_CHECKING:
    from .fused_mlp import FusedMLPStack


class FusedPart:
    """A group of members [k0, k1) of one stacked model whose x_g rows are the student batch's
    own prior noise (or empty): no search, no draws of its own. The base of every part."""

    searches: ClassVar[bool] = False  # takes inner steps with the teacher's gradients (points / update)
    normal_noise_only: ClassVar[bool] = True  # draws only N(0, 1) noise into fixed buffers (normal_views)
    needs_sampler: ClassVar[bool] = False  # built from the registered sampler's object (QMC engines, generators)
    objective_scale: float = 1.0  # the factor of the objective it descends (a generator: its batch mean)

    @classmethod
    def fast_path(cls, cfg) -> bool:
        """Whether the single-group fast path (FusedTeacherStudents) implements this part under cfg."""
        return False

    def __init__(self, stack: FusedMLPStack, kind: str, m_g: int, k0: int, k1: int, objective: Objective,
                 sampler: Sampler | None = None) -> None:
        self.stack, self.kind, self.m_g, self.k0, self.k1, self.objective = stack, kind, m_g, k0, k1, objective
        self.size = k1 - k0
        self.rows = stack.x[k0:k1, :m_g]  # its x_g rows (Kg, m_g, d + 1) of the student batch
        self.steps = 0  # inner steps per search (direct: per batch; generator: per epoch, on its first batch)
        self.y_rand: torch.Tensor | None = None  # (steps or 1, Kg, m_g) the objective's random targets
        self.graph_safe = kind == "none" or SAMPLERS.get(kind).graph_safe

    def _y_rand_buffer(self) -> None:
        """The random targets' buffer, when the run's objective draws them."""
        st = self.stack
        if st.objective.y_rand != "none":
            self.y_rand = torch.empty(max(1, self.steps), self.size, self.m_g, dtype=st.dtype, device=st.device)

    def _draw_y_rand(self, t: int, j: int, gen: torch.Generator) -> None:
        if self.y_rand is not None:
            self.y_rand[t, j].copy_(self.stack.objective.draw_y_rand(self.m_g, gen, self.stack.device))

    def steps_per_epoch(self, batches: int) -> int:
        """Teacher-gradient steps in one epoch of `batches` batches (what inner_steps adds up to)."""
        return 0

    def inner_steps(self, step: int) -> int:
        return 0

    def normal_views(self, j: int) -> list[torch.Tensor]:
        """The buffers member j's draw fills with N(0, 1) noise, in its order (normal_noise_only)."""
        return []

    def draw(self, j: int, gen: torch.Generator, step: int) -> None:
        """Member j's random numbers of batch `step` (before its x_p's)."""

    def start_batch(self) -> None:
        """After the draws of a batch (and the prior's map of the student batch) and before its inner steps."""

    def points(self, tau: int) -> torch.Tensor:  # pragma: no cover - searching parts only
        raise NotImplementedError

    def y_rand_at(self, tau: int) -> torch.Tensor | None:
        return None

    def update(self, tau: int, grad: torch.Tensor) -> None:  # pragma: no cover - searching parts only
        raise NotImplementedError

    def fill(self) -> None:
        """Place this batch's x_g in its rows of the student batch."""

    def bind(self) -> None:
        """The fast path: search in its rows of the student batch, from its rows of the batch's noise."""

    def mutable_state(self) -> list[torch.Tensor]:
        """Tensors one step carries to the next (a CUDA graph's warm-up puts them back)."""
        return []


FUSED_PARTS: Registry[type[FusedPart]] = Registry("fused part")


class NoDraws(FusedPart):
    """α ≡ 0: the group has no x_g rows and its sampler is never called."""


@FUSED_PARTS.register("prior_draw")
class PriorDraw(FusedPart):
    """Random points from the prior: N(0, 1) noise straight into the student batch's x_g rows,
    which the stack maps through the prior with x_p."""

    def normal_views(self, j):
        k, m_g = self.k0 + j, self.m_g
        return [self.stack.noise[k, :m_g].view(m_g, *self.stack.shape)]

    def draw(self, j, gen, step):
        k, m_g, shape = self.k0 + j, self.m_g, self.stack.shape
        torch.randn((m_g, *shape), generator=gen, out=self.stack.noise[k, :m_g].view(m_g, *shape))


@FUSED_PARTS.register("unit_cube_design")
class UnitCubeDesign(FusedPart):
    """A QMC design per member (the registered sampler's scipy engines), mapped into the prior's box."""

    normal_noise_only = False
    needs_sampler = True

    def __init__(self, stack, kind, m_g, k0, k1, objective, sampler=None):
        super().__init__(stack, kind, m_g, k0, k1, objective, sampler)
        self.engines = sampler.engines
        self._u: list = [None] * self.size  # this batch's design points per member

    def draw(self, j, gen, step):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Sobol's balance warning for n not a power of 2
            self._u[j] = self.engines[j].random(self.m_g)

    def fill(self):
        st = self.stack
        xq = st.prior.from_unit_cube(torch.from_numpy(np.concatenate(self._u))).reshape(self.size, self.m_g, st.d)
        self.rows[..., :st.d].copy_(xq)


@FUSED_PARTS.register("input_descent")
class InputDescent(FusedPart):
    """Algorithm 2: prior draws x₀ moved by `direct_steps` steps of a fresh optimizer
    (updates.FreshOptimizer) on the per-sample objective, on every batch; the prior's
    constraints re-applied after each step."""

    searches = True

    @classmethod
    def fast_path(cls, cfg):
        return cfg.direct_optimizer == "rmsprop"  # the fast path's RMSprop is what `bench` measured

    def __init__(self, stack, kind, m_g, k0, k1, objective, sampler=None):
        super().__init__(stack, kind, m_g, k0, k1, objective, sampler)
        st, cfg = stack, stack.cfg
        self.steps = cfg.direct_steps
        self.x0 = torch.ones(self.size, m_g, st.d + 1, dtype=st.dtype, device=st.device)  # the points (and a 1)
        self.x0_d = self.x0[..., :st.d]  # what the optimizer moves
        self.noise = torch.empty(self.size, m_g, st.d, dtype=st.dtype, device=st.device)  # their prior draw
        self.optimizer = FreshOptimizer(cfg.direct_optimizer, cfg.direct_lr, self.noise)
        self.in_batch = False  # bound to the student batch's rows (the fast path)
        self._y_rand_buffer()

    def steps_per_epoch(self, batches):
        return self.steps * batches

    def inner_steps(self, step):
        return self.steps

    def normal_views(self, j):
        return [self.noise[j].view(self.m_g, *self.stack.shape)]

    def draw(self, j, gen, step):
        torch.randn((self.m_g, *self.stack.shape), generator=gen, out=self.noise[j].view(self.m_g, *self.stack.shape))
        self._draw_y_rand(0, j, gen)

    def start_batch(self):
        if not self.in_batch:  # bound, x₀ is the batch's rows, already mapped through the prior with x_p
            self.x0[..., :self.stack.d].copy_(self.stack.apply_prior(self.noise))

    def points(self, tau):
        return self.x0

    def y_rand_at(self, tau):
        return None if self.y_rand is None else self.y_rand[0]

    def update(self, tau, grad):
        x = self.x0_d
        self.optimizer.step_(x, grad, tau)  # per-sample objectives summed: each point's gradient is its own
        prior = self.stack.prior
        if prior.kind != "gaussian":
            x.copy_(prior.project(x.reshape(-1, *self.stack.shape)).reshape(x.shape))

    def fill(self):
        if not self.in_batch:
            self.rows.copy_(self.x0)

    def bind(self):
        st = self.stack
        self.x0, self.x0_d, self.noise = self.rows, self.rows[..., :st.d], st.noise[self.k0:self.k1, :self.m_g]
        self.in_batch = True


@FUSED_PARTS.register("generator_net")
class GeneratorNet(FusedPart):
    """Kang & Kang's generators, stacked (mlp_kernels.StackedGenerators, from the registered
    sampler's networks): `generator_steps` RMSprop updates on the batch mean of the objective
    before an epoch's first batch; every batch a fresh G(z)."""

    searches = True
    normal_noise_only = False
    needs_sampler = True

    @classmethod
    def fast_path(cls, cfg):
        return True

    def __init__(self, stack, kind, m_g, k0, k1, objective, sampler=None):
        super().__init__(stack, kind, m_g, k0, k1, objective, sampler)
        st, n = stack, self.size
        self.steps = st.cfg.generator_steps
        self.nets = StackedGenerators([sampler.member_net(j) for j in range(n)], st.device, st.dtype)
        self.z = torch.empty(self.steps + 1, n, m_g, self.nets.z_dim, dtype=st.dtype, device=st.device)
        self.xa = torch.ones(n, m_g, st.d + 1, dtype=st.dtype, device=st.device)  # its output (and a 1)
        self.objective_scale = 1.0 / m_g  # the generator's loss is the batch mean of the objective
        self._saved: tuple | None = None  # the forward pass the update back-propagates through
        self._y_rand_buffer()

    def steps_per_epoch(self, batches):
        return self.steps

    def inner_steps(self, step):
        return self.steps if step == 0 else 0

    def draw(self, j, gen, step):
        for t in range(self.inner_steps(step)):
            torch.randn((self.m_g, self.nets.z_dim), generator=gen, out=self.z[t, j])
            self._draw_y_rand(t, j, gen)
        torch.randn((self.m_g, self.nets.z_dim), generator=gen, out=self.z[self.steps, j])

    def points(self, tau):
        gx, self._saved = self.nets.forward(self.z[tau])
        self.xa[..., :self.stack.d].copy_(gx)
        return self.xa

    def y_rand_at(self, tau):
        return None if self.y_rand is None else self.y_rand[tau]

    def update(self, tau, grad):
        cfg, nets = self.stack.cfg, self.nets
        nets.backward(grad, self._saved)
        rmsprop_(nets.theta, nets.grad, nets.square_avg, cfg.generator_lr, cfg.generator_weight_decay)

    def fill(self):
        gx, _ = self.nets.forward(self.z[self.steps])
        self.rows[..., :self.stack.d].copy_(gx)

    def bind(self):
        self.xa = self.rows

    def mutable_state(self):
        return [self.nets.theta, self.nets.square_avg]


def fused_part(kind: str) -> type[FusedPart] | None:
    """The part a group of `kind` takes: NoDraws for α ≡ 0 ('none': no sampler is called), else
    the one its sampler declares (samplers.Sampler.fused; None: the generic form only)."""
    if kind == "none":
        return NoDraws
    name = SAMPLERS.get(kind).fused
    return None if name is None else FUSED_PARTS.get(name)

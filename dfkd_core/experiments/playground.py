"""The sampler playground: the product's own samplers distilling a small teacher of a function of
two inputs, one step at a time, with |T − S| over the plane, arrows and the paper's guarantees."""
from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import DistillConfig
from ..data.priors import Prior
from ..data.split import Split
from ..engine.context import RunContext, batch_sizes, stream_seed
from ..engine.stacked import BatchView, ModuleStack
from ..errors import ConfigError
from ..models.networks import MLPRegressor
from ..synth.objectives import Objective, build_objective
from ..paths import teacher_dir
from ..registry import Registry
from ..synth.samplers import SAMPLERS, Sampler
from ..synth.schedules import parse_alpha
from ..models.teachers import TeacherInfo, TorchTeacher

PLANE = 4.0  # the canvas shows [−PLANE, PLANE]² of the standardized inputs
PRIOR_BOX = 3.0  # the prior's box [−3, 3]² (QMC designs and differential evolution search there)
RMSPROP_SMOOTHING = 0.99  # torch's RMSprop default α (ρ), used by the direct sampler's fresh optimizer
ADAM_BETAS = (0.9, 0.999)  # torch's Adam defaults


# ---------------------------------------------------------------------------- functions of two inputs
@dataclass(frozen=True)
class Region:
    """Where the teacher's training data lived: a disc of radius `size` or the box [−size, size]²,
    centred at 0; standardized, so each input has mean 0 and variance ≈ 1 there."""

    kind: str  # 'disc' or 'box'
    size: float

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "disc":
            return x.pow(2).sum(1) <= self.size**2
        return x.abs().amax(1) <= self.size

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points uniform in the region."""
        if self.kind == "disc":
            radius = self.size * torch.rand(n, generator=generator).sqrt()
            angle = 2 * math.pi * torch.rand(n, generator=generator)
            return torch.stack([radius * angle.cos(), radius * angle.sin()], 1)
        return self.size * (2 * torch.rand(n, 2, generator=generator) - 1)

    def outline(self, points: int = 97) -> tuple[np.ndarray, np.ndarray]:
        """The region's boundary as a closed polyline (x₁, x₂) for a figure."""
        if self.kind == "disc":
            angle = np.linspace(0, 2 * np.pi, points)
            return self.size * np.cos(angle), self.size * np.sin(angle)
        s = self.size
        return np.array([-s, s, s, -s, -s]), np.array([-s, -s, s, s, -s])


@dataclass(frozen=True)
class PlaneFunction:
    """A function f(x₁, x₂) the teacher learns from points in `region` only."""

    name: str
    label: str
    formula: str  # LaTeX
    fn: Callable[[torch.Tensor], torch.Tensor]  # (n, 2) -> (n,)
    region: Region


FUNCTIONS: Registry[PlaneFunction] = Registry("plane function")


def register_function(function: PlaneFunction) -> PlaneFunction:
    FUNCTIONS.add(function.name, function)
    return function


register_function(PlaneFunction(
    "sines", "sum of sines", r"f(x) = \sin 2x_1 + \sin 2x_2",
    lambda x: torch.sin(2 * x[:, 0]) + torch.sin(2 * x[:, 1]), Region("box", math.sqrt(3.0))))
register_function(PlaneFunction(
    "ring", "ring", r"f(x) = 2\,\exp\!\big(-(\lVert x\rVert - 1.2)^2 / 0.5\big)",
    lambda x: 2 * torch.exp(-(x.norm(dim=1) - 1.2).pow(2) / 0.5), Region("disc", 2.0)))
register_function(PlaneFunction(
    "saddle", "saddle", r"f(x) = (x_1^2 - x_2^2)/2",
    lambda x: (x[:, 0].pow(2) - x[:, 1].pow(2)) / 2, Region("disc", 2.0)))


# ---------------------------------------------------------------------------- the teacher
TEACHER_HIDDEN = 32  # a tanh MLP 2 → 32 → 1 fits each function on its region to RMSE ≤ 0.03
TEACHER_POINTS = 2048  # training points, uniform in the region
TEACHER_ITERATIONS = 300  # full-batch L-BFGS iterations (about half a second; Adam needed 3× longer for the ring)
TEACHER_RECIPE = f"mlp{TEACHER_HIDDEN}-n{TEACHER_POINTS}-lbfgs{TEACHER_ITERATIONS}-v1"


@dataclass(frozen=True)
class PlaneTeacher:
    """The playground's teacher of one function: the network, its RMSE on held-out region points
    (and on the whole canvas, where it only extrapolates), where it came from and how long that took."""

    function: str
    module: MLPRegressor
    region_rmse: float
    canvas_rmse: float
    source: str  # 'trained' or 'cache'
    seconds: float
    path: str


_TEACHERS: dict[str, PlaneTeacher] = {}


def teacher_path(function: str):
    digest = hashlib.sha1(f"{function}|{TEACHER_RECIPE}".encode()).hexdigest()[:10]
    return teacher_dir() / f"playground-{function}-{digest}.pt"


def train_plane_teacher(function: PlaneFunction, seed: int = 0) -> MLPRegressor:
    """Fit the teacher MLP to f on TEACHER_POINTS uniform points of the region (full-batch L-BFGS)."""
    gen = torch.Generator().manual_seed(seed)
    x = function.region.sample(TEACHER_POINTS, gen)
    y = function.fn(x)
    torch.manual_seed(seed)
    module = MLPRegressor((2,), TEACHER_HIDDEN)
    opt = torch.optim.LBFGS(module.parameters(), lr=1.0, max_iter=TEACHER_ITERATIONS, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = (module(x) - y).pow(2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return module.eval()


@torch.no_grad()
def _teacher_rmse(module: nn.Module, function: PlaneFunction) -> tuple[float, float]:
    held_out = function.region.sample(4096, torch.Generator().manual_seed(99))
    grid = plane_grid(81)[2]
    rmse = lambda x: float((module(x) - function.fn(x)).pow(2).mean().sqrt())  # noqa: E731
    return rmse(held_out), rmse(grid)


def get_plane_teacher(name: str, *, retrain: bool = False) -> PlaneTeacher:
    """The teacher of FUNCTIONS[name]: from this process, else from the teacher cache
    (a state_dict loaded with weights_only=True), else trained (about a second) and cached."""
    function = FUNCTIONS.get(name)
    if name in _TEACHERS and not retrain:
        return _TEACHERS[name]
    start = time.perf_counter()
    path = teacher_path(name)
    module, source = None, "trained"
    if path.exists() and not retrain:
        try:
            module = MLPRegressor((2,), TEACHER_HIDDEN)
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            module.eval()
            source = "cache"
        except Exception:  # a damaged cache entry is retrained, not fatal
            path.unlink(missing_ok=True)
            module = None
    if module is None:
        module = train_plane_teacher(function)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(module.state_dict(), tmp)
        tmp.replace(path)
    region_rmse, canvas_rmse = _teacher_rmse(module, function)
    teacher = PlaneTeacher(name, module, region_rmse, canvas_rmse, source, time.perf_counter() - start, str(path))
    _TEACHERS[name] = teacher
    return teacher


# ---------------------------------------------------------------------------- the plane
def plane_grid(size: int, extent: float = PLANE) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """A size × size grid over [−extent, extent]²: the axis values (x₁, x₂) and the points as
    (size², 2), x₁ varying fastest, so values.reshape(size, size)[row i, column j] is at (x₁[j], x₂[i])."""
    axis = np.linspace(-extent, extent, size)
    x1, x2 = np.meshgrid(axis, axis)
    points = torch.from_numpy(np.stack([x1.ravel(), x2.ravel()], 1)).float()
    return axis, axis, points


def plane_prior() -> Prior:
    """N(0, I) on the plane (the standardized data's prior, paper 3.2.1), with the box [−3, 3]²."""
    zeros = torch.zeros(2)
    return Prior("gaussian", zeros, torch.ones(2), zeros - PRIOR_BOX, zeros + PRIOR_BOX)


# ---------------------------------------------------------------------------- guarantee (b)
def step_cap(optimizer: str, step: int, lipschitz: float | None = None) -> float:
    """The largest move of one coordinate at inner step `step` (1-based) of a fresh optimizer with
    learning rate 1, for any gradients. RMSprop: v_t ≥ (1 − ρ)·g_t², so |g_t|/√v_t ≤ 1/√(1 − ρ)
    (= 10 for ρ = 0.99). Adam: |m̂_t/√v̂_t| ≤ √(1 − β₂ᵗ)/(1 − β₁ᵗ) · (1 − β₁)/√(1 − β₂) ·
    Σ_{j<t} (β₁/√β₂)ʲ (each g_k is bounded by √v_t/√((1 − β₂)β₂^{t−k})). SGD: the gradient itself,
    at most K for a K-Lipschitz loss (the paper's supplement)."""
    if optimizer == "rmsprop":
        return 1.0 / math.sqrt(1.0 - RMSPROP_SMOOTHING)
    if optimizer == "adam":
        b1, b2 = ADAM_BETAS
        series = sum((b1 / math.sqrt(b2)) ** j for j in range(step))
        return math.sqrt(1 - b2**step) / (1 - b1**step) * (1 - b1) / math.sqrt(1 - b2) * series
    if optimizer == "sgd":
        if lipschitz is None:
            raise ConfigError("The SGD displacement bound needs the loss's Lipschitz constant K. Got None instead.")
        return float(lipschitz)
    raise ConfigError(f"The 'optimizer' parameter must be one of 'rmsprop', 'adam', 'sgd'. Got {optimizer!r} instead.")


def direct_displacement_bound(optimizer: str, lr: float, steps: int, dim: int, lipschitz: float | None = None) -> float:
    """Guarantee (b) for direct optimization (paper, Supplementary Materials, after eq. 6):
    ‖x_τ − x_0‖ ≤ η·τ·√d·K for τ gradient steps on a K-Lipschitz loss. With RMSprop or Adam the
    per-coordinate step has a cap that needs no K (step_cap), so ‖x_τ − x_0‖ ≤ η·√d·Σ_t cap_t,
    e.g. 10·η·τ·√d for RMSprop. Projecting onto a convex prior set after each step (a box)
    moves no point farther from its start, which lies in the set."""
    return lr * math.sqrt(dim) * sum(step_cap(optimizer, t, lipschitz) for t in range(1, steps + 1))


def generator_norm_bound(lipschitz: float, beta: float, dim: int) -> float:
    """Guarantee (b) for the generator with L2 regularization (paper, Supplementary Materials):
    at a stationary point of f(x_g) + β‖x_g‖², ‖x_g‖ ≤ √d·K/(2β); infinite without β."""
    return math.inf if beta <= 0 else math.sqrt(dim) * lipschitz / (2 * beta)


# ---------------------------------------------------------------------------- words and equations
@dataclass(frozen=True)
class SamplerStory:
    words: str
    equation: str  # LaTeX
    source: str  # where in the paper


SAMPLER_STORIES = {
    "direct": SamplerStory(
        "Draws a batch from the prior, then moves every point τ optimizer steps (step size η) uphill on the "
        "student's error: toward where teacher and student disagree most, held back by β‖x‖² and γS(x)².",
        r"\min_{x_g}\; -(T(x_g) - S_\theta(x_g))^2 + \beta\lVert x_g\rVert^2 + \gamma\, S_\theta(x_g)^2",
        "eq. 5, Algorithm 2 (section 3.2.3)"),
    "generator": SamplerStory(
        "A network x_g = G_φ(z) turns noise z into points and is trained, one update per epoch, to emit points where "
        "the student is wrong; its points need not start anywhere, and tend to collapse into a few clusters.",
        r"\min_\phi\; \mathbb{E}_z\big[-(T(x_g) - S_\theta(x_g))^2 + \beta\lVert x_g\rVert^2"
        r" + \gamma\, S_\theta(x_g)^2\big]",
        "eq. 3 (section 3.2.2, after Kang & Kang)"),
    "evolution": SamplerStory(
        "Direct optimization without gradients: the batch is the population of a differential evolution "
        "that only queries the teacher; points stay inside the prior's box.",
        r"\min_{x_g \in [l, u]}\; -(T(x_g) - S_\theta(x_g))^2 + \beta\lVert x_g\rVert^2 + \gamma\, S_\theta(x_g)^2",
        "eq. 5 by differential evolution (sections 3.2.3 and 3.6)"),
}
RANDOM_STORY = SamplerStory(
    "Random points from the prior (the standardized data's N(0, I), or a quasi-random design over its box); "
    "nothing is optimized, so nothing moves.",
    r"x_p \sim \mathcal{N}(0, I) \quad\text{or a QMC design over } [-3, 3]^2",
    "section 3.2.1")


def sampler_story(name: str) -> SamplerStory:
    SAMPLERS.get(name)
    return SAMPLER_STORIES.get(name, RANDOM_STORY)


# ---------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class PlaygroundConfig:
    function: str = "sines"  # a registered plane function
    samplers: tuple[str, ...] = ("direct", "generator")  # one canvas each, side by side
    batch_size: int = 50  # m: points per batch (α = 1 or 0 doubles it, as in eq. 7's runs)
    direct_steps: int = 2  # τ: the direct sampler's optimizer steps per batch (paper: 2)
    direct_lr: float = 0.1  # η: the direct sampler's step size (paper: 0.1)
    beta: float = 1e-5  # β: weight of ‖x‖² in eqs. 3 and 5 (paper: 1e-5)
    gamma: float = 1e-5  # γ: weight of S(x)² in eqs. 3 and 5 (paper: 1e-5)
    alpha: float = 1.0  # α of eq. 7, constant: 1 = only the sampler's points teach, 0 = only random ones
    student_hidden: int = 16  # a small tanh student, so its errors stay visible
    student_lr: float = 0.01  # student RMSprop step (the paper's 1e-3 takes thousands of epochs to show)
    batches_per_step: int = 1  # n_s: batches per epoch; the canvas shows the last one
    de_generations: int = 10  # evolution: generations per batch (the product's default 25 costs ~2.5× the time)
    grid_size: int = 61  # |T − S| is evaluated on grid_size² points of the canvas
    seed: int = 0  # the student's init (the same for every sampler) and the random streams

    def validate(self) -> "PlaygroundConfig":
        FUNCTIONS.get(self.function)
        if not isinstance(self.samplers, tuple) or not 1 <= len(self.samplers) <= 4:
            raise ConfigError(f"The 'samplers' parameter must list 1 to 4 samplers. Got {self.samplers!r} instead.")
        for name in self.samplers:
            SAMPLERS.get(name)
        if len(set(self.samplers)) != len(self.samplers):
            raise ConfigError(f"The 'samplers' parameter must not repeat a sampler. Got {self.samplers!r} instead.")
        for name, low, high in (("student_hidden", 1, 1000), ("batches_per_step", 1, 100), ("grid_size", 11, 201),
                                ("seed", 0, 2**31 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"The {name!r} parameter must be an int in [{low}, {high}]. Got {value!r} instead.")
        for name, low, high in (("alpha", 0.0, 1.0), ("student_lr", 0.0, 10.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high or (name == "student_lr" and value == 0):
                raise ConfigError(f"The {name!r} parameter must be a float in [{low:g}, {high:g}]. Got {value!r} instead.")
        batch = batch_sizes(parse_alpha(str(float(self.alpha))), self.batch_size)
        if "evolution" in self.samplers and 0 < batch[0] < 5:
            raise ConfigError(f"The 'evolution' sampler needs a batch of at least 5 points. Got {batch[0]} instead.")
        self.distill_config().validate()
        return self

    def distill_config(self) -> DistillConfig:
        """The product's run config the samplers read (eq. 5 with this β and γ; the paper's generator).
        Its dataset is toy2d, a registered dataset of two inputs, only so that validate() sizes the models
        for the plane: the playground's samplers never load it."""
        return DistillConfig(
            dataset="toy2d", samplers=self.samplers, alphas=(str(float(self.alpha)),), seeds=(self.seed,),
            batch_size=self.batch_size, batches_per_epoch=self.batches_per_step, lr=self.student_lr,
            student_hidden=self.student_hidden, direct_steps=self.direct_steps, direct_lr=self.direct_lr,
            objective=(("neg_squared_discrepancy", 1.0), ("l2sq_input", self.beta), ("student_sq", self.gamma)), de_generations=self.de_generations, device="cpu", engine="generic")


def plane_run(cfg: PlaygroundConfig, teacher: PlaneTeacher, points: torch.Tensor) -> RunContext:
    """The engine's RunContext of a playground: the plane teacher (TorchTeacher), its prior
    (plane_prior), eq. 5's objective of cfg, on the CPU, and a split whose every set is `points`
    (the canvas grid's points inside the region) labelled by the teacher: the playground never
    validates, an engine run of the same config (engine.loop) does there."""
    dcfg = cfg.distill_config()
    with torch.no_grad():
        values = teacher.module(points)
    split = Split("plane", "tabular", points, values, points, values, points, values, plane_prior(),
                  note=f"the canvas grid inside the {cfg.function} teacher's region")
    info = TeacherInfo(f"mlp{TEACHER_HIDDEN}", teacher.region_rmse, math.nan, teacher.region_rmse,
                       teacher.source == "cache", teacher.seconds, teacher.path)
    return RunContext(dcfg, split, torch.device("cpu"), TorchTeacher(teacher.module, "mlp"), info, build_objective(dcfg),
                      points, values, points, values, points, values)


# ---------------------------------------------------------------------------- one sampler's lane
@dataclass(frozen=True)
class Frame:
    """What one sampler's canvas shows after `epoch` steps (epoch 0: before any step).

    error: |T − S| on the grid (grid_size, grid_size); points: the last batch's x_g (none when
    α = 0) and random: its x_p (none when α = 1); starts: where x_g's points began (direct: the prior draw;
    evolution: the initial population), None for samplers that do not move points.
    Guarantee (a): mean student loss (T − S)² on the start points (`baseline` 'start'), or on a
    fresh prior draw for samplers without start points ('random batch'), against x_g, both with the
    student before its update. Guarantee (b): the largest displacement ‖x_end − x_start‖ (for the
    generator: the largest ‖x_g‖) against `bound` (see bound_note)."""

    epoch: int
    error: np.ndarray
    points: np.ndarray
    random: np.ndarray
    starts: np.ndarray | None
    loss_before: float
    loss_after: float
    baseline: str
    displacement: float
    bound: float
    bound_note: str
    region_rmse: float  # RMSE of S against T on the grid points inside the real-data region
    canvas_rmse: float  # ... on the whole canvas
    seconds: float  # wall time of the step (sampling, student update, guarantees and |T − S| on the grid)


class SamplerLane:
    """One sampler distilling the teacher into its own student (all lanes start from the same
    student): the engine's own step (stacked.ModuleStack of this one member: α constant, the
    playground's seed), one engine epoch of n_s = batches_per_step batches per lane step; the
    canvas's measurements are the stack's on_batch hook, taken between sampling and the update."""

    def __init__(self, name: str, cfg: PlaygroundConfig, run: RunContext,
                 grid: torch.Tensor, teacher_on_grid: torch.Tensor, inside: torch.Tensor) -> None:
        self.name, self.cfg, self.dcfg = name, cfg, run.cfg
        self.teacher, self.prior = run.teacher, run.split.prior
        self.grid, self.teacher_on_grid, self.inside = grid, teacher_on_grid, inside
        member = next(m for m in run.cfg.members() if m.sampler == name)
        self.stack = ModuleStack(run, [member], compile="off")  # a step of ~100 points: compiling buys nothing
        self.stack.on_batch = self._measure
        self.sampler: Sampler | None = self.stack.samplers[0]  # None when α = 0
        self.objective = self.sampler.ctx.objective if self.sampler is not None else None
        self.generator = self.stack.gens[0]  # the member's stream: its prior draws and sampler
        self.baseline_generator = torch.Generator().manual_seed(stream_seed(member) + 1)  # guarantee (a)'s random batch
        self.epoch = 0
        self._measured: tuple | None = None
        self._teacher_gradient_on_grid: torch.Tensor | None = None  # ∇T on the grid (lipschitz_estimate)
        self.frames: list[Frame] = [self._frame(np.empty((0, 2), np.float32), np.empty((0, 2), np.float32), None,
                                                math.nan, math.nan, "", math.nan, math.nan, "", 0.0)]

    def step(self) -> Frame:
        """One engine epoch: n_s batches of sampling and one student update each; returns its Frame."""
        start_time = time.perf_counter()
        self._measured = None
        self.stack.run_epoch(self.epoch, validate=False)
        self.epoch += 1
        frame = self._frame(*self._measured, 0.0)
        frame = replace(frame, seconds=time.perf_counter() - start_time)  # the grid's |T − S| counted too
        self.frames.append(frame)
        return frame

    def _measure(self, view: BatchView) -> None:
        """The stack's on_batch hook: on the epoch's last batch, its points and the guarantees, with the
        student before its update."""
        if view.batch != self.cfg.batches_per_step - 1:
            return
        x_g = view.x_g(0) if self.sampler is not None else None
        starts = view.starts(0)
        measured = self._guarantees(x_g, starts, view.student(0))
        points = x_g.numpy().astype(np.float32) if x_g is not None else np.empty((0, 2), np.float32)
        random = view.x_p(0).numpy().astype(np.float32)
        starts = None if starts is None else starts.reshape(-1, 2).numpy().astype(np.float32)
        self._measured = (points, random, starts, *measured)

    @torch.no_grad()
    def _losses(self, student: Callable[[torch.Tensor], torch.Tensor], x_g: torch.Tensor,
                baseline: torch.Tensor) -> tuple[float, float]:
        """Mean (T − S)² on x_g and on the baseline points of as many rows: one student and one teacher call."""
        both = torch.cat([x_g, baseline])
        loss = (student(both) - self.teacher.module(both)).pow(2).reshape(2, -1).mean(1).tolist()
        return loss[0], loss[1]

    def _guarantees(self, x_g: torch.Tensor | None, starts: torch.Tensor | None,
                    student: Callable[[torch.Tensor], torch.Tensor]):
        """(loss_before, loss_after, baseline, displacement, bound, bound_note) of this batch."""
        if x_g is None:
            return math.nan, math.nan, "", math.nan, math.nan, "α = 0: no synthetic points, only random ones"
        if starts is not None:
            baseline, points = "start", starts
        else:
            baseline, points = "random batch", self.prior.sample(x_g.shape[0], self.baseline_generator)
        after, before = self._losses(student, x_g, points)
        dim = x_g[0].numel()
        if self.name == "direct":
            moved = float((x_g - starts).flatten(1).norm(dim=1).max())
            if self.dcfg.direct_optimizer == "sgd":
                k = self.lipschitz_estimate(x_g, student)
                bound = direct_displacement_bound("sgd", self.dcfg.direct_lr, self.dcfg.direct_steps, dim, k)
                note = f"η·τ·√d·K with K ≈ {k:.3g} measured on the canvas (supplement, guarantee (b))"
            else:
                bound = direct_displacement_bound(self.dcfg.direct_optimizer, self.dcfg.direct_lr, self.dcfg.direct_steps, dim)
                note = (f"η·τ·√d/√(1−ρ) = 10·η·τ·√d: {self.dcfg.direct_optimizer}'s step cap in the supplement's "
                        "η·t·√d·K (guarantee (b))")
        elif starts is not None:  # evolution: differential evolution keeps every point in its box
            moved = float((x_g - starts).flatten(1).norm(dim=1).max())
            bound = float((self.prior.upper - self.prior.lower).norm())
            note = "the diagonal of the search box [−3, 3]²: the paper states no bound for evolution (3.6)"
        elif self.sampler is not None and self.sampler.searches:  # generator: a bound on ‖x_g‖, not a displacement
            moved = float(x_g.flatten(1).norm(dim=1).max())
            k = self.lipschitz_estimate(x_g, student)
            beta = dict(self.objective.terms).get("l2sq_input", 0.0)
            bound = generator_norm_bound(k, beta, dim)
            note = f"‖x_g‖ ≤ √d·K/(2β) at convergence, K ≈ {k:.3g} measured on the canvas (supplement)"
        else:
            moved, bound, note = 0.0, 0.0, "random points are prior draws: they do not move"
        return before, after, baseline, moved, bound, note

    def lipschitz_estimate(self, x: torch.Tensor, student: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """K of the paper's proofs, estimated: the largest |∂f/∂x_j| of the objective without its
        ‖x‖² term, over the canvas grid and the batch, for `student` (an estimate, not a certificate)."""
        probe = torch.cat([self.grid, x.reshape(-1, 2)]).requires_grad_(True)
        grid, batch = probe[: len(self.grid)], probe[len(self.grid):]
        if self._teacher_gradient_on_grid is None:  # the grid and the teacher never change: once per lane
            points = self.grid.clone().requires_grad_(True)
            (self._teacher_gradient_on_grid,) = torch.autograd.grad(self.teacher.module(points).sum(), points)
        # on the grid, T's value and gradient at those points without a teacher call: x − x.detach() is 0
        teacher = torch.cat([self.teacher_on_grid + ((grid - grid.detach()) * self._teacher_gradient_on_grid).sum(1),
                             self.teacher.module(batch)])
        terms = tuple((n, w) for n, w in self.objective.terms if n != "l2sq_input")
        value = Objective(terms, self.objective.y_rand)(probe, teacher, student(probe)).sum()
        (grad,) = torch.autograd.grad(value, probe)
        return float(grad.abs().max())

    @torch.no_grad()
    def _frame(self, points, random, starts, before, after, baseline, moved, bound, note, seconds) -> Frame:
        diff = self.stack.forward(self.grid, shared=True)[0] - self.teacher_on_grid  # the student the stack holds now
        size = self.cfg.grid_size
        return Frame(self.epoch, diff.abs().reshape(size, size).numpy().astype(np.float32), points, random, starts,
                     before, after, baseline, moved, bound, note,
                     float(diff[self.inside].pow(2).mean().sqrt()), float(diff.pow(2).mean().sqrt()), seconds)


# ---------------------------------------------------------------------------- the playground
MAX_FRAMES = 5000  # frames kept per sampler for the epoch slider (~15 kB each at grid 61)


@dataclass
class Playground:
    """The playground's state: a teacher of one function and a lane per chosen sampler,
    stepped together; every lane keeps its frames so a slider can go back over them."""

    cfg: PlaygroundConfig
    teacher: PlaneTeacher
    lanes: dict[str, SamplerLane] = field(default_factory=dict)

    @classmethod
    def create(cls, cfg: PlaygroundConfig | None = None) -> "Playground":
        cfg = (cfg or PlaygroundConfig()).validate()
        plane_teacher = get_plane_teacher(cfg.function)
        x1, x2, grid = plane_grid(cfg.grid_size)
        with torch.no_grad():
            teacher_on_grid = plane_teacher.module(grid)
        inside = FUNCTIONS.get(cfg.function).region.contains(grid)
        run = plane_run(cfg, plane_teacher, grid[inside])
        lanes = {name: SamplerLane(name, cfg, run, grid, teacher_on_grid, inside) for name in cfg.samplers}
        return cls(cfg, plane_teacher, lanes)

    @property
    def function(self) -> PlaneFunction:
        return FUNCTIONS.get(self.cfg.function)

    @property
    def epochs_run(self) -> int:
        return next(iter(self.lanes.values())).epoch

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """plane_grid's axis values (x₁, x₂), without its points (the page asks for them every frame)."""
        axis = np.linspace(-PLANE, PLANE, self.cfg.grid_size)
        return axis, axis

    def error_scale(self) -> float:
        """A fixed top of the |T − S| colour scale: the untrained student's 99th-percentile error inside the
        real-data region (farther out it saturates), so a heatmap that fades means a student that improved."""
        return max(float(np.percentile(lane.frames[0].error.ravel()[lane.inside.numpy()], 99))
                   for lane in self.lanes.values()) or 1.0

    def step(self, epochs: int = 1) -> dict[str, Frame]:
        """Step every lane `epochs` epochs; returns the newest frame of each."""
        for _ in range(epochs):
            for lane in self.lanes.values():
                lane.step()
                if len(lane.frames) > MAX_FRAMES:
                    del lane.frames[1]  # keep epoch 0 and the newest
        return self.frames_at(self.epochs_run)

    def frames_at(self, epoch: int) -> dict[str, Frame]:
        """Each lane's frame of the latest epoch ≤ `epoch` still kept."""
        out = {}
        for name, lane in self.lanes.items():
            kept = [f for f in lane.frames if f.epoch <= epoch]
            out[name] = kept[-1] if kept else lane.frames[0]
        return out

    def history(self, name: str) -> dict[str, np.ndarray]:
        """Per epoch of one lane: region and canvas RMSE of S against T, and guarantee (a)'s two losses."""
        frames = self.lanes[name].frames
        return {key: np.array([getattr(f, key) for f in frames])
                for key in ("epoch", "region_rmse", "canvas_rmse", "loss_before", "loss_after")}


def time_steps(cfg: PlaygroundConfig, steps: int = 50, warmup: int = 5,
               canvas: Callable | None = None) -> dict[str, dict[str, float]]:
    """Per sampler of cfg: the median and the largest ms of one playground step (sampling, student
    update, |T − S| on the grid and the guarantees) over `steps` steps after `warmup`, and the median
    ms to build its canvas with `canvas(frame, axes, region, sampler, zmax, extent)` (the dashboard's
    playground_views: passed in by the caller, so experiments/ does not import the dashboard above it).
    The `bench --playground` line; the target is ≤ 100 ms a step."""
    if canvas is None:
        raise TypeError("time_steps needs the canvas builder (dashboard.playground_views.canvas)")
    state = Playground.create(cfg)
    state.step(warmup)
    region = state.function.region.outline()
    out = {}
    for name, lane in state.lanes.items():
        step_ms, figure_ms = [], []
        for _ in range(steps):
            frame = lane.step()
            step_ms.append(1000 * frame.seconds)
            start = time.perf_counter()
            canvas(frame, state.axes(), region, name, 1.0, PLANE)
            figure_ms.append(1000 * (time.perf_counter() - start))
        out[name] = {"step_ms_median": float(np.median(step_ms)), "step_ms_max": float(np.max(step_ms)),
                     "figure_ms_median": float(np.median(figure_ms))}
    return out


def time_frames(cfg: PlaygroundConfig, frames: int = 30, warmup: int = 3,
                draw: Callable | None = None) -> dict[str, float]:
    """What the playground page does for one frame while playing, on this process's threads: one
    epoch of every lane, then `draw(state, region, zmax)` (the caller's: each canvas's and the RMSE
    chart's data and their encoding, dashboard.playground_views.frame). Median and largest ms per
    frame, and the frames per second they allow (the page asks for one every 0.25 s). The
    `bench --playground` line."""
    if draw is None:
        raise TypeError("time_frames needs the frame builder (dashboard.playground_views.frame)")
    state = Playground.create(cfg)
    region = state.function.region.outline()
    zmax = state.error_scale()

    def frame() -> None:
        state.step(1)
        draw(state, region, zmax)

    for _ in range(warmup):
        frame()
    ms = []
    for _ in range(frames):
        start = time.perf_counter()
        frame()
        ms.append(1000 * (time.perf_counter() - start))
    median = float(np.median(ms))
    return {"frame_ms_median": median, "frame_ms_max": float(np.max(ms)), "frames_per_second": 1000.0 / median}

"""Resource limits: hard caps on model sizes, and the memory and work a run would need,
estimated from its configuration before it starts and refused above a budget.

Budgets (environment variables, read at each check):

- DFKD_MAX_MEMORY_GB (default 4): the most memory one run may need, in GB (10^9 bytes):
  parameters, gradients and optimizer state of the teacher (as it is trained), of the
  K students and their generators, the activations of one batch of all of them, and
  the dataset.
- DFKD_MAX_WORK (default 1e16): the most arithmetic one run may need, in floating-point
  operations (≈ FLOPs per epoch × epochs, plus training the teacher). 1e16 is about three
  days of one CPU core; the paper's MNIST comparison (direct + generator, 1000 epochs)
  needs ~6e14, a Table 3 comparison on Friedman #1 ~1e11.

Caps on sizes (whatever the budgets): 'mlp<units>' and 'rbf<units>' models at most
10 000 units, 'cnn<filters>' at most 256 filters (see ARCH_CAPS); the int settings'
ranges are in config.INT_RANGES.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .caps import (ARCH_CAPS, ARCH_FORMS, DEFAULT_MEMORY_GB, DEFAULT_WORK, memory_budget_gb, parse_arch,  # noqa: F401
                   short as _short, work_budget)  # the caps and budgets, kept importable from here
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .config import DistillConfig

FLOAT_BYTES = 4  # float32 everywhere in the engine
TEACHER_TRAIN_EPOCHS = {"image": 100, "tabular": 300, "composition": 0}  # teachers.train_torch_teacher's limits


# ---------------------------------------------------------------- model sizes
@dataclass(frozen=True)
class ModelCost:
    """One network for one input: parameters, floats kept per input for the backward pass, FLOPs per input."""

    params: int
    activations: int
    flops: int


def model_cost(arch: str, input_shape: tuple[int, ...], n_train: int = 0) -> ModelCost:
    """The size of build_model(arch) (models.py) for inputs of `input_shape`, counted, not built."""
    d = math.prod(input_shape)
    if arch == "svr":  # support vectors (at most the training set) · d, one kernel row per input
        return ModelCost(n_train * (d + 1), n_train, 3 * n_train * d)
    kind, n = parse_arch(arch)
    if kind == "mlp":  # d → n (tanh) → 1
        return ModelCost(d * n + 2 * n + 1, d + 2 * n + 1, 2 * (d * n + n))
    if kind == "rbf":  # n centres (d each) and widths → 1; cdist keeps an (n, d) difference per input
        return ModelCost(n * d + 2 * n + 1, n * d + 3 * n, 6 * n * d + 2 * n)
    c, h, w = input_shape if len(input_shape) == 3 else (1, d, 1)
    convs = [(c, n, h * w), (n, 2 * n, h * w), (2 * n, 4 * n, (h // 2) * (w // 2))]
    params = sum(9 * i * o + o for i, o, _ in convs)
    flops = sum(2 * 9 * i * o * px for i, o, px in convs)
    acts = c * h * w + sum(2 * o * px for _, o, px in convs) + 2 * n * (h // 2) * (w // 2) + 4 * n * (h // 4) * (w // 4)
    flat = 4 * n * (h // 4) * (w // 4)
    for i, o in ((flat, 500), (500, 100), (100, 20), (20, 1)):
        params += i * o + o
        flops += 2 * i * o
        acts += 2 * o
    return ModelCost(params, acts, flops)


def generator_cost(z_dim: int, hidden: int, d: int) -> ModelCost:
    """models.Generator: z → hidden (tanh) → d."""
    return ModelCost(z_dim * hidden + hidden + hidden * d + d, z_dim + 2 * hidden + 2 * d, 2 * (z_dim * hidden + hidden * d))


# ---------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class Estimate:
    """What a run needs: bytes per part (named by the settings that size it) and FLOPs."""

    memory: dict[str, float]
    work: float
    work_factors: str

    @property
    def memory_bytes(self) -> float:
        return sum(self.memory.values())


def resolved_archs(cfg: "DistillConfig", kind: str) -> tuple[str, str]:
    """(teacher, student) model strings, 'auto' replaced as teachers.default_*_arch does."""
    teacher = {"tabular": "mlp500", "image": "cnn10", "composition": "svr"}[kind] if cfg.teacher == "auto" else cfg.teacher
    student = {"tabular": f"mlp{cfg.student_hidden}", "image": "cnn5", "composition": "rbf100"}[kind] \
        if cfg.student == "auto" else cfg.student
    return teacher, student


def estimate(cfg: "DistillConfig") -> Estimate:
    """Memory and work of `cfg` (values already range-checked) on its dataset."""
    from .data.catalog import get_dataset

    spec = get_dataset(cfg.dataset)
    shape = tuple(spec.input_shape)
    d = math.prod(shape)
    n_train = spec.n_train or min(5000, int(0.6 * spec.rows))
    teacher_arch, student_arch = resolved_archs(cfg, spec.kind)
    teacher = model_cost(teacher_arch, shape, n_train)
    student = model_cost(student_arch, shape)
    generator = generator_cost(cfg.generator_z_dim, cfg.generator_hidden, d)
    from .synth.samplers import SAMPLERS  # each sampler declares its cost (Sampler.work_per_epoch)

    members = cfg.members()
    k = len(members)
    k_gen = sum(SAMPLERS.get(m.sampler).uses_generator_net for m in members)
    m = cfg.batch_size
    f = FLOAT_BYTES
    teacher_label = f"teacher={cfg.teacher}" if cfg.teacher != "auto" else f"teacher (auto: {teacher_arch})"
    student_label = (f"student={cfg.student}" if cfg.student != "auto" else f"student_hidden={cfg.student_hidden}") + f" × {k} students"
    memory = {
        # the teacher as it is trained: weights, gradients, Adam's two moments
        teacher_label: 4 * teacher.params * f,
        student_label: 3 * k * student.params * f,  # weights, gradients, RMSprop's square average
        f"generator_hidden={cfg.generator_hidden}, generator_z_dim={cfg.generator_z_dim} × {k_gen} generators":
            3 * k_gen * generator.params * f,
        # one batch of every student through the teacher and itself (kept for backward, and its gradient)
        f"batch_size={m} × {k} students (activations)":
            2 * k * m * (teacher.activations + student.activations) * f + 2 * k_gen * m * generator.activations * f,
        f"dataset={cfg.dataset}": spec.rows * d * (8 + f),  # as read (float64) and as tensors
    }
    per_epoch = 0.0
    for member in members:
        points = cfg.batches_per_epoch * m
        per_epoch += points * (teacher.flops + 3 * student.flops)  # labels from T; S forward and backward
        per_epoch += SAMPLERS.get(member.sampler).work_per_epoch(cfg, teacher.flops, student.flops, generator.flops)
        per_epoch += spec.rows * 0.2 * student.flops / cfg.eval_every  # validation
    teacher_training = 3 * teacher.flops * n_train * TEACHER_TRAIN_EPOCHS[spec.kind] if teacher_arch != "svr" else 0
    work = per_epoch * cfg.epochs + teacher_training
    factors = (f"epochs={cfg.epochs}, {k} student{'s' if k != 1 else ''} (samplers × alphas × seeds), batch_size={m}, "
               f"batches_per_epoch={cfg.batches_per_epoch}, teacher {teacher_arch}")
    settings = dict.fromkeys(s for name in cfg.samplers for s in SAMPLERS.get(name).cost_settings)
    factors += "".join(f", {s}={getattr(cfg, s)}" for s in settings)
    return Estimate(memory, work, factors)


# ---------------------------------------------------------------- budgets
def check_budget(cfg: "DistillConfig") -> Estimate:
    """Refuse a run whose estimate exceeds DFKD_MAX_MEMORY_GB or DFKD_MAX_WORK, naming the
    setting(s) responsible; return the estimate otherwise."""
    est = estimate(cfg)
    problems = []
    budget_gb = memory_budget_gb()
    total = est.memory_bytes
    if total > budget_gb * 1e9:
        heavy = sorted(((v, k) for k, v in est.memory.items() if v >= 0.25 * total), reverse=True)
        named = "; ".join(f"{k} needs ~{_gb(v)}" for v, k in heavy)
        problems.append(f"This run needs ~{_gb(total)} of memory, above the budget of {budget_gb:g} GB "
                        f"(DFKD_MAX_MEMORY_GB): {named}. Lower that setting or raise the budget.")
    budget_work = work_budget()
    if est.work > budget_work:
        problems.append(f"This run needs ~{est.work:.1e} floating-point operations ({est.work_factors}), above the "
                        f"budget of {budget_work:.0e} (DFKD_MAX_WORK). Lower those settings or raise the budget.")
    if problems:
        from .errors import ConfigErrors

        raise ConfigErrors(problems)
    return est


def check_model(arch: str, input_shape: tuple[int, ...], setting: str = "arch", n_train: int = 0) -> None:
    """The memory budget for one model trained on its own (the `teach` command)."""
    cost = model_cost(arch, tuple(input_shape), n_train)
    need = 4 * cost.params * FLOAT_BYTES
    budget_gb = memory_budget_gb()
    if need > budget_gb * 1e9:
        raise ConfigError(f"{setting}={arch} needs ~{_gb(need)} of memory, above the budget of {budget_gb:g} GB "
                          f"(DFKD_MAX_MEMORY_GB). Lower that setting or raise the budget.")


def _gb(n_bytes: float) -> str:
    gb = n_bytes / 1e9
    return f"{gb:.3g} GB" if gb >= 0.01 else f"{n_bytes / 1e6:.3g} MB"

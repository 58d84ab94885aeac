"""The synthetic-data objective L_G minimised by the generator and the direct samplers,
as a weighted sum of named, registered terms (DistillConfig.objective: (term, weight) pairs;
eqs. 3, 5, 8 and 9 of the paper are config.PAPER_OBJECTIVES). Every term returns one value
per sample, shape (n,); a new term is one decorated function, usable from every door."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..registry import Registry
from ..models.networks import log_cosh  # noqa: F401 - the objectives' loss, kept importable from here

TermFn = Callable[["TermInputs"], torch.Tensor]
# a term's partial derivatives per sample: (∂/∂T(x), ∂/∂S(x), ∂/∂x directly), each a tensor or None
TermGrad = Callable[["TermInputs"], tuple]
TERMS: Registry[TermFn] = Registry("objective term", package=__package__)


def term(name: str, *, grad: TermGrad | None = None, looks_at_student: bool = False, input_norm: bool = False,
         fused_coef: str | None = None) -> Callable[[TermFn], TermFn]:
    """Register a term with its declared capabilities (read by the engine, never its name):
    `grad` its partial derivatives (TermGrad; elementwise in x) — without it, samplers that
    search by gradients train on the generic form, through autograd; `looks_at_student` it reads
    S(x) (Objective.student_weight); `input_norm` it is a norm of x (cfg.input_norm_scope scales
    it); `fused_coef` the slot of the fused kernel's objective, linear in (T, S) plus norms of x
    (mlp_kernels.FusedTeacherStudents: 'squared_discrepancy', 'student_sq', 'l2sq_input',
    'l1_input'), or None."""

    def decorator(fn: TermFn) -> TermFn:
        fn.grad, fn.looks_at_student, fn.input_norm, fn.fused_coef = grad, looks_at_student, input_norm, fused_coef
        TERMS.add(name, fn)
        return fn

    return decorator


@dataclass
class TermInputs:
    x: torch.Tensor  # (n, *shape) synthetic points
    teacher: torch.Tensor  # (n,) T(x)
    student: torch.Tensor  # (n,) S(x)
    y_rand: torch.Tensor | None  # (n,) random targets, or None


def _neg_sq_grad(t: TermInputs) -> tuple:
    diff = t.teacher - t.student
    return diff * -2.0, diff * 2.0, None


@term("neg_squared_discrepancy", grad=_neg_sq_grad, looks_at_student=True, fused_coef="squared_discrepancy")
def neg_squared_discrepancy(t: TermInputs) -> torch.Tensor:
    """−(T(x) − S(x))²  (eqs. 2–5, 9: reward teacher–student disagreement)."""
    return -(t.teacher - t.student).pow(2)


def _neg_logcosh_grad(t: TermInputs) -> tuple:
    th = torch.tanh(t.teacher - t.student)
    return -th, th, None


@term("neg_logcosh_discrepancy", grad=_neg_logcosh_grad, looks_at_student=True)
def neg_logcosh_discrepancy(t: TermInputs) -> torch.Tensor:
    """−log cosh(T(x) − S(x))  (eq. 8, MNIST)."""
    return -log_cosh(t.teacher - t.student)


@term("l2sq_input", grad=lambda t: (None, None, t.x * 2.0), input_norm=True, fused_coef="l2sq_input")
def l2sq_input(t: TermInputs) -> torch.Tensor:
    """‖x‖²  (eqs. 3, 5: keep x near the standardized data)."""
    return t.x.flatten(1).pow(2).sum(1)


@term("l1_input", grad=lambda t: (None, None, t.x.sign()), input_norm=True, fused_coef="l1_input")
def l1_input(t: TermInputs) -> torch.Tensor:
    """|x|₁  (eq. 8: handwritten digits are sparse)."""
    return t.x.flatten(1).abs().sum(1)


@term("student_sq", grad=lambda t: (None, t.student * 2.0, None), looks_at_student=True, fused_coef="student_sq")
def student_sq(t: TermInputs) -> torch.Tensor:
    """S(x)²  (eqs. 3, 5)."""
    return t.student.pow(2)


@term("teacher_to_random", grad=lambda t: ((t.teacher - t.y_rand) * 2.0, None, None))
def teacher_to_random(t: TermInputs) -> torch.Tensor:
    """(T(x) − y_rand)²  (eqs. 8, 9: keep the teacher's predictions diverse and realistic)."""
    assert t.y_rand is not None, "teacher_to_random needs y_rand"
    return (t.teacher - t.y_rand).pow(2)


@dataclass(frozen=True)
class Objective:
    """L_G(x) = Σ weight_k · term_k(x), per sample. `student_weight` is the total weight of
    the terms that look at S(x) (eq. 8 weighs the student by ε = 1e-6 only)."""

    terms: tuple[tuple[str, float], ...]
    y_rand: str = "none"  # 'none', 'digits' (integers 0–9) or 'unit' (uniform [0, 1])

    def __call__(self, x: torch.Tensor, teacher: torch.Tensor, student: torch.Tensor,
                 y_rand: torch.Tensor | None = None) -> torch.Tensor:
        inputs = TermInputs(x, teacher, student, y_rand)
        total = torch.zeros_like(teacher)
        for name, weight in self.terms:
            if weight != 0.0:
                total = total + weight * TERMS.get(name)(inputs)
        return total

    def draw_y_rand(self, n: int, generator: torch.Generator, device: torch.device,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """Random targets for a batch: one per sample, fresh for every batch."""
        if self.y_rand == "digits":
            return torch.randint(0, 10, (n,), generator=generator, device=device).to(dtype)
        if self.y_rand == "unit":
            return torch.rand(n, generator=generator, device=device, dtype=dtype)
        return None

    @property
    def student_weight(self) -> float:
        return sum(abs(w) for name, w in self.terms if getattr(TERMS.get(name), "looks_at_student", False))

    def describe(self) -> str:
        return " + ".join(f"{w:g}·{name}" for name, w in self.terms if w != 0.0)


def build_objective(cfg) -> Objective:
    """The objective a DistillConfig describes: its (term, weight) pairs and y_rand ('none' with a
    teacher_to_random term means 'unit': that term needs random targets)."""
    terms = tuple((str(name), float(weight)) for name, weight in cfg.objective)
    y_rand = cfg.y_rand
    if y_rand == "none" and any(name == "teacher_to_random" for name, _ in terms):
        y_rand = "unit"
    return Objective(terms, y_rand)


def term_summary(name: str) -> str:
    """The first line of a registered term's docstring: its formula and equation."""
    doc = (TERMS.get(name).__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


# each registered sampler's declared input_norm_batch_factor (samplers.register_sampler fills it in)
INPUT_NORM_BATCH_FACTORS: dict[str, float] = {}


def sampler_objective(objective: Objective, cfg, sampler: str, n: int) -> Objective:
    """The objective a sampler minimises over its batches of n points. With
    cfg.input_norm_scope 'sample' (eqs. 3 and 5 as written) that is `objective` itself. With
    'batch' the input-norm weight β applies to the whole batch, as in the paper's code: its
    generator adds β·Σ_batch‖x‖² to the batch-mean loss (a weight n·β per point), and its
    direct optimizer takes the batch-mean loss with RMSprop weight decay β (the gradient
    of (n·β/2)‖x‖² per point; rescaling a loss leaves RMSprop's steps unchanged up to its ε).
    Other samplers (evolution) take n·β per point, like the generator."""
    if cfg.input_norm_scope != "batch":
        return objective
    factor = n * INPUT_NORM_BATCH_FACTORS.get(sampler, 1.0)
    terms = tuple((name, w * factor if getattr(TERMS.get(name), "input_norm", False) else w)
                  for name, w in objective.terms)
    return Objective(terms, objective.y_rand)


"""The synthetic-data objective L_G minimised by the generator and the direct samplers,
as a weighted sum of named, registered terms; eqs. 3, 5, 8 and 9 of the paper are
presets of these terms. Every term returns one value per sample, shape (n,)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .registry import Registry

TermFn = Callable[["TermInputs"], torch.Tensor]
TERMS: Registry[TermFn] = Registry("objective term")
STUDENT_TERMS = ("neg_squared_discrepancy", "neg_logcosh_discrepancy", "student_sq")  # the terms that look at S(x)


@dataclass
class TermInputs:
    x: torch.Tensor  # (n, *shape) synthetic points
    teacher: torch.Tensor  # (n,) T(x)
    student: torch.Tensor  # (n,) S(x)
    y_rand: torch.Tensor | None  # (n,) random targets, or None


def log_cosh(d: torch.Tensor) -> torch.Tensor:
    """log(cosh(d)), computed stably as |d| + softplus(−2|d|) − log 2."""
    a = d.abs()
    return a + F.softplus(-2.0 * a) - 0.6931471805599453


@TERMS.register("neg_squared_discrepancy")
def neg_squared_discrepancy(t: TermInputs) -> torch.Tensor:
    """−(T(x) − S(x))²  (eqs. 2–5, 9: reward teacher–student disagreement)."""
    return -(t.teacher - t.student).pow(2)


@TERMS.register("neg_logcosh_discrepancy")
def neg_logcosh_discrepancy(t: TermInputs) -> torch.Tensor:
    """−log cosh(T(x) − S(x))  (eq. 8, MNIST)."""
    return -log_cosh(t.teacher - t.student)


@TERMS.register("l2sq_input")
def l2sq_input(t: TermInputs) -> torch.Tensor:
    """‖x‖²  (eqs. 3, 5: keep x near the standardized data)."""
    return t.x.flatten(1).pow(2).sum(1)


@TERMS.register("l1_input")
def l1_input(t: TermInputs) -> torch.Tensor:
    """|x|₁  (eq. 8: handwritten digits are sparse)."""
    return t.x.flatten(1).abs().sum(1)


@TERMS.register("student_sq")
def student_sq(t: TermInputs) -> torch.Tensor:
    """S(x)²  (eqs. 3, 5)."""
    return t.student.pow(2)


@TERMS.register("teacher_to_random")
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
        return sum(abs(w) for name, w in self.terms if name in STUDENT_TERMS)

    def describe(self) -> str:
        return " + ".join(f"{w:g}·{name}" for name, w in self.terms if w != 0.0)


def build_objective(cfg) -> Objective:
    """The objective a DistillConfig describes (its discrepancy/epsilon, input_norm/beta,
    output_term/gamma and y_rand fields)."""
    disc = "neg_logcosh_discrepancy" if cfg.discrepancy == "logcosh" else "neg_squared_discrepancy"
    norm = "l1_input" if cfg.input_norm == "l1" else "l2sq_input"
    terms = [(disc, float(cfg.epsilon)), (norm, float(cfg.beta))]
    if cfg.output_term != "none":
        terms.append((cfg.output_term, float(cfg.gamma)))
    y_rand = cfg.y_rand
    if cfg.output_term == "teacher_to_random" and y_rand == "none":
        y_rand = "unit"
    return Objective(tuple(terms), y_rand)


INPUT_NORM_TERMS = ("l2sq_input", "l1_input")


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
    factor = n / 2.0 if sampler == "direct" else float(n)
    terms = tuple((name, w * factor if name in INPUT_NORM_TERMS else w) for name, w in objective.terms)
    return Objective(terms, objective.y_rand)


# Field values of DistillConfig that make each equation of the paper.
OBJECTIVE_PRESETS: dict[str, dict] = {
    # eq. 3 (generator) and eq. 5 (direct): −(T − S)² + β‖x‖² + γ·S(x)², β = γ = 1e-5
    "eq3": dict(discrepancy="mse", epsilon=1.0, input_norm="l2sq", beta=1e-5, output_term="student_sq", gamma=1e-5, y_rand="none"),
    "eq5": dict(discrepancy="mse", epsilon=1.0, input_norm="l2sq", beta=1e-5, output_term="student_sq", gamma=1e-5, y_rand="none"),
    # eq. 8 (MNIST): −ε·logcosh(T − S) + β|x| + γ(T − y_rand)², y_rand ∈ {0..9}; ε 1e-6, β 1e-6, γ 1
    "eq8": dict(discrepancy="logcosh", epsilon=1e-6, input_norm="l1", beta=1e-6, output_term="teacher_to_random", gamma=1.0, y_rand="digits"),
    # eq. 9 (protein): −ε(T − S)² + (1 − ε)(T − y_rand)², y_rand ~ U[0, 1]; ε 0.05
    "eq9": dict(discrepancy="mse", epsilon=0.05, input_norm="l2sq", beta=0.0, output_term="teacher_to_random", gamma=0.95, y_rand="unit"),
}

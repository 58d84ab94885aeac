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
TERMS: Registry[TermFn] = Registry("objective term", package=__package__)
STUDENT_TERMS = ("neg_squared_discrepancy", "neg_logcosh_discrepancy", "student_sq")  # the terms that look at S(x)


@dataclass
class TermInputs:
    x: torch.Tensor  # (n, *shape) synthetic points
    teacher: torch.Tensor  # (n,) T(x)
    student: torch.Tensor  # (n,) S(x)
    y_rand: torch.Tensor | None  # (n,) random targets, or None


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


"""The samplers' defining properties: the paper's guarantees (a) and (b) for direct
optimization, the generator's adversarial objective, DE on the simplex, QMC vs SciPy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import qmc

from dfkd_core.config import DistillConfig
from dfkd_core.errors import ModelError
from dfkd_core.objectives import build_objective, sampler_objective
from dfkd_core.samplers import SAMPLERS, DirectOptimizationSampler, EvolutionSampler, GeneratorSampler

from engine_helpers import context, random_mlp, simplex_prior, svr_like_teacher, tabular_split, torch_teacher


def student_loss(teacher, student, x):
    with torch.no_grad():
        return (teacher.predict(x) - student(x)).pow(2)


def test_direct_batch_has_higher_student_loss_than_the_prior_samples_it_started_from():
    split = tabular_split()
    teacher, student = torch_teacher(), random_mlp(5, 50, seed=7)
    ctx = context(teacher, split.prior, DistillConfig(), seed=3)
    start = split.prior.sample(200, torch.Generator().manual_seed(3))  # the sampler's own first draw
    x_g = DirectOptimizationSampler(ctx).sample(student, 200)
    assert student_loss(teacher, student, x_g).mean() > 2 * student_loss(teacher, student, start).mean()


def test_small_direct_steps_raise_the_loss_of_nearly_every_point():
    """Guarantee (a) holds point by point for a small enough step (plain gradient ascent)."""
    split = tabular_split()
    teacher, student = torch_teacher(), random_mlp(5, 50, seed=7)
    cfg = DistillConfig(direct_optimizer="sgd", direct_lr=1e-3, direct_steps=3, objective=(("neg_squared_discrepancy", 1.0),))
    start = split.prior.sample(200, torch.Generator().manual_seed(3))
    x_g = DirectOptimizationSampler(context(teacher, split.prior, cfg, seed=3)).sample(student, 200)
    gained = student_loss(teacher, student, x_g) >= student_loss(teacher, student, start)
    assert gained.float().mean() > 0.97


@pytest.mark.parametrize("lr,steps", [(0.1, 2), (0.05, 5), (1.0, 1)], ids=["paper", "five-steps", "big-step"])
def test_direct_displacement_stays_within_the_rmsprop_bound(lr, steps):
    """Guarantee (b) for the step rule used: RMSprop's |g_t|/sqrt(v_t) ≤ 1/sqrt(1−ρ) = 10, so
    each coordinate moves at most 10·η per step and ‖x_τ − x_0‖ ≤ 10·η·τ·√d."""
    split = tabular_split()
    teacher, student = torch_teacher(), random_mlp(5, 50, seed=7)
    cfg = DistillConfig(direct_lr=lr, direct_steps=steps)
    start = split.prior.sample(100, torch.Generator().manual_seed(5))
    x_g = DirectOptimizationSampler(context(teacher, split.prior, cfg, seed=5)).sample(student, 100)
    moved = (x_g - start).norm(dim=1)
    bound = 10 * lr * steps * math.sqrt(5)
    assert moved.max() <= bound * (1 + 1e-5)
    assert moved.mean() > 0.5 * lr * steps  # and it did move


def test_paper_direct_first_step_moves_every_coordinate_by_about_one():
    split = tabular_split()
    teacher, student = torch_teacher(), random_mlp(5, 50, seed=7)
    cfg = DistillConfig(direct_steps=1, objective=(("neg_squared_discrepancy", 1.0),))
    start = split.prior.sample(50, torch.Generator().manual_seed(2))
    x_g = DirectOptimizationSampler(context(teacher, split.prior, cfg, seed=2)).sample(student, 50)
    step = (x_g - start).abs()
    assert step.max() <= 1 + 1e-5  # 10·η with η = 0.1; less only where |∂L/∂x| is near RMSprop's eps
    assert (step > 0.99).float().mean() > 0.95


def test_direct_with_per_batch_input_norm_is_the_paper_codes_weight_decay_on_the_batch_mean_loss():
    # the paper's code: x ← RMSprop(lr 0.1, weight_decay β) on mean(−(T − S)² + γS²), 2 steps. Its
    # gradients are 1/n of ours, so RMSprop's ε is taken 1/n too here: the steps are then the same
    # (with ε = 1e-8 they differ only where |∂L/∂x| is itself near ε, a few points in a hundred)
    split = tabular_split()
    teacher, student = torch_teacher(), random_mlp(5, 50, seed=7)
    beta, gamma, n = 0.05, 1e-5, 40
    cfg = DistillConfig(direct_steps=2, input_norm_scope="batch",
                        objective=(("neg_squared_discrepancy", 1.0), ("l2sq_input", beta), ("student_sq", gamma)))
    x = split.prior.sample(n, torch.Generator().manual_seed(2)).requires_grad_(True)
    opt = torch.optim.RMSprop([x], lr=0.1, weight_decay=beta, eps=1e-8 / n)
    for _ in range(2):
        s = student(x).reshape(-1)
        loss = torch.mean(-(teacher.predict(x) - s) ** 2 + gamma * s ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ctx = context(teacher, split.prior, cfg, seed=2)
    ctx.objective = sampler_objective(build_objective(cfg), cfg, "direct", n)
    x_g = DirectOptimizationSampler(ctx).sample(student, n)
    torch.testing.assert_close(x_g, x.detach(), rtol=1e-4, atol=1e-4)
    per_sample = context(teacher, split.prior, cfg.replace(input_norm_scope="sample"), seed=2)
    assert not torch.allclose(DirectOptimizationSampler(per_sample).sample(student, n), x.detach(), atol=1e-3)


def test_per_batch_input_norm_weighs_n_beta_per_generator_point_and_n_beta_over_2_per_direct_point():
    cfg = DistillConfig(objective=(("neg_squared_discrepancy", 1.0), ("l2sq_input", 1e-5)), input_norm_scope="batch")
    objective = build_objective(cfg)
    weight = lambda obj: dict(obj.terms)["l2sq_input"]  # noqa: E731
    assert weight(sampler_objective(objective, cfg, "generator", 100)) == pytest.approx(1e-3)
    assert weight(sampler_objective(objective, cfg, "direct", 100)) == pytest.approx(5e-4)
    per_sample = cfg.replace(input_norm_scope="sample")
    assert sampler_objective(objective, per_sample, "generator", 100) is objective


def test_generator_objective_falls_over_its_own_steps_against_a_fixed_student():
    split = tabular_split()
    teacher, student = torch_teacher(), random_mlp(5, 50, seed=7)
    sampler = GeneratorSampler(context(teacher, split.prior, DistillConfig(generator_lr=1e-3), seed=0))
    losses = torch.stack([sampler.train_step(student, 64) for _ in range(200)])
    assert losses[-20:].mean() < losses[:20].mean()


def test_no_sampler_step_puts_gradients_on_teacher_or_student():
    split = tabular_split()
    teacher, student = torch_teacher(), random_mlp(5, 50, seed=7)
    for name in ("direct", "generator"):
        SAMPLERS.get(name)(context(teacher, split.prior, seed=0)).sample(student, 20)
    assert all(p.grad is None for p in student.parameters())
    assert all(p.grad is None and not p.requires_grad for p in teacher.module.parameters())


@pytest.mark.parametrize("name", ["direct", "generator"])
def test_gradient_samplers_refuse_a_black_box_teacher(name):
    with pytest.raises(ModelError, match="needs the teacher's gradients"):
        SAMPLERS.get(name)(context(svr_like_teacher(), simplex_prior(), seed=0))


def test_evolution_output_lies_on_the_simplex_and_queries_one_population_per_generation():
    prior = simplex_prior(20)
    teacher = svr_like_teacher(20)
    student = random_mlp(20, 25, seed=1)
    cfg = DistillConfig(objective=(("neg_squared_discrepancy", 0.05), ("teacher_to_random", 0.95)), y_rand="unit",
                        de_generations=25)
    x = EvolutionSampler(context(teacher, prior, cfg, seed=0)).sample(student, 50)
    assert x.shape == (50, 20)
    assert torch.all(x >= 0) and torch.all(x <= 1)
    assert torch.allclose(x.sum(1), torch.ones(50, dtype=x.dtype), atol=1e-5)
    assert teacher.queries == 50 * (25 + 1)  # the initial population, then one query per generation


def test_evolution_lowers_the_objective_of_its_population():
    prior = simplex_prior(20)
    teacher, student = svr_like_teacher(20), random_mlp(20, 25, seed=1)
    cfg = DistillConfig(objective=(("neg_squared_discrepancy", 1.0),), de_generations=25)
    start = prior.sample(50, torch.Generator().manual_seed(0))
    x = EvolutionSampler(context(teacher, prior, cfg, seed=0)).sample(student, 50)
    assert student_loss(teacher, student, x).mean() > student_loss(teacher, student, start).mean()


@pytest.mark.parametrize("name,engine", [
    ("halton", lambda d, rng: qmc.Halton(d, scramble=True, rng=rng)),
    ("sobol", lambda d, rng: qmc.Sobol(d, scramble=True, rng=rng)),
    ("lhs", lambda d, rng: qmc.LatinHypercube(d, rng=rng)),
], ids=["halton", "sobol", "lhs"])
def test_qmc_samplers_equal_scipy_designs_mapped_into_the_prior_box(name, engine):
    split = tabular_split()
    ours = SAMPLERS.get(name)(context(torch_teacher(), split.prior, seed=11)).sample(None, 64)
    u = engine(5, np.random.default_rng(11)).random(64)
    lower, upper = split.prior.lower.double().numpy(), split.prior.upper.double().numpy()
    np.testing.assert_allclose(ours.numpy(), lower + (upper - lower) * u, rtol=1e-5, atol=1e-5)

"""Parts say what they can do: the budget estimate, the batch-size floor, CUDA-graph capture and
the figures' colours read what a sampler declares (samplers.Sampler's capabilities), never its
name; objective terms declare their gradient and their slot in the fused kernel."""
from __future__ import annotations

import pytest
import torch

from dfkd_core.config import DistillConfig
from dfkd_core.engine.fused_parts import FUSED_PARTS
from dfkd_core.limits import estimate, generator_cost, model_cost
from dfkd_core.synth.objectives import TERMS, TermInputs
from dfkd_core.synth.samplers import SAMPLERS, Sampler


def test_the_budget_estimate_adds_each_samplers_declared_cost():
    base = dict(dataset="friedman1", alphas=("decreasing",), seeds=(0,), epochs=10)
    gaussian = estimate(DistillConfig(samplers=("gaussian",), **base))
    for name in ("direct", "generator", "evolution"):
        cfg = DistillConfig(samplers=(name,), **base)
        teacher, student = model_cost("mlp500", (10,)), model_cost("mlp50", (10,))
        generator = generator_cost(cfg.generator_z_dim, cfg.generator_hidden, 10)
        extra = SAMPLERS.get(name).work_per_epoch(cfg, teacher.flops, student.flops, generator.flops)
        assert extra > 0
        assert estimate(cfg).work - gaussian.work == pytest.approx(extra * cfg.epochs, rel=1e-9)
        assert all(f"{s}=" in estimate(cfg).work_factors for s in SAMPLERS.get(name).cost_settings)


def test_every_registered_sampler_declares_what_the_engine_and_the_figures_read():
    from dfkd_core.dashboard.figures import color_for, sampler_color

    for name in SAMPLERS.names():
        part = SAMPLERS.get(name)
        assert part.fused is None or part.fused in FUSED_PARTS  # the name of its part in the fused MLP form
        assert isinstance(part.graph_safe, bool) and part.min_batch >= 1
        if part.colour is not None:
            assert sampler_color(name) == sampler_color(f"{name}, α 1") == color_for(part.colour)
    assert SAMPLERS.get("evolution").fused is None and not SAMPLERS.get("evolution").graph_safe
    assert Sampler.colour is None and Sampler.fused is None  # a new sampler: generic form, the next free colour


def test_the_batch_floor_is_the_samplers_declared_one():
    from dfkd_core.errors import ConfigErrors

    with pytest.raises(ConfigErrors, match="at least 5 with the 'evolution' sampler"):
        DistillConfig(samplers=("evolution",), batch_size=4).validate()
    DistillConfig(samplers=("direct",), batch_size=4).validate()


@pytest.mark.parametrize("name", ["neg_squared_discrepancy", "neg_logcosh_discrepancy", "l2sq_input", "l1_input",
                                  "student_sq", "teacher_to_random"])
def test_each_terms_declared_gradient_is_autograds(name):
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    t = torch.randn(7, dtype=torch.float64, requires_grad=True)
    s = torch.randn(7, dtype=torch.float64, requires_grad=True)
    y = torch.rand(7, dtype=torch.float64)
    fn = TERMS.get(name)
    grads = torch.autograd.grad(fn(TermInputs(x, t, s, y)).sum(), (t, s, x), allow_unused=True)
    declared = fn.grad(TermInputs(x.detach(), t.detach(), s.detach(), y))
    for want, got in zip(grads, declared):
        if got is None:
            assert want is None or torch.count_nonzero(want) == 0
        else:
            torch.testing.assert_close(got, want)

"""The teacher is its own part of the step (engine.teacher_call): one callable for all K members'
points, chosen by the teacher alone, while the students and their samplers choose the stack
form. A teacher that is not the paper's MLPRegressor — autograd through any torch module, a
user's state_dict folded into the MLP kernels, a black box — leaves MLP students on the fused
form, with results equal to the plain loop's in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dfkd_core.config import DistillConfig
from dfkd_core.engine import run_distillation
from dfkd_core.engine.fused_mlp import FusedMLPStack
from dfkd_core.engine.loop import plan_stacks
from dfkd_core.engine.mlp_kernels import FrozenMLP
from dfkd_core.engine.stacked import ModuleStack
from dfkd_core.engine.teacher_call import AutogradTeacher, BlackBoxCall, make_teacher_call, teacher_call
from dfkd_core.models.teachers import BlackBoxTeacher, TorchTeacher
from dfkd_core.models.user_models import LinearStack, TeacherBoundary

from test_batched import assert_same_events, make_run, run_both
from user_helpers import fast_config, write_csv


def autograd_teacher(module: nn.Module) -> TorchTeacher:
    """The same function as the MLP teacher, as a module the kernels do not know (a user's TorchScript)."""
    return TorchTeacher(nn.Sequential(module), "torchscript")


def black_box_teacher(module: nn.Module) -> BlackBoxTeacher:
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x).to(module.fc1.weight.dtype)).numpy()

    return BlackBoxTeacher(predict, "svr")


def boundary_of(module: nn.Module, dtype=torch.float64) -> TeacherBoundary:
    """A user's state_dict teacher of one tanh hidden layer on raw units, with its scaling."""
    gen = torch.Generator().manual_seed(5)
    d = module.fc1.weight.shape[1]
    x_mean, x_std = torch.randn(d, generator=gen, dtype=dtype), torch.rand(d, generator=gen, dtype=dtype) + 0.5
    raw = LinearStack([(module.fc1.weight / x_std[None, :], module.fc1.bias - (module.fc1.weight * (x_mean / x_std)).sum(1)),
                       (module.fc2.weight * 3.0, module.fc2.bias * 3.0 + 7.0)], "tanh").to(dtype)
    boundary = TeacherBoundary(raw, (d,), x_mean, x_std, 7.0, 3.0)
    return boundary.to(dtype)


@pytest.mark.parametrize("samplers", [("direct",), ("direct", "generator", "gaussian")], ids=["direct", "mixed"])
def test_an_autograd_teacher_trains_mlp_students_on_the_fused_form_equal_to_the_plain_loop(samplers):
    cfg = DistillConfig(samplers=samplers, alphas=("decreasing", 1.0), seeds=(3,), epochs=2, batches_per_epoch=3)
    run = make_run(cfg, wrap=autograd_teacher)
    assert isinstance(teacher_call(run), AutogradTeacher)
    assert {form for form, _ in plan_stacks(run, cfg.members())} == {FusedMLPStack}
    ref, bat = run_both(cfg, wrap=autograd_teacher)
    assert_same_events(ref, bat)


def test_a_black_box_teacher_with_random_samplers_trains_on_the_fused_form_equal_to_the_plain_loop():
    cfg = DistillConfig(samplers=("gaussian", "sobol"), alphas=("decreasing",), seeds=(1,), epochs=2, batches_per_epoch=3)
    run = make_run(cfg, wrap=black_box_teacher)
    assert isinstance(teacher_call(run), BlackBoxCall)
    assert {form for form, _ in plan_stacks(run, cfg.members())} == {FusedMLPStack}
    ref, bat = run_both(cfg, wrap=black_box_teacher)
    assert_same_events(ref, bat)


def test_a_state_dict_teacher_of_one_tanh_layer_is_folded_into_the_mlp_kernels():
    """Its scaling folded into the weights: values and input gradients equal autograd's through the module."""
    cfg = DistillConfig(samplers=("direct",))
    run = make_run(cfg)
    boundary = boundary_of(run.teacher.module)
    call = make_teacher_call(TorchTeacher(boundary, "state_dict"), (10,), torch.float64)
    assert isinstance(call, FrozenMLP)
    reference = make_teacher_call(TorchTeacher(boundary, "state_dict"), (10,), torch.float64, kernels=False)
    assert isinstance(reference, AutogradTeacher)
    x = torch.cat([torch.randn(300, 10, dtype=torch.float64), torch.ones(300, 1, dtype=torch.float64)], 1)
    (f, g), (f_ref, g_ref) = call.forward_grad(x), reference.forward_grad(x)
    torch.testing.assert_close(f, f_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g[:, :10], g_ref[:, :10], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(call.forward(x), f_ref, rtol=1e-12, atol=1e-12)
    # and the run's events equal the plain loop's (which calls the module through autograd)
    ref, bat = run_both(DistillConfig(samplers=("direct",), seeds=(2,), epochs=1),
                        wrap=lambda m: TorchTeacher(boundary_of(m), "state_dict"))
    assert_same_events(ref, bat)


def test_a_state_dict_teacher_of_three_relu_layers_trains_tanh_students_on_the_fused_form(tmp_path):
    csv = write_csv(tmp_path / "data.csv")
    torch.manual_seed(0)
    layers = [nn.Linear(4, 24), nn.Linear(24, 24), nn.Linear(24, 24), nn.Linear(24, 1)]
    state = {f"layer{i}.{k}": v for i, layer in enumerate(layers) for k, v in layer.state_dict().items()}
    torch.save(state, tmp_path / "relu3.pt")
    cfg = fast_config(teacher_file=str(tmp_path / "relu3.pt"), teacher_activation="relu", data_file=str(csv),
                      target="y", samplers=("direct", "generator", "gaussian"))
    result = run_distillation(cfg)
    assert result.engine == "fused MLP"
    assert {m.engine for m in result.members} == {"fused MLP"}
    assert all(np.isfinite(m.test_rmse) for m in result.members)


def test_plan_stacks_places_a_sampler_without_a_fused_implementation_beside_fused_members():
    cfg = DistillConfig(samplers=("direct", "evolution", "gaussian"), seeds=(0, 1))
    run = make_run(cfg, torch.float32)
    members = cfg.members()
    plan = plan_stacks(run, members)
    generic = [part for form, part in plan if form is ModuleStack]
    fused = sorted(i for form, part in plan if form is FusedMLPStack for i in part)
    assert generic == [[i for i, m in enumerate(members) if m.sampler == "evolution"]]
    assert fused == [i for i, m in enumerate(members) if m.sampler != "evolution"]
    # a CNN student (the students decide): one generic stack whatever the samplers
    cnn = DistillConfig(samplers=("direct",), student="cnn5")
    assert plan_stacks(make_run(cnn, torch.float32), cnn.members()) == [(ModuleStack, [0])]


class _TwoLayers(nn.Module):
    def __init__(self, activation: str) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.fc1, self.fc2 = nn.Linear(4, 30), nn.Linear(30, 1)
        self.relu = activation == "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(torch.relu(h) if self.relu else torch.tanh(h))


@pytest.mark.parametrize("activation, kernels", [("tanh", True), ("relu", False)])
def test_a_torchscript_mlp_takes_the_kernels_only_when_probes_show_the_same_function(tmp_path, activation, kernels):
    """Two Linear layers in TorchScript: tanh between them is the paper's MLP (the kernels, after the
    probe check, with the run's scaling folded in); ReLU between them fails the check (autograd)."""
    from dfkd_core.data.user import read_table, table_split
    from dfkd_core.models.user_models import load_user_teacher
    from user_helpers import write_torchscript

    csv = write_csv(tmp_path / "data.csv")
    path = write_torchscript(tmp_path / "T.pt", _TwoLayers(activation).eval())
    split = table_split(read_table(csv, "y"), 0)
    teacher = load_user_teacher(path, split)[0]
    call = make_teacher_call(teacher, (4,), torch.float32)
    assert isinstance(call, FrozenMLP if kernels else AutogradTeacher)
    if kernels:
        reference = make_teacher_call(teacher, (4,), torch.float32, kernels=False)
        x = torch.cat([torch.randn(100, 4), torch.ones(100, 1)], 1)
        torch.testing.assert_close(call.forward(x), reference.forward(x), rtol=1e-4, atol=1e-4)


def test_bench_times_a_users_teacher_beside_the_builtin_one_and_the_plain_loop(tmp_path):
    """`bench --teacher PATH --data CSV --target COL --json`: one object with every figure; a
    TorchScript of two ReLU layers goes through autograd and its MLP students stay fused."""
    import json
    import subprocess
    import sys

    from conftest import REPO
    from user_helpers import fitted_teacher, write_torchscript

    csv = write_csv(tmp_path / "data.csv")
    path = write_torchscript(tmp_path / "T.pt", fitted_teacher(csv, steps=20))
    proc = subprocess.run([sys.executable, "-m", "dfkd_core", "bench", "--teacher", str(path), "--data", str(csv),
                           "--target", "y", "--ks", "2", "--epochs", "1", "--warmup", "1", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["user_teacher_call"] == "AutogradTeacher" and out["user_teacher_shape"] == [32, 4]
    assert out["user_forms_k2"] == "fused MLP"
    for key in ("user_engine_k2_s", "builtin_engine_k2_s", "user_autograd_engine_k2_s", "user_plain_k2_s"):
        assert out[key] > 0
    assert out["user_over_builtin_k2"] == pytest.approx(out["user_engine_k2_s"] / out["builtin_engine_k2_s"])
    alone = subprocess.run([sys.executable, "-m", "dfkd_core", "bench", "--teacher", str(path)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert alone.returncode == 2 and alone.stderr.strip().splitlines() == [
        f"error: bench --teacher PATH needs --data CSV --target COL or --spec JSON. Got --teacher {str(path)!r} alone instead."]

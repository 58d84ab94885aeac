"""The engine's two stack forms (the fused MLP form and the generic torch.func form) against
the plain PyTorch loop (experiments.plain_loop, the oracle): one epoch equal to float64
tolerance, routing, events, stored weights, statistical agreement of short runs, CUDA, and
the bench harness."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dfkd_core.engine import fused_mlp as batched
from dfkd_core.engine.fused_mlp import FusedMLPStack, engine_parts
from dfkd_core.engine.loop import train_members
from dfkd_core.engine.stacked import ModuleStack
from dfkd_core.config import DistillConfig, Member
from dfkd_core.data import load_split
from dfkd_core.data.split import Split
from dfkd_core.engine.context import RunContext
from dfkd_core.experiments.plain_loop import run_plain_loop as _run_reference
from dfkd_core.events import EpochMetrics, MemberResult, Snapshot
from dfkd_core.models.networks import MLPRegressor
from dfkd_core.synth.objectives import build_objective
from dfkd_core.models.teachers import BlackBoxTeacher, TeacherInfo, TorchTeacher, evaluate

from conftest import REPO, needs_shared_data


def make_run(cfg: DistillConfig, dtype=torch.float64, device="cpu", teacher_hidden: int = 64,
             wrap=None) -> RunContext:
    """A RunContext on friedman1 in `dtype` with a seeded random MLP teacher (no training);
    `wrap(module)` gives the teacher to use instead of TorchTeacher(module) (the same function)."""
    device = torch.device(device)
    base = load_split("friedman1", seed=0)
    move = lambda t: t.to(dtype)  # noqa: E731
    prior = base.prior.to("cpu", dtype)
    split = Split(base.name, base.kind, move(base.x_train), move(base.y_train), move(base.x_val), move(base.y_val),
                  move(base.x_test), move(base.y_test), prior, base.seed)
    torch.manual_seed(99)
    module = MLPRegressor(split.input_shape, teacher_hidden).to(device, dtype)
    with torch.no_grad():
        module.fc2.weight.mul_(4.0)  # a teacher with some structure for the student to learn
    teacher = TorchTeacher(module, "mlp") if wrap is None else wrap(module)
    probe_x = prior.to(device).sample(200, torch.Generator(device=device).manual_seed(1))
    probe_t = teacher.predict(probe_x)
    teacher.queries = 0
    last = cfg.epochs - 1
    return RunContext(cfg, split, device, teacher, TeacherInfo(f"mlp{teacher_hidden}", 0.0, 0.0, 0.0, True, 0.0),
                      build_objective(cfg), split.x_val.to(device), split.y_val.to(device), split.x_test.to(device),
                      split.y_test.to(device), probe_x, probe_t, frozenset([e for e in cfg.snapshot_epochs if e <= last] + [last]))


def fused_form(run, members, emit, should_stop, start):
    """The engine's loop with the fused MLP form (split as engine_parts splits it)."""
    plan = [(FusedMLPStack, part) for part in engine_parts(run, members)]
    return train_members(run, members, emit, should_stop, start, plan)[:2]


def generic_form(run, members, emit, should_stop, start):
    """The engine's loop with ONE generic (torch.func) stack of every member."""
    return train_members(run, members, emit, should_stop, start, [(ModuleStack, list(range(len(members))))])[:2]


FORMS = pytest.mark.parametrize("form", [fused_form, generic_form], ids=["fused", "generic"])


def run_both(cfg: DistillConfig, dtype=torch.float64, device="cpu", form=fused_form, wrap=None) -> tuple[list, list]:
    """Events of the plain loop and of the engine's `form` for cfg.members() (teacher: make_run's `wrap`)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # the reference builds its students in the default dtype
    try:
        out = []
        for engine in (_run_reference, form):
            events: list = []
            engine(make_run(cfg, dtype, device, wrap=wrap), cfg.members(), events.append, None, time.perf_counter())
            out.append(events)
        return out[0], out[1]
    finally:
        torch.set_default_dtype(previous)


def assert_same_events(ref: list, bat: list, tol: float = 1e-9) -> None:
    assert [(type(e).__name__, e.member) for e in ref] == [(type(e).__name__, e.member) for e in bat]
    for a, b in zip(ref, bat):
        if isinstance(a, EpochMetrics):
            assert a.epoch == b.epoch and a.alpha == b.alpha
            np.testing.assert_allclose([b.val_rmse, b.val_mae, b.loss_xg, b.loss_xp],
                                       [a.val_rmse, a.val_mae, a.loss_xg, a.loss_xp], rtol=tol, atol=tol)
        elif isinstance(a, Snapshot):
            for name in ("x", "student_loss", "teacher_pred"):
                np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-6)
        elif isinstance(a, MemberResult):
            assert (a.best_epoch, a.teacher_queries) == (b.best_epoch, b.teacher_queries)
            assert {k: v[0] for k, v in a.other_selections.items()} == {k: v[0] for k, v in b.other_selections.items()}
            np.testing.assert_allclose([b.test_rmse, b.test_mae, b.best_val_rmse], [a.test_rmse, a.test_mae, a.best_val_rmse],
                                       rtol=tol, atol=tol)
            assert a.state_dict.keys() == b.state_dict.keys()
            for key in a.state_dict:
                torch.testing.assert_close(b.state_dict[key], a.state_dict[key], rtol=tol, atol=tol)


@FORMS
def test_one_epoch_of_one_student_equals_the_reference_in_float64(form):
    cfg = DistillConfig(samplers=("direct",), alphas=("decreasing",), seeds=(3,), epochs=1)
    ref, bat = run_both(cfg, form=form)
    assert len(ref) == 3  # metrics, snapshot, result
    assert_same_events(ref, bat)


@FORMS
def test_one_epoch_equals_the_reference_for_every_member_of_a_mixed_batch(form):
    cfg = DistillConfig(samplers=("direct", "generator", "gaussian", "sobol", "lhs"),
                        alphas=("decreasing", "0", "1", "constant:0.3"), seeds=(0, 1), epochs=1,
                        batch_size=16, batches_per_epoch=3, generator_hidden=32)
    ref, bat = run_both(cfg, form=form)
    assert len([e for e in bat if isinstance(e, MemberResult)]) == 40
    assert_same_events(ref, bat)


@FORMS
def test_two_epochs_with_adam_inner_optimizer_and_logcosh_terms_equal_the_reference(form):
    cfg = DistillConfig(samplers=("direct", "generator"), alphas=("decreasing",), seeds=(0,), epochs=2,
                        batch_size=16, batches_per_epoch=3, generator_hidden=32, direct_optimizer="adam",
                        objective=(("neg_logcosh_discrepancy", 1.0), ("l1_input", 1e-5), ("teacher_to_random", 0.5)),
                        student_loss="logcosh")
    ref, bat = run_both(cfg, form=form)
    assert_same_events(ref, bat)


def test_fused_direct_fast_path_equals_the_reference_for_several_members_with_an_l1_input_term():
    cfg = DistillConfig(samplers=("direct",), alphas=("constant:0.3",), seeds=(0, 1, 2), epochs=2,
                        batch_size=16, batches_per_epoch=3,
                        objective=(("neg_squared_discrepancy", 1.0), ("l1_input", 1e-3), ("student_sq", 1e-5)))
    assert FusedMLPStack(make_run(cfg, torch.float64), cfg.members()).fused is not None
    ref, bat = run_both(cfg)
    assert_same_events(ref, bat)


def one_fused_stack(run, members, emit, should_stop, start):
    """The engine's loop with ONE fused stack of every member (as on a GPU, where engine_parts does not split)."""
    return train_members(run, members, emit, should_stop, start, [(FusedMLPStack, list(range(len(members))))])[:2]


@pytest.mark.parametrize("form", [fused_form, one_fused_stack], ids=["fast-path", "one-stack"])
def test_direct_with_no_steps_trains_on_its_prior_draws_as_the_reference(form):
    # direct_steps 0: x_g is the prior draw x₀ itself, on the fast path and in a stack shared with another sampler
    cfg = DistillConfig(samplers=("direct", "gaussian"), alphas=("constant:0.5",), seeds=(0,), epochs=1,
                        batch_size=16, batches_per_epoch=2, direct_steps=0)
    ref, bat = run_both(cfg, form=form)
    assert_same_events(ref, bat)


@pytest.mark.parametrize("alpha, steps", [("decreasing", 1), ("1", 3), ("decreasing", 0)])
def test_fused_generator_fast_path_equals_the_reference(alpha, steps):
    cfg = DistillConfig(samplers=("generator",), alphas=(alpha,), seeds=(0, 1), epochs=2, batch_size=16,
                        batches_per_epoch=3, generator_hidden=32, generator_steps=steps,
                        objective=(("neg_squared_discrepancy", 1.0), ("l1_input", 1e-3), ("student_sq", 1e-5)))
    assert FusedMLPStack(make_run(cfg, torch.float64), cfg.members()).fused is not None
    ref, bat = run_both(cfg)
    assert_same_events(ref, bat)


@FORMS
@pytest.mark.parametrize("samplers", [("direct", "generator"), ("generator",), ("direct",)])
def test_per_batch_input_norm_and_generator_weight_decay_equal_the_reference(samplers, form):
    # the paper-code settings: β per batch (n·β per point for the generator, n·β/2 for direct),
    # generator weight decay, several generator updates on each epoch's first batch
    cfg = DistillConfig(samplers=samplers, alphas=("decreasing", "1"), seeds=(0,), epochs=2, batch_size=16,
                        batches_per_epoch=3, generator_hidden=32, generator_steps=2, generator_weight_decay=1e-2,
                        input_norm_scope="batch", objective=(("neg_squared_discrepancy", 1.0), ("l2sq_input", 1e-2), ("student_sq", 1e-5)))
    ref, bat = run_both(cfg, form=form)
    assert_same_events(ref, bat)


@FORMS
def test_a_generator_updates_generator_steps_times_per_epoch_not_per_batch(form):
    cfg = DistillConfig(samplers=("generator",), alphas=("decreasing",), seeds=(0,), epochs=2, batch_size=16,
                        batches_per_epoch=4, generator_hidden=32, generator_steps=3)
    ref, bat = run_both(cfg, form=form)
    m_g, batch = 16, 32  # |x_g| and |x_g| + |x_p|
    for events in (ref, bat):
        (result,) = [e for e in events if isinstance(e, MemberResult)]
        assert result.teacher_queries == 2 * (3 * m_g + 4 * batch)


def test_a_mixed_comparison_is_split_into_fast_path_models_and_one_for_the_rest():
    members = [Member("direct", "decreasing", 0), Member("generator", "decreasing", 0), Member("gaussian", "0", 0),
               Member("direct", "decreasing", 1), Member("direct", "1", 0)]
    cfg = DistillConfig(epochs=1)
    assert engine_parts(make_run(cfg), members) == [[0, 3], [1], [4], [2]]
    # Adam inside the direct sampler has no fast path: those members share the mixed model
    adam = cfg.replace(direct_optimizer="adam")
    assert engine_parts(make_run(adam), members) == [[1], [0, 2, 3, 4]]
    assert engine_parts(make_run(cfg), members[2:3]) == [[0]]


@pytest.mark.parametrize("student_loss", ["mse", "logcosh"])
def test_fused_fast_path_reusing_its_buffers_equals_the_reference_with_weight_decay(student_loss):
    # two epochs with snapshots: the step's preallocated diff/loss/g_out buffers must not leak between steps
    cfg = DistillConfig(samplers=("direct",), alphas=("decreasing", "0.5"), seeds=(3, 4), epochs=2,
                        student_loss=student_loss, weight_decay=1e-4)
    assert FusedMLPStack(make_run(cfg, torch.float64), cfg.members()).fused is not None
    ref, bat = run_both(cfg)
    assert sum(isinstance(e, Snapshot) for e in ref) > 0
    assert_same_events(ref, bat)


@pytest.mark.parametrize("change, expected", [
    (dict(), True),
    (dict(samplers=("direct", "evolution")), False),
    (dict(student="cnn5"), False),
    (dict(student="rbf10"), False),
    (dict(student="mlp25", samplers=("gaussian", "halton", "generator")), True),
], ids=["mlp-direct", "evolution", "cnn-student", "rbf-student", "mlp25-random-and-generator"])
def test_supports_routes_only_mlp_runs_without_evolution_to_the_batched_engine(change, expected):
    cfg = DistillConfig(**change)
    assert batched.supports(make_run(cfg, torch.float32), cfg.members()) is expected


def test_a_black_box_teacher_leaves_mlp_students_with_random_samplers_on_the_fused_form():
    """The students and their samplers choose the form, never the teacher (issue 19)."""
    cfg = DistillConfig(samplers=("gaussian",))
    run = make_run(cfg, torch.float32)
    run.teacher = BlackBoxTeacher(lambda x: x.sum(1))
    assert batched.supports(run, cfg.members()) is True


def test_events_give_metrics_per_member_per_epoch_snapshots_and_one_result_each():
    cfg = DistillConfig(samplers=("direct", "gaussian"), alphas=("decreasing", "0"), seeds=(0, 1), epochs=4,
                        snapshot_epochs=(1,), eval_every=2, batch_size=16, batches_per_epoch=2)
    events: list = []
    fused_form(make_run(cfg, torch.float32), cfg.members(), events.append, None, time.perf_counter())
    keys = [m.key for m in cfg.members()]
    metrics = [e for e in events if isinstance(e, EpochMetrics)]
    assert [(e.epoch, e.member) for e in metrics] == [(ep, k) for ep in range(4) for k in keys]
    assert [np.isnan(e.val_rmse) for e in metrics if e.member == keys[0]] == [False, True, False, False]
    snaps = [e for e in events if isinstance(e, Snapshot)]
    assert sorted({s.epoch for s in snaps}) == [1, 3] and len(snaps) == 2 * len(keys)
    for s in snaps:
        n = 32 if s.member.endswith("|0|0") or s.member.endswith("|0|1") else 16  # α ≡ 0 keeps its 2m x_p
        assert s.x.shape == (n, 10) and s.x.dtype == np.float32 and s.student_loss.shape == s.teacher_pred.shape == (n,)
    assert [r.member for r in events if isinstance(r, MemberResult)] == keys


def test_saved_state_dict_loads_into_mlpregressor_and_reproduces_the_reported_test_rmse():
    cfg = DistillConfig(samplers=("direct",), seeds=(0, 1), epochs=3, batch_size=16, batches_per_epoch=2)
    run = make_run(cfg, torch.float32)
    results, _ = fused_form(run, cfg.members(), lambda e: None, None, time.perf_counter())
    for result in results:
        model = MLPRegressor(run.split.input_shape, cfg.student_hidden)
        model.load_state_dict(result.state_dict)
        rmse, mae = evaluate(model.eval(), run.x_test, run.y_test)
        assert rmse == pytest.approx(result.test_rmse, rel=1e-5) and mae == pytest.approx(result.test_mae, rel=1e-5)


def test_short_float32_runs_agree_statistically_with_the_reference_across_seeds():
    cfg = DistillConfig(samplers=("direct",), alphas=("decreasing",), seeds=(0, 1, 2, 3, 4, 5), epochs=25,
                        batch_size=25, batches_per_epoch=4)
    scores = {}
    for name, engine in (("reference", _run_reference), ("batched", fused_form)):
        results, _ = engine(make_run(cfg, torch.float32), cfg.members(), lambda e: None, None, time.perf_counter())
        scores[name] = np.array([r.test_rmse for r in results])
    ref, bat = scores["reference"], scores["batched"]
    spread = np.sqrt((ref.var(ddof=1) + bat.var(ddof=1)) / len(ref))
    assert abs(ref.mean() - bat.mean()) <= 3 * spread + 0.02 * ref.mean()
    # the same seeds start from the same students: the runs stay close member by member
    np.testing.assert_allclose(bat, ref, rtol=0.25)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_one_epoch_equals_the_reference_and_the_step_never_syncs():
    cfg = DistillConfig(samplers=("direct", "generator", "gaussian"), alphas=("decreasing", "1"), seeds=(0, 1),
                        epochs=1, batch_size=16, batches_per_epoch=3, generator_hidden=32)
    ref, bat = run_both(cfg, torch.float64, "cuda")
    assert_same_events(ref, bat)
    engine = FusedMLPStack(make_run(cfg, torch.float32, "cuda"), cfg.members())
    weights, _ = engine._loss_weights(0)
    acc = torch.zeros(engine.K, 1, 2, device="cuda")
    with torch.no_grad():
        engine.train_step(weights, acc, False)  # warm-up (lazy init may sync)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            engine.train_step(weights, acc, False)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("samplers", [("direct",), ("generator",), ("direct", "generator", "gaussian")])
def test_on_cuda_epochs_replayed_as_cuda_graphs_equal_the_plain_loop(samplers):
    # epochs 0-2 replay the captured step (no snapshot there); the last epoch, with its snapshot, runs eagerly
    cfg = DistillConfig(samplers=samplers, alphas=("decreasing", "1"), seeds=(0, 1), epochs=4, snapshot_epochs=(),
                        batch_size=16, batches_per_epoch=3, generator_hidden=32)
    for form in (fused_form, generic_form):
        ref, bat = run_both(cfg, torch.float64, "cuda", form=form)
        assert_same_events(ref, bat)
    for stack_form in (FusedMLPStack, ModuleStack):
        stack = stack_form(make_run(cfg, torch.float32, "cuda"), cfg.members())
        stack.run_epoch(0, True)
        stack.run_epoch(1, True)  # the generic form captures on its second epoch
        assert stack._graphs, f"{stack_form.__name__}: the step was not captured"


@needs_shared_data
def test_bench_json_smoke_prints_the_documented_keys():
    cmd = [sys.executable, "-m", "dfkd_core", "bench", "--json", "--epochs", "5", "--warmup", "1",
           "--datasets", "cpusmall", "--ks", "1,50", "--teacher", "random"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("threads", "device", "single_cpusmall_s", "engine_k50_cpusmall_s", "speedup_k50_cpusmall",
                "speedup_k1_cpusmall", "generic_k1_cpusmall_s", "generic_speedup_k50_cpusmall",
                "fused_over_generic_k50_cpusmall", "indoorloc_fraction_of_matmul", "cpusmall_fraction_of_matmul",
                "sigmoid_floor_k50_cpusmall_s", "comparison_mixed_cpusmall_s", "comparison_split_cpusmall_s",
                "comparison_speedup_cpusmall"):
        assert key in out
    assert out["threads"] == 1 and out["single_cpusmall_s"] > 0 and out["speedup_k50_cpusmall"] > 0


def test_bench_times_the_cnn_loop_plain_against_one_stacked_model():
    """`bench --datasets digits` (an image dataset): the plain loop one student at a time against
    the engine's one stacked model of 1 and 3 students (8×8 digits, a random CNN teacher: seconds)."""
    from dfkd_core.experiments.bench import bench

    out = bench(datasets=("digits",), epochs=1, teacher="random")
    for sampler in ("gaussian", "generator", "direct"):
        assert out[f"digits_plain_{sampler}_s_per_epoch"] > 0
    for key in ("digits_engine_k1_s_per_epoch", "digits_engine_k3_s_per_epoch", "digits_speedup_k1", "digits_speedup_k3"):
        assert out[key] > 0
    assert out["digits_plain_three_s_per_epoch"] == pytest.approx(
        sum(out[f"digits_plain_{s}_s_per_epoch"] for s in ("gaussian", "generator", "direct")))
    assert out["digits_teacher"] == "random CNN (no cached teacher)" and out["digits_epochs_measured"] == 1

"""Whole distillation runs through run_distillation and the CLI: learning happens, runs
are reproducible, events arrive, stop works, bad input gets one line."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from dfkd_core.config import DistillConfig
from dfkd_core.engine import run_distillation
from dfkd_core.errors import ConfigError, ModelError
from dfkd_core.events import EpochMetrics, MemberResult, RunStarted, Snapshot

from conftest import REPO, needs_shared_data

ALL_SAMPLERS = ("gaussian", "lhs", "halton", "sobol", "generator", "direct")


def short(**changes) -> DistillConfig:
    base = dict(dataset="friedman1", epochs=12, samplers=("direct",), alphas=("decreasing",), engine="generic",
                snapshot_epochs=(0, 5))
    return DistillConfig(**{**base, **changes})


def test_a_short_friedman_run_lowers_validation_rmse_for_every_sampler():
    events = []
    run_distillation(short(samplers=ALL_SAMPLERS, epochs=15), on_event=events.append)
    curves = {}
    for e in events:
        if isinstance(e, EpochMetrics):
            curves.setdefault(e.member, []).append(e.val_rmse)
    assert len(curves) == len(ALL_SAMPLERS)
    for member, curve in curves.items():
        assert min(curve[-5:]) < curve[0], member


def test_the_same_seed_gives_the_same_numbers_on_cpu():
    a = run_distillation(short(samplers=("direct", "generator"), epochs=6))
    b = run_distillation(short(samplers=("direct", "generator"), epochs=6))
    assert [m.test_rmse for m in a.members] == [m.test_rmse for m in b.members]


def test_different_seeds_give_different_students():
    result = run_distillation(short(seeds=(0, 1), epochs=4))
    assert result.members[0].test_rmse != result.members[1].test_rmse


def test_events_arrive_per_student_per_epoch_with_snapshots_and_results():
    events = []
    cfg = short(samplers=("gaussian", "direct"), epochs=8)
    result = run_distillation(cfg, on_event=events.append)
    assert isinstance(events[0], RunStarted) and events[0].device.startswith(("CPU", "GPU"))
    metrics = [e for e in events if isinstance(e, EpochMetrics)]
    assert len(metrics) == 2 * 8
    snaps = [e for e in events if isinstance(e, Snapshot)]
    assert sorted({(s.member.split("|")[0], s.epoch) for s in snaps}) == [
        ("direct", 0), ("direct", 5), ("direct", 7), ("gaussian", 0), ("gaussian", 5), ("gaussian", 7)]
    snap = snaps[0]
    assert snap.x.shape == (50, 10) and snap.student_loss.shape == (50,) and snap.teacher_pred.shape == (50,)
    assert [e for e in events if isinstance(e, MemberResult)] == list(result.members)
    assert result.device == events[0].device


def test_the_first_digits_come_after_the_first_batch_and_the_epochs_own_snapshot_follows():
    """A page waiting for digits (early_snapshot) gets epoch 0's first batch as Snapshot(early=True)
    before epoch 0 is logged; the epoch's own snapshot (its last batch) follows, as without."""
    from dfkd_core.config import preset_config

    cfg = preset_config("paper-mnist", dataset="digits", epochs=2, batches_per_epoch=2, samplers=("gaussian", "direct"),
                        direct_steps=2, snapshot_epochs=(0,))
    events, plain = [], []
    run_distillation(cfg, on_event=events.append, early_snapshot=True)
    run_distillation(cfg, on_event=plain.append)
    first_metrics = next(i for i, e in enumerate(events) if isinstance(e, EpochMetrics))
    early_at = [i for i, e in enumerate(events) if isinstance(e, Snapshot) and e.early]
    early = [events[i] for i in early_at]
    assert [e.member for e in early] == [m.key for m in cfg.members()] and {e.epoch for e in early} == {0}
    assert max(early_at) < first_metrics  # epoch 1, a snapshot epoch too, sends none early
    assert all(e.x.shape == (50, 1, 8, 8) and e.teacher_pred.shape == (50,) for e in early)
    # the early batch is the first one, the epoch's own is the last: a different batch
    final = [e for e in events if isinstance(e, Snapshot) and not e.early]
    assert [(e.member, e.epoch) for e in final] == [(m.key, ep) for ep in (0, 1) for m in cfg.members()]
    assert not np.array_equal(early[0].x, final[0].x)
    # asked for or not, the run is the same: same final snapshots, same students
    same = [e for e in plain if isinstance(e, Snapshot)]
    assert not any(e.early for e in same) and len(same) == len(final)
    assert all(np.array_equal(a.x, b.x) for a, b in zip(final, same))
    assert [e.test_rmse for e in events if isinstance(e, MemberResult)] == [
        e.test_rmse for e in plain if isinstance(e, MemberResult)]


def test_best_on_validation_and_data_free_selections_are_reported_side_by_side():
    member = run_distillation(short(epochs=6)).members[0]
    assert set(member.other_selections) == {"last", "synthetic"}
    last_epoch, rmse, mae = member.other_selections["last"]
    assert last_epoch == 5 and math.isfinite(rmse) and mae <= rmse
    assert 0 <= member.best_epoch <= 5


def test_alpha_zero_trains_on_doubled_prior_batches_and_reports_no_xg_loss():
    events = []
    run_distillation(short(samplers=("gaussian",), alphas=("0",), epochs=2), on_event=events.append)
    metric = next(e for e in events if isinstance(e, EpochMetrics))
    assert math.isnan(metric.loss_xg) and metric.loss_xp > 0 and metric.alpha == 0.0
    snap = next(e for e in events if isinstance(e, Snapshot))
    assert snap.x.shape[0] == 100


def test_stop_is_honoured_within_one_epoch():
    seen = []
    result = run_distillation(short(epochs=500), on_event=seen.append,
                              should_stop=lambda: sum(isinstance(e, EpochMetrics) for e in seen) >= 3)
    assert result.cancelled
    assert sum(isinstance(e, EpochMetrics) for e in seen) == 3
    assert len(result.members) == 1  # the best student so far is still reported


def test_gradient_sampler_on_a_black_box_teacher_fails_with_a_clear_message():
    with pytest.raises(ModelError, match="needs the teacher's gradients"):
        run_distillation(short(dataset="protein", samplers=("direct",), epochs=1))


def test_an_unknown_dataset_is_refused_naming_what_exists():
    with pytest.raises(Exception, match="No dataset 'nope' registered"):
        run_distillation(short(dataset="nope"))


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfkd_core", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args,message", [
    (["--epochs", "-5"], "The 'epochs' parameter must be an int"),
    (["--sampler", "magic"], "No sampler 'magic' registered"),
    (["--alpha", "7"], "must be a number in [0, 1]"),
    (["--dataset", "nope"], "No dataset 'nope' registered"),
    (["--set", "direct_lr=abc"], "The 'direct_lr' parameter must be a number. Got 'abc' instead."),
    (["--config", "/nonexistent.json"], "Cannot read the config file"),
], ids=["negative-epochs", "unknown-sampler", "alpha-7", "unknown-dataset", "bad-set", "missing-config"])
def test_distill_cli_bad_arguments_print_one_line_and_exit_non_zero(args, message):
    proc = run_cli("distill", *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_distill_cli_json_ends_with_one_object_with_the_promised_keys():
    proc = run_cli("distill", "--dataset", "friedman1", "--sampler", "direct", "--alpha", "decreasing",
                   "--epochs", "3", "--seed", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("dataset", "sampler", "alpha", "seed", "epochs", "test_rmse", "test_mae", "best_epoch",
                "teacher_test_rmse", "seconds", "device"):
        assert key in row
    assert row["seed"] == 1 and row["sampler"] == "direct"


@needs_shared_data
def test_distill_cli_runs_on_the_real_cpusmall_file():
    proc = run_cli("distill", "--dataset", "cpusmall", "--sampler", "direct", "--epochs", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["dataset"] == "cpusmall" and 0 < row["test_rmse"] < 1.5 and row["teacher_test_rmse"] < 0.25


@needs_shared_data
def test_protein_evolution_runs_with_the_svr_teacher_and_counts_its_queries():
    from dfkd_core.config import preset_config

    cfg = preset_config("paper-protein", dataset="protein", samplers=("evolution",), epochs=2, batches_per_epoch=2,
                        de_generations=3, engine="generic")
    result = run_distillation(cfg)
    member = result.members[0]
    assert member.teacher_queries == 2 * 2 * 50 * (3 + 1) + 2 * 2 * 100  # DE populations + labels of x_g and x_p
    assert np.isfinite(member.test_rmse)


def test_the_mnist_preset_trains_its_three_samplers_as_one_stacked_model():
    """The CNN's students (gaussian, generator, direct) on the engine's one step, as one stacked model
    (8×8 digits, the shipped digits teacher, one epoch)."""
    proc = run_cli("distill", "--dataset", "digits", "--preset", "paper-mnist", "--sampler", "gaussian,generator,direct",
                   "--epochs", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    assert [r["sampler"] for r in rows] == ["gaussian", "generator", "direct"]
    assert {r["engine"] for r in rows} == {"stacked (torch.func)"}
    assert all(np.isfinite(r["test_rmse"]) for r in rows)

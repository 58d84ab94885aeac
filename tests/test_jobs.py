"""Jobs with the real engine on Friedman #1: worker processes finish, stop within an epoch,
wait in the queue, survive as 'interrupted' when killed, and report engine errors."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dfkd_core.runs import jobs
from dfkd_core.config import DistillConfig
from dfkd_core.errors import ConfigError
from dfkd_core.runs.runstore import RunStore
from dfkd_core.runs.runstore import pid_alive as runstore_pid_alive

QUICK = DistillConfig(dataset="friedman1", epochs=5, samplers=("gaussian",), alphas=("0",), batches_per_epoch=2,
                      snapshot_epochs=(0,))
LONG = QUICK.replace(epochs=100_000)
PATIENCE = 10


@pytest.fixture(scope="session")
def quick_teacher() -> dict:
    """Friedman #1's paper teacher (MLP 500) trained for 2 epochs instead of to convergence:
    the engine finds it in its teacher cache, so no test spends minutes training a teacher."""
    from dfkd_core.data import load_split
    from dfkd_core.models.teachers import default_teacher_arch, evaluate, train_torch_teacher

    split = load_split("friedman1", seed=0)
    arch = default_teacher_arch(split)
    module, val_rmse = train_torch_teacher(split, arch, split.seed, torch.device("cpu"), max_epochs=2)
    rmse, mae = evaluate(module, split.x_test, split.y_test)
    blob = {"state_dict": {k: v.cpu() for k, v in module.state_dict().items()}, "arch": arch,
            "test_rmse": rmse, "test_mae": mae, "val_rmse": val_rmse}
    return {"split": split, "arch": arch, "blob": blob}


@pytest.fixture
def store(quick_teacher, tmp_path, monkeypatch) -> RunStore:
    """This test's run store, with the quick teacher in a teacher cache of this test's own
    (never in the session's shared cache, where other tests expect the fully trained teacher)."""
    from dfkd_core.models.teachers import cache_path

    monkeypatch.setenv("DFKD_TEACHER_DIR", str(tmp_path / "quick-teachers"))
    torch.save(quick_teacher["blob"], cache_path(quick_teacher["split"], quick_teacher["arch"]))
    return RunStore()


def wait_for(condition, timeout: float, what: str, every: float = 0.1):
    """Poll until condition() is truthy and return it. `timeout` is what it usually takes on a quiet
    machine; the wait allows PATIENCE times that, so a loaded CI box is slow, not red."""
    deadline = time.monotonic() + timeout * PATIENCE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout * PATIENCE:.0f} s waiting for {what}")


def log_of(store: RunStore, run_id: str) -> str:
    path = store.runs_dir / run_id / "worker.log"
    return path.read_text() if path.exists() else "(no worker.log)"


def ended(store: RunStore, run_id: str) -> bool:
    return store.get_run(run_id).status not in ("queued", "running")


@pytest.fixture(autouse=True)
def stop_leftover_workers():
    """A failed test must not leave a worker training in the background."""
    yield
    for run_id, proc in list(jobs._children.items()):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        jobs._children.pop(run_id, None)


@pytest.mark.parametrize("changes, match", [
    (dict(epochs=-3), r"The 'epochs' parameter must be an int in \[1, 1000000\]. Got -3 instead"),
    (dict(samplers=("nope",)), r"No sampler 'nope' registered"),
    (dict(alphas=()), r"The 'alphas' parameter must be a non-empty list"),
], ids=["negative-epochs", "unknown-sampler", "no-alphas"])
def test_submit_rejects_an_invalid_config_with_its_message_and_stores_nothing(changes, match):
    store = RunStore()
    with pytest.raises(Exception, match=match):
        jobs.submit(QUICK.replace(**changes), store)
    assert store.list_runs().empty


def test_submit_rejects_a_bad_max_runs_setting(monkeypatch):
    monkeypatch.setenv("DFKD_MAX_RUNS", "zero")
    with pytest.raises(ConfigError, match=r"'DFKD_MAX_RUNS' environment variable must be an int ≥ 1. Got 'zero'"):
        jobs.submit(QUICK, RunStore())


def test_a_submitted_run_finishes_done_with_metrics_snapshots_results_and_weights(store):
    run_id = jobs.submit(QUICK, store, title="quick")
    wait_for(lambda: ended(store, run_id), 60, "the run to end")
    info = store.get_run(run_id)
    assert info.status == "done", log_of(store, run_id)
    assert (info.title, info.error, info.engine) == ("quick", None, "fused MLP")
    assert info.device.startswith("CPU") and info.teacher_test_rmse == pytest.approx(
        store.list_runs().teacher_test_rmse[0])
    metrics = store.metrics(run_id)
    assert metrics.epoch.tolist() == [0, 1, 2, 3, 4] and metrics.val_rmse.notna().all()
    assert store.snapshot_index(run_id).epoch.tolist() == [0, 4]
    snapshot = store.load_snapshot(run_id, "gaussian|0|0", 0)
    assert snapshot["x"].shape[1:] == (10,) and len(snapshot["x"]) == len(snapshot["student_loss"])
    result = store.results(run_id).iloc[0]
    assert result.member == "gaussian|0|0" and math.isfinite(result.test_rmse)
    weights = store.load_weights(run_id, "gaussian|0|0")
    assert all(t.device.type == "cpu" for t in weights.values())
    assert "done" in log_of(store, run_id)


def test_stop_cancels_a_running_run_and_keeps_every_logged_epoch(store):
    run_id = jobs.submit(LONG, store)
    wait_for(lambda: len(store.metrics(run_id)) >= 3, 60, "three epochs to be logged")
    jobs.stop(run_id, store)
    wait_for(lambda: ended(store, run_id), 30, "the run to stop")
    info = store.get_run(run_id)
    assert info.status == "cancelled", log_of(store, run_id)
    metrics = store.metrics(run_id)
    assert 3 <= len(metrics) < LONG.epochs
    wait_for(lambda: not runstore_pid_alive(info.pid), 30, "the worker process to exit")
    assert metrics.epoch.tolist() == list(range(len(metrics)))  # nothing lost on the way out
    assert store.results(run_id).member.tolist() == ["gaussian|0|0"]


def test_a_killed_worker_leaves_an_interrupted_run_with_its_metrics_and_an_intact_database(store):
    run_id = jobs.submit(LONG, store)
    wait_for(lambda: len(store.metrics(run_id)) >= 2, 60, "two epochs to be logged")
    pid = store.get_run(run_id).pid
    os.kill(pid, signal.SIGKILL)
    logged = len(store.metrics(run_id))
    assert jobs.recover(store) == [run_id] or wait_for(lambda: jobs.recover(store) == [run_id], 10, "recover()")
    info = store.get_run(run_id)
    assert info.status == "interrupted" and f"pid {pid}" in info.error
    assert len(store.metrics(run_id)) >= logged >= 2
    assert store.integrity_check() == "ok"
    assert jobs.recover(store) == []  # nothing left to recover


def test_with_max_runs_one_the_second_run_waits_queued_until_the_first_ends(store, monkeypatch):
    monkeypatch.setenv("DFKD_MAX_RUNS", "1")
    first = jobs.submit(LONG, store)
    second = jobs.submit(QUICK, store)
    wait_for(lambda: len(store.metrics(first)) >= 1, 60, "the first run's first epoch")
    wait_for(lambda: "waiting" in log_of(store, second), 30, "the second worker to start waiting")
    time.sleep(0.5)  # a few more polls of the queue
    waiting = store.get_run(second)
    assert waiting.status == "queued" and waiting.pid is not None and store.metrics(second).empty
    jobs.stop(first, store)
    wait_for(lambda: ended(store, second), 60, "the second run to end")
    first_info, second_info = store.get_run(first), store.get_run(second)
    assert (first_info.status, second_info.status) == ("cancelled", "done"), log_of(store, second)
    assert second_info.started_at >= first_info.finished_at, (first_info, second_info, log_of(store, first), log_of(store, second))


def test_stopping_a_queued_run_ends_its_waiting_worker(store, monkeypatch):
    monkeypatch.setenv("DFKD_MAX_RUNS", "1")
    blocker = store.create_run(QUICK)
    store.set_status(blocker, "running")
    store.set_worker(blocker, os.getpid())  # alive: the queue must wait for it
    queued = jobs.submit(QUICK, store)
    wait_for(lambda: "waiting" in log_of(store, queued), 30, "the worker to start waiting")
    jobs.stop(queued, store)
    proc = jobs._children[queued]
    assert proc.wait(timeout=300) == 0, log_of(store, queued)
    assert store.get_run(queued).status == "cancelled" and store.metrics(queued).empty


def test_an_engine_error_fails_the_run_with_its_message(store):
    run_id = store.create_run(QUICK.replace(dataset="no-such-dataset"))
    assert jobs.work(run_id, store) == 1
    info = store.get_run(run_id)
    assert info.status == "failed" and "no-such-dataset" in info.error
    assert "Traceback" not in info.error


def test_a_second_worker_for_a_run_that_has_a_live_worker_does_nothing(store):
    run_id = store.create_run(QUICK)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.set_worker(run_id, other.pid)
        assert jobs.work(run_id, store) == 2
        info = store.get_run(run_id)
        assert (info.status, info.pid) == ("queued", other.pid)
    finally:
        other.kill()
        other.wait()


def test_a_worker_for_a_finished_run_does_nothing(store):
    run_id = store.create_run(QUICK)
    store.finish(run_id, "done")
    assert jobs.work(run_id, store) == 2

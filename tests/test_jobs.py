"""Jobs with the real engine on Friedman #1: worker processes finish, stop within an epoch,
wait in the queue, survive as 'interrupted' when killed, and report engine errors."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
PATIENCE = float(os.environ.get("DFKD_TEST_PATIENCE", "10"))  # how many times longer than usual a wait may take


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


def test_runs_over_max_runs_wait_as_rows_without_a_process_and_start_in_order_as_slots_free(store, monkeypatch):
    monkeypatch.setenv("DFKD_MAX_RUNS", "1")
    first = jobs.submit(LONG, store)
    queued = [jobs.submit(QUICK, store) for _ in range(2)]  # Start pressed twice more
    wait_for(lambda: len(store.metrics(first)) >= 1, 60, "the first run's first epoch")
    for run_id in queued:
        info = store.get_run(run_id)
        assert (info.status, info.pid) == ("queued", None) and store.metrics(run_id).empty
        assert run_id not in jobs._children  # no worker process for a queued run
    assert set(jobs._children) == {first}
    jobs.stop(first, store)
    wait_for(lambda: all(ended(store, r) for r in queued), 120, "the queued runs to end")
    infos = [store.get_run(r) for r in [first, *queued]]
    assert [i.status for i in infos] == ["cancelled", "done", "done"], [log_of(store, r) for r in queued]
    for before, after in zip(infos, infos[1:]):  # one at a time, first come first served
        assert after.started_at >= before.finished_at, (before, after)


def test_stopping_a_queued_run_cancels_the_row_and_it_never_gets_a_worker(store, monkeypatch):
    monkeypatch.setenv("DFKD_MAX_RUNS", "1")
    blocker = store.create_run(QUICK)
    store.set_status(blocker, "running")
    store.set_worker(blocker, os.getpid())  # alive: the queue must wait for it
    queued = jobs.submit(QUICK, store)
    assert store.get_run(queued).status == "queued" and queued not in jobs._children
    jobs.stop(queued, store)
    store.finish(blocker, "done")  # the slot frees: nothing is left to start
    assert jobs.dispatch(store) == {} and queued not in jobs._children
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


# ---------------------------------------------------------------------- the warm worker (issue 23)
@pytest.fixture
def warm(store):
    """This process keeps a warm worker (as a dashboard server does), ended after the test."""
    jobs.keep_warm(store)
    yield
    jobs.stop_keeping_warm()


def test_a_warm_worker_waits_with_torch_imported_takes_the_next_run_and_is_replaced(store, warm):
    pid = jobs.warm_worker(wait=120)
    assert pid is not None and runstore_pid_alive(pid)
    imported = Path(f"/proc/{pid}/maps").read_text()
    assert "libtorch" in imported  # torch is loaded before any run exists
    run_id = jobs.submit(QUICK, store)
    assert store.get_run(run_id).pid == pid  # the warm worker took it, no new process
    wait_for(lambda: ended(store, run_id), 60, "the run to end")
    assert store.get_run(run_id).status == "done", log_of(store, run_id)
    assert "taken by a warm worker" in log_of(store, run_id)
    wait_for(lambda: not runstore_pid_alive(pid), 30, "the warm worker to exit after its one run")
    replacement = jobs.warm_worker(wait=120)
    assert replacement not in (None, pid)  # a fresh one waits for the next Start


def test_a_warm_worker_runs_with_the_settings_of_the_run_it_takes(store, warm, tmp_path, monkeypatch):
    jobs.warm_worker(wait=120)
    other = RunStore(tmp_path / "another-home")  # DFKD_* settings travel with the run, not with the process
    monkeypatch.setenv("DFKD_HOME", str(other.home))
    run_id = jobs.submit(QUICK, other)
    wait_for(lambda: ended(other, run_id), 60, "the run to end")
    assert other.get_run(run_id).status == "done", log_of(other, run_id)
    assert not (store.runs_dir / run_id).exists() and len(other.metrics(run_id)) == QUICK.epochs


SERVER = """
import os, sys, time
from dfkd_core.runs import jobs
from dfkd_core.runs.runstore import RunStore
from dfkd_core.config import DistillConfig
store = RunStore()
jobs.keep_warm(store)
jobs.warm_worker(wait=120)
run_id = jobs.submit(DistillConfig.from_json(sys.argv[1]), store)
print(run_id, store.get_run(run_id).pid, flush=True)
time.sleep(1.0)  # the dispatcher starts the next warm worker
print(jobs.warm_worker(wait=120), flush=True)
os._exit(0)  # the server dies: no clean-up of any kind
"""


def test_a_run_taken_by_a_warm_worker_survives_its_server_and_the_idle_warm_worker_leaves_with_it(store):
    out = subprocess.run([sys.executable, "-c", SERVER, LONG.to_json()], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr
    (run_id, worker), (idle,) = (line.split() for line in out.stdout.splitlines())
    worker, idle = int(worker), int(idle)
    try:
        logged = wait_for(lambda: len(store.metrics(run_id)), 60, "an epoch")
        wait_for(lambda: len(store.metrics(run_id)) > logged, 60, "more epochs after the server died")
        assert store.get_run(run_id).status == "running" and runstore_pid_alive(worker)
        wait_for(lambda: not runstore_pid_alive(idle), 30, "the idle warm worker to exit")
    finally:
        jobs.stop(run_id, store, wait=True)
    info = store.get_run(run_id)
    assert info.status == "cancelled" and not runstore_pid_alive(worker)


# ---------------------------------------------------------------------- Stop stops (issue 22)
class HangsAfter(torch.nn.Module):
    """A user's TorchScript teacher that answers `calls` times, then never returns (a busy loop
    inside TorchScript: no Python runs in the worker's main thread until it is killed)."""

    def __init__(self, inner: torch.nn.Module, calls: int) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("left", torch.tensor([calls]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.left.sub_(1)
        if bool(self.left[0] < 0):
            y = x
            while bool((y == y).all()):  # forever on finite inputs
                y = y * 1.0
        return self.inner(x)


def test_stop_ends_a_worker_stuck_in_its_teacher_keeping_what_was_logged(store, tmp_path):
    from user_helpers import fast_config, fitted_teacher, write_csv, write_torchscript

    csv = write_csv(tmp_path / "plant.csv")
    teacher = write_torchscript(tmp_path / "hangs.pt", HangsAfter(fitted_teacher(csv, steps=30), calls=150))
    cfg = fast_config(teacher_file=str(teacher), data_file=str(csv), target="y", samplers=("gaussian",),
                      epochs=100_000, batches_per_epoch=2)
    run_id = jobs.submit(cfg, store)
    wait_for(lambda: len(store.metrics(run_id)) >= 3, 120, "epochs before the teacher hangs")
    pid = store.get_run(run_id).pid
    wait_for(lambda: not pid_alive_and_progressing(store, run_id), 60, "the teacher to hang")
    logged = len(store.metrics(run_id))
    jobs.stop(run_id, store, wait=True)
    assert not runstore_pid_alive(pid)
    info = store.get_run(run_id)
    assert info.status == "cancelled" and "Stopped" in info.error, (info, log_of(store, run_id))
    assert len(store.metrics(run_id)) >= logged and store.integrity_check() == "ok"


def test_mnist_stop_is_checked_between_batches(monkeypatch):
    """A generic-stack run (the CNN's form) stops inside an epoch: its epoch of many batches is
    not finished first."""
    from dfkd_core.engine import run_distillation
    from dfkd_core.engine.stacked import ModuleStack

    steps = []
    real_step = ModuleStack._step

    def counted(self, *args):
        steps.append(1)
        return real_step(self, *args)

    monkeypatch.setattr(ModuleStack, "_step", counted)
    cfg = DistillConfig(dataset="friedman1", epochs=3, samplers=("gaussian",), alphas=("0",), batches_per_epoch=50,
                        snapshot_epochs=(), engine="generic", student_hidden=5)
    result = run_distillation(cfg, should_stop=lambda: len(steps) >= 5)
    assert result.cancelled and len(steps) == 5


def pid_alive_and_progressing(store: RunStore, run_id: str) -> bool:
    before = len(store.metrics(run_id))
    time.sleep(2.0)
    return len(store.metrics(run_id)) > before


def test_bench_start_latency_times_cold_and_warm_starts_in_a_scratch_store(store):
    out = subprocess.run([sys.executable, "-m", "dfkd_core", "bench", "--start-latency", "--repeat", "1", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["start_latency_cold_s"]) == len(result["start_latency_warm_s"]) == 1
    assert all(v > 0 for v in (*result["start_latency_cold_s"], *result["start_latency_warm_s"]))
    assert store.list_runs().empty  # the user's run store is not touched


def test_runs_stop_on_the_command_line_ends_a_hung_worker_before_it_returns(store):
    run_id = jobs.submit(LONG, store)
    wait_for(lambda: len(store.metrics(run_id)) >= 1, 60, "one epoch")
    pid = store.get_run(run_id).pid
    freeze(store, pid)  # hung: no stop check, no SIGTERM handler runs
    try:
        out = subprocess.run([sys.executable, "-m", "dfkd_core", "runs", "--stop", run_id],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "cancelled" in out.stdout and not runstore_pid_alive(pid)
        assert store.get_run(run_id).status == "cancelled" and len(store.metrics(run_id)) >= 1
    finally:
        if runstore_pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_pages_stop_returns_at_once_and_ends_a_hung_worker_in_the_background(store):
    from dfkd_core import dashboard

    run_id = jobs.submit(LONG, store)
    wait_for(lambda: len(store.metrics(run_id)) >= 1, 60, "one epoch")
    pid = store.get_run(run_id).pid
    freeze(store, pid)
    try:
        dashboard.stop(run_id)  # a button's callback: must not hold the page
        assert store.stop_requested(run_id)
        wait_for(lambda: not runstore_pid_alive(pid), 30, "the worker to be ended")
        wait_for(lambda: store.get_run(run_id).status == "cancelled", 10, "the run to end cancelled")
    finally:
        if runstore_pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_dispatch_leaves_alone_a_queued_row_that_a_process_already_owns(store):
    owned = store.create_run(QUICK)  # e.g. a reproduction driver storing a run it computed itself
    store.set_worker(owned, os.getpid())
    assert jobs.dispatch(store) == {} and owned not in jobs._children
    assert store.get_run(owned).status == "queued"


def freeze(store: RunStore, pid: int) -> None:
    """SIGSTOP the worker at a moment it holds no write lock of the store (a hung teacher hangs
    outside a transaction; a worker frozen inside one would lock every other writer out)."""
    import sqlite3

    for _ in range(100):
        os.kill(pid, signal.SIGSTOP)
        conn = sqlite3.connect(store.db_path, timeout=0.5)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)
        finally:
            conn.close()
    raise AssertionError("the worker always held the store's write lock")

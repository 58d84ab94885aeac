"""The one runner (experiments/runner.py) on each executor, and sweeps through it: retries, one
result stored once, the same numbers on a LocalCluster as locally, a scheduler and two worker
processes started here on 127.0.0.1 sharing the tasks, a worker killed mid-sweep losing nothing.
Kept short: tiny epochs, two workers (the CI machine has two shared cores)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO
from dfkd_core.errors import ConfigError
from dfkd_core.experiments import runner as R
from dfkd_core.experiments import sweep as S
from dfkd_core.runs.runstore import RunStore

import runner_helpers as H

TESTS = Path(__file__).resolve().parent


def test_executor_and_scheduler_are_checked_with_one_clear_message():
    assert R.check_executor(None) == ("local", None)
    assert R.check_executor("dask-local") == ("dask-local", None)
    assert R.check_executor(None, "tcp://127.0.0.1:8786") == ("dask", "tcp://127.0.0.1:8786")
    for executor, scheduler, message in [("threads", None, "must be one of local, dask-local"),
                                         (None, "127.0.0.1:8786", "must be a Dask scheduler address"),
                                         (None, "tcp://host:99999", "must be a Dask scheduler address"),
                                         ("local", "tcp://127.0.0.1:8786", "cannot be combined")]:
        with pytest.raises(ConfigError, match=message):
            R.check_executor(executor, scheduler)


def test_a_failing_task_is_retried_once_then_reported_and_a_duplicate_key_is_handled_once(tmp_path):
    results, failures = [], []
    tasks = [R.Task("a", H.fail_once, (str(tmp_path / "marker"), 1)),
             R.Task("b", H.always_fail, (str(tmp_path / "count"),)),
             R.Task("c", H.square, (3,)), R.Task("c", H.square, (3,))]  # the same result arriving twice
    with R.Runner("local", workers=1) as runner:
        failed = runner.run(tasks, lambda t, v: results.append((t.key, v)), lambda t, m: failures.append((t.key, m)))
    assert results == [("a", 2), ("c", 9)]
    assert failures == [("b", "ValueError: this task always fails")] and [t.key for t, _ in failed] == ["b"]
    assert (tmp_path / "count").read_text().count("attempt") == 2  # once, and one retry
    assert runner.retried == ["a", "b"]


def test_a_local_worker_process_that_dies_is_replaced_and_its_task_retried(tmp_path):
    results = {}
    tasks = [R.Task("dies", H.die_once, (str(tmp_path / "marker"), 4))] + [R.Task(str(i), H.square, (i,)) for i in range(3)]
    with R.Runner("local", workers=2) as runner:
        failed = runner.run(tasks, lambda t, v: results.setdefault(t.key, v))
    assert not failed
    assert results == {"dies": 40, "0": 0, "1": 1, "2": 4}
    assert sum(runner.per_worker.values()) == 4 and all(w.startswith("process ") for w in runner.per_worker)


SWEEP_BASE = {"dataset": "friedman1", "samplers": "gaussian,direct", "epochs": "3", "snapshot_epochs": ""}


def _numbers(store: RunStore, sweep_id: str) -> dict:
    fields, long = S.sweep_results(store, sweep_id)
    return {(tuple(r[f] for f in fields), r["seed"], r["method"]): (r["test_rmse"], r["test_mae"])
            for r in long.to_dict(orient="records")}


def test_a_localcluster_sweep_gives_the_same_numbers_as_the_local_executor(tmp_path):
    grid = {"student_hidden": ["5", "10"]}
    local = RunStore(tmp_path / "local")
    rep_local = S.run_sweep(SWEEP_BASE, grid, [0, 1], store=local, executor="local", workers=1)
    dask = RunStore(tmp_path / "dask")
    rep_dask = S.run_sweep(SWEEP_BASE, grid, [0, 1], store=dask, executor="dask-local", workers=2)
    assert rep_local["sweep"] == rep_dask["sweep"] and len(rep_dask["runs"]) == 4
    ours, theirs = _numbers(local, rep_local["sweep"]), _numbers(dask, rep_dask["sweep"])
    assert len(ours) == 8  # 2 points × 2 seeds × 2 samplers
    assert ours == theirs
    assert rep_dask["executor"] == "dask-local" and sum(rep_dask["tasks_per_worker"].values()) == 4
    assert all(w.startswith("tcp://127.0.0.1:") for w in rep_dask["tasks_per_worker"])
    assert {r["claim"] for r in rep_dask["paired"]} == {"gaussian · α decreasing ≤ direct · α decreasing"}


# ---------------------------------------------------------------- a scheduler and two workers started here
def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def cluster(tmp_path):
    """A `dask scheduler` on 127.0.0.1 (a free port) and two `dask worker` processes of one thread,
    without nannies (a killed worker stays dead): (address, [worker processes])."""
    file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert file.exists(), "the scheduler did not start"
        workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
                                     "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}",
                                     "--host", "127.0.0.1"], env=_env(), cwd=str(REPO),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                   for i in (1, 2)]
        procs += workers
        import json

        from distributed import Client

        address = json.loads(file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address, workers
    finally:  # workers first (with the scheduler gone first, each waited ~20 s to reconnect before exiting)
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_scheduler_with_two_worker_processes_spreads_a_sweeps_tasks_over_both(cluster, tmp_path):
    address, _ = cluster
    store = RunStore(tmp_path / "store")
    lines: list[str] = []
    rep = S.run_sweep({**SWEEP_BASE, "epochs": "15"}, {"student_hidden": ["5", "10", "15"]}, [0, 1], store=store,
                      scheduler=address, log=lines.append)
    assert rep["executor"] == "dask" and rep["workers"] == 2
    per_worker = rep["tasks_per_worker"]
    assert len(per_worker) == 2 and sum(per_worker.values()) == 6, per_worker
    assert any(line.startswith("tasks per worker: ") and line.count(" ran ") == 2 for line in lines)
    assert len(rep["runs"]) == 6 and set(store.list_runs()["status"]) == {"done"}


def test_killing_one_worker_mid_sweep_still_completes_it_with_nothing_lost(cluster, tmp_path):
    address, workers = cluster
    store = RunStore(tmp_path / "store")
    killed = threading.Event()

    def log(line: str) -> None:
        if line.startswith("[1/") and not killed.is_set():  # the first run is stored: kill a worker mid-sweep
            os.killpg(workers[1].pid, signal.SIGKILL)
            workers[1].wait(timeout=20)
            killed.set()

    grid = {"student_hidden": ["5", "10", "15", "20"]}
    rep = S.run_sweep({**SWEEP_BASE, "epochs": "30"}, grid, [0, 1], store=store, scheduler=address, log=log)
    assert killed.is_set()
    assert rep["failed_tasks"] == []
    runs = store.list_runs()
    assert len(runs) == 8 and set(runs["status"]) == {"done"}  # every cell stored once, none lost
    assert len(rep["runs"]) == 8
    assert len(_numbers(store, rep["sweep"])) == 16


def test_the_dashboard_runs_reproductions_on_the_cluster_named_by_dfkd_scheduler(monkeypatch):
    from dfkd_core.experiments import reproduce

    monkeypatch.delenv(R.SCHEDULER_ENV, raising=False)
    assert R.dashboard_executor() == ("local", None)
    assert R.executor_label(*R.dashboard_executor()) == "local worker processes"
    monkeypatch.setenv(R.SCHEDULER_ENV, "tcp://10.0.0.5:8786")
    assert R.dashboard_executor() == ("dask", "tcp://10.0.0.5:8786")
    assert "tcp://10.0.0.5:8786" in R.executor_label(*R.dashboard_executor())
    cmd = reproduce.reproduce_command(4, quick=True, scheduler=R.dashboard_executor()[1])
    assert cmd[-3:] == ["--scheduler", "tcp://10.0.0.5:8786", "--json"]
    monkeypatch.setenv(R.SCHEDULER_ENV, "not an address")
    with pytest.raises(ConfigError, match="must be a Dask scheduler address"):
        R.dashboard_executor()


def test_the_reproduction_log_tail_keeps_the_line_saying_what_runs_it():
    from dfkd_core.experiments import reproduce
    from dfkd_core.paths import home_dir

    folder = home_dir() / "reproduce"
    folder.mkdir(parents=True)
    lines = ["executor: dask: scheduler tcp://127.0.0.1:8786, 2 worker(s)"] + [f"[{i}/20] Table 4 · run {i}" for i in range(1, 21)]
    (folder / "20260101-000000-table4.log").write_text("\n".join(lines + ['{"table": 4}']) + "\n")
    _, tail = reproduce.latest_log(lines=4)
    assert tail.splitlines() == [lines[0], "[18/20] Table 4 · run 18", "[19/20] Table 4 · run 19", "[20/20] Table 4 · run 20"]

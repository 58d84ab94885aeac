"""Hardening of what the product stores: planted pickles in its caches are never executed,
damaged store and cache files give one-line messages, dead and hung workers end their runs
'interrupted' with their curves, a full disk fails a run with the reason, and a data file
that is not the published one is refused. Every case checks that no stored run was lost."""
from __future__ import annotations

import ast
import errno
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, needs_shared_data
from test_jobs import LONG, QUICK, freeze, log_of, quick_teacher, store, wait_for  # noqa: F401 (fixtures)

from dfkd_core import dashboard
from dfkd_core.runs import jobs
from dfkd_core.dashboard import embedding as projection
from dfkd_core.runs import runstore
from dfkd_core.config import DistillConfig
from dfkd_core.data import catalog, download, load_split
from dfkd_core.errors import ConfigError, DatasetError, DfkdError
from dfkd_core.events import EpochMetrics, MemberResult, RunStarted, Snapshot
from dfkd_core.runs.runstore import RunStore, StoreError
from dfkd_core.models.teachers import cache_path, get_teacher

REPO = Path(__file__).resolve().parents[1]
MEMBER = "gaussian|0|0"


class WritesMarker:
    """A pickle whose loading writes a marker file: proof that a loader executed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "executed"))


def plant_pickle(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(WritesMarker(marker)))


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "dfkd_core", *args], capture_output=True, text=True, env=full,
                          cwd=REPO, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single 'error: …' line of a CLI call that failed without a traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def finished_run(store: RunStore, with_weights: bool = True) -> str:
    """A done run with three epochs of metrics, a snapshot at epoch 0 and (optionally) weights."""
    run_id = store.create_run(DistillConfig(dataset="friedman1", epochs=3, samplers=("gaussian",), alphas=("0",)))
    store.record(run_id, RunStarted("CPU", (MEMBER,), 0.2, 0.1, "mlp", "batched"))
    for epoch in range(3):
        store.record(run_id, EpochMetrics(MEMBER, epoch, 0.5, 0.4, 1.0, 0.5, 0.0, 0.1 * epoch))
    store.record(run_id, Snapshot(MEMBER, 0, np.zeros((4, 10)), np.ones(4), np.ones(4)))
    state = {"w": torch.ones(2, 2)} if with_weights else None
    store.record(run_id, MemberResult(MEMBER, "gaussian", "0", 0, 0.5, 0.4, 2, 0.5, {}, 10, state_dict=state))
    store.finish(run_id, "done")
    return run_id


def assert_nothing_lost(store: RunStore, count: int) -> None:
    assert store.integrity_check() == "ok"
    assert len(store.list_runs()) == count


# ============================================================ no unpickling of our own caches
@pytest.fixture
def svr_split(tmp_path, monkeypatch):
    """A small split (diabetes, 265 training rows) whose SVR teacher fits in a second, cached
    in a teacher folder of this test's own."""
    monkeypatch.setenv("DFKD_TEACHER_DIR", str(tmp_path / "teachers"))
    return load_split("diabetes")


def test_a_pickle_planted_as_the_svr_cache_is_never_executed_and_the_teacher_is_rebuilt(svr_split, tmp_path):
    marker = tmp_path / "executed"
    path = cache_path(svr_split, "svr")
    plant_pickle(path, marker)
    teacher, info = get_teacher(svr_split, "svr")
    assert not marker.exists()
    assert not info.cached and np.isfinite(info.test_rmse)
    with np.load(path, allow_pickle=False) as data:  # replaced by a plain .npz of arrays
        assert {"support_vectors", "dual_coef", "intercept", "gamma"} <= set(data.files)


def test_a_pickle_left_at_the_former_pkl_cache_path_is_ignored(svr_split, tmp_path):
    marker = tmp_path / "executed"
    plant_pickle(cache_path(svr_split, "svr").with_suffix(".pkl"), marker)
    get_teacher(svr_split, "svr")
    assert not marker.exists()


def test_the_svr_cache_round_trips_to_the_same_predictions(svr_split):
    fresh, first = get_teacher(svr_split, "svr")
    cached, second = get_teacher(svr_split, "svr")
    assert (first.cached, second.cached) == (False, True)
    x = svr_split.x_test[:50]
    torch.testing.assert_close(cached.predict(x), fresh.predict(x), rtol=0, atol=0)
    assert second.test_rmse == first.test_rmse


@pytest.mark.parametrize("damage", ["truncate", "empty", "other-coefficients"])
def test_a_damaged_svr_cache_is_retrained_not_a_traceback(svr_split, damage):
    _, first = get_teacher(svr_split, "svr")
    path = Path(first.path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a readable file whose arrays no longer give the predictions stored with them
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["dual_coef"] = arrays["dual_coef"] * 2
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    teacher, info = get_teacher(svr_split, "svr")
    assert not info.cached
    assert info.test_rmse == pytest.approx(first.test_rmse, rel=1e-9)


@pytest.mark.parametrize("content", ["pickle", "garbage", "other-rows"])
def test_an_unusable_umap_cache_is_discarded_without_being_executed(tmp_path, content):
    rows = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    path = projection.umap_path("blobs-split0")
    marker = tmp_path / "executed"
    if content == "pickle":
        plant_pickle(path, marker)
    elif content == "garbage":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, embedding=np.zeros((50, 2), np.float32), rows_sha256=np.asarray(projection._rows_digest(rows + 1)))
    assert projection._load_embedding(path, rows) is None
    assert not marker.exists() and not path.exists()  # removed, so the next fit replaces it


def test_a_umap_cache_of_the_same_rows_is_loaded_as_plain_arrays(tmp_path):
    rows = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    path = projection.umap_path("blobs-split0")
    path.parent.mkdir(parents=True, exist_ok=True)
    embedding = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    np.savez(path, embedding=embedding, rows_sha256=np.asarray(projection._rows_digest(rows)))
    np.testing.assert_array_equal(projection._load_embedding(path, rows), embedding)


def test_nothing_in_the_engine_unpickles_except_the_user_model_loader():
    """pickle.load / joblib.load / np.load(allow_pickle=True) appear nowhere in dfkd_core, except in
    teachers.load_teacher_file (a user's own model file, being replaced by a safe loader)."""
    found = []
    for path in sorted((REPO / "dfkd_core").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Module))]:
            if isinstance(func, ast.FunctionDef) and func.name == "load_teacher_file":
                continue
            body = func.body if isinstance(func, ast.FunctionDef) else [n for n in func.body if not isinstance(n, ast.FunctionDef)]
            for node in (n for stmt in body for n in ast.walk(stmt)):
                if isinstance(node, ast.FunctionDef) and node.name == "load_teacher_file":
                    continue
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    name = f"{getattr(node.func.value, 'id', '?')}.{node.func.attr}"
                    unsafe_np = name == "np.load" and any(k.arg == "allow_pickle" and getattr(k.value, "value", None) is True
                                                          for k in node.keywords)
                    if name in ("pickle.load", "pickle.loads", "joblib.load") or unsafe_np:
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert found == []


# ============================================================ damaged store files
def test_a_dfkd_home_that_is_a_file_is_a_one_line_config_error(tmp_path, monkeypatch):
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    monkeypatch.setenv("DFKD_HOME", str(home))
    with pytest.raises(ConfigError, match=r"The DFKD_HOME folder must be a directory. Got '.*home-file', which is a file"):
        RunStore()
    assert one_line_error(cli("runs")).startswith("error: The DFKD_HOME folder must be a directory")
    assert home.read_text() == "not a folder"


def test_a_dfkd_home_below_a_file_cannot_be_created_and_says_so(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DFKD_HOME", str(tmp_path / "file" / "home"))
    line = one_line_error(cli("runs"))
    assert "cannot be created (Not a directory); set DFKD_HOME to a writable folder" in line


def test_a_read_only_dfkd_home_is_a_one_line_config_error(tmp_path, monkeypatch):
    home = tmp_path / "ro-home"
    RunStore(home)  # a store made while it was writable
    home.chmod(0o555)
    immutable = False
    try:
        if os.access(home, os.W_OK):  # root ignores the mode: make the folder immutable where allowed
            immutable = subprocess.run(["chattr", "+i", str(home)], capture_output=True).returncode == 0
            if not immutable:
                pytest.skip("cannot make a folder read-only for this user")
        monkeypatch.setenv("DFKD_HOME", str(home))
        with pytest.raises(ConfigError, match=r"The DFKD_HOME folder '.*ro-home' is read-only"):
            RunStore()
        assert "is read-only; set DFKD_HOME to a writable folder" in one_line_error(cli("runs"))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(home)], check=True)
        home.chmod(0o755)
    assert_nothing_lost(RunStore(home), 0)


@pytest.mark.parametrize("damage", ["garbage", "zeroed-pages", "directory"])
def test_a_damaged_runs_db_is_reported_in_one_line_and_left_untouched(tmp_path, monkeypatch, damage):
    home = tmp_path / "home"
    store = RunStore(home)
    for _ in range(3):
        finished_run(store, with_weights=False)
    db = home / "runs.db"
    if damage == "directory":
        for f in home.glob("runs.db*"):
            f.unlink()
        db.mkdir()
    else:
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        data = db.read_bytes()
        db.write_bytes(os.urandom(len(data)) if damage == "garbage" else data[:4096] + bytes(len(data) - 4096))
    before = sorted((p.name, p.stat().st_size) for p in home.glob("runs.db*"))
    monkeypatch.setenv("DFKD_HOME", str(home))
    line = one_line_error(cli("runs"))
    assert f"The run store {db}" in line
    with pytest.raises(StoreError, match="The run store"):
        RunStore(home).list_runs()
    assert sorted((p.name, p.stat().st_size) for p in home.glob("runs.db*")) == before


@pytest.mark.parametrize("damage", ["deleted", "truncated", "pickle"])
def test_a_run_with_a_damaged_snapshot_gives_a_message_and_can_still_be_deleted(damage, tmp_path):
    store = RunStore()
    keep, run_id = finished_run(store), finished_run(store)
    path = next((store.runs_dir / run_id / "snapshots").glob("*.npz"))
    marker = tmp_path / "executed"
    if damage == "deleted":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        plant_pickle(path, marker)
    expected = "is missing" if damage == "deleted" else "is damaged"
    with pytest.raises(StoreError, match=rf"The snapshot of run '{run_id}', member '{MEMBER}' at epoch 0 .* {expected}"):
        store.load_snapshot(run_id, MEMBER, 0)
    with pytest.raises(DfkdError, match=expected):  # what the pages call
        dashboard.snapshot(run_id, MEMBER, 0)
    view = dashboard.load_view(run_id)  # the rest of the run still shows
    assert view.status == "done" and len(view.metrics) == 3
    assert not marker.exists()
    assert dashboard.delete_runs([run_id]) == ([run_id], [])
    assert not (store.runs_dir / run_id).exists()
    assert store.load_snapshot(keep, MEMBER, 0)["x"].shape == (4, 10)
    assert_nothing_lost(store, 1)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the planted pickle
@pytest.mark.parametrize("damage", ["deleted", "garbage", "pickle"])
def test_a_run_with_damaged_weights_gives_a_message_and_can_still_be_deleted(damage, tmp_path):
    store = RunStore()
    keep, run_id = finished_run(store), finished_run(store)
    path = next((store.runs_dir / run_id).glob("*.pt"))
    marker = tmp_path / "executed"
    if damage == "deleted":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    else:
        plant_pickle(path, marker)
    expected = "are missing" if damage == "deleted" else "are damaged"
    with pytest.raises(StoreError, match=rf"The weights of run '{run_id}', member '{MEMBER}' .* {expected}"):
        store.load_weights(run_id, MEMBER)
    with pytest.raises(DfkdError, match=expected):  # the download button's bytes
        dashboard.weights_bytes(run_id, MEMBER)
    assert not marker.exists()
    assert "\n" not in str(pytest.raises(StoreError, store.load_weights, run_id, MEMBER).value)
    assert dashboard.delete_runs([run_id]) == ([run_id], [])
    assert set(store.load_weights(keep, MEMBER)) == {"w"}
    assert_nothing_lost(store, 1)


# ============================================================ dead, hung and starved workers
def kill_when(store: RunStore, run_id: str, ready, what: str) -> int:
    wait_for(ready, 60, what)
    pid = store.get_run(run_id).pid
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("point", ["first-epoch", "mid-run"])
def test_a_worker_killed_during_its_run_is_seen_by_the_next_poll_with_its_curve_kept(store, point):
    other = finished_run(store, with_weights=False)
    run_id = jobs.submit(LONG, store)
    epochs = 1 if point == "first-epoch" else 8
    pid = kill_when(store, run_id, lambda: len(store.metrics(run_id)) >= epochs, f"{epochs} epoch(s)")
    logged = len(store.metrics(run_id))
    # the page's poll (no recover(), no server restart) notices within a second or two
    view = wait_for(lambda: (v := dashboard.load_view(run_id)).status == "interrupted" and v, 10, "the poll")
    assert f"pid {pid}" in view.run.error
    assert len(view.metrics) >= logged >= epochs and view.metrics.epoch.tolist() == list(range(len(view.metrics)))
    assert store.get_run(other).status == "done"
    assert_nothing_lost(store, 2)


def test_a_killed_worker_frees_its_slot_for_the_queued_run_at_the_next_poll(store, monkeypatch):
    monkeypatch.setenv("DFKD_MAX_RUNS", "1")
    first = jobs.submit(LONG, store)
    second = jobs.submit(QUICK, store)  # a row, no process, while the first runs
    pid = kill_when(store, first, lambda: len(store.metrics(first)) >= 1, "the first run to start")
    assert store.get_run(second).status == "queued" and store.get_run(second).pid is None
    wait_for(lambda: dashboard.load_view(first).status == "interrupted", 10, "the poll to see it")
    wait_for(lambda: store.get_run(second).status == "done", 120, "the queued run to run")
    assert f"pid {pid}" in store.get_run(first).error and len(store.metrics(first)) >= 1
    assert_nothing_lost(store, 2)


def test_the_runs_command_lists_a_killed_workers_run_as_interrupted(store):
    run_id = jobs.submit(LONG, store)
    kill_when(store, run_id, lambda: len(store.metrics(run_id)) >= 2, "two epochs")
    time.sleep(0.2)  # reaped by nobody: a zombie of this process still counts as dead
    listed = cli("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["status"] == "interrupted" and row["last_epoch"] >= 1
    assert_nothing_lost(store, 1)


def test_the_runs_page_table_lists_a_killed_workers_run_as_interrupted(store):
    run_id = jobs.submit(LONG, store)
    kill_when(store, run_id, lambda: len(store.metrics(run_id)) >= 1, "one epoch")
    wait_for(lambda: dashboard.runs_table().status.tolist() == ["interrupted"], 10, "the runs table")
    assert_nothing_lost(store, 1)


def test_stop_ends_a_run_whose_worker_is_already_dead_at_once(store):
    run_id = jobs.submit(LONG, store)
    kill_when(store, run_id, lambda: len(store.metrics(run_id)) >= 1, "one epoch")
    time.sleep(0.2)
    jobs.stop(run_id, store)  # no poll in between: Stop alone ends it
    info = store.get_run(run_id)
    assert info.status == "interrupted" and "ended without finishing" in info.error
    assert_nothing_lost(store, 1)


def test_stop_ends_a_hung_worker_and_its_run_keeping_what_was_logged(store):
    run_id = jobs.submit(LONG, store)
    wait_for(lambda: len(store.metrics(run_id)) >= 1, 60, "one epoch")
    pid = store.get_run(run_id).pid
    freeze(store, pid)  # alive, but neither training nor beating nor handling SIGTERM
    try:
        logged = len(store.metrics(run_id))
        jobs.stop(run_id, store, wait=True)  # asks, then SIGTERM, then SIGKILL
        assert not runstore.pid_alive(pid)
        info = store.get_run(run_id)
        assert info.status == "cancelled" and "SIGKILL" in info.error
        assert len(store.metrics(run_id)) >= logged >= 1
    finally:
        if runstore.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert_nothing_lost(store, 1)


@pytest.mark.parametrize("suffix", [".npz", ".pt"], ids=["snapshot", "weights"])
def test_a_full_disk_fails_the_run_with_the_reason(store, monkeypatch, suffix):
    real_write = runstore._atomic_write

    def disk_full_for(path, write):
        if path.suffix == suffix:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, write)

    monkeypatch.setattr(runstore, "_atomic_write", disk_full_for)
    run_id = store.create_run(QUICK)
    assert jobs.work(run_id, store) == 1  # the worker's body, in this process
    info = store.get_run(run_id)
    assert info.status == "failed"
    assert info.error.startswith("The disk is full (No space left on device) while writing ")
    assert info.error.endswith("Free some space, then start the run again.")
    assert len(store.metrics(run_id)) >= 1  # the epochs logged before the failed write are kept
    assert_nothing_lost(store, 1)


# ============================================================ data integrity
@pytest.fixture
def cut_cpusmall(tmp_path, monkeypatch):
    """cpusmall cut to 3,513 of its 8,192 rows, in a data folder of this test's own."""
    if not (SHARED_DATA / "libsvm" / "cpusmall").exists():
        pytest.skip("../shared/data is not beside the repo")
    folder = tmp_path / "data" / "libsvm"
    folder.mkdir(parents=True)
    lines = (SHARED_DATA / "libsvm" / "cpusmall").read_text().splitlines(keepends=True)
    (folder / "cpusmall").write_text("".join(lines[:3513]))
    monkeypatch.setenv("DFKD_DATA_DIR", str(tmp_path / "data"))
    download._HASHES.clear()
    return folder / "cpusmall"


def test_a_truncated_data_file_is_refused_with_expected_and_actual_checksums(cut_cpusmall):
    with pytest.raises(DatasetError, match=r"is not the published libsvm/cpusmall: expected sha256 2b58ea93\w+, got [0-9a-f]{64} "
                                           r"\(\d+ bytes\).*set DFKD_ACCEPT_CHECKSUM_MISMATCH=1 to use it anyway"):
        catalog.load_dataset("cpusmall")


def test_a_modified_data_file_is_used_only_when_accepted_and_then_with_a_warning(cut_cpusmall, monkeypatch, caplog):
    monkeypatch.setenv("DFKD_ACCEPT_CHECKSUM_MISMATCH", "1")
    loaded = catalog.load_dataset("cpusmall")
    assert loaded.X.shape == (3513, 12)
    assert "differs from the published file" in caplog.text


def test_submit_refuses_a_run_on_a_modified_data_file_and_stores_nothing(cut_cpusmall):
    store = RunStore()
    finished_run(store, with_weights=False)
    cfg = DistillConfig(dataset="cpusmall", epochs=2, samplers=("gaussian",), alphas=("0",))
    with pytest.raises(DatasetError, match="is not the published libsvm/cpusmall"):
        jobs.submit(cfg, store)
    assert_nothing_lost(store, 1)


def test_a_verified_hash_is_reused_until_the_file_changes(cut_cpusmall, monkeypatch):
    calls = []
    real = download.sha256_file
    monkeypatch.setattr(download, "sha256_file", lambda path: calls.append(path) or real(path))
    first = download.cached_sha256(cut_cpusmall)
    download._HASHES.clear()  # a new process: the hash comes from DFKD_HOME/data-checksums.json
    assert download.cached_sha256(cut_cpusmall) == first and len(calls) == 1
    with open(cut_cpusmall, "a") as fh:
        fh.write("1 1:1\n")
    assert download.cached_sha256(cut_cpusmall) != first and len(calls) == 2


@needs_shared_data
def test_the_published_files_pass_the_check_and_load():
    assert set(catalog.verify_dataset("cpusmall").values()) == {"ok"}
    assert catalog.load_dataset("cpusmall").X.shape == (8192, 12)


def test_a_full_run_store_fails_the_run_with_the_reason(store, monkeypatch):
    """SQLite's own 'database or disk is full' (a page limit set on every connection) while the
    worker writes its metrics: the run ends failed and says so, the runs before it are intact."""
    other = finished_run(store, with_weights=False)
    run_id = store.create_run(QUICK.replace(epochs=400))  # more metric rows than the free space of a page
    open_connection = RunStore._open
    with store._connect() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]

    def full_connection(self):
        conn = open_connection(self)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(RunStore, "_open", full_connection)
    assert jobs.work(run_id, store) == 1
    monkeypatch.undo()
    info = store.get_run(run_id)
    assert info.status == "failed"
    assert info.error.startswith(f"The run store {store.db_path} cannot be written: the disk is full")
    assert store.get_run(other).status == "done" and len(store.metrics(other)) == 3
    assert_nothing_lost(store, 2)

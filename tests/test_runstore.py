"""The run store: events round-trip through SQLite and artifact files, batching, errors,
deletion, recovery of orphaned runs, several processes at once, and the `runs` command."""
from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dfkd_core import cli
from dfkd_core.runs import jobs
from dfkd_core.config import DistillConfig
from dfkd_core.events import DistillResult, EpochMetrics, MemberResult, RunStarted, Snapshot
from dfkd_core.paths import home_dir
from dfkd_core.runs.runstore import RunStore, StoreError, member_filename

REPO = Path(__file__).resolve().parents[1]
CFG = DistillConfig(dataset="friedman1", epochs=5, samplers=("gaussian", "direct"), alphas=("0",))
MEMBER = "gaussian|0|0"


def metric(epoch: int, member: str = MEMBER, val_rmse: float = 0.5) -> EpochMetrics:
    return EpochMetrics(member, epoch, val_rmse, 0.4, 1.5, 0.7, 0.25, 0.1 * epoch)


def member_result(member: str = MEMBER, state_dict=None) -> MemberResult:
    sampler, alpha, seed = member.split("|")
    return MemberResult(member, sampler, alpha, int(seed), test_rmse=0.51, test_mae=0.39, best_epoch=3,
                        best_val_rmse=0.5, other_selections={"last": (4, 0.52, 0.4)}, teacher_queries=1200,
                        state_dict=state_dict)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "dfkd_core", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)


@pytest.fixture
def store() -> RunStore:
    return RunStore()


# ---------------------------------------------------------------------- creating and reading runs
def test_a_new_run_is_queued_with_its_config_and_a_sortable_id(store):
    first = store.create_run(CFG, title="mine")
    second = store.create_run(CFG)
    info = store.get_run(first)
    assert (info.status, info.title, info.dataset, info.config) == ("queued", "mine", "friedman1", CFG)
    assert first < second and len(first) < 30
    assert "gaussian, direct" in store.get_run(second).title


def test_run_started_sets_running_device_engine_and_teacher_numbers(store):
    run_id = store.create_run(CFG)
    store.record(run_id, RunStarted("CPU (1 threads)", (MEMBER,), 0.21, 0.17, "mlp", "batched", note="offline"))
    info = store.get_run(run_id)
    assert (info.status, info.device, info.engine, info.teacher_kind, info.note) == (
        "running", "CPU (1 threads)", "batched", "mlp", "offline")
    assert (info.teacher_test_rmse, info.teacher_test_mae) == (0.21, 0.17)
    assert info.started_at is not None


def test_epoch_metrics_round_trip_with_nan_for_epochs_not_validated(store):
    run_id = store.create_run(CFG)
    store.record(run_id, metric(0))
    store.record(run_id, metric(1, val_rmse=float("nan")))
    store.flush()
    df = store.metrics(run_id)
    assert list(df.columns) == ["member", "epoch", "val_rmse", "val_mae", "loss_xg", "loss_xp", "alpha", "seconds"]
    assert df.iloc[0].tolist() == [MEMBER, 0, 0.5, 0.4, 1.5, 0.7, 0.25, 0.0]
    assert math.isnan(df.iloc[1].val_rmse) and df.iloc[1].seconds == pytest.approx(0.1)


def test_snapshot_round_trips_its_arrays_and_is_listed_in_the_index(store):
    run_id = store.create_run(CFG)
    x = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32)
    loss, pred = np.linspace(0, 1, 50), np.linspace(-1, 1, 50)
    store.record(run_id, Snapshot(MEMBER, 50, x, loss, pred))
    store.record(run_id, Snapshot(MEMBER, 0, x[:3], loss[:3], pred[:3]))
    assert store.snapshot_index(run_id).values.tolist() == [[MEMBER, 0], [MEMBER, 50]]
    back = store.load_snapshot(run_id, MEMBER, 50)
    np.testing.assert_array_equal(back["x"], x)
    np.testing.assert_array_equal(back["student_loss"], loss)
    np.testing.assert_array_equal(back["teacher_pred"], pred)
    assert back["x"].dtype == np.float32


def test_member_result_round_trips_with_its_other_selections(store):
    run_id = store.create_run(CFG)
    store.record(run_id, member_result())
    row = store.results(run_id).iloc[0]
    assert (row.member, row.sampler, row.alpha, row.seed, row.best_epoch, row.teacher_queries) == (
        MEMBER, "gaussian", "0", 0, 3, 1200)
    assert (row.test_rmse, row.test_mae, row.best_val_rmse) == (0.51, 0.39, 0.5)
    assert row.other_selections == {"last": [4, 0.52, 0.4]}
    assert row.weights is None


def test_weights_are_saved_to_a_pt_file_and_load_with_weights_only(store):
    run_id = store.create_run(CFG)
    model = torch.nn.Sequential(torch.nn.Linear(10, 50), torch.nn.Tanh(), torch.nn.Linear(50, 1))
    store.record(run_id, member_result(state_dict=model.state_dict()))
    path = home_dir() / "runs" / run_id / f"{member_filename(MEMBER)}.pt"
    raw = torch.load(path, weights_only=True)
    loaded = store.load_weights(run_id, MEMBER)
    assert raw.keys() == loaded.keys() == model.state_dict().keys()
    fresh = torch.nn.Sequential(torch.nn.Linear(10, 50), torch.nn.Tanh(), torch.nn.Linear(50, 1))
    fresh.load_state_dict(loaded)
    x = torch.randn(4, 10)
    torch.testing.assert_close(fresh(x), model(x))


def test_finish_with_a_result_marks_done_and_stores_results_not_recorded_yet(store):
    run_id = store.create_run(CFG)
    result = DistillResult(CFG.to_dict(), "CPU", "reference", 0.2, 0.1, (member_result(),), 3.0)
    store.finish(run_id, result)
    info = store.get_run(run_id)
    assert (info.status, info.engine, info.teacher_test_rmse, info.error) == ("done", "reference", 0.2, None)
    assert store.results(run_id).member.tolist() == [MEMBER]


def test_finish_with_a_cancelled_result_marks_cancelled(store):
    run_id = store.create_run(CFG)
    store.finish(run_id, DistillResult(CFG.to_dict(), "CPU", "reference", 0.2, 0.1, (), 1.0, cancelled=True))
    assert store.get_run(run_id).status == "cancelled"


def test_finish_with_failed_keeps_the_error_message(store):
    run_id = store.create_run(CFG)
    store.finish(run_id, "failed", error="No dataset 'x' registered")
    info = store.get_run(run_id)
    assert (info.status, info.error) == ("failed", "No dataset 'x' registered")
    assert info.finished_at is not None


def test_list_runs_is_newest_first_and_filters_by_status_and_dataset(store):
    a = store.create_run(CFG)
    b = store.create_run(CFG.replace(dataset="pole"))
    store.set_status(a, "done")
    assert store.list_runs().id.tolist() == [b, a]
    assert store.list_runs(status="done").id.tolist() == [a]
    assert store.list_runs(dataset="pole").id.tolist() == [b]
    row = store.list_runs().set_index("id").loc[a]
    assert (row.epochs, row.members, row.status) == (5, 2, "done")


def test_list_runs_reports_the_last_epoch_and_best_test_rmse(store):
    run_id = store.create_run(CFG)
    for epoch in range(3):
        store.record(run_id, metric(epoch))
    store.record(run_id, member_result())
    row = store.list_runs().iloc[0]
    assert (row.last_epoch, row.best_test_rmse) == (2, 0.51)


# ---------------------------------------------------------------------- batching
def test_epoch_metrics_are_buffered_and_visible_to_another_reader_after_flush(store):
    writer = RunStore(flush_interval=3600)
    reader = RunStore()
    run_id = writer.create_run(CFG)
    for epoch in range(5):
        writer.record(run_id, metric(epoch))
    assert reader.metrics(run_id).epoch.tolist() == [0]  # the first one goes out at once
    writer.flush()
    assert reader.metrics(run_id).epoch.tolist() == [0, 1, 2, 3, 4]


def test_buffered_metrics_are_written_once_the_flush_interval_has_passed():
    writer = RunStore(flush_interval=0.05)
    run_id = writer.create_run(CFG)
    writer.record(run_id, metric(0))
    writer.record(run_id, metric(1))
    time.sleep(0.06)
    writer.record(run_id, metric(2))
    assert RunStore().metrics(run_id).epoch.tolist() == [0, 1, 2]


@pytest.mark.parametrize("event", [Snapshot(MEMBER, 1, np.zeros((2, 3)), np.zeros(2), np.zeros(2)), member_result()],
                         ids=["snapshot", "member-result"])
def test_a_snapshot_or_a_result_flushes_buffered_metrics(event):
    writer = RunStore(flush_interval=3600)
    run_id = writer.create_run(CFG)
    writer.record(run_id, metric(0))
    writer.record(run_id, metric(1))
    writer.record(run_id, event)
    assert RunStore().metrics(run_id).epoch.tolist() == [0, 1]


def test_close_flushes_buffered_metrics():
    with RunStore(flush_interval=3600) as writer:
        run_id = writer.create_run(CFG)
        writer.record(run_id, metric(0))
        writer.record(run_id, metric(1))
    assert RunStore().metrics(run_id).epoch.tolist() == [0, 1]


# ---------------------------------------------------------------------- errors
def _unknown_run(store):
    store.get_run("20990101-000000-abcdef")


def _missing_snapshot(store):
    run_id = store.create_run(CFG)
    store.record(run_id, Snapshot(MEMBER, 0, np.zeros((2, 3)), np.zeros(2), np.zeros(2)))
    store.load_snapshot(run_id, MEMBER, 7)


def _missing_weights(store):
    run_id = store.create_run(CFG)
    store.record(run_id, member_result(state_dict={"w": torch.zeros(2)}))
    store.load_weights(run_id, "direct|0|0")


def _delete_active(store):
    store.delete_run(store.create_run(CFG))


def _bad_status(store):
    store.set_status(store.create_run(CFG), "finished")


def _bad_event(store):
    store.record(store.create_run(CFG), {"epoch": 1})


def _bad_run_id(store):
    store.run_dir("../etc")


@pytest.mark.parametrize("action, error, match", [
    (_unknown_run, StoreError, r"No run '20990101-000000-abcdef' in the run store"),
    (_missing_snapshot, StoreError, r"no snapshot of member 'gaussian\|0\|0' at epoch 7 \(have epochs: 0\)"),
    (_missing_weights, StoreError, r"no saved weights for member 'direct\|0\|0' \(have: gaussian\|0\|0\)"),
    (_delete_active, StoreError, r"is queued; stop it before deleting it"),
    (_bad_status, ValueError, r"The 'status' parameter must be one of .* Got 'finished' instead"),
    (_bad_event, TypeError, r"must be a TeacherProgress, RunStarted, EpochMetrics, Snapshot, RunNote or MemberResult. Got dict instead"),
    (_bad_run_id, StoreError, r"A run id must be letters, digits"),
], ids=["unknown-run", "missing-snapshot", "missing-weights", "delete-active", "bad-status", "bad-event", "bad-run-id"])
def test_bad_requests_raise_errors_that_say_what_is_wrong(store, action, error, match):
    with pytest.raises(error, match=match):
        action(store)


@pytest.mark.parametrize("content", [b"this is not a database, just text\n" * 20, os.urandom(4096),
                                     b"SQLite format 3\x00" + b"\xff" * 200],
                         ids=["text", "random-bytes", "damaged-header"])
def test_a_corrupt_runs_db_gives_a_clear_error(content):
    (home_dir() / "runs.db").write_bytes(content)
    with pytest.raises(StoreError, match=r"runs\.db is not a readable SQLite database .*Move the file aside"):
        RunStore()


def test_the_runs_command_prints_a_corrupt_store_error_in_one_line(capsys):
    (home_dir() / "runs.db").write_bytes(b"garbage" * 100)
    assert cli.main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The run store") and err.count("\n") == 1


# ---------------------------------------------------------------------- keeping and deleting runs
def test_opening_the_store_again_keeps_existing_runs(store):
    run_id = store.create_run(CFG)
    store.record(run_id, metric(0))
    again = RunStore()
    assert again.list_runs().id.tolist() == [run_id]
    assert len(again.metrics(run_id)) == 1


def test_a_store_from_an_older_schema_gains_new_columns_and_keeps_its_runs():
    conn = sqlite3.connect(home_dir() / "runs.db")
    conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL,"
                 " status TEXT NOT NULL, config TEXT NOT NULL)")
    conn.execute("INSERT INTO runs VALUES ('old-run', 1.0, 1.0, 'done', ?)", (CFG.to_json(),))
    conn.commit()
    conn.close()
    info = RunStore().get_run("old-run")
    assert (info.status, info.config, info.stop_requested, info.heartbeat) == ("done", CFG, False, None)


def test_tags_say_what_a_run_is_and_round_trip_through_the_store(store):
    tagged = store.create_run(CFG, title="shown to people", tags={"reproduction": {"table": 4, "dataset": "pole", "seed": 1, "part": ""}})
    plain = store.create_run(CFG)
    assert store.get_run(tagged).tags == {"reproduction": {"table": 4, "dataset": "pole", "seed": 1, "part": ""}}
    assert store.get_run(plain).tags == {}
    assert store.list_runs().set_index("id")["tags"].to_dict() == {tagged: store.get_run(tagged).tags, plain: {}}


def test_a_schema_2_store_gets_tags_from_its_reproduction_titles_once():
    store = RunStore()
    table = store.create_run(CFG, title="Table 4 · cpusmall · seed 3")
    random = store.create_run(CFG, title="Table 4 · cpusmall · seed 3 · random")
    mine = store.create_run(CFG, title="Table 4 · my own notes")
    with sqlite3.connect(store.db_path) as conn:  # what schema 2 held: no tags column
        conn.execute("ALTER TABLE runs DROP COLUMN tags")
        conn.execute("PRAGMA user_version = 2")
    migrated = RunStore()
    assert migrated.get_run(table).tags == {"reproduction": {"table": 4, "dataset": "cpusmall", "seed": 3, "part": ""}}
    assert migrated.get_run(random).tags["reproduction"]["part"] == "random"
    assert migrated.get_run(mine).tags == {}
    with sqlite3.connect(store.db_path) as conn:  # titles are display text from now on: renaming one changes nothing
        conn.execute("UPDATE runs SET title = 'renamed' WHERE id = ?", (table,))
    assert RunStore().get_run(table).tags["reproduction"]["dataset"] == "cpusmall"


def test_deleting_a_run_removes_its_rows_and_files_and_leaves_other_runs_intact(store):
    keep, gone = store.create_run(CFG), store.create_run(CFG)
    for run_id in (keep, gone):
        store.record(run_id, metric(0))
        store.record(run_id, Snapshot(MEMBER, 0, np.zeros((2, 3)), np.zeros(2), np.zeros(2)))
        store.record(run_id, member_result(state_dict={"w": torch.ones(3)}))
        store.set_status(run_id, "done")
    store.delete_run(gone)
    assert store.list_runs().id.tolist() == [keep]
    assert not (home_dir() / "runs" / gone).exists()
    with sqlite3.connect(home_dir() / "runs.db") as conn:
        for table in ("metrics", "snapshots", "results"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (gone,)).fetchone()[0] == 0
    assert len(store.metrics(keep)) == 1 and len(store.results(keep)) == 1
    assert store.load_weights(keep, MEMBER)["w"].tolist() == [1.0, 1.0, 1.0]
    assert store.load_snapshot(keep, MEMBER, 0)["x"].shape == (2, 3)


def test_force_deleting_an_active_run_tells_its_worker_to_stop_and_drops_later_events(store):
    run_id = store.create_run(CFG)
    store.set_status(run_id, "running")
    store.delete_run(run_id, force=True)
    assert store.stop_requested(run_id)
    store.record(run_id, metric(0))
    store.record(run_id, member_result(state_dict={"w": torch.ones(1)}))
    with sqlite3.connect(home_dir() / "runs.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0


# ---------------------------------------------------------------------- stop flag, queue, recovery
def test_stopping_a_queued_run_cancels_it_at_once(store):
    run_id = store.create_run(CFG)
    jobs.stop(run_id, store)
    info = store.get_run(run_id)
    assert (info.status, info.stop_requested) == ("cancelled", True)


def test_stopping_a_running_run_sets_the_flag_and_leaves_it_running(store):
    run_id = store.create_run(CFG)
    store.set_status(run_id, "running")
    store.set_worker(run_id, os.getpid())  # a live, beating worker: it ends the run itself
    assert not store.stop_requested(run_id)
    jobs.stop(run_id, store)
    assert store.stop_requested(run_id) and store.get_run(run_id).status == "running"


def test_claim_starts_queued_runs_in_creation_order_up_to_the_limit(store):
    a, b, c = (store.create_run(CFG) for _ in range(3))
    assert not store.claim(b, max_runs=1)  # a is ahead of it
    assert store.claim(a, max_runs=1)
    assert not store.claim(b, max_runs=1)  # a is running
    assert store.claim(b, max_runs=2)
    assert not store.claim(c, max_runs=2)
    store.finish(a, "done")
    assert store.claim(c, max_runs=2)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_running_run_whose_worker_pid_is_dead_is_marked_interrupted_with_its_metrics(store):
    run_id = store.create_run(CFG)
    store.set_status(run_id, "running")
    store.set_worker(run_id, _dead_pid())
    store.record(run_id, metric(0))
    assert store.mark_interrupted() == [run_id]
    info = store.get_run(run_id)
    assert info.status == "interrupted" and "ended without finishing" in info.error
    assert len(store.metrics(run_id)) == 1


def test_a_queued_run_whose_worker_pid_is_dead_is_marked_interrupted(store):
    run_id = store.create_run(CFG)
    store.set_worker(run_id, _dead_pid())
    assert store.mark_interrupted() == [run_id]


def test_a_run_whose_worker_is_alive_and_beating_is_left_alone(store):
    run_id = store.create_run(CFG)
    store.set_status(run_id, "running")
    store.set_worker(run_id, os.getpid())
    assert store.mark_interrupted() == [] and store.get_run(run_id).status == "running"


def test_a_run_whose_heartbeat_is_stale_is_marked_interrupted(store):
    run_id = store.create_run(CFG)
    store.set_status(run_id, "running")
    store.set_worker(run_id, os.getpid())
    time.sleep(0.05)
    assert store.mark_interrupted(stale_after=0.01) == [run_id]
    assert "no heartbeat" in store.get_run(run_id).error


def test_a_zombie_worker_counts_as_dead(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    while not Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1].startswith("Z"):
        time.sleep(0.01)  # exited, not yet reaped
    run_id = store.create_run(CFG)
    store.set_status(run_id, "running")
    store.set_worker(run_id, proc.pid)
    assert store.mark_interrupted() == [run_id]
    proc.wait()


def test_finished_runs_are_never_marked_interrupted(store):
    run_id = store.create_run(CFG)
    store.set_worker(run_id, _dead_pid())
    store.finish(run_id, "done")
    assert store.mark_interrupted(stale_after=0) == []


# ---------------------------------------------------------------------- several processes
WRITER = textwrap.dedent("""
    import sys
    from dfkd_core.events import EpochMetrics
    from dfkd_core.runs.runstore import RunStore
    store = RunStore(flush_interval=0.0)
    run_id, n = sys.argv[1], int(sys.argv[2])
    for epoch in range(n):
        store.record(run_id, EpochMetrics("gaussian|0|0", epoch, 0.5, 0.4, 1.0, 1.0, 0.0, 0.0))
        store.heartbeat(run_id)
    store.finish(run_id, "done")
""")


def test_a_writer_process_and_a_reading_process_work_on_the_store_at_once(store):
    run_id = store.create_run(CFG)
    n = 200
    env = dict(os.environ, PYTHONPATH=str(REPO))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, run_id, str(n)], env=env, stderr=subprocess.PIPE, text=True)
    seen, reads = [], 0
    while writer.poll() is None or reads == 0:
        seen.append(len(store.metrics(run_id)))
        store.list_runs()
        other = store.create_run(CFG)  # the reader writes too
        store.delete_run(other, force=True)
        reads += 1
    assert writer.wait() == 0, writer.stderr.read()
    assert seen == sorted(seen)
    assert len(store.metrics(run_id)) == n and store.get_run(run_id).status == "done"
    assert store.integrity_check() == "ok"


# ---------------------------------------------------------------------- the `runs` command
def test_runs_json_lists_the_stored_runs(store):
    a = store.create_run(CFG, title="first")
    b = store.create_run(CFG)
    store.set_status(b, "failed", error="boom")
    done = run_cli("runs", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["id"] for r in rows] == [b, a]
    assert rows[1]["title"] == "first" and rows[0]["error"] == "boom" and rows[0]["status"] == "failed"


def test_runs_status_filter_lists_only_runs_with_that_status(store, capsys):
    a, b = store.create_run(CFG), store.create_run(CFG)
    store.set_status(b, "failed", error="boom")
    assert cli.main(["runs", "--json", "--status", "failed"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [b]


def test_runs_without_json_prints_a_table(store, capsys):
    run_id = store.create_run(CFG, title="my run")
    assert cli.main(["runs"]) == 0
    out = capsys.readouterr().out
    assert run_id in out and "my run" in out and "queued" in out


def test_runs_delete_removes_the_run(store):
    a, b = store.create_run(CFG), store.create_run(CFG)
    store.set_status(a, "done")
    assert cli.main(["runs", "--delete", a]) == 0
    assert store.list_runs().id.tolist() == [b]


def test_runs_export_writes_metrics_and_results_csv(store, tmp_path):
    import pandas as pd

    run_id = store.create_run(CFG)
    for epoch in range(3):
        store.record(run_id, metric(epoch))
    store.record(run_id, member_result())
    assert cli.main(["runs", "--export", run_id, "--out", str(tmp_path / "out")]) == 0
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert metrics.epoch.tolist() == [0, 1, 2] and results.test_rmse.tolist() == [0.51]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["epochs"] == 5

"""Live views that keep up: the teacher's training progress reaches the run store and the
CLI, epoch widgets follow the newest snapshot until moved, projections are computed off
the page's thread, 2-D data keep their own plane, words on the charts and tables."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from dfkd_core import dashboard
from dfkd_core.config import DistillConfig
from dfkd_core.engine import run_distillation
from dfkd_core.events import RunStarted, TeacherProgress
from dfkd_core.runs.runstore import RunStore

TINY = DistillConfig(dataset="diabetes", teacher="mlp7", epochs=2, batches_per_epoch=2, samplers=("gaussian",),
                     alphas=("0",), snapshot_epochs=(0,))


@pytest.fixture
def empty_teacher_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DFKD_TEACHER_DIR", str(tmp_path / "teachers"))


# ------------------------------------------------------------------ the teacher trains first
def test_a_teacher_that_has_to_train_reports_every_epoch_before_the_run_starts(empty_teacher_cache):
    events = []
    run_distillation(TINY, on_event=events.append)
    started = next(i for i, e in enumerate(events) if isinstance(e, RunStarted))
    progress = [e for e in events[:started] if isinstance(e, TeacherProgress)]
    assert [p.epoch for p in progress] == list(range(1, len(progress) + 1)) and len(progress) >= 2
    assert {p.max_epochs for p in progress} == {300}
    assert all(b.seconds >= a.seconds for a, b in zip(progress, progress[1:]))
    assert not any(isinstance(e, TeacherProgress) for e in events[started:])
    assert math.isfinite(events[started].teacher_val_rmse) and events[started].teacher_val_rmse > 0


def test_a_cached_teacher_reports_no_training(empty_teacher_cache):
    run_distillation(TINY)
    events = []
    run_distillation(TINY, on_event=events.append)
    assert not any(isinstance(e, TeacherProgress) for e in events)


def test_teacher_progress_estimates_what_is_left_from_the_pace_so_far():
    progress = TeacherProgress(epoch=10, max_epochs=100, seconds=20.0, val_rmse=0.3)
    assert progress.seconds_left == pytest.approx(180.0)
    assert progress.line() == ("training the teacher: epoch 10 / 100 · 20 s elapsed · at most ~3.0 min left "
                               "(early stopping usually ends sooner)")


def test_the_store_shows_the_teachers_progress_until_the_run_starts():
    store = RunStore()
    run_id = store.create_run(TINY)
    store.record(run_id, TeacherProgress(1, 300, 0.5, 0.9))
    store.record(run_id, TeacherProgress(2, 300, 0.6, 0.8))  # within the write interval: skipped
    assert store.get_run(run_id).teacher_progress == TeacherProgress(1, 300, 0.5, 0.9)
    store.set_worker(run_id, os.getpid())  # this process plays the run's worker
    store.set_status(run_id, "running")
    view = dashboard.load_view(run_id)
    fraction, text = dashboard.teacher_bar(view)
    assert fraction == pytest.approx(1 / 300) and text.startswith("training the teacher: epoch 1 / 300")
    store.record(run_id, RunStarted("CPU", ("gaussian|0|0",), 0.7, 0.5, "mlp", "batched", "", teacher_val_rmse=0.65))
    run = store.get_run(run_id)
    assert run.teacher_progress is None and run.teacher_val_rmse == pytest.approx(0.65)
    assert dashboard.teacher_bar(dashboard.load_view(run_id)) is None


def test_the_cli_prints_the_teachers_progress(empty_teacher_cache, capsys):
    from dfkd_core import cli

    code = cli.main(["distill", "--dataset", "diabetes", "--set", "teacher=mlp7", "--epochs", "2", "--sampler", "gaussian",
                     "--alpha", "0"])
    assert code == 0
    err = capsys.readouterr().err
    assert "training the teacher: epoch 1 / 300" in err and "(validation " in err


# ------------------------------------------------------------------ epoch widgets follow the newest
def user_moves(state: dict, kwargs: dict, value) -> None:
    """What Streamlit does when the user moves the widget: store its value, call on_change."""
    state[kwargs["key"]] = value
    kwargs["on_change"]()


def test_an_epoch_widget_follows_the_newest_snapshot_until_the_user_moves_it():
    state = {}
    assert dashboard.epoch_widget(state, "e", [0])["value"] == 0
    following = dashboard.epoch_widget(state, "e", [0, 5])
    assert following["value"] == 5 and following["key"] == "e-5"  # a fresh widget created on the newest
    user_moves(state, following, 0)
    pinned = dashboard.epoch_widget(state, "e", [0, 5, 10])
    assert (pinned["key"], pinned["value"]) == ("e-pinned", 0)
    assert dashboard.epoch_widget(state, "e", [0, 5, 10, 15])["value"] == 0  # stays where the user put it
    user_moves(state, dashboard.epoch_widget(state, "e", [0, 5, 10, 15]), 15)  # back to the newest
    assert dashboard.epoch_widget(state, "e", [0, 5, 10, 15, 20])["value"] == 20  # follows again


def test_a_multiselect_of_epochs_follows_until_the_user_picks_others():
    state = {}
    assert dashboard.epoch_widget(state, "d", [0], many=True)["default"] == [0]
    following = dashboard.epoch_widget(state, "d", [0, 3], many=True)
    assert following["default"] == [3]
    user_moves(state, following, [0, 3])
    assert dashboard.epoch_widget(state, "d", [0, 3, 6], many=True)["default"] == [0, 3]


def test_an_early_snapshot_is_shown_until_the_epochs_own_replaces_it_under_the_same_epoch():
    from dfkd_core.events import Snapshot

    store = RunStore()
    run_id = store.create_run(TINY)
    member = "gaussian|0|0"
    first, last = np.zeros((4, 10), np.float32), np.ones((4, 10), np.float32)
    store.record(run_id, Snapshot(member, 0, first, np.ones(4), np.full(4, 2.0), early=True))
    view = dashboard.load_view(run_id)
    assert view.snapshot_epochs == [0] and view.early == {(member, 0)}
    assert np.array_equal(dashboard.synthetic_batches(view, 0)["gaussian"], first)
    assert dashboard.snapshot_frame(view, [0])["teacher_pred"].tolist() == [2.0] * 4
    grid = dashboard.digit_figure(view, [0])
    assert dashboard.digit_figure(dashboard.load_view(run_id), [0]) is grid  # a poll with nothing new: the same figure
    store.record(run_id, Snapshot(member, 0, last, np.ones(4), np.full(4, 3.0)))
    store.record(run_id, Snapshot(member, 0, first, np.ones(4), np.full(4, 2.0), early=True))  # too late: ignored
    view = dashboard.load_view(run_id)
    assert view.snapshot_epochs == [0] and view.early == frozenset()  # one entry per epoch, the epoch's own
    assert np.array_equal(dashboard.synthetic_batches(view, 0)["gaussian"], last)  # not the cached early one
    assert dashboard.snapshot_frame(view, [0])["teacher_pred"].tolist() == [3.0] * 4
    assert dashboard.digit_figure(view, [0]) is not grid
    assert {a.text for a in dashboard.digit_figure(view, [0]).layout.annotations} == {"gaussian @ 0: T(x)=3.0"}
    files = [p.name for p in (store.run_dir(run_id) / "snapshots").iterdir()]
    assert len(files) == 1 and files[0].endswith("-e000000.npz")  # the early file is gone


# ------------------------------------------------------------------ projections
def test_two_dimensional_data_are_drawn_in_their_own_plane():
    x = np.array([[0.1, 0.2], [0.3, -0.4]], dtype=np.float32)
    proj = dashboard.plane_projection("toy2d", 0, {"direct": x})
    assert proj.method == "input plane"
    synthetic = proj.points[proj.points["source"] == "direct"]
    np.testing.assert_allclose(synthetic[["x", "y"]].to_numpy(), x, rtol=1e-6)
    assert dashboard.is_plane("toy2d") and not dashboard.is_plane("diabetes")


def test_the_projection_is_computed_off_the_pages_thread_and_then_served(empty_teacher_cache):
    store = RunStore()
    run_id = store.create_run(TINY)
    from dfkd_core.events import Snapshot

    store.record(run_id, Snapshot("gaussian|0|0", 0, np.zeros((4, 10), np.float32), np.ones(4), np.ones(4)))
    view = dashboard.load_view(run_id)
    first = dashboard.projection_later(view, 0, "pca", wait=0.0)
    later = dashboard.projection_later(view, 0, "pca", wait=60.0)
    assert first is None or first is later
    assert later.method == "PCA" and set(later.points["source"]) == {"real", "gaussian"}


def test_tables_show_plain_words_with_units():
    import pandas as pd

    table = dashboard.plain_columns(pd.DataFrame(columns=["sampler", "nn_dist_median", "row_sum_min"]))
    assert list(table.columns) == ["sampler", "median distance to nearest real point (input units)",
                                   "smallest row sum (1 on the simplex)"]


# ------------------------------------------------------------------ polling reads only what is new (issue 23)
def test_live_metrics_read_only_new_epochs_and_equal_a_full_read_even_when_a_flush_ends_mid_epoch(monkeypatch):
    from dfkd_core.events import EpochMetrics
    from dfkd_core.runs import live

    store = RunStore(flush_interval=3600)  # this test decides when rows are written
    run_id = store.create_run(TINY)
    members = ["gaussian|0|0", "gaussian|0|1"]

    def log(epoch, members_now):
        for m in members_now:
            store.record(run_id, EpochMetrics(m, epoch, 0.1 * epoch, 0.2, 0.3, 0.4, 0.5, float(epoch)))
        store.flush()

    log(0, members)
    log(1, members[:1])  # the worker flushed half of epoch 1
    assert live.metrics(store, run_id).equals(store.metrics(run_id))
    reads = []
    real = RunStore.metrics

    def counted(self, run_id, member=None, since_epoch=None):
        out = real(self, run_id, member, since_epoch)
        reads.append((since_epoch, len(out)))
        return out

    monkeypatch.setattr(RunStore, "metrics", counted)
    log(1, members[1:])  # the rest of epoch 1
    log(2, members)
    polled = live.metrics(store, run_id)
    assert reads == [(1, 4)]  # epochs 1 and 2 only, not epoch 0 again
    monkeypatch.setattr(RunStore, "metrics", real)
    assert polled.equals(store.metrics(run_id)) and len(polled) == 6


def test_the_previous_projection_stays_up_until_the_next_one_is_ready():
    from dfkd_core.runs import live

    state = {}
    assert live.hold_projection(state, "p", "run-a", 0, "auto", None) == (None, None, True)  # nothing yet
    assert live.hold_projection(state, "p", "run-a", 0, "auto", "proj@0") == ("proj@0", 0, False)
    assert live.hold_projection(state, "p", "run-a", 100, "auto", None) == ("proj@0", 0, True)  # fitting epoch 100
    assert live.hold_projection(state, "p", "run-a", 100, "auto", "proj@100") == ("proj@100", 100, False)
    assert live.hold_projection(state, "p", "run-a", 200, "PCA", None) == (None, None, True)  # another method
    assert live.hold_projection(state, "p", "run-b", 0, "auto", None) == (None, None, True)  # another run

"""Figure builders: one trace per sampler, bands for several seeds, the teacher's line,
Savitzky–Golay smoothing against scipy, boxplots, projections, digits and histograms."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import savgol_filter

from dfkd_core.dashboard import figures


def make_metrics(samplers=("gaussian", "direct"), seeds=(0,), alphas=("decreasing",), epochs=30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in samplers:
        for a in alphas:
            for seed in seeds:
                for e in range(epochs):
                    rows.append(dict(member=f"{s}|{a}|{seed}", epoch=e, val_rmse=1.0 / (e + 1) + 0.05 * rng.random(),
                                     val_mae=0.5, loss_xg=0.1 + rng.random(), loss_xp=0.2, alpha=0.5, seconds=e))
    return pd.DataFrame(rows)


def curves(fig):
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("role") == "curve"]


def test_validation_rmse_has_one_curve_per_sampler_and_the_teacher_line():
    fig = figures.validation_rmse(make_metrics(), teacher_rmse=0.12)
    assert [t.name for t in curves(fig)] == ["direct", "gaussian"]
    teacher = [t for t in fig.data if t.name == figures.TEACHER_NAME]
    assert len(teacher) == 1
    assert list(teacher[0].y) == [0.12, 0.12]
    assert list(teacher[0].x) == [0, 29]


def test_validation_rmse_without_teacher_has_no_teacher_line():
    fig = figures.validation_rmse(make_metrics(), teacher_rmse=None)
    assert figures.TEACHER_NAME not in figures.trace_names(fig)
    assert len(fig.data) == 2


def test_several_seeds_give_a_mean_curve_and_a_band():
    metrics = make_metrics(seeds=(0, 1, 2))
    fig = figures.validation_rmse(metrics)
    assert len(curves(fig)) == 2
    assert len(fig.data) == 6  # per sampler: max, min (filled), mean
    direct = next(t for t in curves(fig) if t.meta["group"] == "direct")
    expected = metrics[metrics.member.str.startswith("direct")].groupby("epoch").val_rmse.mean().to_numpy()
    np.testing.assert_allclose(direct.y, expected)
    assert any(t.fill == "tonexty" for t in fig.data)


def test_alphas_that_vary_join_the_curve_label():
    fig = figures.validation_rmse(make_metrics(samplers=("direct",), alphas=("0", "1")))
    assert sorted(t.name for t in curves(fig)) == ["direct, α 0", "direct, α 1"]


def test_runs_that_vary_join_the_curve_label():
    a, b = make_metrics(samplers=("direct",)), make_metrics(samplers=("direct",))
    a["run"], b["run"] = "run-a", "run-b"
    fig = figures.validation_rmse(pd.concat([a, b]))
    assert sorted(t.name for t in curves(fig)) == ["run-a: direct", "run-b: direct"]


def test_smoothing_matches_scipy_savgol_with_window_15():
    metrics = make_metrics(samplers=("gaussian",), epochs=40)
    fig = figures.validation_rmse(metrics, smoothing=True)
    raw = metrics.sort_values("epoch").val_rmse.to_numpy()
    np.testing.assert_allclose(curves(fig)[0].y, savgol_filter(raw, 15, 2))
    assert "Savitzky–Golay" in fig.layout.title.text


def test_smoothing_shrinks_the_window_for_short_curves():
    y = np.arange(6, dtype=float) ** 2
    np.testing.assert_allclose(figures.smooth(y), savgol_filter(y, 5, 2))
    assert figures.smooth(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]


def test_epochs_that_were_not_validated_are_left_out():
    metrics = make_metrics(samplers=("gaussian",), epochs=10)
    metrics.loc[metrics.epoch % 2 == 1, "val_rmse"] = np.nan
    fig = figures.validation_rmse(metrics)
    assert list(curves(fig)[0].x) == [0, 2, 4, 6, 8]
    assert figures.curve_point_count(fig) == 5


def test_empty_metrics_give_a_placeholder_figure():
    fig = figures.validation_rmse(pd.DataFrame(columns=["member", "epoch", "val_rmse"]), teacher_rmse=0.1)
    assert len(fig.data) == 0
    assert "waiting" in fig.layout.annotations[0].text


def test_xg_loss_is_on_a_log_axis():
    fig = figures.xg_loss(make_metrics())
    assert len(curves(fig)) == 2
    assert fig.layout.yaxis.type == "log"


def test_alpha_preview_draws_one_line_per_schedule():
    fig = figures.alpha_preview({"decreasing": np.linspace(1, 0, 50), "0.3": np.full(50, 0.3)})
    assert figures.trace_names(fig) == ["decreasing", "0.3"]


def test_student_loss_boxplots_have_one_box_trace_per_sampler_over_epochs():
    df = pd.DataFrame(dict(sampler=np.repeat(["gaussian", "direct"], 100), epoch=np.tile(np.repeat([0, 50], 50), 2),
                           student_loss=np.random.default_rng(0).random(200)))
    fig = figures.student_loss_boxplots(df, samplers=["gaussian", "direct"])
    assert [t.type for t in fig.data] == ["box", "box"]
    assert figures.trace_names(fig) == ["gaussian", "direct"]
    assert fig.layout.boxmode == "group"
    assert set(fig.data[0].x) == {"0", "50"}


def test_projection_scatter_has_real_points_then_one_trace_per_sampler_with_distances():
    pts = pd.DataFrame(dict(x=np.arange(6.0), y=np.arange(6.0), source=["real"] * 2 + ["direct"] * 2 + ["gaussian"] * 2,
                            nn_dist=[np.nan, np.nan, 0.5, 0.6, 1.5, 1.6]))
    fig = figures.projection_scatter(pts, "PCA", epoch=50)
    assert figures.trace_names(fig) == ["real (train)", "direct", "gaussian"]
    assert list(fig.data[1].customdata[:, 0]) == [0.5, 0.6]
    assert "nearest real point" in fig.data[1].hovertemplate
    assert "PCA" in fig.layout.title.text and "epoch 50" in fig.layout.title.text


def test_digit_grid_draws_one_heatmap_per_image_labelled_with_the_prediction():
    images = [dict(image=np.random.default_rng(i).random((8, 8)), row=s, title=f"T(x)={i}.0")
              for i, s in enumerate(["gaussian"] * 3 + ["direct"] * 3)]
    fig = figures.digit_grid(images, columns=4)
    assert len(fig.data) == 6
    assert all(t.type == "heatmap" for t in fig.data)
    titles = [a.text for a in fig.layout.annotations]
    assert "gaussian: T(x)=0.0" in titles and "direct: T(x)=5.0" in titles


def test_prediction_histograms_have_one_panel_per_sampler():
    df = pd.DataFrame(dict(sampler=np.repeat(["direct", "gaussian", "generator"], 50),
                           teacher_pred=np.random.default_rng(0).normal(4, 2, 150)))
    fig = figures.prediction_histograms(df, x_range=(-1, 10))
    assert [t.type for t in fig.data] == ["histogram"] * 3
    assert [t.xaxis for t in fig.data] == ["x", "x2", "x3"]


def test_result_bars_show_mean_and_sd_beside_the_teacher():
    summary = pd.DataFrame(dict(group=["direct", "gaussian"], test_rmse_mean=[0.2, 0.3], test_rmse_sd=[0.01, np.nan]))
    fig = figures.result_bars(summary, teacher_rmse=0.15)
    assert list(fig.data[0].y) == [0.2, 0.3]
    assert list(fig.data[0].error_y.array) == [0.01, 0.0]
    assert fig.layout.shapes[0].y0 == 0.15


def test_zoom_to_the_students_clips_the_epoch_zero_spike_and_keeps_the_teacher_line():
    metrics = make_metrics()  # val_rmse ≈ 1/(epoch+1): epoch 0 is ~1, the rest below 0.4
    full = figures.validation_rmse(metrics, teacher_rmse=0.02)
    zoomed = figures.validation_rmse(metrics, teacher_rmse=0.02, zoom=True)
    assert full.layout.yaxis.range is None
    low, high = zoomed.layout.yaxis.range
    assert low < 0.02 and 0.3 < high < 0.5
    assert len(zoomed.data) == len(full.data)  # the same curves, only the axis changes


def test_the_teacher_line_is_grey_so_it_reads_on_light_and_dark_themes():
    fig = figures.validation_rmse(make_metrics(), teacher_rmse=0.12)
    teacher = next(t for t in fig.data if t.name == figures.TEACHER_NAME)
    assert teacher.line.color == figures.TEACHER_COLOR != "black"
    assert figures.TEACHER_NAME == "teacher (validation RMSE)"


def test_points_in_their_own_plane_are_labelled_with_the_features():
    points = pd.DataFrame(dict(x=[0.0, 1.0], y=[0.0, 1.0], source=["real", "direct"], nn_dist=[np.nan, 0.1]))
    fig = figures.projection_scatter(points, "input plane", 3)
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("x₁", "x₂")

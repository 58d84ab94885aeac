"""The live epoch curves (dashboard.live_curves, Vega-Lite): the spec stays the same while a run
streams (so the browser replaces the rows in place instead of drawing the chart anew), and the
rows are the same curves the Plotly figure of the Runs page draws."""
from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd
import pytest

from dfkd_core.dashboard import figures, live_curves


def metrics(epochs: int, samplers=("direct", "gaussian"), seeds=(0,), alphas=("1",)) -> pd.DataFrame:
    rows = [dict(member=f"{s}|{a}|{seed}", epoch=e, val_rmse=5.0 if e == 0 else 0.5 + 0.1 / e + 0.01 * seed + 0.02 * i,
                 loss_xg=1.0 / (e + 1))
            for i, s in enumerate(samplers) for a in alphas for seed in seeds for e in range(epochs)]
    return pd.DataFrame(rows)


def valid(rows: pd.DataFrame, spec: dict) -> dict:
    """The spec with its rows inlined, checked against Vega-Lite's schema (altair)."""
    return alt.Chart.from_dict({**spec, "data": {"values": json.loads(rows.to_json(orient="records"))}}).to_dict()


@pytest.mark.parametrize("value, options", [("val_rmse", dict(teacher_rmse=0.5, zoom=True)),
                                            ("loss_xg", dict(log_y=True, title="Student loss on x_g")),
                                            ("val_rmse", dict(smoothing=True))])
def test_the_spec_stays_the_same_while_epochs_arrive_and_only_the_rows_grow(value, options):
    early_rows, early_spec = live_curves.chart(metrics(20), value, **options)
    late_rows, late_spec = live_curves.chart(metrics(60), value, **options)
    assert early_spec == late_spec
    assert len(late_rows) > len(early_rows)
    valid(late_rows, late_spec)


def test_the_rows_are_the_plotly_figures_curves_and_the_zoom_leaves_out_the_spike():
    data = metrics(30, seeds=(0, 1, 2))
    figure = figures.validation_rmse(data, 0.55)
    rows, spec = live_curves.chart(data, teacher_rmse=0.55)
    for trace in figure.data:
        if isinstance(trace.meta, dict) and trace.meta.get("role") == "curve":
            curve = rows[(rows["layer"] == "curve") & (rows["group"] == trace.meta["group"])]
            np.testing.assert_allclose(curve["y"], trace.y)
            np.testing.assert_allclose(curve["epoch"], trace.x)
    assert set(rows["layer"]) == {"curve", "band", "teacher"}  # three seeds: a band from their min to max
    assert "mean of 3" in spec["layer"][1]["encoding"]["color"]["legend"]["labelExpr"]
    zoomed, zoomed_spec = live_curves.chart(data, teacher_rmse=0.55, zoom=True)
    assert zoomed_spec == spec  # toggling the zoom changes the rows, not the chart
    low, high = figures.zoom_bounds([trace.y for trace in figure.data if (trace.meta or {}).get("role") == "curve"], 0.55)
    curve = zoomed[zoomed["layer"] == "curve"]
    assert curve["y"].max() <= high and 0 not in set(curve["epoch"])  # epoch 0's spike (5.0) is not drawn
    assert curve["point"].max() == 30  # but the points keep their place: the count shown is the curve's
    band = zoomed[zoomed["layer"] == "band"]
    assert band["high"].max() <= high and band["low"].min() >= low
    assert list(band["epoch"]) == list(curve["epoch"])  # no band where the curve is not drawn


def test_before_the_first_epoch_the_chart_says_what_it_waits_for_and_validates():
    rows, spec = live_curves.chart(metrics(0), teacher_rmse=0.5)
    assert spec["description"] == figures.WAITING and list(rows["layer"]) == ["message"]
    valid(rows, spec)


def test_a_log_axis_is_labelled_at_powers_of_ten():
    _, spec = live_curves.chart(metrics(5), "loss_xg", log_y=True)
    y = spec["layer"][1]["encoding"]["y"]
    assert y["scale"]["type"] == "log" and 1.0 in y["axis"]["values"] and 2.0 not in y["axis"]["values"]


def test_the_browser_counts_points_on_the_live_charts_curve_layer():
    from dfkd_core.experiments.browser import RMSE_POINTS_JS

    _, spec = live_curves.chart(metrics(3))
    assert f"g.{live_curves.CURVE_MARK}_marks" in RMSE_POINTS_JS and spec["layer"][1]["name"] == live_curves.CURVE_MARK
    assert "g.dot_marks" in RMSE_POINTS_JS and spec["layer"][2]["name"] == "dot"

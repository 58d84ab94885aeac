"""The live epoch curves of a streaming run (the Distill page's validation RMSE and student loss
on x_g, the MNIST page's validation MAE) as Vega-Lite: a spec that stays the same while the run
streams, and one table of points that grows.

Streamlit gives a Plotly chart a new identity whenever its figure changes, so every poll (two
a second) unmounted both curves and drew them anew: Chromium spent about half of each second
redrawing and the curve fell up to 1.75 s behind the store. A Vega-Lite chart whose spec is
unchanged gets its rows replaced in place, as the playground's charts do.

The curves themselves come from figures.curve_lines, the one computation behind the Plotly
figure of the Runs page and the HTML export too: the same groups, colours, dashes, seed bands,
smoothing and zoom. Every layer reads the one table through a filter on its `layer` column; the
spec names the groups (the legend's order and colours), the title and the axes, never the data."""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pandas as pd

from .figures import (SMOOTH_WINDOW, TEACHER_COLOR, TEACHER_NAME, WAITING, CurveLine, curve_lines, teacher_span,
                      zoom_bounds)

HEIGHT = 330  # the plot area; with the title and the axis about the Plotly figures' 380 px
COLUMNS = ["layer", "group", "epoch", "y", "low", "high", "point"]
# plotly's dash names as Vega stroke dashes (the same look on the live chart and the Runs page)
STROKE_DASHES = {"solid": [1, 0], "dash": [6, 4], "dot": [2, 3], "dashdot": [6, 3, 2, 3], "longdash": [10, 4],
                 "longdashdot": [10, 4, 2, 4]}
POWERS_OF_TEN = [10.0 ** k for k in range(-12, 13)]
CURVE_MARK = "curve"  # the layer of the students' curves (bench --dashboard and the browser tests count its points)


def chart(metrics: pd.DataFrame, value: str = "val_rmse", *, teacher_rmse: float | None = None,
          smoothing: bool = False, window: int = SMOOTH_WINDOW, title: str = "Validation RMSE",
          y_title: str = "RMSE", log_y: bool = False, zoom: bool = False) -> tuple[pd.DataFrame, dict]:
    """(rows, spec) of one live chart of `value` over epochs: one line per group (sampler; α and
    run where they vary) in its sampler's colour, a band from the seeds' min to max, a dot for a
    curve of one point, and the teacher's line. `zoom`: the epoch-0 spike is left out of the
    axis (figures.zoom_bounds: epochs whose mean is outside it are not drawn, bands are clipped to it)."""
    lines = curve_lines(metrics, value, smoothing, window)
    teacher = teacher_rmse if teacher_rmse is not None and np.isfinite(teacher_rmse) and lines else None
    title = title + (f" (Savitzky–Golay, window {window})" if smoothing else "")
    if not lines:
        return pd.DataFrame({"layer": ["message"], "group": [""], "epoch": [0.0], "y": [0.0], "low": [np.nan],
                             "high": [np.nan], "point": [0]})[COLUMNS], waiting_spec(title)
    bounds = zoom_bounds([line.mean for line in lines], teacher) if zoom and not log_y else None
    return rows(lines, teacher, bounds), spec(lines, teacher is not None, title, y_title, log_y)


def rows(lines: Sequence[CurveLine], teacher: float | None, bounds: list[float] | None) -> pd.DataFrame:
    """The chart's one table: each curve's points ('curve', or 'dot' for a curve of one point), its
    seed band ('band'), and the teacher's two ends ('teacher'); `bounds`: the zoom's [low, high]."""
    parts = []
    for line in lines:
        keep = np.ones(len(line.epochs), dtype=bool)
        low, high = line.low, line.high
        if bounds is not None:
            keep = (line.mean >= bounds[0]) & (line.mean <= bounds[1])
            low, high = np.clip(low, *bounds), np.clip(high, *bounds)
        point = np.arange(1, len(line.epochs) + 1)  # the point's place on its curve (the chart's count of points)
        layer = "dot" if len(line.epochs) == 1 else CURVE_MARK
        parts.append(pd.DataFrame({"layer": layer, "group": line.group, "epoch": line.epochs[keep].astype(float),
                                   "y": line.mean[keep], "low": np.nan, "high": np.nan, "point": point[keep]}))
        if line.seeds > 1:
            parts.append(pd.DataFrame({"layer": "band", "group": line.group, "epoch": line.epochs[keep].astype(float),
                                       "y": np.nan, "low": low[keep], "high": high[keep], "point": point[keep]}))
    if teacher is not None:
        lo, hi = teacher_span(lines)
        parts.append(pd.DataFrame({"layer": "teacher", "group": TEACHER_NAME, "epoch": [lo, hi], "y": [teacher] * 2,
                                   "low": np.nan, "high": np.nan, "point": [1, 2]}))
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def table_layer(name: str, mark: dict, encoding: dict) -> dict:
    """One layer of a chart drawn from one table: the rows whose `layer` column is `name`, marks
    clipped to the plot; named, so that its marks carry the name in the page (the playground's
    charts are built the same way)."""
    return {"name": name, "transform": [{"filter": {"field": "layer", "equal": name}}],
            "mark": {**mark, "clip": True}, "encoding": encoding}


def spec(lines: Sequence[CurveLine], teacher: bool, title: str, y_title: str, log_y: bool) -> dict:
    """The chart's spec: it changes only when the groups, the title or the axis do, not per epoch."""
    groups = [line.group for line in lines] + ([TEACHER_NAME] if teacher else [])
    colors = [line.color for line in lines] + ([TEACHER_COLOR] if teacher else [])
    dashes = [STROKE_DASHES[line.dash] for line in lines] + ([STROKE_DASHES["dash"]] if teacher else [])
    names = {line.group: line.name for line in lines}  # 'direct (mean of 3)' in the legend
    legend = {"title": "sampler", "labelExpr": _label_expr(names), "symbolType": "stroke", "symbolStrokeWidth": 2,
              "orient": "bottom", "direction": "horizontal", "columns": 3}  # the plot keeps the column's width
    x = {"field": "epoch", "type": "quantitative", "title": "epoch", "axis": {"tickMinStep": 1, "format": "d"}}
    y = {"field": "y", "type": "quantitative", "title": y_title, "scale": {"zero": False}}
    if log_y:  # labelled at powers of ten only, as the Plotly figures (LOG_AXIS)
        y = {**y, "scale": {"type": "log"}, "axis": {"values": POWERS_OF_TEN, "format": "~g"}}
    color = {"field": "group", "type": "nominal", "scale": {"domain": groups, "range": colors}, "legend": legend}
    dash = {"field": "group", "type": "nominal", "scale": {"domain": groups, "range": dashes}, "legend": legend}
    tooltip = [{"field": "group", "title": "curve"}, {"field": "epoch", "type": "quantitative"},
               {"field": "y", "type": "quantitative", "title": y_title, "format": ".4g"}]
    layers = [
        table_layer("band", {"type": "area", "opacity": 0.2}, {
            "x": x, "y": {**y, "field": "low"}, "y2": {"field": "high"}, "color": color}),  # one legend: no layer may say legend None
        table_layer(CURVE_MARK, {"type": "line", "strokeWidth": 2}, {"x": x, "y": y, "color": color, "strokeDash": dash,
                                                                "tooltip": tooltip}),
        table_layer("dot", {"type": "point", "filled": True, "size": 70}, {"x": x, "y": y, "color": color,
                                                                     "tooltip": tooltip}),
        table_layer("teacher", {"type": "line", "strokeWidth": 2}, {"x": x, "y": y, "color": color, "strokeDash": dash,
                                                               "tooltip": tooltip}),
    ]
    return {"title": title, "height": HEIGHT, "width": "container", "layer": layers,
            "usermeta": {"embedOptions": {"renderer": "svg"}},  # text and points in the page (read by tests)
            "description": f"{title} per epoch, one line per sampler"}


def _label_expr(names: dict[str, str]) -> str:
    """A legend label expression naming seed groups 'group (mean of n)' (the data keep the group)."""
    renamed = {g: n for g, n in names.items() if g != n}
    expr = "datum.label"
    for group, name in renamed.items():
        expr = f"datum.label === {json.dumps(group)} ? {json.dumps(name)} : ({expr})"
    return expr



def waiting_spec(title: str) -> dict:
    """Before the first epoch: the title and a line saying what the chart waits for."""
    return {"title": title, "height": HEIGHT, "width": "container",
            "mark": {"type": "text", "fontSize": 13, "color": TEACHER_COLOR},
            "encoding": {"text": {"value": WAITING}}, "description": WAITING}

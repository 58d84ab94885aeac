"""Plotly figure builders for the dashboard: each takes DataFrames or arrays read from the
run store and returns a `go.Figure`; the pages only draw what these return.

Figures after the paper: validation RMSE over epochs with the teacher's line and optional
Savitzky–Golay smoothing (Fig. 6), student loss on x_g over epochs (Fig. 7), student-loss
boxplots of the synthetic batches per sampler (Fig. 4), 2-D projection of real vs
synthetic points (Fig. 5), synthetic digits (Fig. 8) and histograms of the teacher's
predictions on them (Fig. 9); plus the α-schedule preview and test RMSE per sampler.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

SMOOTH_WINDOW = 15  # the paper's Savitzky–Golay window (Fig. 6)
SMOOTH_POLYORDER = 2
TEACHER_NAME = "teacher (validation RMSE)"
TEACHER_COLOR = "#8c8c8c"  # mid grey: readable on the light and the dark theme (black vanished in dark mode)
ERROR_BAR_COLOR = TEACHER_COLOR  # ± sd bars: plotly's default is black, invisible on the dark theme
REAL_COLOR = "rgba(128,128,128,0.45)"
WAITING = "waiting for the first epoch… (a new dataset or split seed first trains its teacher)"
PALETTE = qualitative.D3  # the paper's matplotlib colours: blue, orange, green, red, purple, ...


# ---------------------------------------------------------------------------- helpers
# a sampler keeps its colour on every chart, whatever else splits the curves (α, runs: those get a
# dash style), in every figure and every export: the palette index it declares (samplers.Sampler.colour;
# the paper's Fig. 4 order: Gaussian blue, LHS orange, generator green, direct red, evolution purple)
UNNAMED_COLORS = (7, 8, 9)  # a sampler that declares no colour: one of these, fixed by its name
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")  # α schedules / runs of one sampler


# log axes labelled at powers of ten only (plotly's default minor labels "2, 5" read as 2 and 5)
LOG_AXIS = dict(type="log", dtick=1, exponentformat="power")

def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def sampler_color(name: str) -> str:
    """The sampler's own colour: the one it declares (samplers.Sampler.colour), else one of
    UNNAMED_COLORS chosen by the name itself (never by its place in a chart, so it is the same in
    every figure)."""
    import zlib

    from ..synth.samplers import SAMPLERS

    name = sampler_of(name)
    colour = SAMPLERS.get(name).colour if name in SAMPLERS else None
    if colour is not None:
        return color_for(colour)
    return color_for(UNNAMED_COLORS[zlib.crc32(name.encode()) % len(UNNAMED_COLORS)])


def sampler_of(label: str) -> str:
    """The sampler of a group label ('direct', 'direct, α 1', 'run-id: direct, α 1')."""
    return str(label).rsplit(": ", 1)[-1].split(",", 1)[0].strip()


def line_mode(points: int) -> str:
    """'lines+markers' for a curve of one point (a line alone draws nothing), else 'lines'."""
    return "lines+markers" if points < 2 else "lines"


def _rgba(hex_color: str, alpha: float) -> str:
    hex_color = hex_color.lstrip("#")
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def split_members(metrics: pd.DataFrame) -> pd.DataFrame:
    """Add sampler / alpha / seed columns parsed from `member` ('sampler|alpha|seed') if missing."""
    df = metrics.copy()
    if "member" in df and not {"sampler", "alpha_spec", "seed"} <= set(df.columns):
        members = df["member"].astype(str)
        keys = members.unique()  # a few members over thousands of epochs: split each key once (a live poll)
        split = pd.DataFrame([(k.split("|", 2) + [None, None])[:3] for k in keys], index=keys, columns=range(3))
        split[1] = split[1].fillna("")
        split[2] = pd.to_numeric(split[2], errors="coerce").fillna(0).astype(int)
        parts = split.loc[members.to_numpy()]
        df["sampler"] = parts[0].to_numpy()
        df["alpha_spec"] = parts[1].to_numpy()
        df["seed"] = parts[2].to_numpy()
    return df


def group_labels(df: pd.DataFrame) -> pd.Series:
    """One curve per sampler; α and run join the label only where they vary."""
    label = df["sampler"].astype(str)
    if "alpha_spec" in df and df["alpha_spec"].nunique() > 1:
        label = label + ", α " + df["alpha_spec"].astype(str)
    if "run" in df and df["run"].nunique() > 1:
        label = df["run"].astype(str) + ": " + label
    return label


def smooth(y: np.ndarray, window: int = SMOOTH_WINDOW, polyorder: int = SMOOTH_POLYORDER) -> np.ndarray:
    """Savitzky–Golay smoothing (scipy.signal.savgol_filter); the window shrinks to the
    largest odd length that fits short curves, and curves too short are returned as they are."""
    from scipy.signal import savgol_filter

    y = np.asarray(y, dtype=float)
    window = min(window, len(y) if len(y) % 2 else len(y) - 1)
    if window <= polyorder:
        return y
    return savgol_filter(y, window, polyorder)


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False,
                      annotations=[dict(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)])
    return fig


# ---------------------------------------------------------------------------- curves (Figs. 6, 7)
@dataclass(frozen=True)
class CurveLine:
    """One curve of an epoch chart: a group (a sampler; with its α and run where those vary), its
    sampler's colour and its dash (the group's place among its sampler's groups), and per epoch
    the mean over its seeds with the seeds' min and max (`seeds` > 1: drawn as a band)."""
    group: str
    sampler: str
    color: str
    dash: str
    seeds: int
    epochs: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def name(self) -> str:
        return self.group if self.seeds == 1 else f"{self.group} (mean of {self.seeds})"


def curve_lines(metrics: pd.DataFrame, value: str = "val_rmse", smoothing: bool = False,
                window: int = SMOOTH_WINDOW) -> list[CurveLine]:
    """The curves of `value` (one per group, sorted by label), computed once for every way they are
    drawn: the Plotly figure (epoch_curves) and the live Vega-Lite chart (live_curves).

    `metrics` has columns member, epoch and `value` (the store's metrics table; an optional `run`
    column separates runs). Rows where `value` is NaN (epochs not validated) are left out."""
    if metrics is None or metrics.empty or value not in metrics or metrics[value].notna().sum() == 0:
        return []
    df = split_members(metrics)
    df = df[df[value].notna()].copy()
    df["group"] = group_labels(df)
    lines = []
    dashes: dict[str, dict] = {}  # per sampler: its groups (α schedules, runs) in order, each a dash style
    for group, part in df.groupby("group", sort=True):
        sampler = str(part["sampler"].iloc[0])
        dash = DASHES[dashes.setdefault(sampler, {}).setdefault(group, len(dashes[sampler])) % len(DASHES)]
        stats = part.groupby("epoch")[value].agg(["mean", "min", "max"]).sort_index()
        mean, low, high = (stats[c].to_numpy(dtype=float) for c in ("mean", "min", "max"))
        seeds = part["member"].nunique() if "run" not in part else part.groupby(["run", "member"]).ngroups
        if smoothing:  # the band (low, high) is drawn only for several seeds
            mean = smooth(mean, window)
            if seeds > 1:
                low, high = smooth(low, window), smooth(high, window)
        lines.append(CurveLine(str(group), sampler, sampler_color(sampler), dash, int(seeds),
                               stats.index.to_numpy(), mean, low, high))
    return lines


def teacher_span(lines: Sequence[CurveLine]) -> tuple[float, float]:
    """The epochs the teacher's line spans: the curves' first to last (one epoch so far: ± ½, so it shows)."""
    lo = float(min(line.epochs.min() for line in lines))
    hi = float(max(line.epochs.max() for line in lines))
    return (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)


def zoom_bounds(curves: Iterable[np.ndarray], teacher: float | None = None, skip: float = 0.1,
                pad: float = 0.08) -> list[float] | None:
    """[low, high] around the curves after their first `skip` of epochs (at least epoch 0 left out)
    and the teacher's value: the epoch-0 spike no longer sets the scale."""
    values = [np.asarray(y, dtype=float) for y in curves]
    values = [y[max(1, int(len(y) * skip)):] if len(y) > 1 else y for y in values if len(y)]
    if teacher is not None:
        values.append(np.array([teacher], dtype=float))
    values = np.concatenate(values) if values else np.array([])
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = float(values.min()), float(values.max())
    margin = pad * (hi - lo) if hi > lo else max(abs(hi), 1e-6) * pad
    return [lo - margin, hi + margin]


def epoch_curves(
    metrics: pd.DataFrame,
    value: str = "val_rmse",
    *,
    teacher_rmse: float | None = None,
    smoothing: bool = False,
    window: int = SMOOTH_WINDOW,
    title: str = "Validation RMSE",
    yaxis_title: str = "RMSE",
    log_y: bool = False,
    zoom: bool = False,
) -> go.Figure:
    """One line per group (sampler; α and run when they vary) over epochs (curve_lines): several
    seeds in a group draw the mean, with a band from the seeds' min to max. `teacher_rmse`: a
    horizontal line across the epochs. `zoom`: clip the y axis to the students' curves after
    their first tenth of epochs (the paper's Fig. 6 clips its axis), so gaps of 0.01 between
    samplers stay visible."""
    lines = curve_lines(metrics, value, smoothing, window)
    if not lines:
        return _empty(title, WAITING)
    fig = go.Figure()
    for line in lines:
        if line.seeds > 1:
            fig.add_trace(go.Scatter(x=line.epochs, y=line.high, mode="lines", line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, legendgroup=line.group, name=f"{line.group} max"))
            fig.add_trace(go.Scatter(x=line.epochs, y=line.low, mode="lines", line=dict(width=0), fill="tonexty",
                                     fillcolor=_rgba(line.color, 0.2), hoverinfo="skip", showlegend=False,
                                     legendgroup=line.group, name=f"{line.group} min"))
        fig.add_trace(go.Scatter(x=line.epochs, y=line.mean, mode=line_mode(len(line.epochs)), name=line.name,
                                 legendgroup=line.group, line=dict(color=line.color, width=2, dash=line.dash),
                                 marker=dict(color=line.color, size=8),
                                 meta={"role": "curve", "group": line.group, "sampler": line.sampler}))
    teacher = teacher_rmse if teacher_rmse is not None and np.isfinite(teacher_rmse) else None
    if teacher is not None:
        fig.add_trace(go.Scatter(x=list(teacher_span(lines)), y=[teacher, teacher], mode="lines", name=TEACHER_NAME,
                                 line=dict(color=TEACHER_COLOR, dash="dash", width=2), meta={"role": "teacher"}))
    if zoom and not log_y:
        fig.update_yaxes(range=zoom_bounds([line.mean for line in lines], teacher))
    fig.update_layout(title=title + (f" (Savitzky–Golay, window {window})" if smoothing else ""),
                      xaxis_title="epoch", yaxis_title=yaxis_title, legend_title_text="sampler",
                      margin=dict(t=50, b=40, l=50, r=10), height=380)
    if log_y:
        fig.update_yaxes(**LOG_AXIS)
    return fig


def validation_rmse(metrics: pd.DataFrame, teacher_rmse: float | None = None, smoothing: bool = False,
                    window: int = SMOOTH_WINDOW, zoom: bool = False) -> go.Figure:
    """Fig. 6: validation RMSE of every student, grouped by sampler, with the teacher's validation
    RMSE as the reference (same data: a fair line; test figures stay in the results)."""
    return epoch_curves(metrics, "val_rmse", teacher_rmse=teacher_rmse, smoothing=smoothing, window=window,
                        title="Validation RMSE", yaxis_title="RMSE", zoom=zoom)


def xg_loss(metrics: pd.DataFrame, smoothing: bool = False, window: int = SMOOTH_WINDOW) -> go.Figure:
    """Fig. 7: mean student loss on the synthetic batches x_g per epoch (log scale)."""
    return epoch_curves(metrics, "loss_xg", smoothing=smoothing, window=window,
                        title="Student loss on x_g", yaxis_title="student loss L_S(x_g)", log_y=True)


def curve_point_count(fig: go.Figure) -> int:
    """The longest curve's number of points (what the live page reports as progress)."""
    counts = [len(t.x) for t in fig.data if isinstance(t.meta, dict) and t.meta.get("role") == "curve"]
    return max(counts, default=0)


# ---------------------------------------------------------------------------- α preview
def alpha_preview(curves: Mapping[str, np.ndarray], height: int = 160) -> go.Figure:
    """α per epoch of each selected schedule (eq. 7: α weighs x_g, 1 − α the prior samples)."""
    fig = go.Figure()
    for i, (spec, values) in enumerate(curves.items()):
        values = np.asarray(values, dtype=float)
        fig.add_trace(go.Scatter(x=np.arange(len(values)), y=values, mode=line_mode(len(values)), name=spec,
                                 line=dict(color=color_for(i))))
    fig.update_layout(height=height, margin=dict(t=10, b=30, l=40, r=10), yaxis_range=[-0.05, 1.05],
                      xaxis_title="epoch", yaxis_title="α", showlegend=len(curves) > 1,
                      legend=dict(orientation="h", y=1.15))
    return fig


# ---------------------------------------------------------------------------- snapshots (Figs. 4, 5)
def student_loss_boxplots(snapshots: pd.DataFrame, samplers: Sequence[str] | None = None) -> go.Figure:
    """Fig. 4: per-point student loss (T(x) − S(x))² of the synthetic batch, one box per sampler
    at each snapshot epoch. `snapshots`: columns sampler, epoch, student_loss (one row per point)."""
    title = "Student loss of synthetic batches"
    if snapshots is None or snapshots.empty:
        return _empty(title, "no snapshot yet")
    samplers = list(samplers) if samplers else sorted(snapshots["sampler"].unique())
    fig = go.Figure()
    for sampler in samplers:
        part = snapshots[snapshots["sampler"] == sampler]
        if part.empty:
            continue
        fig.add_trace(go.Box(x=part["epoch"].astype(str), y=part["student_loss"], name=sampler,
                             marker_color=sampler_color(sampler), boxpoints="outliers"))
    fig.update_layout(title=title, boxmode="group", xaxis_title="epoch", yaxis_title="student loss (log scale)",
                      legend_title_text="sampler", height=380, margin=dict(t=50, b=40, l=50, r=10))
    fig.update_yaxes(**LOG_AXIS)  # epoch 0's losses are orders of magnitude above later ones
    epochs = sorted(snapshots["epoch"].unique())
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[str(e) for e in epochs])
    return fig


def projection_scatter(points: pd.DataFrame, method: str = "UMAP", epoch: int | None = None) -> go.Figure:
    """Fig. 5: real points (grey) and each sampler's synthetic points in 2-D.

    `points`: columns x, y, source ('real' or a sampler name), nn_dist (synthetic points'
    distance to the nearest real point in input space; NaN for real points)."""
    title = f"{method} of real vs synthetic points" + (f" — epoch {epoch}" if epoch is not None else "")
    if points is None or points.empty:
        return _empty(title, "no snapshot yet")
    fig = go.Figure()
    real = points[points["source"] == "real"]
    fig.add_trace(go.Scattergl(x=real["x"], y=real["y"], mode="markers", name="real (train)",
                               marker=dict(color=REAL_COLOR, size=4), hoverinfo="skip"))
    for source in sorted(s for s in points["source"].unique() if s != "real"):
        part = points[points["source"] == source]
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=source,
            marker=dict(color=sampler_color(source), size=7, line=dict(width=0.5, color="white")),
            customdata=np.stack([part["nn_dist"].to_numpy(dtype=float)], axis=-1),
            hovertemplate=f"{source}<br>distance to nearest real point: %{{customdata[0]:.3f}}<extra></extra>",
        ))
    plane = method == "input plane"  # 2-D data: the features themselves
    fig.update_layout(title=title, xaxis_title="x₁" if plane else f"{method} 1", yaxis_title="x₂" if plane else f"{method} 2",
                      height=450,
                      legend_title_text="points", margin=dict(t=50, b=40, l=50, r=10))
    return fig


# ---------------------------------------------------------------------------- images (Figs. 8, 9)
def digit_grid(images: Sequence[Mapping], columns: int = 8) -> go.Figure:
    """Fig. 8: synthetic images in a grid. Each item: image (H×W array in [0, 1]), row (the
    sampler; one grid row block per sampler), title (e.g. 'T(x)=3.2')."""
    if not images:
        return _empty("Synthetic digits", "no snapshot yet")
    rows_by_sampler: dict[str, list[Mapping]] = {}
    for item in images:
        rows_by_sampler.setdefault(str(item["row"]), []).append(item)
    layout: list[tuple[str, list[Mapping]]] = []
    for sampler, items in rows_by_sampler.items():
        for start in range(0, len(items), columns):
            layout.append((sampler, items[start : start + columns]))
    n_rows = len(layout)
    titles = []
    for sampler, items in layout:
        titles += [f"{sampler}: {it.get('title', '')}" for it in items] + [""] * (columns - len(items))
    fig = make_subplots(rows=n_rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=min(0.08, 0.3 / max(n_rows, 1)))
    for r, (sampler, items) in enumerate(layout, start=1):
        for c, item in enumerate(items, start=1):
            img = np.asarray(item["image"], dtype=float)
            fig.add_trace(go.Heatmap(z=img[::-1], colorscale="gray", zmin=0.0, zmax=1.0, showscale=False,
                                     name=sampler, hovertemplate="pixel %{z:.2f}<extra></extra>"), row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for index in range(1, n_rows * columns + 1):  # square pixels: each panel's y axis keeps its x axis's scale
        fig.layout[f"yaxis{index if index > 1 else ''}"].update(scaleanchor=f"x{index if index > 1 else ''}", scaleratio=1,
                                                                constrain="domain")
        fig.layout[f"xaxis{index if index > 1 else ''}"].update(constrain="domain")
    fig.update_annotations(font_size=10)
    fig.update_layout(height=max(200, 130 * n_rows), margin=dict(t=30, b=10, l=10, r=10), title=None)
    return fig


def prediction_histograms(preds: pd.DataFrame, bins: int = 100, x_range: tuple[float, float] | None = None) -> go.Figure:
    """Fig. 9: histogram of the teacher's predictions on a synthetic batch, one panel per
    sampler with a shared x axis. `preds`: columns sampler, teacher_pred."""
    if preds is None or preds.empty:
        return _empty("Teacher predictions on synthetic batches", "no snapshot yet")
    samplers = sorted(preds["sampler"].unique())
    fig = make_subplots(rows=len(samplers), cols=1, shared_xaxes=True, subplot_titles=samplers,
                        vertical_spacing=0.08 if len(samplers) < 5 else 0.04)
    lo, hi = x_range if x_range else (float(preds["teacher_pred"].min()), float(preds["teacher_pred"].max()))
    size = max((hi - lo) / bins, 1e-6)
    for i, sampler in enumerate(samplers, start=1):
        values = preds.loc[preds["sampler"] == sampler, "teacher_pred"]
        fig.add_trace(go.Histogram(x=values, name=sampler, marker_color=sampler_color(sampler),
                                   xbins=dict(start=lo, end=hi + size, size=size)), row=i, col=1)
    fig.update_layout(title="Teacher predictions on synthetic batches", showlegend=False,
                      height=140 + 150 * len(samplers), margin=dict(t=60, b=40, l=50, r=10))
    fig.update_xaxes(title_text="prediction by the teacher", row=len(samplers), col=1)
    if x_range:
        fig.update_xaxes(range=[lo, hi])
    fig.update_yaxes(title_text="samples")
    return fig


# ---------------------------------------------------------------------------- results
def result_bars(summary: pd.DataFrame, teacher_rmse: float | None = None, metric: str = "test_rmse") -> go.Figure:
    """Test metric per group (mean ± sd over seeds) as dots with error bars, beside the teacher's line.
    `summary`: columns group, `<metric>_mean`, `<metric>_sd`."""
    title = f"Test {metric.split('_')[-1].upper()} per sampler"
    if summary is None or summary.empty:
        return _empty(title, "no results yet")
    # a dot with its ± sd bar: close numbers stay readable (bars from zero would hide the differences)
    fig = go.Figure(go.Scatter(x=summary["group"], y=summary[f"{metric}_mean"], mode="markers", name="student",
                               error_y=dict(type="data", array=summary[f"{metric}_sd"].fillna(0.0), color=ERROR_BAR_COLOR,
                                            thickness=2, width=6),
                               marker=dict(size=12, color=[sampler_color(str(g)) for g in summary["group"]])))
    if teacher_rmse is not None and np.isfinite(teacher_rmse):
        fig.add_hline(y=teacher_rmse, line_dash="dash", line_color=TEACHER_COLOR,
                      annotation_text=f"teacher {teacher_rmse:.4f}", annotation_position="top left")
    fig.update_layout(title=title, yaxis_title=metric.split("_")[-1].upper(), height=320,
                      margin=dict(t=50, b=40, l=50, r=10), showlegend=False)
    return fig


# ---------------------------------------------------------------------------- sampler playground
PLAYGROUND_REGION_COLOR = "#FFB000"  # the real-data outline: amber, apart from every sampler's colour


def trace_names(fig: go.Figure) -> list[str]:
    return [t.name for t in fig.data]


__all__: Iterable[str] = (
    "alpha_preview", "curve_point_count", "digit_grid", "epoch_curves",
    "prediction_histograms", "projection_scatter", "result_bars", "smooth", "split_members", "student_loss_boxplots",
    "validation_rmse", "xg_loss",
)

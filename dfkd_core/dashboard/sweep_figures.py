"""The Runs page's view of a stored sweep (experiments/sweep.py): its summary table and a plotly
figure of the metric against each swept field, one line per method (sampler · α) with the spread
over seeds; pages only draw what these return."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import _rgba, sampler_color

DASHES = ("solid", "dash", "dot", "dashdot")
METRICS = {"test_rmse": "test RMSE", "test_mae": "test MAE", "synthetic_rmse": "test RMSE (data-free selection)"}


def _numeric(values: pd.Series) -> pd.Series | None:
    out = pd.to_numeric(values, errors="coerce")
    return None if out.isna().any() else out


def sweep_figure(fields: list[str], long: pd.DataFrame, metric: str = "test_rmse") -> go.Figure:
    """One panel per swept field: the mean of `metric` at each value, per method, with error bars of
    one sample sd over the runs at that value (over seeds; other swept fields pooled), and each run
    as a faint dot. Numeric fields get a numeric axis (log when the values span ≥ 100×)."""
    label = METRICS.get(metric, metric)
    fig = make_subplots(rows=1, cols=max(1, len(fields)), subplot_titles=fields or [""], shared_yaxes=True)
    if long.empty or not fields:
        fig.update_layout(title="No finished runs in this sweep yet")
        return fig
    methods = list(dict.fromkeys(long["method"]))
    alphas = list(dict.fromkeys(long["alpha"])) if "alpha" in long else []
    for col, field in enumerate(fields, start=1):
        numeric = _numeric(long[field])
        x_all = numeric if numeric is not None else long[field].astype(str)
        for method in methods:
            mask = (long["method"] == method).to_numpy()
            part = pd.DataFrame({"x": x_all[mask].to_numpy(), "y": long.loc[mask, metric].to_numpy(float)})
            sampler = str(long.loc[mask, "sampler"].iloc[0])
            color = sampler_color(sampler)  # a sampler's own colour; its α schedules differ by dash
            alpha = long.loc[mask, "alpha"].iloc[0] if alphas else None
            dash = DASHES[alphas.index(alpha) % len(DASHES)] if alphas else "solid"
            stats = part.groupby("x", sort=numeric is not None)["y"].agg(
                mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, n="count").reset_index()
            fig.add_trace(go.Scatter(
                x=stats["x"], y=stats["mean"], mode="lines+markers", name=method, legendgroup=method,
                showlegend=col == 1, line=dict(color=color, dash=dash),
                error_y=dict(type="data", array=stats["sd"], visible=True),
                customdata=stats[["sd", "n"]].to_numpy(),
                hovertemplate=f"{field}=%{{x}}<br>{label} %{{y:.4f}} ± %{{customdata[0]:.4f}} (n %{{customdata[1]}})"
                              f"<extra>{method}</extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(
                x=part["x"], y=part["y"], mode="markers", name=f"{method} (runs)", legendgroup=method,
                showlegend=False, marker=dict(color=_rgba(color, 0.35), size=6), hoverinfo="skip"), row=1, col=col)
        if numeric is not None and numeric.min() > 0 and numeric.max() / numeric.min() >= 100:
            fig.update_xaxes(type="log", row=1, col=col)
        fig.update_xaxes(title_text=field, row=1, col=col)
    fig.update_yaxes(title_text=label, row=1, col=1)
    fig.update_layout(height=380, margin=dict(t=50, b=40, l=60, r=20), legend_title_text="sampler · α")
    return fig


def sweep_view(sweep_id: str, metric: str = "test_rmse", store: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, go.Figure]:
    """(summary table, paired verdicts table, figure) of a stored sweep, for the Runs page."""
    from ..experiments.sweep import sweep_paired, sweep_results, sweep_summary
    from .views import store as default_store

    fields, long = sweep_results(store or default_store(), sweep_id)
    return sweep_summary(fields, long, metric), sweep_paired(fields, long, metric), sweep_figure(fields, long, metric)


def stored_sweeps(store: Any = None) -> pd.DataFrame:
    from ..experiments.sweep import list_sweeps
    from .views import store as default_store

    return list_sweeps(store or default_store())


def start_sweep(cfg: Any, grid_text: str, inputs_of: str | None = None) -> str:
    """Start a sweep of the Distill form's settings `cfg` over the grid typed on the page (one
    FIELD=V1,V2 per line); the line saying what started (experiments.sweep.start_sweep). A
    ConfigError / ConfigErrors says what is wrong; nothing starts then. `inputs_of`: the
    your-model run whose files the form uses (a sweep of the user's files is refused)."""
    from ..errors import ConfigError
    from ..experiments.runner import dashboard_executor, executor_label
    from ..experiments.sweep import start_sweep as start

    if inputs_of:
        raise ConfigError(f"The form uses the teacher and data of run {inputs_of}: a sweep from the dashboard runs on "
                          "the registered datasets only (press 'Use a dataset instead', or sweep your files with "
                          "`python -m dfkd_core sweep`).")
    started = start(cfg, str(grid_text or "").splitlines())
    return (f"Sweep {started.sweep_id}: {started.runs} run(s) started on {executor_label(*dashboard_executor())}. "
            "The Runs page lists the sweep and its runs as they finish (a sweep started again with the same "
            "settings continues it).")

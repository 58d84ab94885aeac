"""Comparing, exporting and deleting stored runs for the Runs page: several runs' metrics
stacked, their final results side by side, metrics as CSV, a figure as a self-contained HTML
file, a student's weights as a .pt file."""
from __future__ import annotations

import io
from typing import Sequence

import pandas as pd

from ..errors import DfkdError
from .views import load_view, store, teacher_row, view_summary


def compare_metrics(run_ids: Sequence[str]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Metrics of several runs stacked with a `run` column (its id), and each run's teacher
    validation RMSE: the same reference line as the Distill page's (validation curves are drawn
    against the teacher on the same validation data; data-free runs have none)."""
    frames, teachers = [], {}
    for run_id in run_ids:
        view = load_view(run_id)
        m = view.metrics.copy()
        m["run"] = run_id
        frames.append(m)
        if view.teacher_val_rmse is not None:
            teachers[run_id] = view.teacher_val_rmse
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), teachers


def compare_results(run_ids: Sequence[str]) -> pd.DataFrame:
    """Each run's results (view_summary) stacked, with its dataset and its teacher's test RMSE: one
    'test_rmse' column (each run's own selection, named in 'selected by' beside it), so runs whose
    selections differ (a data-free run beside a data run) share the column instead of leaving holes."""
    rows = []
    for run_id in run_ids:
        view = load_view(run_id)
        table, _ = view_summary(view)
        if table.empty:
            continue
        selections = [c for c in table.columns if c.startswith("test_rmse (")]
        own = selections[0]  # the run's own selection comes first (result_summary)
        at = table.columns.get_loc(own)
        table = table.drop(columns=selections[1:]).rename(columns={own: "test_rmse"})
        table.insert(at + 1, "selected by", own[len("test_rmse ("):-1])
        table.insert(0, "run", run_id)
        table.insert(1, "dataset", view.run.dataset)
        table.insert(2, "teacher test_rmse", teacher_row(view))
        rows.append(table)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def metrics_csv(run_ids: Sequence[str]) -> bytes:
    s = store()
    frames = []
    for run_id in run_ids:
        m = s.metrics(run_id)
        m.insert(0, "run", run_id)
        frames.append(m)
    from ..files_out import csv_bytes

    return csv_bytes(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())  # formula-like cells neutralised


def figure_html(fig) -> bytes:
    return fig.to_html(include_plotlyjs=True, full_html=True).encode()  # plotly.js inline: opens offline


def members_with_weights(run_id: str) -> list[str]:
    res = store().results(run_id)
    return [] if res.empty else list(res.loc[res["weights"].notna(), "member"])


def weights_bytes(run_id: str, member: str) -> bytes:
    """The selected student's state_dict as a .pt file's bytes."""
    import torch

    buf = io.BytesIO()
    torch.save(store().load_weights(run_id, member), buf)
    return buf.getvalue()


def delete_runs(run_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Delete stored runs; (deleted ids, messages for runs that could not be deleted)."""
    s = store()
    done, errors = [], []
    for run_id in run_ids:
        try:
            s.delete_run(run_id)
            done.append(run_id)
        except DfkdError as exc:
            errors.append(str(exc))
    return done, errors


def export_zip(run_id: str, member: str) -> bytes:
    """One student of a stored run to take away, as a zip: TorchScript and ONNX on raw inputs,
    its state_dict and model.json (runs.export)."""
    from ..runs.export import export_stored_run

    return export_stored_run(run_id, member, store())

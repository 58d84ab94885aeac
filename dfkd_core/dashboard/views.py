"""What a page shows of stored runs, read from the RunStore without Streamlit: starting and
stopping runs, the runs table, one run's view (status line, progress, curves' metrics,
snapshot batches, digits, the simplex check), test metrics mean ± sd per sampler, and the
case-study pages' run lists."""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..config import DistillConfig, Member
from ..errors import DfkdError
from ..runs.runstore import STATUSES  # noqa: F401 (the Runs page's status filter)
from .forms import check_dataset
from .texts import plain

ACTIVE = ("queued", "running")


def store(home=None):
    from ..runs.runstore import RunStore

    return RunStore(home)


def submit(cfg: DistillConfig, title: str | None = None, uploads: Sequence[str] = ()) -> str:
    """Validate and start a run in a worker process; ConfigError (message for st.error) if it cannot start.
    Its teacher / data / input-spec files must be among `uploads` (stored for this Start, or a stored
    run's own): a path from a link or a form is refused before anything looks at it."""
    from ..data.user import uploaded_only
    from ..runs import jobs

    uploaded_only(cfg, uploads)
    cfg.validate()
    if cfg.data_file or cfg.input_spec:  # the user's own data: stored files, not a registered dataset
        from ..userrun import store_user_inputs

        return jobs.submit(store_user_inputs(cfg), title=title)
    check_dataset(cfg.dataset)
    return jobs.submit(cfg, title=title)


def stop(run_id: str) -> None:
    from ..runs import jobs

    jobs.stop(run_id)


def recover() -> list[str]:
    """Once per server: runs whose worker died become 'interrupted'; old uploads no run names are swept."""
    from ..data.user import sweep_uploads
    from ..runs import jobs

    recovered = jobs.recover()
    try:
        sweep_uploads(store().referenced_files())
    except OSError:  # a file that cannot be deleted now is swept next time
        pass
    return recovered


def keep_warm() -> None:
    """Once per server: a warm worker waits for the next Start, queued runs start as slots free."""
    from ..runs import jobs

    jobs.keep_warm()


def run_exists(run_id: str | None) -> bool:
    if not run_id:
        return False
    try:
        store().get_run(run_id)
        return True
    except DfkdError:
        return False


def run_active(run_id: str | None) -> bool:
    """Whether a stored run is queued or running (False for no run or one no longer stored)."""
    if not run_id:
        return False
    try:
        return store().get_run(run_id).status in ACTIVE
    except DfkdError:
        return False


def run_config(run_id: str | None) -> DistillConfig | None:
    """The configuration a stored run was started with; None if it is gone or no longer parses."""
    if not run_id:
        return None
    try:
        return store().get_run(run_id).config
    except DfkdError:
        return None


def runs_table(status: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    s = store()
    s.mark_interrupted()  # runs whose worker is gone are listed as interrupted, not running
    df = s.list_runs(status=status or None, dataset=dataset or None)
    cols = ["id", "created_at", "status", "dataset", "title", "epochs", "last_epoch", "members", "best_test_rmse",
            "best_test_mae", "teacher_test_rmse", "device", "error"]
    return df[[c for c in cols if c in df]]


@dataclass
class RunView:
    """What the live page shows of one run."""

    run: Any  # RunInfo
    metrics: pd.DataFrame
    snapshots: pd.DataFrame  # member, epoch
    results: pd.DataFrame
    epoch: int  # epochs finished (highest logged epoch + 1)
    epochs: int  # epochs planned
    early: frozenset = frozenset()  # (member, epoch) whose stored snapshot is still the early one (its first batch)

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def active(self) -> bool:
        return self.run.status in ACTIVE

    @property
    def data_free(self) -> bool:
        """A run on the user's input spec: no real data at all; its validation and test points are
        drawn from the spec and labelled by the teacher, so the teacher's own errors are 0 by construction."""
        cfg = self.run.config
        return bool(cfg is not None and cfg.input_spec)

    @property
    def teacher_rmse(self) -> float | None:
        """The teacher's test RMSE (None on a data-free run: 0 by construction says nothing)."""
        if self.data_free:
            return None
        v = self.run.teacher_test_rmse
        return None if v is None or not np.isfinite(v) else float(v)

    @property
    def teacher_val_rmse(self) -> float | None:
        """The validation charts' reference line (runs stored before it was recorded: None)."""
        if self.data_free:
            return None
        v = getattr(self.run, "teacher_val_rmse", None)
        return None if v is None or not np.isfinite(v) else float(v)

    @property
    def teacher_training(self):
        """The last TeacherProgress while the run's teacher trains first, else None."""
        return getattr(self.run, "teacher_progress", None) if self.active else None

    @property
    def progress(self) -> float:
        return min(1.0, self.epoch / max(self.epochs, 1))

    @property
    def caption(self) -> str:
        """'epoch 12 / 300 · running' (the browser test reads this)."""
        return f"epoch {self.epoch} / {self.epochs} · {self.status}"

    @property
    def samplers(self) -> list[str]:
        cfg = self.run.config
        return list(cfg.samplers) if cfg else sorted({Member.from_key(m).sampler for m in self.metrics["member"].unique()})

    @property
    def snapshot_epochs(self) -> list[int]:
        return sorted(int(e) for e in self.snapshots["epoch"].unique()) if not self.snapshots.empty else []


def load_view(run_id: str) -> RunView:
    from ..runs import jobs, live

    s = store()
    jobs.watch(run_id, s)  # every poll: a run whose worker is gone becomes 'interrupted'
    run = s.get_run(run_id)
    metrics = live.metrics(s, run_id)  # only the epochs since the last poll are read
    epochs = run.config.epochs if run.config else int(run.config_dict.get("epochs", 0) or 0)
    epoch = int(metrics["epoch"].max()) + 1 if not metrics.empty else 0
    index = s.snapshot_index(run_id, early=True)
    early = frozenset((m, int(e)) for m, e in index.loc[index["early"], ["member", "epoch"]].itertuples(index=False))
    return RunView(run, metrics, index[["member", "epoch"]], s.results(run_id), epoch, epochs, early)


def teacher_bar(view: RunView) -> tuple[float, str] | None:
    """(fraction, text) of the "training the teacher" bar while the run's teacher trains, else None."""
    progress = view.teacher_training
    if progress is None:
        return None
    return min(1.0, progress.epoch / max(progress.max_epochs, 1)), progress.line()


def epoch_widget(state, key: str, options: Sequence[Any], *, many: bool = False) -> dict[str, Any]:
    """Keyword arguments for an epoch widget over `options` (a select_slider, or a multiselect
    when `many`) that shows the newest snapshot until the user moves it, then stays where they
    put it (moving it back to the newest follows again).

    The server never writes a widget's value: a following widget is keyed by the newest epoch
    (a fresh widget, created on it, each time a snapshot arrives), a moved one by '-pinned';
    only the user's own moves (on_change) are remembered, in state[key + '__chosen']."""
    newest = [options[-1]] if many else options[-1]
    chosen = f"{key}__chosen"
    pick = state.get(chosen)
    pinned = pick is not None and (all(v in options for v in pick) if many else pick in options)
    widget_key = f"{key}-pinned" if pinned else f"{key}-{options[-1]}"

    def remember() -> None:
        value = state.get(widget_key)
        state[chosen] = None if value == newest or value == [] else value

    return {"key": widget_key, "on_change": remember, ("default" if many else "value"): pick if pinned else newest}


def run_status_line(view: RunView) -> str:
    r = view.run
    bits = [f"**{plain(r.title or r.id)}**", f"run {plain(r.id)}", f"status **{plain(r.status)}**"]
    if r.device:
        bits.append(plain(r.device))
    if r.engine:
        bits.append(f"{plain(r.engine)} engine")
    if view.teacher_val_rmse is not None:
        bits.append(f"teacher validation RMSE {view.teacher_val_rmse:.4f}")
    if view.teacher_rmse is not None:
        bits.append(f"teacher test RMSE {view.teacher_rmse:.4f}")
    if view.data_free:
        bits.append("data-free: the students are scored against the teacher on points drawn from your input spec")
    return " · ".join(bits)


@functools.lru_cache(maxsize=512)
def _snapshot(home: str, run_id: str, member: str, epoch: int, early: bool = False) -> dict[str, np.ndarray]:
    """An epoch's snapshot never changes once written: cache them per process. An early one
    (the epoch's first batch) is replaced by the epoch's own: `early` keys them apart."""
    return store(home).load_snapshot(run_id, member, epoch)


def snapshot(run_id: str, member: str, epoch: int, early: bool = False) -> dict[str, np.ndarray]:
    """The stored snapshot's arrays; `early`: the view lists it as early (RunView.early)."""
    return _snapshot(str(store().home), run_id, member, int(epoch), early)


def snapshot_frame(view: RunView, epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per synthetic point of every snapshot: member, sampler, alpha, seed, epoch,
    point, student_loss, teacher_pred (for boxplots and histograms)."""
    idx = view.snapshots
    if epochs is not None:
        idx = idx[idx["epoch"].isin(list(epochs))]
    cols = ["member", "sampler", "alpha", "seed", "epoch", "point", "student_loss", "teacher_pred"]
    if idx.empty:
        return pd.DataFrame(columns=cols)
    parts: dict[str, list] = {c: [] for c in cols}
    home = str(store().home)  # once, not per snapshot: opening the store checks its schema
    for member, epoch in idx.itertuples(index=False):  # columns gathered, one frame built: a poll stays cheap
        data = _snapshot(home, view.run.id, member, int(epoch), (member, int(epoch)) in view.early)
        m = Member.from_key(member)
        n = len(data["student_loss"])
        for col, value in (("member", member), ("sampler", m.sampler), ("alpha", m.alpha), ("seed", m.seed),
                           ("epoch", int(epoch))):
            parts[col].append(np.full(n, value, dtype=object if isinstance(value, str) else None))
        parts["point"].append(np.arange(n))
        parts["student_loss"].append(np.asarray(data["student_loss"], float))
        parts["teacher_pred"].append(np.asarray(data["teacher_pred"], float))
    return pd.DataFrame({c: np.concatenate(v) for c, v in parts.items()})


def synthetic_batches(view: RunView, epoch: int) -> dict[str, np.ndarray]:
    """Each sampler's synthetic points at `epoch` (all its members' batches stacked)."""
    out: dict[str, list[np.ndarray]] = {}
    for member, e in view.snapshots[view.snapshots["epoch"] == epoch].itertuples(index=False):
        x = snapshot(view.run.id, member, e, (member, int(e)) in view.early)["x"]
        out.setdefault(Member.from_key(member).sampler, []).append(np.asarray(x).reshape(len(x), -1))
    return {k: np.concatenate(v) for k, v in out.items()}


def digit_items(view: RunView, epochs: Sequence[int], per_sampler: int = 8) -> list[dict]:
    """Synthetic images per sampler at the given epochs, each labelled with the teacher's prediction."""
    items = []
    first_seed = {}
    for member in view.snapshots["member"].unique():
        m = Member.from_key(member)
        first_seed.setdefault(m.sampler, member)  # one member per sampler keeps the grid readable
    for sampler, member in sorted(first_seed.items(), key=lambda kv: view.samplers.index(kv[0]) if kv[0] in view.samplers else 99):
        for epoch in epochs:
            if not ((view.snapshots["member"] == member) & (view.snapshots["epoch"] == epoch)).any():
                continue
            early = (member, int(epoch)) in view.early
            data = snapshot(view.run.id, member, epoch, early)
            row = f"{sampler} @ {epoch}" + (", batch 1" if early else "")  # the epoch still trains
            for i in range(min(per_sampler, len(data["x"]))):
                items.append(dict(image=as_image(data["x"][i]), row=row,
                                  title=f"T(x)={float(data['teacher_pred'][i]):.1f}"))
    return items


_DIGIT_FIGURES: "dict[tuple, Any]" = {}  # (home, run, snapshots shown with their early flags) -> Figure
MAX_DIGIT_FIGURES = 16
_DIGIT_LOCK = threading.Lock()


def digit_figure(view: RunView, epochs: Sequence[int]):
    """figures.digit_grid of digit_items(view, epochs), made once per set of snapshots shown: the
    MNIST page polls every second while a run trains, and the grid (≈ 1 s of plotly's subplots on a
    CPU) changes only when a snapshot arrives or an early one is replaced. Do not modify it."""
    from .figures import digit_grid

    wanted = {int(e) for e in epochs}
    shown = tuple((member, int(e), (member, int(e)) in view.early)
                  for member, e in view.snapshots.itertuples(index=False) if int(e) in wanted)
    key = (str(store().home), view.run.id, tuple(sorted(wanted)), shown)
    with _DIGIT_LOCK:  # Streamlit runs sessions in threads
        figure = _DIGIT_FIGURES.get(key)
    if figure is None:
        figure = digit_grid(digit_items(view, sorted(wanted)))
        with _DIGIT_LOCK:
            while len(_DIGIT_FIGURES) >= MAX_DIGIT_FIGURES:
                _DIGIT_FIGURES.pop(next(iter(_DIGIT_FIGURES)))
            _DIGIT_FIGURES[key] = figure
    return figure


def as_image(x: np.ndarray) -> np.ndarray:
    """A synthetic input as a square grey image in [0, 1] (28×28 MNIST, 8×8 digits)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        side = int(round(np.sqrt(x.size)))
        x = x.reshape(side, side) if side * side == x.size else x.reshape(1, -1)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x


def constraint_table(view: RunView, epoch: int) -> pd.DataFrame:
    """Per sampler: the synthetic batch's row sums (min, max) and smallest feature (simplex: sums 1, min ≥ 0)."""
    rows = []
    for sampler, x in synthetic_batches(view, epoch).items():
        sums = x.sum(axis=1)
        rows.append(dict(sampler=sampler, points=len(x), row_sum_min=float(sums.min()), row_sum_max=float(sums.max()),
                         feature_min=float(x.min()), feature_max=float(x.max()),
                         on_simplex=bool(np.allclose(sums, 1.0, atol=1e-4) and x.min() >= -1e-6)))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- results
def _mean_sd(values: pd.Series) -> tuple[float, float]:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return (float(v.mean()) if len(v) else np.nan, float(v.std(ddof=1)) if len(v) > 1 else np.nan)


def _fmt(mean: float, sd: float) -> str:
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.4f}" + (f" ± {sd:.4f}" if np.isfinite(sd) else "")


def selection_label(metric: str, names: Sequence[str], data_free: bool = False) -> str:
    """The header of the students selected by `names` (several when they chose the same students):
    'test_rmse (validation-selected, paper)', 'test_rmse (validation-selected, paper = last-selected,
    data-free)', 'test_rmse (last- and synthetic-selected, data-free)'. On a data-free run every
    selection is data-free: its validation points are the teacher's labels too."""
    def joined(items: Sequence[str]) -> str:
        return ", ".join(f"{n}-" for n in items[:-1]) + (" and " if len(items) > 1 else "") + f"{items[-1]}-selected"

    paper = [n for n in names if n == "validation" and not data_free]
    free = [n for n in names if n not in paper]
    parts = ([f"{joined(paper)}, paper"] if paper else []) + ([f"{joined(free)}, data-free"] if free else [])
    return f"{metric} ({' = '.join(parts)})"


def result_summary(results: pd.DataFrame, metric: str = "test_rmse", selection: str = "validation",
                   data_free: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test metric per sampler (and α where several), mean ± sd over seeds: the run's own
    selection (`selection`: the paper's 'validation' unless the run chose another) and each other
    selection side by side; selections that chose the same students share one column.

    Returns (table for display, numbers with group, sampler, <metric>_mean, <metric>_sd for the bars)."""
    if results is None or results.empty:
        return pd.DataFrame(), pd.DataFrame()
    df = results.copy()
    several_alphas = df["alpha"].nunique() > 1
    df["group"] = df["sampler"] + ((", α " + df["alpha"].astype(str)) if several_alphas else "")
    index = 1 if metric == "test_rmse" else 2  # other_selections: name -> [epoch, test_rmse, test_mae]
    others = sorted({k for d in df["other_selections"] if isinstance(d, dict) for k in d} - {selection})
    groups = list(dict.fromkeys(df["group"]))
    columns: dict[str, list[str]] = {selection: [_fmt(*_mean_sd(df.loc[df["group"] == g, metric])) for g in groups]}
    for name in others:
        columns[name] = [_fmt(*_mean_sd(pd.Series([d[name][index] if isinstance(d, dict) and name in d else np.nan
                                                   for d in df.loc[df["group"] == g, "other_selections"]])))
                         for g in groups]
    merged: list[tuple[list[str], list[str]]] = []  # identical columns: one column naming each selection
    for name, cells in columns.items():
        same = next((names for names, kept in merged if kept == cells), None)
        if same is None:
            merged.append(([name], cells))
        else:
            same.append(name)
    shown, numbers = [], []
    for i, group in enumerate(groups):
        part = df[df["group"] == group]
        mean, sd = _mean_sd(part[metric])
        row = {"sampler": group, "seeds": len(part)}
        for names, cells in merged:
            row[selection_label(metric, names, data_free)] = cells[i]
        row["best epoch"] = ", ".join(str(int(e)) for e in part["best_epoch"].dropna())
        if "teacher_queries" in part and pd.to_numeric(part["teacher_queries"], errors="coerce").fillna(0).sum() > 0:
            row["teacher queries"] = int(pd.to_numeric(part["teacher_queries"]).mean())
        shown.append(row)
        numbers.append({"group": group, "sampler": str(part["sampler"].iloc[0]), f"{metric}_mean": mean, f"{metric}_sd": sd})
    return pd.DataFrame(shown), pd.DataFrame(numbers)


def view_summary(view: RunView, metric: str = "test_rmse") -> tuple[pd.DataFrame, pd.DataFrame]:
    """result_summary of the run in view, under its own selection (data-free runs say so)."""
    cfg = view.run.config
    return result_summary(view.results, metric, cfg.selection if cfg else "validation", view.data_free)


def teacher_row(view: RunView, metric: str = "test_rmse") -> str:
    """The teacher's test figure as the results show it; a data-free run has none (its test
    points are labelled by the teacher itself)."""
    if view.data_free:
        return "the reference"
    v = view.run.teacher_test_rmse if metric == "test_rmse" else view.run.teacher_test_mae
    return "—" if v is None else f"{v:.4f}"


def case_study_runs(datasets: Sequence[str], preset: str | None = None) -> pd.DataFrame:
    """Stored runs on these datasets (newest first), optionally only those started from `preset`."""
    df = store().list_runs()
    df = df[df["dataset"].isin(list(datasets))]
    if preset is not None and not df.empty:
        s = store()
        df = df[[(s.get_run(i).config_dict.get("preset") == preset) for i in df["id"]]]
    return df


def teacher_queries(view: RunView) -> pd.DataFrame:
    """Per member: how many points were sent to the (black-box) teacher."""
    if view.results.empty:
        return pd.DataFrame(columns=["member", "sampler", "teacher_queries"])
    return view.results[["member", "sampler", "teacher_queries"]].reset_index(drop=True)

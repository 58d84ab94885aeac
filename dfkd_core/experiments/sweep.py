"""Sweeps: a grid over any DistillConfig fields × student seeds, every sampler of the base
configuration stacked in each run, on any executor (runner.Runner), stored as the runs of one sweep.

    parse_grid()     ['student_hidden=10,25', 'beta=…'] → {field: [value texts]}, each field a
                     DistillConfig field (values split on ';' when one holds a comma)
    plan_sweep()     the cells (one run each: a grid point × a seed), each config read and
                     checked by config.parse_config, and the sweep's id (a digest of its configs:
                     the same command gives the same sweep, so --resume finds its cells)
    run_sweep()      teachers prepared here, then one task per cell not stored yet (resume), each
                     stored by this process as a run tagged {'sweep': {id, point, seed, fields}}
    sweep_results()  long rows of a stored sweep: the grid fields, seed, method (sampler · α), metrics
    sweep_summary()  mean, sd and n over seeds per grid point and method
    sweep_paired()   per grid point, the first method against each other one, paired over seeds
    list_sweeps()    the sweeps in the store (id, fields, runs, done, dataset, latest)
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..config import DistillConfig, parse_config
from ..errors import ConfigError, ConfigErrors

SWEEP_TAG = "sweep"
MAX_CELLS = 10_000  # grid points × seeds in one sweep
# set by their own flags (--seed, --sampler) or not a setting of a run's students
NOT_SWEPT = ("seeds", "preset")


@dataclass(frozen=True)
class Cell:
    sweep_id: str
    point: tuple[tuple[str, str], ...]  # (field, value text) of each grid field, in the grid's order
    seed: int
    cfg: DistillConfig

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.point)

    @property
    def title(self) -> str:
        return f"Sweep {self.sweep_id} · {self.label} · seed {self.seed}"

    @property
    def tags(self) -> dict[str, Any]:
        return {SWEEP_TAG: {"id": self.sweep_id, "point": dict(self.point), "seed": self.seed,
                            "fields": [k for k, _ in self.point]}}


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """{field: [value texts]} of `--grid field=v1,v2` items (';' separates the values of a field
    whose values hold commas, e.g. objectives); ConfigError naming what is wrong."""
    fields = DistillConfig.__dataclass_fields__
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"The 'grid' parameter takes FIELD=V1,V2,... Got {str(item)[:60]!r} instead.")
        if name not in fields or name in NOT_SWEPT:
            known = ", ".join(f for f in fields if f not in NOT_SWEPT)
            raise ConfigError(f"The 'grid' parameter must name a configuration field ({known}; seeds have --seed). "
                              f"Got {name[:40]!r} instead.")
        if name in grid:
            raise ConfigError(f"The 'grid' parameter names {name!r} twice; give all its values in one --grid.")
        parts = [v.strip() for v in values.split(";" if ";" in values else ",")]
        parts = list(dict.fromkeys(v for v in parts if v))
        if not parts:
            raise ConfigError(f"The 'grid' parameter needs at least one value for {name!r}. Got none instead.")
        grid[name] = parts
    if not grid:
        raise ConfigError("The 'grid' parameter needs at least one FIELD=V1,V2,... Got none instead.")
    return grid


def parse_seeds(text: Any) -> list[int]:
    """'0,1,2' → [0, 1, 2] by the config's rules for seeds."""
    cfg = parse_config({"seeds": "0" if text in (None, "") else text})
    return list(dict.fromkeys(cfg.seeds))


def plan_sweep(base: Mapping[str, Any], grid: Mapping[str, list[str]], seeds: list[int]) -> tuple[str, list[Cell]]:
    """(sweep id, cells): one cell per grid point × seed, each config = base settings + the point +
    seeds=(seed,), read and checked by parse_config (every problem of a point said at once)."""
    points = list(itertools.product(*[[(k, v) for v in values] for k, values in grid.items()]))
    if len(points) * len(seeds) > MAX_CELLS:
        raise ConfigError(f"The sweep must have at most {MAX_CELLS} runs (grid points × seeds). "
                          f"Got {len(points) * len(seeds)} instead.")
    configs = []
    for point in points:
        settings = {**base, **dict(point)}
        for seed in seeds:
            try:
                cfg = parse_config({**settings, "seeds": str(seed)})
            except ConfigErrors as exc:
                label = ", ".join(f"{k}={v}" for k, v in point)
                raise ConfigErrors([f"grid point {label}: {p}" for p in exc.problems]) from None
            configs.append((point, seed, cfg))
    digest = hashlib.sha1(json.dumps([[list(p), s, c.to_json()] for p, s, c in configs]).encode()).hexdigest()[:10]
    return digest, [Cell(digest, tuple(point), seed, cfg) for point, seed, cfg in configs]


@dataclass(frozen=True)
class StartedSweep:
    """A sweep started in the background (start_sweep): its id, runs, process and log."""

    sweep_id: str
    runs: int
    pid: int
    log: Path


def start_sweep(cfg: DistillConfig, grid_items: list[str], home=None) -> StartedSweep:
    """The dashboard's sweep: `cfg` (the form's settings: its samplers and α schedules stacked in
    every run, one run per seed) as the base, a grid over `grid_items` ('field=v1,v2'), checked
    here (ConfigError / ConfigErrors say what is wrong before anything starts), then `python -m
    dfkd_core sweep --resume` detached (its own session: a page rerun does not stop it) on the
    dashboard's executor (the Dask cluster at DFKD_SCHEDULER, else local processes), logging to
    DFKD_HOME/sweeps/<id>.log. The runs are stored as they finish; the Runs page's sweep view lists
    them. Runs on the user's own files are refused: a sweep's workers are not boxed (the CLI's are
    the user's own processes)."""
    import sys

    from ..paths import home_dir
    from ..userrun import uses_user_inputs
    from .runner import dashboard_executor, start_detached

    if uses_user_inputs(cfg):
        raise ConfigError("A sweep from the dashboard runs on the registered datasets only: sweep your own teacher or "
                          "data with `python -m dfkd_core sweep --set teacher_file=… --set data_file=…`.")
    grid_items = [str(item).strip() for item in grid_items if str(item).strip()]
    grid = parse_grid(grid_items)
    seeds = list(dict.fromkeys(cfg.seeds)) or [0]
    base = {k: v for k, v in cfg.to_dict().items() if k not in NOT_SWEPT}
    sweep_id, cells = plan_sweep(base, grid, seeds)
    folder = Path(home or home_dir()) / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    config_path, log_path = folder / f"{sweep_id}.json", folder / f"{sweep_id}.log"
    config_path.write_text(json.dumps(base))
    cmd = [sys.executable, "-m", "dfkd_core", "sweep", "--config", str(config_path), "--seed", ",".join(map(str, seeds)),
           "--resume", "--json", *[f"--grid={item}" for item in grid_items]]
    scheduler = dashboard_executor()[1]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    return StartedSweep(sweep_id, len(cells), start_detached(cmd, log_path, folder.parent), log_path)


def sweep_of(tags: Any) -> dict[str, Any] | None:
    """{'id', 'point', 'seed', 'fields'} of a sweep run's tags; None for other runs."""
    what = tags.get(SWEEP_TAG) if isinstance(tags, dict) else None
    if not (isinstance(what, dict) and isinstance(what.get("id"), str) and isinstance(what.get("point"), dict)
            and isinstance(what.get("seed"), int) and isinstance(what.get("fields"), list)):
        return None
    return what


def finished_cells(store, cells: list[Cell]) -> dict[int, str]:
    """{index in cells: run id} of the cells already stored as finished runs of this sweep with the same config."""
    index = {(c.sweep_id, c.point, c.seed): i for i, c in enumerate(cells)}
    found: dict[int, str] = {}
    runs = store.list_runs(status="done")
    for run_id, tags in zip(runs["id"], runs["tags"]):
        what = sweep_of(tags)
        if what is None:
            continue
        key = (what["id"], tuple((k, str(what["point"].get(k))) for k in what["fields"]), what["seed"])
        i = index.get(key)
        if i is not None and i not in found and store.get_run(run_id).config == cells[i].cfg:
            found[i] = run_id
    return found


def _prepare_teachers(cells: list[Cell], log: Callable[[str], None]) -> dict[tuple, Any]:
    """Train or load each distinct teacher here, once (not in every task at the same time); returns
    {(dataset, split_seed, teacher): shipped teacher file} for the tasks."""
    from ..data import load_split
    from ..device import pick_device
    from ..models.teachers import get_teacher
    from .runner import teacher_file

    out: dict[tuple, Any] = {}
    for c in cells:
        key = (c.cfg.dataset, c.cfg.split_seed, c.cfg.teacher)
        if key in out:
            continue
        if not (c.cfg.teacher_file or c.cfg.data_file or c.cfg.input_spec):
            _, info = get_teacher(load_split(c.cfg.dataset, seed=c.cfg.split_seed), c.cfg.teacher, pick_device())
            log(f"teacher {c.cfg.dataset} split {c.cfg.split_seed}: {'cached' if info.cached else 'trained'}, "
                f"test RMSE {info.test_rmse:.4f}")
        out[key] = teacher_file(c.cfg)
    return out


def run_sweep(base: Mapping[str, Any], grid: Mapping[str, list[str]], seeds: list[int], store=None,
              executor: str | None = None, scheduler: str | None = None, workers: int | None = None,
              resume: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or, with resume, complete) a sweep; returns its report (see `sweep_report`) with the
    executor, tasks per worker, runs reused and failed cells."""
    from ..runs.runstore import RunStore
    from .runner import Runner, Task, check_executor, check_workers, distill_task, store_failure, store_outcome, \
        workers_line

    log = log or (lambda line: None)
    executor, scheduler = check_executor(executor, scheduler)
    workers = check_workers(workers)
    sweep_id, cells = plan_sweep(base, grid, seeds)
    store = store or RunStore()
    start = time.perf_counter()
    reused = finished_cells(store, cells) if resume else {}
    todo = [i for i in range(len(cells)) if i not in reused]
    log(f"sweep {sweep_id}: {len(cells)} run(s), {len(reused)} already stored, {len(todo)} to run")
    if not todo:
        return sweep_report(store, sweep_id, reused_runs=len(reused), failed_tasks=[],
                            seconds=time.perf_counter() - start, executor=executor)
    teachers = _prepare_teachers([cells[i] for i in todo], log)
    failed: list[dict[str, Any]] = []
    done = [len(reused)]
    with Runner(executor, scheduler, workers if cells[0].cfg.device != "cuda" else 1, log=log) as runner:
        log(f"executor: {runner.describe()}")

        def finished(task: Task, out: dict[str, Any]) -> None:
            c = cells[int(task.key)]
            run_id = store_outcome(store, c.cfg, out, title=c.title, tags=c.tags)
            done[0] += 1
            best = ", ".join(f"{m.sampler} {m.alpha} {m.test_rmse:.4f}" for m in out["result"].members)
            log(f"[{done[0]}/{len(cells)}] {c.label} seed {c.seed}: test RMSE {best} ({out['seconds']:.1f} s; "
                f"run {run_id}; elapsed {time.perf_counter() - start:.1f} s)")

        def fail(task: Task, message: str) -> None:
            c = cells[int(task.key)]
            run_id = store_failure(store, c.cfg, message, title=c.title, tags=c.tags)
            failed.append({"title": c.title, "run_id": run_id, "error": message})

        tasks = [Task(str(i), distill_task, (cells[i].cfg, teachers[(cells[i].cfg.dataset, cells[i].cfg.split_seed,
                                                                      cells[i].cfg.teacher)]), cells[i].title)
                 for i in todo]
        runner.run(tasks, finished, fail)
        if runner.per_worker:
            log(workers_line(runner.per_worker))
        info = {"executor": runner.executor, "executor_description": runner.describe(), "workers": runner.workers,
                "tasks_per_worker": dict(sorted(runner.per_worker.items()))}
    return sweep_report(store, sweep_id, reused_runs=len(reused), failed_tasks=failed,
                        seconds=time.perf_counter() - start, **info)


# ---------------------------------------------------------------- reading a stored sweep
RESULT_COLUMNS = ["run_id", "seed", "method", "sampler", "alpha", "test_rmse", "test_mae", "synthetic_rmse"]


def sweep_results(store, sweep_id: str) -> tuple[list[str], pd.DataFrame]:
    """(grid fields, long rows): one row per finished run's student, the grid fields' values
    (as typed) beside RESULT_COLUMNS. Where a cell was run more than once, the newest run wins."""
    runs = store.list_runs(status="done")  # newest first
    fields: list[str] = []
    rank: dict[str, int] = {}
    rows = []
    seen: set[tuple] = set()
    for run in runs.itertuples(index=False):
        what = sweep_of(run.tags)
        if what is None or what["id"] != sweep_id:
            continue
        if not fields:
            fields = list(what["fields"])
            cfg = store.get_run(run.id).config
            if cfg is not None:  # methods in the order the sweep names them: its first sampler is the reference
                rank = {f"{s} · α {a}": i for i, (s, a) in enumerate((s, a) for s in cfg.samplers for a in cfg.alphas)}
        point = {k: str(what["point"].get(k)) for k in what["fields"]}
        key = (tuple(point.items()), what["seed"])
        if key in seen:
            continue
        seen.add(key)
        for r in store.results(run.id).itertuples(index=False):
            synthetic = (r.other_selections or {}).get("synthetic")
            rows.append({**point, "run_id": run.id, "seed": what["seed"], "method": f"{r.sampler} · α {r.alpha}",
                         "sampler": r.sampler, "alpha": r.alpha, "test_rmse": float(r.test_rmse),
                         "test_mae": float(r.test_mae),
                         "synthetic_rmse": float(synthetic[1]) if synthetic else float("nan")})
    long = pd.DataFrame(rows, columns=fields + RESULT_COLUMNS)
    if long.empty:
        return fields, long
    order = sorted(range(len(long)), key=lambda i: tuple(_value_key(long.at[i, f]) for f in fields)
                   + (int(long.at[i, "seed"]), rank.get(long.at[i, "method"], len(rank)), str(long.at[i, "method"])))
    return fields, long.iloc[order].reset_index(drop=True)


def _value_key(text: Any) -> tuple:
    """Grid values in numeric order where they are numbers (10 before 25 before 100), else as text."""
    try:
        return (0, float(text), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(text))


def _point_label(row: Mapping[str, Any], fields: list[str]) -> str:
    return ", ".join(f"{f}={row[f]}" for f in fields)


def sweep_summary(fields: list[str], long: pd.DataFrame, metric: str = "test_rmse") -> pd.DataFrame:
    """Per grid point and method: n seeds, mean and sd (sample, NaN with one seed) of `metric`."""
    columns = fields + ["method", "n", "mean", "sd"]
    if long.empty:
        return pd.DataFrame(columns=columns)
    out = (long.groupby(fields + ["method"], sort=False)[metric]
           .agg(n="count", mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"))
           .reset_index())
    return out[columns]


def sweep_paired(fields: list[str], long: pd.DataFrame, metric: str = "test_rmse") -> pd.DataFrame:
    """Per grid point: the claim "first method ≤ other method" for each other method, paired over
    seeds (paired.PAIRED_COLUMNS; 'dataset' holds the grid point)."""
    from .paired import PAIRED_COLUMNS, paired_table

    if long.empty or long["method"].nunique() < 2:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    methods = list(dict.fromkeys(long["method"]))
    frame = long.assign(dataset=[_point_label(r, fields) for r in long.to_dict(orient="records")])
    return paired_table(frame, [(methods[0], m) for m in methods[1:]], value=metric)


def sweep_report(store, sweep_id: str, **extra: Any) -> dict[str, Any]:
    """The JSON report of a stored sweep: fields, run ids, summary rows and paired verdicts."""
    from .paired import records

    fields, long = sweep_results(store, sweep_id)
    summary = sweep_summary(fields, long)
    return {"sweep": sweep_id, "fields": fields, "runs": sorted(set(long["run_id"])), **extra,
            "summary": records(summary.astype({"n": int})) if not summary.empty else [],
            "paired": records(sweep_paired(fields, long))}


def format_sweep(rep: dict[str, Any]) -> str:
    """The printed sweep: test RMSE mean ± sd over seeds per grid point and method, paired verdicts."""
    from .paired import format_row

    lines = [f"sweep {rep['sweep']}: {len(rep['runs'])} stored run(s) over {', '.join(rep['fields'])}"
             + (f" ({rep['reused_runs']} reused)" if rep.get("reused_runs") else ""), ""]
    for row in rep["summary"]:
        sd = "" if row["sd"] is None else f" ± {row['sd']:.4f}"
        lines.append(f"{_point_label(row, rep['fields'])}  {row['method']}: test RMSE {row['mean']:.4f}{sd} (n {row['n']})")
    if rep["paired"]:
        lines.append("paired over seeds (95 % t interval of the mean difference, Wilcoxon signed-rank p):")
        lines += [f"  {format_row(r)}" for r in rep["paired"]]
    for item in rep.get("failed_tasks") or []:
        lines.append(f"failed twice, stored as failed run {item['run_id']}: {item['title']}: {item['error']}")
    if rep.get("tasks_per_worker"):
        lines.append(f"executor: {rep.get('executor_description')}; "
                     + ", ".join(f"{w} ran {n}" for w, n in rep["tasks_per_worker"].items()))
    return "\n".join(lines)


def list_sweeps(store) -> pd.DataFrame:
    """The stored sweeps, newest first: sweep, fields, runs, done, dataset, latest."""
    columns = ["sweep", "fields", "runs", "done", "dataset", "latest"]
    runs = store.list_runs()
    rows = []
    for run in runs.itertuples(index=False):
        what = sweep_of(run.tags)
        if what is not None:
            rows.append({"sweep": what["id"], "fields": ", ".join(what["fields"]), "status": run.status,
                         "dataset": run.dataset, "created_at": run.created_at})
    if not rows:
        return pd.DataFrame(columns=columns)
    df = pd.DataFrame(rows)
    out = [{"sweep": sid, "fields": g["fields"].iloc[0], "runs": len(g), "done": int((g["status"] == "done").sum()),
            "dataset": ", ".join(sorted(set(g["dataset"].dropna()))), "latest": g["created_at"].max()}
           for sid, g in df.groupby("sweep", sort=False)]
    return pd.DataFrame(out, columns=columns).sort_values("latest", ascending=False).reset_index(drop=True)

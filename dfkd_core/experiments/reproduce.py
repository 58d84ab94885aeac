"""Reproducing the paper's Tables 3-6: which comparisons each table needs, running them
through the engine into the run store, and assembling our numbers beside the paper's.

    TABLES              one TableSpec per table: metric, preset, methods (sampler, α), datasets
    paper_numbers()     the paper's mean ± sd per cell, from paper_numbers.json (the one copy)
    verdict()           ours vs the paper: 'within' mean ± 2 sd, 'better' or 'worse'
    plan()              the comparisons (one DistillConfig each) of a reproduction
    reproduce()         teachers first (cached), then every comparison, each one stored run
                        (resume=True: a comparison already stored as a finished run of the
                        same configuration is reused, not trained again)
    collect() / summarize() / display_table() / format_report()
                        store results → long rows → cells (both selection protocols) → tables

Arrangement: DistillConfig's members are a product samplers × α × seeds and the split
seed (data split and teacher) is one per config, so a table is run as, per (dataset, seed),
one comparison of the paper's gradient methods (e.g. generator, direct × decreasing, 1)
plus one comparison holding only random sampling (gaussian, α 0). Nothing is trained twice
and no member outside the table is trained. Both are stored runs, tagged with what they reproduce
(RunStore tags {'reproduction': {'table', 'dataset', 'seed', 'part'}}: how they are found) and
titled 'Table 4 · cpusmall · seed 3' and 'Table 4 · cpusmall · seed 3 · random' (display only).

Two selection protocols are reported side by side: 'validation' (the paper's: the student
best on real validation data) and 'synthetic' (strictly data-free: the student that agrees
best with the teacher on held-out synthetic points; MemberResult.other_selections).
"""
from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..config import DistillConfig, preset_config
from ..errors import ConfigError, DfkdError

PAPER_NUMBERS_FILE = Path(__file__).with_name("paper_numbers.json")
PROTOCOLS = ("validation", "synthetic")  # the paper's selection, and the strictly data-free one
NO_SD_TOLERANCE = 0.05  # where the paper gives no sd (Tables 5, 6 teachers): 'within' means ±5 % of its mean
QUICK_EPOCHS = 20  # --quick: epochs per student
QUICK_TEACHER_EPOCHS = 8  # --quick: epochs of its small teacher
QUICK_TEACHER_HIDDEN = 100  # --quick: the teacher is an MLP of this width (its own cache key: never the paper's)
# --quick's teachers by data kind: narrower networks trained for a few epochs, cached under their own
# architecture keys so the paper's teachers (mlp500 / cnn10) are never replaced by them
QUICK_TEACHER_ARCHS = {"tabular": f"mlp{QUICK_TEACHER_HIDDEN}", "image": "cnn4", "composition": "svr"}


@dataclass(frozen=True)
class Method:
    """One column of a paper table: how the student is trained (sampler, α schedule)."""

    key: str  # column key in paper_numbers.json
    label: str  # column header as we print it
    sampler: str | None = None  # None: the teacher column
    alpha: str | None = None


@dataclass(frozen=True)
class TableSpec:
    number: int
    metric: str  # 'rmse' or 'mae'
    preset: str
    methods: tuple[Method, ...]
    paper_datasets: tuple[str, ...]  # the table's rows, in the paper's order
    default_seeds: int
    student_hidden: int | None = None  # tabular students (Tables 3, 4)
    quick_real: tuple[str, ...] = ()  # --quick: real datasets used when their files are present
    quick_builtin: tuple[str, ...] = ()  # --quick: built-ins that fill up to `quick_count`
    quick_count: int = 1
    # one comparison per method: for the black-box table, whose evolution runs each member's search
    # on the host (stacking gains nothing there and separate runs keep workers busy); Table 5's
    # generator and direct students train as one stacked CNN model (random sampling, α = 0, is
    # its own comparison: a comparison is a product of samplers and α schedules)
    one_run_per_method: bool = False

    @property
    def students(self) -> tuple[Method, ...]:
        return tuple(m for m in self.methods if m.sampler is not None)

    def method_of(self, sampler: str, alpha: str) -> Method | None:
        for m in self.students:
            if m.sampler == sampler and m.alpha == alpha:
                return m
        return None

    def comparisons(self) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
        """(title suffix, samplers, alphas) per comparison: the product of each holds exactly
        the table's student columns (random sampling alone in its own comparison), or one
        method per comparison (title suffix = the method's key) when one_run_per_method."""
        if self.one_run_per_method:
            return [(m.key, (m.sampler,), (m.alpha,)) for m in self.students]
        random = [m for m in self.students if m.alpha == "0"]
        rest = [m for m in self.students if m.alpha != "0"]
        samplers = tuple(dict.fromkeys(m.sampler for m in rest))
        alphas = tuple(dict.fromkeys(m.alpha for m in rest))
        assert {(m.sampler, m.alpha) for m in rest} == {(s, a) for s in samplers for a in alphas}, self.number
        out = [("", samplers, alphas)] if rest else []
        out += [("random", (m.sampler,), (m.alpha,)) for m in random]
        return out


_TABULAR = ("compactiv", "cpusmall", "ctscan", "indoorloc", "mv", "pole", "puma32h")
_TABULAR_METHODS = (
    Method("teacher", "teacher"),
    Method("random", "random", "gaussian", "0"),
    Method("generator_dec", "generator dec-α", "generator", "decreasing"),
    Method("generator_1", "generator α=1", "generator", "1"),
    Method("direct_dec", "direct dec-α", "direct", "decreasing"),
    Method("direct_1", "direct α=1", "direct", "1"),
)

TABLES: dict[int, TableSpec] = {
    3: TableSpec(3, "rmse", "paper-tabular", _TABULAR_METHODS, _TABULAR, 10, student_hidden=25,
                 quick_real=("cpusmall",), quick_builtin=("friedman1", "diabetes"), quick_count=2),
    4: TableSpec(4, "rmse", "paper-tabular", _TABULAR_METHODS, _TABULAR, 10, student_hidden=50,
                 quick_real=("cpusmall",), quick_builtin=("friedman1", "diabetes"), quick_count=2),
    # the paper does not state α for MNIST: generator and direct use the decreasing schedule
    5: TableSpec(5, "mae", "paper-mnist", (
        Method("teacher", "teacher"),
        Method("random", "random", "gaussian", "0"),
        Method("generator", "generator", "generator", "decreasing"),
        Method("direct", "direct", "direct", "decreasing"),
    ), ("mnist",), 5, quick_real=("mnist",), quick_builtin=("digits",)),
    # black-box SVR teacher: direct optimization by differential evolution
    6: TableSpec(6, "rmse", "paper-protein", (
        Method("teacher", "teacher (SVR)"),
        Method("random", "random", "gaussian", "0"),
        Method("direct", "direct (DE)", "evolution", "decreasing"),
    ), ("protein",), 5, quick_real=("protein",), one_run_per_method=True),
}


# ---------------------------------------------------------------- the paper's numbers
@functools.lru_cache(maxsize=1)
def paper_numbers() -> dict[str, Any]:
    """The parsed paper_numbers.json: tables['4']['cells']['cpusmall']['direct_dec'] = [mean, sd]."""
    with open(PAPER_NUMBERS_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def paper_cell(table: int, dataset: str, method: str) -> tuple[float | None, float | None]:
    """(mean, sd) the paper reports for a cell; (None, None) where the paper has no such cell."""
    cell = paper_numbers()["tables"].get(str(table), {}).get("cells", {}).get(dataset, {}).get(method)
    if cell is None:
        return None, None
    return cell[0], cell[1]


def table_caption(table: int) -> str:
    spec = get_table(table)
    info = paper_numbers()["tables"][str(table)]
    return f"Table {table}: {info['caption']} ({spec.metric.upper()}, lower is better)"


def get_table(table: Any) -> TableSpec:
    """The TableSpec of 3, 4, 5 or 6 (also given as a string); ConfigError otherwise."""
    try:
        number = int(str(table).strip())
    except ValueError:
        number = None
    if number not in TABLES:
        raise ConfigError(f"The 'table' parameter must be one of 3, 4, 5, 6. Got {table!r} instead.")
    return TABLES[number]


def verdict(ours: float | None, paper_mean: float | None, paper_sd: float | None) -> str:
    """Ours against the paper, lower being better: 'within' paper mean ± 2 sd, 'better' below
    that band, 'worse' above it; 'n/a' when either number is missing. Where the paper gives
    no sd the band is ± NO_SD_TOLERANCE × mean."""
    if ours is None or paper_mean is None or not math.isfinite(ours):
        return "n/a"
    half = 2.0 * paper_sd if paper_sd else NO_SD_TOLERANCE * abs(paper_mean)
    if ours < paper_mean - half:
        return "better"
    if ours > paper_mean + half:
        return "worse"
    return "within"


# ---------------------------------------------------------------- planning
@dataclass(frozen=True)
class Comparison:
    """One stored run of a reproduction: a (dataset, seed) and a subset of the table's methods."""

    table: int
    dataset: str
    seed: int
    part: str  # '' (gradient methods) or 'random'
    cfg: DistillConfig

    @property
    def title(self) -> str:
        return run_title(self.table, self.dataset, self.seed, self.part)

    @property
    def tags(self) -> dict[str, Any]:
        """What the stored run is, as data (RunStore tags): how collect() and resume find it."""
        from ..runs.runstore import REPRODUCTION_TAG

        return {REPRODUCTION_TAG: {"table": self.table, "dataset": self.dataset, "seed": self.seed, "part": self.part},
                "source": "reproduce"}


def run_title(table: int, dataset: str, seed: int, part: str = "") -> str:
    """A reproduction run's display title (runs are found by their tags, never by this)."""
    return f"Table {table} · {dataset} · seed {seed}" + (f" · {part}" if part else "")


def reproduction_of(tags: Any) -> dict[str, Any] | None:
    """{'table', 'dataset', 'seed', 'part'} of a reproduction run's tags; None for other runs."""
    from ..runs.runstore import REPRODUCTION_TAG

    what = tags.get(REPRODUCTION_TAG) if isinstance(tags, dict) else None
    if not (isinstance(what, dict) and isinstance(what.get("table"), int) and isinstance(what.get("dataset"), str)
            and isinstance(what.get("seed"), int)):
        return None
    return {"table": what["table"], "dataset": what["dataset"], "seed": what["seed"], "part": str(what.get("part") or "")}


def available_datasets(data_dir=None) -> dict[str, bool]:
    from ..data import dataset_catalog

    return {row["name"]: bool(row["available"]) for row in dataset_catalog(data_dir)}


def default_datasets(table: int, quick: bool = False, data_dir=None) -> list[str]:
    """The table's datasets whose files are present (ctscan only once downloaded); with
    quick, its quick datasets: real files when present, else built-ins."""
    spec = get_table(table)
    have = available_datasets(data_dir)
    if quick:
        chosen = [d for d in spec.quick_real if have.get(d)]
        chosen += [d for d in spec.quick_builtin if have.get(d) and d not in chosen]
        chosen = chosen[: spec.quick_count]
        if not chosen:
            need = ", ".join(spec.quick_real)
            raise DfkdError(f"Table {table} --quick needs the dataset files of {need} in the data directory "
                            "(DFKD_DATA_DIR); none are there.")
        return chosen
    chosen = [d for d in spec.paper_datasets if have.get(d)]
    if not chosen:
        raise DfkdError(f"None of Table {table}'s datasets ({', '.join(spec.paper_datasets)}) is in the data "
                        "directory (DFKD_DATA_DIR); download them or pass --datasets.")
    return chosen


def check_datasets(names: list[str]) -> list[str]:
    """Registered dataset names, deduplicated in order; ConfigError naming the unknown one."""
    from ..data import DATASETS

    known = DATASETS.names()
    out: list[str] = []
    for name in names:
        if name not in known:
            raise ConfigError(f"The 'datasets' parameter must name registered datasets ({', '.join(known)}). "
                              f"Got {name!r} instead.")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError("The 'datasets' parameter must name at least one dataset. Got none instead.")
    return out


def plan(table: int, seeds: int | None = None, datasets: list[str] | None = None, epochs: int | None = None,
         quick: bool = False, data_dir=None) -> list[Comparison]:
    """Every comparison of a reproduction, ordered dataset by dataset, seed by seed.
    Seed s sets the data split and teacher (split_seed = s) and the students' seed."""
    spec = get_table(table)
    if seeds is None:
        seeds = 1 if quick else spec.default_seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 1000:
        raise ConfigError(f"The 'seeds' parameter must be an int in [1, 1000]. Got {seeds!r} instead.")
    if epochs is None and quick:
        epochs = QUICK_EPOCHS
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 1_000_000):
        raise ConfigError(f"The 'epochs' parameter must be an int in [1, 1000000]. Got {epochs!r} instead.")
    datasets = check_datasets(list(datasets)) if datasets else default_datasets(table, quick, data_dir)
    overrides: dict[str, Any] = {}
    if spec.student_hidden is not None:
        overrides["student_hidden"] = spec.student_hidden
    if epochs is not None:
        overrides["epochs"] = epochs
    if quick:
        overrides["snapshot_epochs"] = ()
    out = []
    for dataset in datasets:
        for seed in range(seeds):
            for part, samplers, alphas in spec.comparisons():
                cfg = preset_config(spec.preset, dataset=dataset, split_seed=seed, seeds=(seed,),
                                    samplers=samplers, alphas=alphas, **overrides)
                out.append(Comparison(spec.number, dataset, seed, part, cfg))
    for c in out:
        c.cfg.validate()
    return out


# ---------------------------------------------------------------- running
def teacher_setting(dataset: str, quick: bool) -> str:
    """The DistillConfig.teacher a comparison of `dataset` runs with (what prepare_teacher returns):
    'auto' (the paper's teacher), or with --quick the small teacher's architecture ('auto' for
    the SVR of composition data, which is quick already)."""
    from ..data.catalog import get_dataset

    kind = get_dataset(dataset).kind
    return "auto" if not quick or kind == "composition" else QUICK_TEACHER_ARCHS[kind]


def prepare_teacher(dataset: str, seed: int, quick: bool, device) -> tuple[str, dict[str, Any]]:
    """Train or load the teacher of (dataset, split seed); returns (arch for DistillConfig.teacher, info)."""
    import torch

    from ..data import load_split
    from ..models.teachers import cache_path, evaluate, get_teacher, train_torch_teacher

    split = load_split(dataset, seed=seed)
    arch = teacher_setting(dataset, quick)
    if arch == "auto":
        _, info = get_teacher(split, "auto", device)
        return "auto", {"test_rmse": info.test_rmse, "test_mae": info.test_mae, "cached": info.cached}
    path = cache_path(split, arch)
    trained = not path.exists()
    if trained:
        module, val_rmse = train_torch_teacher(split, arch, seed, device, max_epochs=QUICK_TEACHER_EPOCHS, patience=3)
        rmse, mae = evaluate(module, split.x_test.to(device), split.y_test.to(device))
        blob = {"state_dict": {k: v.cpu() for k, v in module.state_dict().items()}, "arch": arch,
                "test_rmse": rmse, "test_mae": mae, "val_rmse": val_rmse}
        tmp = path.with_suffix(".tmp")
        torch.save(blob, tmp)
        tmp.replace(path)
    _, info = get_teacher(split, arch, device)
    return arch, {"test_rmse": info.test_rmse, "test_mae": info.test_mae, "cached": not trained}


MAX_WORKERS = 64


def default_workers() -> int:
    """--workers' default: one worker process per CPU core."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def check_workers(workers: Any) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"The 'workers' parameter must be an int in [1, {MAX_WORKERS}]. Got {workers!r} instead.")
    return workers


def _batched_teacher_arch(split, quick: bool) -> str | None:
    """The architecture teacher_batch trains for this split (tabular MLP teachers), else None."""
    if split.kind != "tabular":
        return None
    return QUICK_TEACHER_ARCHS["tabular"] if quick else "mlp500"


def train_dataset_teachers(dataset: str, seeds: list[int], quick: bool) -> dict[str, Any]:
    """Train the missing MLP teachers of one tabular dataset, all its seeds stacked in one model
    (teacher_batch), into the cache where get_teacher finds them. Other kinds of teacher
    (CNN, SVR) are left to prepare_teacher. Returns {'trained': [seeds], 'seconds': s}."""
    from ..data import load_split
    from ..models.teacher_batch import missing_teachers, train_teachers_batched

    start = time.perf_counter()
    splits = [load_split(dataset, seed=s) for s in seeds]
    arch = _batched_teacher_arch(splits[0], quick)
    if arch is None:
        return {"trained": [], "epochs": [], "seconds": 0.0}
    todo = missing_teachers(splits, arch)
    by_shape: dict[tuple, list] = {}
    for s in todo:
        by_shape.setdefault(tuple(s.x_train.shape), []).append(s)
    epochs: dict[int, int] = {}
    for group in by_shape.values():
        if quick:
            infos = train_teachers_batched(group, arch, max_epochs=QUICK_TEACHER_EPOCHS, patience=3)
        else:
            infos = train_teachers_batched(group, arch)
        epochs.update({s.seed: info.extra["epochs"] for s, info in zip(group, infos)})
    return {"trained": [s.seed for s in todo], "epochs": [epochs[s.seed] for s in todo],
            "seconds": time.perf_counter() - start}


def teacher_tasks(seeds_of: dict[str, list[int]], workers: int) -> list[tuple[str, list[int]]]:
    """(dataset, seeds) batches of teacher training for `workers` processes, longest first.
    A seed's cost is taken as ∝ features + 90 (cpusmall, 12 features: ~0.07 s per teacher-epoch
    stacked; indoorloc, 520: ~0.4 s); a dataset whose seeds together cost more than a worker's
    fair share (indoorloc's GEMMs) is split into chunks so that the workers finish together."""
    from ..data import get_dataset

    per_seed = {d: get_dataset(d).features + 90 for d in seeds_of}
    share = sum(per_seed[d] * len(s) for d, s in seeds_of.items()) / max(1, workers)
    tasks = []
    for dataset, seeds in seeds_of.items():
        most = max(1, int(share // per_seed[dataset]))
        chunks = -(-len(seeds) // most) if workers > 1 else 1
        size = -(-len(seeds) // chunks)
        tasks += [(dataset, seeds[i:i + size]) for i in range(0, len(seeds), size)]
    return sorted(tasks, key=lambda t: -per_seed[t[0]] * len(t[1]))


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


_WORKER_STORES: dict[str, Any] = {}


def _worker_store(home: str):
    from ..runs.runstore import RunStore

    if home not in _WORKER_STORES:
        _WORKER_STORES[home] = RunStore(home)
    return _WORKER_STORES[home]


def run_comparison(c: Comparison, teacher: str, store) -> dict[str, Any]:
    """One comparison through run_distillation, stored as one run in `store`; returns
    {'run_id', 'title', 'members': [(sampler, alpha, member, test_rmse, test_mae)], 'engine',
    'seconds', 'cancelled'}. Runs in the calling process (a worker or the main one)."""
    from ..engine import run_distillation

    t0 = time.perf_counter()
    cfg = c.cfg.replace(teacher=teacher)
    run_id = store.create_run(cfg, title=c.title, tags=c.tags)
    store.set_worker(run_id, os.getpid())
    last_check = [0.0]

    def should_stop() -> bool:  # the page's Stop, read at most once a second
        now = time.monotonic()
        if now - last_check[0] < 1.0:
            return False
        last_check[0] = now
        return store.stop_requested(run_id)

    try:
        result = run_distillation(cfg, on_event=lambda event: store.record(run_id, event), should_stop=should_stop)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.finish(run_id, status, error=f"{type(exc).__name__}: {exc}")
        raise
    store.finish(run_id, result)
    return {"run_id": run_id, "title": c.title, "engine": result.engine, "cancelled": bool(result.cancelled),
            "members": [(m.sampler, m.alpha, m.member, float(m.test_rmse), float(m.test_mae)) for m in result.members],
            "seconds": time.perf_counter() - t0}


def _comparison_task(c: Comparison, teacher: str, home: str) -> dict[str, Any]:
    return run_comparison(c, teacher, _worker_store(home))


def _teacher_task(dataset: str, seeds: list[int], quick: bool) -> dict[str, Any]:
    return train_dataset_teachers(dataset, seeds, quick)


def stored_comparisons(store, comparisons: list[Comparison], quick: bool) -> dict[int, str]:
    """{index in comparisons: run id} of the comparisons already stored as finished ('done')
    runs of the same reproduction (tags) and the same configuration, teacher included (the
    newest such run of each)."""
    wanted: dict[tuple, list[int]] = {}
    for i, c in enumerate(comparisons):
        wanted.setdefault(_key(reproduction_of(c.tags)), []).append(i)
    found: dict[int, str] = {}
    runs = store.list_runs(status="done")  # newest first
    for run_id, tags in zip(runs["id"], runs["tags"]):
        what = reproduction_of(tags)
        todo = [i for i in wanted.get(_key(what), []) if i not in found] if what else []
        if not todo:
            continue
        stored = store.get_run(run_id).config  # a config of the former shape reads as the same pairs
        for i in todo:
            c = comparisons[i]
            if c.cfg.replace(teacher=teacher_setting(c.dataset, quick)) == stored:
                found[i] = run_id
    return found


def _key(what: dict[str, Any] | None) -> tuple:
    return tuple(what[k] for k in ("table", "dataset", "seed", "part")) if what else ()


def reproduce(table: int, seeds: int | None = None, datasets: list[str] | None = None, epochs: int | None = None,
              quick: bool = False, store=None, log: Callable[[str], None] | None = None,
              workers: int | None = None, resume: bool = False) -> dict[str, Any]:
    """Run a reproduction: teachers first (the missing MLP teachers of each dataset trained
    all seeds at once by teacher_batch, the rest trained or loaded by get_teacher), then every
    comparison through run_distillation, each stored as one run. With workers > 1, the
    per-dataset teacher batches and the comparisons run in that many worker processes ('spawn',
    one torch thread each), each storing its own run in the run store (SQLite WAL). With
    resume, comparisons already stored as finished runs of the same configuration (a stopped
    reproduction, or one with fewer seeds) are reused: runs are seeded, so training them
    again would give the same numbers. Returns the report (see `report`) with the run ids,
    the teacher / student seconds (of this call's training only) and how many runs were reused."""
    from ..device import describe_device, pick_device
    from ..runs.runstore import RunStore

    log = log or (lambda line: None)
    workers = check_workers(workers)
    start = time.perf_counter()
    comparisons = plan(table, seeds, datasets, epochs, quick)
    store = store or RunStore()
    device = pick_device()
    reused = stored_comparisons(store, comparisons, quick) if resume else {}
    for i in sorted(reused):
        log(f"reused stored run {reused[i]}: {comparisons[i].title}")
    seeds_of: dict[str, list[int]] = {}  # the teachers the comparisons still to run need
    for i, c in enumerate(comparisons):
        if i in reused:
            continue
        if c.seed not in seeds_of.setdefault(c.dataset, []):
            seeds_of[c.dataset].append(c.seed)
    pool = None
    used_workers = workers if workers > 1 and device.type == "cpu" else 1  # GPU runs: one process
    if used_workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init)
    try:
        # teachers: per dataset, every missing seed in one stacked model
        tasks = teacher_tasks(seeds_of, used_workers)
        if pool is not None and len(tasks) > 1:
            futures = {pool.submit(_teacher_task, d, s, quick): d for d, s in tasks}
            batches = ((futures[f], f.result()) for f in _as_completed(futures))
        else:
            batches = ((d, train_dataset_teachers(d, s, quick)) for d, s in tasks)
        fresh: set[tuple[str, int]] = set()
        for dataset, batch in batches:
            fresh |= {(dataset, seed) for seed in batch["trained"]}
            if batch["trained"]:
                log(f"teachers {dataset}: {len(batch['trained'])} trained together in {batch['seconds']:.1f} s "
                    f"(seeds {', '.join(map(str, batch['trained']))}; epochs {', '.join(map(str, batch['epochs']))}; "
                    f"elapsed {time.perf_counter() - start:.1f} s)")
        teachers: dict[tuple[str, int], str] = {}
        for dataset, seed_list in seeds_of.items():
            for seed in seed_list:
                t0 = time.perf_counter()
                teachers[(dataset, seed)], info = prepare_teacher(dataset, seed, quick, device)
                state = "trained (batched)" if (dataset, seed) in fresh else \
                    "cached" if info["cached"] else f"trained in {time.perf_counter() - t0:.1f} s"
                log(f"teacher {dataset} seed {seed}: {state}, test RMSE {info['test_rmse']:.4f} "
                    f"MAE {info['test_mae']:.4f} (elapsed {time.perf_counter() - start:.1f} s)")
        teacher_seconds = time.perf_counter() - start

        spec = get_table(table)
        metric = spec.metric
        run_ids: list[str | None] = [reused.get(i) for i in range(len(comparisons))]
        todo = [i for i in range(len(comparisons)) if i not in reused]
        done = len(reused)
        durations: dict[tuple[str, str], list[float]] = {}  # (dataset, part) -> seconds of finished comparisons

        def finished(i: int, out: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            run_ids[i] = out["run_id"]
            c = comparisons[i]
            durations.setdefault((c.dataset, c.part), []).append(out["seconds"])
            parts = ", ".join(
                f"{(spec.method_of(sampler, alpha) or Method(member, member)).label} "
                f"{(rmse if metric == 'rmse' else mae):.4f}" for sampler, alpha, member, rmse, mae in out["members"])
            left = remaining_seconds([comparisons[j] for j in range(len(comparisons)) if run_ids[j] is None],
                                     durations, used_workers)
            log(f"[{done}/{len(comparisons)}] {out['title']}: {parts} ({out['seconds']:.1f} s, {out['engine']}; "
                f"elapsed {time.perf_counter() - start:.1f} s" + (f", about {left / 60:.0f} min left" if left else "") + ")")
            if out["cancelled"]:
                raise DfkdError(f"The reproduction was stopped during {out['title']!r}.")

        if pool is None:
            for i in todo:
                c = comparisons[i]
                finished(i, run_comparison(c, teachers[(c.dataset, c.seed)], store))
        else:
            # seed by seed, so a reproduction stopped early leaves whole seeds of every cell; within
            # a seed the long comparisons (searching samplers) first, random sampling last
            order = sorted(todo, key=lambda i: (comparisons[i].seed, _only_random(comparisons[i])))
            futures = {pool.submit(_comparison_task, comparisons[i], teachers[(comparisons[i].dataset, comparisons[i].seed)],
                                   str(store.home)): i for i in order}
            for f in _as_completed(futures):
                finished(futures[f], f.result())
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    total = time.perf_counter() - start
    n_seeds = len({c.seed for c in comparisons})
    return report(store, table, [r for r in run_ids if r], seeds=n_seeds, epochs=comparisons[0].cfg.epochs,
                  teacher_seconds=teacher_seconds, student_seconds=total - teacher_seconds,
                  total_seconds=total, device=describe_device(device), quick=quick, workers=used_workers,
                  reused_runs=len(reused))


def remaining_seconds(todo: list[Comparison], durations: dict[tuple[str, str], list[float]],
                      workers: int) -> float | None:
    """Wall seconds the comparisons still to run will take: each as long as the mean of the
    finished ones of its (dataset, part), shared by the workers (one in flight counts whole).
    None until every kind still to run has finished once (after the first seed)."""
    if not todo or any((c.dataset, c.part) not in durations for c in todo):
        return None
    total = sum(float(np.mean(durations[(c.dataset, c.part)])) for c in todo)
    return total / max(1, min(workers, len(todo)))


def _only_random(c: Comparison) -> bool:
    """True when every student of the comparison samples at random (the short ones, run last)."""
    from ..synth.samplers import SAMPLERS

    return not any(SAMPLERS.get(name).searches for name in c.cfg.samplers)


def _as_completed(futures):
    from concurrent.futures import as_completed

    return as_completed(futures)


# ---------------------------------------------------------------- assembling tables from the store
LONG_COLUMNS = ["run_id", "dataset", "seed", "epochs", "method", "validation", "synthetic"]


def collect(store, table: int, run_ids: list[str] | None = None, epochs: int | None = None) -> pd.DataFrame:
    """Long rows (run_id, dataset, seed, epochs, method, validation, synthetic) of a table's
    finished stored runs: `run_ids` if given, else every run tagged as a reproduction of table N (with
    `epochs` if given). Where a (dataset, seed, method) was run more than once, the newest wins."""
    spec = get_table(table)
    runs = store.list_runs()
    runs = runs[runs["status"] == "done"]
    if run_ids is not None:
        runs = runs[runs["id"].isin(run_ids)]
    rows: list[dict[str, Any]] = []
    col = "test_rmse" if spec.metric == "rmse" else "test_mae"
    pick = 1 if spec.metric == "rmse" else 2  # other_selections[name] = [epoch, test_rmse, test_mae]
    for run in runs.itertuples(index=False):  # newest first
        parsed = reproduction_of(run.tags)
        if parsed is None or parsed["table"] != spec.number:
            continue
        if epochs is not None and run.epochs != epochs:
            continue
        base = {"run_id": run.id, "dataset": parsed["dataset"], "seed": parsed["seed"], "epochs": int(run.epochs)}
        teacher = getattr(run, f"teacher_{col}")
        if teacher is not None and math.isfinite(teacher):
            rows.append({**base, "method": "teacher", "validation": teacher, "synthetic": teacher})
        for r in store.results(run.id).itertuples(index=False):
            method = spec.method_of(r.sampler, r.alpha)
            if method is None:
                continue
            other = r.other_selections or {}
            synthetic = other.get("synthetic")
            rows.append({**base, "method": method.key, "validation": float(getattr(r, col)),
                         "synthetic": float(synthetic[pick]) if synthetic else float("nan")})
    long = pd.DataFrame(rows, columns=LONG_COLUMNS)
    return long.drop_duplicates(["dataset", "seed", "method"], keep="first").reset_index(drop=True)


CELL_COLUMNS = ["dataset", "method", "n", "paper_mean", "paper_sd", "ours_mean", "ours_sd", "verdict",
                "synthetic_mean", "synthetic_sd", "synthetic_verdict"]


def summarize(long: pd.DataFrame, table: int) -> pd.DataFrame:
    """One row per (dataset, method): n seeds, the paper's mean ± sd, ours under the paper's
    selection (validation) and under the data-free one (synthetic), each with its verdict.
    sd is the sample standard deviation (NaN with one seed)."""
    spec = get_table(table)
    order = [m.key for m in spec.methods]
    datasets = [d for d in spec.paper_datasets if d in set(long["dataset"])]
    datasets += sorted(set(long["dataset"]) - set(datasets))
    rows = []
    for dataset in datasets:
        for method in order:
            part = long[(long["dataset"] == dataset) & (long["method"] == method)]
            if part.empty:
                continue
            pm, ps = paper_cell(spec.number, dataset, method)
            row = {"dataset": dataset, "method": method, "n": int(len(part)), "paper_mean": pm, "paper_sd": ps}
            for protocol, prefix in (("validation", "ours"), ("synthetic", "synthetic")):
                values = part[protocol].to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                mean = float(values.mean()) if len(values) else float("nan")
                sd = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
                row[f"{prefix}_mean"], row[f"{prefix}_sd"] = mean, sd
                row["verdict" if protocol == "validation" else "synthetic_verdict"] = verdict(mean, pm, ps)
            rows.append(row)
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def _pm(mean: Any, sd: Any, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "—"
    if sd is None or (isinstance(sd, float) and not math.isfinite(sd)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def display_table(cells: pd.DataFrame, table: int, protocol: str = "validation") -> pd.DataFrame:
    """The paper's layout: one row per dataset, one column per method, each cell
    'ours (paper) verdict' as text, for st.dataframe."""
    spec = get_table(table)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"The 'protocol' parameter must be one of {', '.join(PROTOCOLS)}. Got {protocol!r} instead.")
    prefix, vcol = ("ours", "verdict") if protocol == "validation" else ("synthetic", "synthetic_verdict")
    labels = {m.key: m.label for m in spec.methods}
    out: dict[str, dict[str, str]] = {}
    for row in cells.itertuples(index=False):
        text = f"{_pm(getattr(row, prefix + '_mean'), getattr(row, prefix + '_sd'))} (paper {_pm(row.paper_mean, row.paper_sd)})"
        if getattr(row, vcol) != "n/a":
            text += f" {getattr(row, vcol)}"
        out.setdefault(row.dataset, {})[labels[row.method]] = text
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame = frame.reindex(columns=[m.label for m in spec.methods if m.label in frame.columns])
    frame.index.name = "dataset"
    return frame


def markdown_table(rep: dict[str, Any], protocol: str = "validation") -> str:
    """A report's table in the paper's layout as Markdown (for a README or a lab notebook):
    per cell ours mean ± sd, the paper's in parentheses, and the verdict."""
    cells = pd.DataFrame(rep["cells"], columns=CELL_COLUMNS)
    frame = display_table(cells, rep["table"], protocol).fillna("")
    lines = ["| dataset | " + " | ".join(frame.columns) + " |", "|---" * (len(frame.columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in frame.iterrows()]
    return "\n".join(lines)


def claims(cells: pd.DataFrame, table: int, protocol: str = "validation") -> list[dict[str, Any]]:
    """The paper's claims about the table, checked on our numbers (lower is better)."""
    col = "ours_mean" if protocol == "validation" else "synthetic_mean"
    means = {(r.dataset, r.method): getattr(r, col) for r in cells.itertuples(index=False)}
    datasets = list(dict.fromkeys(cells["dataset"]))
    out = []

    def lower(a: str, b: str) -> list[bool]:
        return [means[(d, a)] <= means[(d, b)] for d in datasets if (d, a) in means and (d, b) in means]

    def as_often(hits: list[bool], paper_misses: int, paper_total: int = 7) -> bool | None:
        """At least the paper's rate: as many exceptions as the paper had, scaled to our
        dataset count and rounded (6 datasets allow 1 miss where the paper had 1 of 7; 1 allows 0).
        None when no dataset has both cells yet."""
        if not hits:
            return None
        return len(hits) - sum(hits) <= round(len(hits) * paper_misses / paper_total)

    if table in (3, 4):
        hits = lower("direct_dec", "random")
        out.append({"claim": "direct dec-α ≤ random", "paper": "6 of 7 datasets",
                    "ours": f"{sum(hits)} of {len(hits)} datasets", "holds": as_often(hits, 1)})
        hits = lower("direct_dec", "generator_dec")
        out.append({"claim": "direct dec-α ≤ generator dec-α", "paper": "5 of 7 datasets",
                    "ours": f"{sum(hits)} of {len(hits)} datasets", "holds": as_often(hits, 2)})
    elif table == 5:
        d = datasets[0] if datasets else None
        keys = [(d, m) for m in ("direct", "generator", "random")]
        ok = None if not all(k in means for k in keys) else bool(means[keys[0]] < means[keys[1]] < means[keys[2]])
        out.append({"claim": "MAE direct < generator < random", "paper": "1.179 < 2.422 < 2.872",
                    "ours": " < ".join(f"{means[k]:.3f}" for k in keys if k in means), "holds": ok})
    elif table == 6:
        d = datasets[0] if datasets else None
        have = (d, "direct") in means and (d, "random") in means
        ok = bool(means[(d, "direct")] < means[(d, "random")]) if have else None
        out.append({"claim": "RMSE direct (DE) < random", "paper": "0.267 < 0.287",
                    "ours": " < ".join(f"{means[(d, m)]:.3f}" for m in ("direct", "random") if (d, m) in means),
                    "holds": ok})
    return out


def _json_number(value: Any) -> Any:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def report(store, table: int, run_ids: list[str] | None, epochs: int | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON report of a reproduction: cells with both protocols side by side and the claims
    (run_ids None: every finished stored run of the table, with `epochs` if given)."""
    long = collect(store, table, run_ids=run_ids, epochs=epochs if run_ids is None else None)
    if run_ids is None:
        run_ids = sorted(set(long["run_id"]))
        extra.setdefault("seeds", int(long["seed"].nunique()))
        if epochs is None and not long.empty:
            extra.setdefault("epochs", ", ".join(str(e) for e in sorted(set(long["epochs"]))))
    if epochs is not None:
        extra["epochs"] = epochs
    cells = summarize(long, table)
    out_cells = []
    for row in cells.itertuples(index=False):
        out_cells.append({
            "dataset": row.dataset, "method": row.method, "n": int(row.n),
            "ours_mean": _json_number(row.ours_mean), "ours_sd": _json_number(row.ours_sd),
            "paper_mean": _json_number(row.paper_mean), "paper_sd": _json_number(row.paper_sd),
            "verdict": row.verdict,
            "synthetic_mean": _json_number(row.synthetic_mean), "synthetic_sd": _json_number(row.synthetic_sd),
            "synthetic_verdict": row.synthetic_verdict,
        })
    spec = get_table(table)
    return {"table": spec.number, "metric": spec.metric, "protocols": list(PROTOCOLS), **extra,
            "cells": out_cells, "claims": {p: claims(cells, table, p) for p in PROTOCOLS}, "run_ids": run_ids}


def format_report(rep: dict[str, Any]) -> str:
    """The printed table: per cell the paper's mean ± sd, ours under each selection protocol and its verdict."""
    spec = get_table(rep["table"])
    labels = {m.key: m.label for m in spec.methods}
    head = (f"Table {spec.number} — test {spec.metric.upper()} (lower is better), {rep.get('seeds')} seed(s), "
            f"{rep.get('epochs')} epochs{' (quick: tests the harness, not the numbers)' if rep.get('quick') else ''}")
    lines = [head, "validation = the paper's selection (best on real validation data); "
                   "synthetic = strictly data-free (best agreement with the teacher on synthetic points)", ""]
    cols = f"{'dataset':<10} {'method':<16} {'paper':>17}  {'ours (validation)':>17} {'verdict':<7}  {'ours (synthetic)':>17} {'verdict':<7} {'n':>3}"
    lines += [cols, "-" * len(cols)]
    for c in rep["cells"]:
        lines.append(f"{c['dataset']:<10} {labels.get(c['method'], c['method']):<16} "
                     f"{_pm(c['paper_mean'], c['paper_sd']):>17}  {_pm(c['ours_mean'], c['ours_sd']):>17} {c['verdict']:<7}  "
                     f"{_pm(c['synthetic_mean'], c['synthetic_sd']):>17} {c['synthetic_verdict']:<7} {c['n']:>3}")
    lines.append("")
    for protocol, items in rep.get("claims", {}).items():
        for item in items:
            outcome = {True: "holds", False: "does not hold", None: "not decided (cells missing)"}[item["holds"]]
            lines.append(f"claim ({protocol}): {item['claim']}: paper {item['paper']}; ours {item['ours']} → {outcome}")
    if "total_seconds" in rep:
        lines.append(f"time: {rep['total_seconds']:.1f} s total = {rep['teacher_seconds']:.1f} s teachers + "
                     f"{rep['student_seconds']:.1f} s students on {rep.get('device')}"
                     + (f" ({rep['reused_runs']} stored run(s) reused, not timed)" if rep.get("reused_runs") else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------- for the dashboard
def stored_reproductions(store, table: int) -> pd.DataFrame:
    """The store's runs of a table grouped by epochs: epochs, runs, done, active, failed, datasets,
    seeds, latest (newest first). A group is what one reproduction setting produced."""
    spec = get_table(table)
    runs = store.list_runs()
    rows = []
    for run in runs.itertuples(index=False):
        parsed = reproduction_of(run.tags)
        if parsed and parsed["table"] == spec.number:
            rows.append({"epochs": int(run.epochs), "status": run.status, "dataset": parsed["dataset"],
                         "seed": parsed["seed"], "created_at": run.created_at})
    columns = ["epochs", "runs", "done", "active", "failed", "datasets", "seeds", "latest"]
    if not rows:
        return pd.DataFrame(columns=columns)
    df = pd.DataFrame(rows)
    out = []
    for epochs, g in df.groupby("epochs"):
        out.append({"epochs": int(epochs), "runs": len(g), "done": int((g["status"] == "done").sum()),
                    "active": int(g["status"].isin(["queued", "running"]).sum()),
                    "failed": int(g["status"].isin(["failed", "interrupted", "cancelled"]).sum()),
                    "datasets": ", ".join(sorted(set(g["dataset"]))), "seeds": int(g["seed"].nunique()),
                    "latest": g["created_at"].max()})
    return pd.DataFrame(out, columns=columns).sort_values("latest", ascending=False).reset_index(drop=True)


def active_runs(store, table: int | None = None) -> pd.DataFrame:
    """Reproduction runs still queued or running (id, title, status, last_epoch, epochs)."""
    runs = store.list_runs()
    runs = runs[runs["status"].isin(["queued", "running"])]
    keep = pd.Series([bool((p := reproduction_of(t)) and (table is None or p["table"] == table)) for t in runs["tags"]],
                     index=runs.index, dtype=bool)
    return runs.loc[keep, ["id", "title", "status", "last_epoch", "epochs"]].reset_index(drop=True)


def reproduce_command(table: int, seeds: int | None = None, datasets: list[str] | None = None,
                      epochs: int | None = None, quick: bool = False, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "dfkd_core", "reproduce", "--table", str(get_table(table).number)]
    if seeds is not None:
        cmd += ["--seeds", str(int(seeds))]
    if datasets:
        cmd += ["--datasets", ",".join(check_datasets(list(datasets)))]
    if epochs is not None:
        cmd += ["--epochs", str(int(epochs))]
    if quick:
        cmd.append("--quick")
    if resume:
        cmd.append("--resume")
    return cmd + ["--json"]


def start_reproduction(table: int, seeds: int | None = None, datasets: list[str] | None = None,
                       epochs: int | None = None, quick: bool = False, resume: bool = False) -> tuple[int, Path]:
    """Start `python -m dfkd_core reproduce …` detached (its own session: a page rerun or a
    closed tab does not stop it), logging to DFKD_HOME/reproduce/<time>-table<N>.log.
    Returns (pid, log path)."""
    from ..paths import home_dir

    cmd = reproduce_command(table, seeds, datasets, epochs, quick, resume)
    folder = home_dir() / "reproduce"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-table{get_table(table).number}.log"
    env = dict(os.environ)
    env["DFKD_HOME"] = str(home_dir())
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=root, env=env, start_new_session=True)
    return proc.pid, log_path


def latest_log(lines: int = 8) -> tuple[Path | None, str]:
    """The newest reproduction log and its last lines ('' when there is none)."""
    from ..paths import home_dir

    folder = home_dir() / "reproduce"
    logs = sorted(folder.glob("*.log")) if folder.is_dir() else []
    if not logs:
        return None, ""
    try:
        text = logs[-1].read_text(encoding="utf-8", errors="replace")
    except OSError:
        return logs[-1], ""
    # the final JSON line is long; the page shows the progress lines
    keep = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("{")]
    return logs[-1], "\n".join(keep[-lines:])

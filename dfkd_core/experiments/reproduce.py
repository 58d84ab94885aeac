"""Reproducing the paper's Tables 3-6: which comparisons each table needs, running them
through the engine into the run store, and assembling our numbers beside the paper's.

    TABLES              one TableSpec per table: metric, preset, methods (sampler, α), datasets
    paper_numbers()     the paper's mean ± sd per cell, from paper_numbers.json (the one copy)
    verdict()           ours vs the paper: 'within' mean ± 2 sd, 'better' or 'worse'
    plan()              the comparisons (one DistillConfig each) of a reproduction
    reproduce()         teachers first (cached), then every comparison, each one stored run,
                        on one executor (runner.Runner: local processes, dask-local or a Dask
                        cluster; results stored by this process alone) (resume=True: a comparison
                        already stored as a finished run of the same configuration is reused)
    collect() / summarize() / display_table() / format_report()
                        store results → long rows → cells (both selection protocols) → tables
    paired_verdicts()   the paper's two-method claims checked seed by seed (paired.py): mean
                        difference, 95 % interval, Wilcoxon p, holds / does not hold / undecided

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


def _batched_teacher_arch(split, quick: bool) -> str | None:
    """The architecture teacher_batch trains for this split (tabular MLP teachers), else None."""
    if split.kind != "tabular":
        return None
    return QUICK_TEACHER_ARCHS["tabular"] if quick else "mlp500"


def train_dataset_teachers(dataset: str, seeds: list[int], quick: bool) -> dict[str, Any]:
    """Train the missing MLP teachers of one tabular dataset, all its seeds stacked in one model
    (teacher_batch), into the cache where get_teacher finds them. Other kinds of teacher
    (CNN, SVR) are left to prepare_teacher. Returns {'trained': [seeds], 'epochs', 'seconds',
    'files': [(file name, bytes)] of the teachers trained} (the driver writes the files into its
    own cache: a worker on another machine trained them)."""
    from ..data import load_split
    from ..models.teacher_batch import missing_teachers, train_teachers_batched
    from ..models.teachers import cache_path

    start = time.perf_counter()
    splits = [load_split(dataset, seed=s) for s in seeds]
    arch = _batched_teacher_arch(splits[0], quick)
    if arch is None:
        return {"trained": [], "epochs": [], "seconds": 0.0, "files": []}
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
    files = [(cache_path(s, arch).name, cache_path(s, arch).read_bytes()) for s in todo]
    return {"trained": [s.seed for s in todo], "epochs": [epochs[s.seed] for s in todo],
            "seconds": time.perf_counter() - start, "files": files}


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


def _install_teacher(name: str, data: bytes) -> None:
    from .runner import install_teacher_file

    install_teacher_file((name, data))


def reproduce(table: int, seeds: int | None = None, datasets: list[str] | None = None, epochs: int | None = None,
              quick: bool = False, store=None, log: Callable[[str], None] | None = None,
              workers: int | None = None, resume: bool = False, executor: str | None = None,
              scheduler: str | None = None) -> dict[str, Any]:
    """Run a reproduction on one executor (runner.Runner: 'local' worker processes, 'dask-local',
    or the Dask cluster at `scheduler`): teachers first (the missing MLP teachers of each dataset
    trained all seeds at once by teacher_batch, one task per dataset; the rest trained or loaded by
    get_teacher here), then one task per comparison (a dataset × a stack of students), whose
    events come back here to be stored as one run (workers never open the run store). With
    resume, comparisons already stored as finished runs of the same configuration (a stopped
    reproduction, or one with fewer seeds) are reused: runs are seeded, so training them
    again would give the same numbers. A comparison that fails twice is stored as a failed run
    and listed in the report's 'failed_tasks'. Returns the report (see `report`) with the run
    ids, the teacher / student seconds (of this call's training only), how many runs were
    reused, the executor and how many tasks each worker ran."""
    from ..device import describe_device, pick_device
    from ..runs.runstore import RunStore
    from .runner import Runner, Task, check_executor, check_workers, distill_task, store_failure, store_outcome, \
        teacher_file, workers_line

    log = log or (lambda line: None)
    workers = check_workers(workers)
    executor, scheduler = check_executor(executor, scheduler)
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
    used_workers = workers if device.type == "cpu" else 1  # GPU runs: one process
    with Runner(executor, scheduler, used_workers, log=log) as runner:
        log(f"executor: {runner.describe()}")
        # teachers: per dataset, every missing seed in one stacked model
        fresh: set[tuple[str, int]] = set()

        def teachers_done(task: Task, batch: dict[str, Any]) -> None:
            dataset = task.args[0]
            for name, data in batch["files"]:
                _install_teacher(name, data)
            fresh.update((dataset, seed) for seed in batch["trained"])
            if batch["trained"]:
                log(f"teachers {dataset}: {len(batch['trained'])} trained together in {batch['seconds']:.1f} s "
                    f"(seeds {', '.join(map(str, batch['trained']))}; epochs {', '.join(map(str, batch['epochs']))}; "
                    f"elapsed {time.perf_counter() - start:.1f} s)")

        teacher_failures = runner.run(
            [Task(f"teachers-{d}-{'-'.join(map(str, s))}", train_dataset_teachers, (d, s, quick), f"teachers of {d}")
             for d, s in teacher_tasks(seeds_of, runner.workers)], teachers_done)
        if teacher_failures:
            raise DfkdError("Teacher training failed twice: " + "; ".join(f"{t.label}: {m}" for t, m in teacher_failures))
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
        done = len(reused)
        durations: dict[tuple[str, str], list[float]] = {}  # (dataset, part) -> seconds of finished comparisons
        shipped: dict[tuple[str, int], Any] = {}
        tasks = []
        # seed by seed, so a reproduction stopped early leaves whole seeds of every cell; within
        # a seed the long comparisons (searching samplers) first, random sampling last
        for i in sorted((i for i in range(len(comparisons)) if i not in reused),
                        key=lambda i: (comparisons[i].seed, _only_random(comparisons[i]))):
            c = comparisons[i]
            cfg = c.cfg.replace(teacher=teachers[(c.dataset, c.seed)])
            if (c.dataset, c.seed) not in shipped:
                shipped[(c.dataset, c.seed)] = teacher_file(cfg)
            tasks.append(Task(str(i), distill_task, (cfg, shipped[(c.dataset, c.seed)]), c.title))
        failed_tasks: list[dict[str, Any]] = []

        def finished(task: Task, out: dict[str, Any]) -> None:
            nonlocal done
            i = int(task.key)
            c = comparisons[i]
            run_ids[i] = store_outcome(store, task.args[0], out, title=c.title, tags=c.tags)
            done += 1
            durations.setdefault((c.dataset, c.part), []).append(out["seconds"])
            result = out["result"]
            parts = ", ".join(
                f"{(spec.method_of(m.sampler, m.alpha) or Method(m.member, m.member)).label} "
                f"{(m.test_rmse if metric == 'rmse' else m.test_mae):.4f}" for m in result.members)
            left = remaining_seconds([comparisons[j] for j in range(len(comparisons)) if run_ids[j] is None],
                                     durations, runner.workers)
            log(f"[{done}/{len(comparisons)}] {c.title}: {parts} ({out['seconds']:.1f} s, {result.engine}; "
                f"elapsed {time.perf_counter() - start:.1f} s" + (f", about {left / 60:.0f} min left" if left else "") + ")")

        def failed(task: Task, message: str) -> None:
            c = comparisons[int(task.key)]
            run_id = store_failure(store, task.args[0], message, title=c.title, tags=c.tags)
            failed_tasks.append({"title": c.title, "run_id": run_id, "error": message})

        runner.run(tasks, finished, failed)
        if runner.per_worker:
            log(workers_line(runner.per_worker))
        executor_info = {"executor": runner.executor, "executor_description": runner.describe(), "workers": runner.workers,
                         "tasks_per_worker": dict(sorted(runner.per_worker.items())), "retried_tasks": len(runner.retried)}
    total = time.perf_counter() - start
    n_seeds = len({c.seed for c in comparisons})
    return report(store, table, [r for r in run_ids if r], seeds=n_seeds, epochs=comparisons[0].cfg.epochs,
                  teacher_seconds=teacher_seconds, student_seconds=total - teacher_seconds,
                  total_seconds=total, device=describe_device(device), quick=quick,
                  reused_runs=len(reused), failed_tasks=failed_tasks, **executor_info)


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


# the paper's comparisons between two methods, as claims "a ≤ b" (lower is better) checked seed by seed
PAIRED_CLAIMS: dict[int, tuple[tuple[str, str], ...]] = {
    3: (("direct_dec", "random"), ("direct_dec", "generator_dec")),
    4: (("direct_dec", "random"), ("direct_dec", "generator_dec")),
    5: (("direct", "generator"), ("generator", "random")),
    6: (("direct", "random"),),
}


def paired_verdicts(long: pd.DataFrame, table: int, protocol: str = "validation") -> pd.DataFrame:
    """Per dataset and claim of PAIRED_CLAIMS: the paired per-seed difference's mean, 95 % t
    interval, Wilcoxon p and verdict (paired.PAIRED_COLUMNS), under one selection protocol."""
    from .paired import paired_table

    if protocol not in PROTOCOLS:
        raise ConfigError(f"The 'protocol' parameter must be one of {', '.join(PROTOCOLS)}. Got {protocol!r} instead.")
    return paired_table(long, PAIRED_CLAIMS[get_table(table).number], value=protocol)


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
    from .paired import records

    spec = get_table(table)
    return {"table": spec.number, "metric": spec.metric, "protocols": list(PROTOCOLS), **extra,
            "cells": out_cells, "claims": {p: claims(cells, table, p) for p in PROTOCOLS},
            "paired": {p: records(paired_verdicts(long, table, p)) for p in PROTOCOLS}, "run_ids": run_ids}


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
    from .paired import format_row, summary

    for protocol, rows in rep.get("paired", {}).items():
        if rows:
            lines.append(f"paired over seeds ({protocol}; 95 % t interval of the mean difference, Wilcoxon signed-rank p):")
        for claim in dict.fromkeys(r["claim"] for r in rows):
            mine = [r for r in rows if r["claim"] == claim]
            lines += [f"  {format_row(r)}" for r in mine]
            lines.append(f"  {claim}: {summary(r['verdict'] for r in mine)}")
    for item in rep.get("failed_tasks") or []:
        lines.append(f"failed twice, stored as failed run {item['run_id']}: {item['title']}: {item['error']}")
    if rep.get("tasks_per_worker"):
        lines.append(f"executor: {rep.get('executor_description')}; "
                     + ", ".join(f"{w} ran {n}" for w, n in rep["tasks_per_worker"].items()))
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
                      epochs: int | None = None, quick: bool = False, resume: bool = False,
                      scheduler: str | None = None) -> list[str]:
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
    if scheduler:
        cmd += ["--scheduler", scheduler]
    return cmd + ["--json"]


def start_reproduction(table: int, seeds: int | None = None, datasets: list[str] | None = None,
                       epochs: int | None = None, quick: bool = False, resume: bool = False) -> tuple[int, Path]:
    """Start `python -m dfkd_core reproduce …` detached (its own session: a page rerun or a
    closed tab does not stop it), logging to DFKD_HOME/reproduce/<time>-table<N>.log.
    Runs on the Dask cluster at DFKD_SCHEDULER when that is set (runner.dashboard_executor).
    Returns (pid, log path)."""
    from ..paths import home_dir
    from .runner import dashboard_executor, start_detached

    cmd = reproduce_command(table, seeds, datasets, epochs, quick, resume, scheduler=dashboard_executor()[1])
    folder = home_dir() / "reproduce"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-table{get_table(table).number}.log"
    return start_detached(cmd, log_path, home_dir()), log_path


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
    tail = keep[-lines:]
    executor = next((line for line in keep if line.startswith("executor: ")), None)  # what runs it, and how many workers
    if executor and executor not in tail:
        tail = [executor, *tail[1:]]
    return logs[-1], "\n".join(tail)

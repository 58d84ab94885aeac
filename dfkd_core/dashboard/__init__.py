"""What the dashboard's pages call, without Streamlit: the widgets' field specs and the
DistillConfig they assemble (and its URL form), the dataset catalogue as a table, and
everything a page shows about a run read from the RunStore — progress, curves, snapshot
batches, digits, constraint checks, test metrics mean ± sd per sampler, exports."""
from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import re
from dataclasses import dataclass
import threading
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import config
from ..config import (MAX_OBJECTIVE_TERMS, PAPER_OBJECTIVES, PRESETS, DistillConfig, Member,  # noqa: F401 (the page reads
                      parse_config, preset_config, read_config)  # MAX_OBJECTIVE_TERMS from here)
from ..errors import ConfigError, DfkdError

DEFAULT = DistillConfig()
ALPHA_CHOICES = ("decreasing", "0", "1", "constant:0.3", "cosine", "increasing")
MAIN_FIELDS = ("dataset", "student_hidden", "samplers", "alphas", "seeds", "epochs")  # drawn outside "Advanced"
# the values DistillConfig accepts, declared once in config.CHOICES; the device field takes any
# 'cuda:N' there, the form offers these three
CHOICES: dict[str, tuple[str, ...]] = {**config.CHOICES, "device": ("auto", "cpu", "cuda")}
SECTIONS = (  # the "Advanced" expander's groups, in DistillConfig's order
    ("Teacher and student", ("split_seed", "teacher", "student")),
    ("Algorithm 1", ("batch_size", "batches_per_epoch", "lr", "weight_decay", "student_loss")),
    ("Synthetic-data objective", ("objective", "input_norm_scope", "y_rand")),
    ("Direct sampler (Algorithm 2)", ("direct_optimizer", "direct_lr", "direct_steps")),
    ("Generator sampler", ("generator_z_dim", "generator_hidden", "generator_lr", "generator_weight_decay", "generator_steps")),
    ("Evolution sampler", ("de_strategy", "de_generations", "de_mutation", "de_recombination")),
    ("Evaluation and output", ("eval_every", "snapshot_epochs", "selection", "device", "engine")),
)
ACTIVE = ("queued", "running")
MARKDOWN_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")  # every ASCII punctuation character
AUTOLINK_TRIGGERS = re.compile(r"(?i):|@|www(?=\.)")  # where GFM starts a bare link: http://, www., a@b.org
WORD_JOINER = "\u2060"  # invisible, neither space nor punctuation: no autolink can start right after it


def plain(text: Any) -> str:
    """`text` (a value from a URL, a file or a form, or a message quoting one) as markdown that
    shows exactly those characters, and nothing else: every ASCII punctuation character becomes a
    numeric character reference (&#58; for ':'), so no link, image, HTML, emphasis, heading,
    Streamlit directive (:red[…], :material/…:) or formula ($…$) can form. GFM turns bare
    http://…, www.… and e-mail addresses into links after decoding those references, so an
    invisible word joiner follows each ':' and '@' and each 'www' before a '.'. Each line stays
    a line (a hard break), its leading spaces dropped (no code block)."""
    lines = str(text).splitlines() or [""]
    return "  \n".join(
        MARKDOWN_PUNCTUATION.sub(lambda m: f"&#{ord(m.group())};",
                                 AUTOLINK_TRIGGERS.sub(lambda m: m.group() + WORD_JOINER, line.strip()))
        for line in lines)


# ---------------------------------------------------------------------------- widget specs
@dataclass(frozen=True)
class FieldSpec:
    """How the page draws one DistillConfig field: kind is 'int', 'float', 'choice', 'text' or
    'objective' (the (term, weight) pairs: a multiselect of registered terms and a weight each)."""

    name: str
    kind: str
    help: str
    choices: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    @property
    def key(self) -> str:
        return f"cfg_{self.name}"


@functools.lru_cache(maxsize=1)
def field_help() -> dict[str, str]:
    """The comment beside each default in DistillConfig's source, as the widget's help."""
    src = inspect.getsource(DistillConfig)
    out = {}
    for m in re.finditer(r"^\s{4}(\w+):[^=\n]+=[^#\n]*#\s*(.+)$", src, flags=re.M):
        out[m.group(1)] = m.group(2).strip()
    return out


def field_spec(name: str) -> FieldSpec:
    default = getattr(DEFAULT, name)
    help_text = field_help().get(name, "") + f" (default {widget_value(name, default)})"
    if name in CHOICES:
        return FieldSpec(name, "choice", help_text, CHOICES[name])
    if name == "objective":
        return FieldSpec(name, "objective", help_text, tuple(term_names()))
    if isinstance(default, bool) or isinstance(default, (str, tuple)):
        return FieldSpec(name, "text", help_text)
    if isinstance(default, int):
        return FieldSpec(name, "int", help_text)
    return FieldSpec(name, "float", help_text)


def advanced_sections() -> list[tuple[str, list[FieldSpec]]]:
    """Every hyperparameter not on the main form, grouped; together with MAIN_FIELDS that is all of DistillConfig."""
    return [(title, [field_spec(n) for n in names]) for title, names in SECTIONS]


def widget_value(name: str, value: Any) -> Any:
    """A config value as its widget holds it (tuples of ints as '0,1,2', the objective as its
    text 'term:weight,…', others unchanged)."""
    if name in ("samplers", "alphas"):
        return list(value)
    if name == "objective":
        return config.objective_text(value)
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return value


def widget_values(cfg: DistillConfig) -> dict[str, Any]:
    """{field name: widget value} of every field."""
    return {f.name: widget_value(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def preset_values(name: str) -> dict[str, Any]:
    """The widget values of a preset (every field, so switching presets resets the rest)."""
    cfg = DEFAULT if name in ("", "defaults") else preset_config(name)
    return widget_values(cfg)


def preset_names() -> list[str]:
    return list(PRESETS)


def config_from_widgets(values: Mapping[str, Any], validate: bool = True) -> DistillConfig:
    """The DistillConfig of the form's values (unknown / missing keys use defaults).
    Raises ConfigError listing every problem (config.parse_config: the URL's and the CLI's rules)."""
    data = {k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(DistillConfig)}}
    for name in ("samplers", "alphas"):
        if name in data and isinstance(data[name], (list, tuple)):
            data[name] = tuple(data[name])
            if not data[name]:
                raise ConfigError(f"The {name!r} parameter must be a non-empty list. Got an empty selection instead.")
    if not validate:
        return DistillConfig.from_dict(data)
    cfg = parse_config(data)
    check_dataset(cfg.dataset)
    return cfg


def config_from_query(params: Mapping[str, Any]) -> tuple[DistillConfig, str | None]:
    """The config a URL describes and a message listing every problem of it (None if none):
    values that cannot be read keep the defaults, values out of range are kept so the form
    shows them. Checked by config.read_config, as the CLI and the form are."""
    params = {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items() if k != "run"}
    names = {f.name for f in dataclasses.fields(DistillConfig)}
    base = preset_config(params["preset"]) if params.get("preset") in PRESETS else DEFAULT
    cfg, problems = read_config({k: v for k, v in params.items() if k in names}, base=base)
    if not problems:
        return cfg, None
    return cfg, "The link's settings are not valid; fix them before pressing Start:\n" + "\n".join(f"- {p}" for p in problems)


def query_for(cfg: DistillConfig, run_id: str | None = None) -> dict[str, str]:
    """cfg.to_query() for the URL, plus the run in view."""
    q = cfg.to_query()
    if run_id:
        q["run"] = run_id
    return q


def alpha_curves(specs: Iterable[str], epochs: int, max_points: int = 2000) -> tuple[dict[str, np.ndarray], list[str]]:
    """α per epoch of each spec (for the preview), and a message per spec that cannot be read."""
    from ..synth.schedules import parse_alpha

    epochs = int(epochs) if isinstance(epochs, (int, float)) and 1 <= epochs <= 1_000_000 else DEFAULT.epochs
    curves, errors = {}, []
    for spec in specs:
        try:
            schedule = parse_alpha(spec)
        except DfkdError as exc:
            errors.append(str(exc))
            continue
        ts = np.unique(np.linspace(0, epochs - 1, min(epochs, max_points)).astype(int))
        curves[spec] = np.interp(np.arange(epochs), ts, [schedule(t, epochs) for t in ts]) if epochs <= max_points else \
            np.array([schedule(t, epochs) for t in ts])
    return curves, errors


def sampler_names() -> list[str]:
    from ..synth.samplers import SAMPLERS

    return SAMPLERS.names()


def sampler_help() -> str:
    from ..synth.samplers import SAMPLERS

    return "\n".join(f"- **{n}**: {getattr(SAMPLERS.get(n), 'description', '')}" for n in SAMPLERS.names())


def term_names() -> list[str]:
    from ..synth.objectives import TERMS

    return TERMS.names()


def term_summary(name: str) -> str:
    from ..synth.objectives import term_summary as summary

    return summary(name)


def term_help() -> str:
    """Every registered objective term with the first line of its docstring (its formula)."""
    return "\n".join(f"- **{n}**: {term_summary(n)}" for n in term_names())


def default_weight(term: str) -> float:
    """The weight a term gets when it is added to the objective: its weight in the first of the
    paper's objectives that has it (β = 1e-5 for ‖x‖²), else 1."""
    for pairs in PAPER_OBJECTIVES.values():
        for name, weight in pairs:
            if name == term and weight:
                return weight
    return 1.0


def objective_widgets(text: str) -> tuple[list[str], dict[str, float], list[str]]:
    """The objective editor's values of a widget value ('term:weight,…'): (registered terms in
    order, their weights, the terms that are not registered — the page says it leaves them out)."""
    try:
        pairs = config.parse_objective(text)
    except ConfigError:
        pairs = DEFAULT.objective
    known = set(term_names())
    return ([n for n, _ in pairs if n in known], {n: w for n, w in pairs if n in known},
            [n for n, _ in pairs if n not in known])


def objective_from_widgets(terms: Sequence[str], weights: Mapping[str, Any]) -> str:
    """The objective editor's terms and weights as the widget value 'term:weight,…' (read and
    checked by config.parse_config with the rest of the form)."""
    return config.objective_text((t, weights.get(t)) for t in terms)


# ---------------------------------------------------------------------------- words on the pages
WHAT_IS_DFKD = (
    "A **teacher** network was trained on real data that we no longer have; **data-free knowledge distillation** "
    "trains a smaller **student** to copy it from synthetic inputs alone, the teacher supplying each input's target "
    "(the paper's Figure 1). The synthetic batch **x_g** comes from a **sampler**: random draws (gaussian, lhs, ...), "
    "a **generator** network trained to produce inputs where student and teacher disagree (Figure 2), **direct** "
    "optimization of random points toward such inputs (Algorithm 2, Figure 3), or **evolution** for teachers that can "
    "only be queried. Each step mixes x_g with plain prior samples x_p, weighted by **α** (eq. 7: α on x_g, 1 − α on "
    "x_p), and the student's loss on x_g is what the samplers try to raise. Figures 4–7 compare the samplers on "
    "tabular data (losses, projections, validation curves), Figures 8–9 on MNIST digits."
)
PAGE_INTRO = {
    "distill": "This page runs that comparison on the dataset you choose: every sampler and α schedule trains "
               "its own student side by side, and the charts below follow them live.",
    "mnist": "This page runs it on digits: a CNN teacher that predicts the digit as a number, a smaller CNN "
             "student, and synthetic images you can look at with the teacher's prediction above each (Figure 8).",
}
CAPTIONS = {
    "val_rmse": "Each line is one sampler's student: its error on held-out real validation data, lower is better. "
                "The grey dashed line is the teacher on the same data; students rarely go below it.",
    "val_mae": "Each line is one sampler's student: its mean absolute error on held-out real digits, lower is "
               "better (0.5 means it is off by half a digit on average).",
    "loss_xg": "How badly the student copies the teacher on each epoch's synthetic batch x_g (log scale). A sampler "
               "that keeps this high keeps finding the student's weak spots (Figure 7).",
    "boxplots": "Per-point student loss on the last synthetic batch of each snapshot epoch (log scale); a box per "
                "sampler. Higher boxes: harder points for the student (Figure 4).",
    "projection": "Grey: real training points; coloured: each sampler's synthetic batch at the chosen epoch, "
                  "squashed to 2-D. Points far from the grey cloud are inputs the real data never had (Figure 5).",
    "digits": "Synthetic images of one student per sampler; above each, the number the teacher predicts for it. "
              "Random noise gets middling predictions; good samplers reach many digits (Figure 8).",
    "histograms": "How the teacher's predictions on one synthetic batch spread out, a panel per sampler. A spread "
                  "over 0–9 means the batch covers every digit; a pile-up means it does not (Figure 9).",
    "constraint": "Each synthetic amino-acid composition must be fractions that sum to 1, none negative; this "
                  "checks the chosen batch.",
    "results": "Each dot is a sampler's students on the real test set (mean ± sd over seeds); the dashed line is "
               "the teacher's test figure.",
}
PLAIN_COLUMNS = {  # raw column -> header with units, for the tables the pages show
    "sampler": "sampler",
    "points": "points",
    "nn_dist_median": "median distance to nearest real point (input units)",
    "nn_dist_max": "largest distance to nearest real point (input units)",
    "real_nn_median": "real points' own median nearest-neighbour distance (input units)",
    "row_sum_min": "smallest row sum (1 on the simplex)",
    "row_sum_max": "largest row sum (1 on the simplex)",
    "feature_min": "smallest fraction (≥ 0 on the simplex)",
    "feature_max": "largest fraction",
    "on_simplex": "on the simplex?",
    "member": "student (sampler|α|seed)",
    "teacher_queries": "points sent to the teacher",
}


def plain_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table with headers in plain words and units (PLAIN_COLUMNS); unknown columns keep their names."""
    return table.rename(columns=PLAIN_COLUMNS)


# ---------------------------------------------------------------------------- datasets
def catalog() -> list[dict]:
    from ..data import dataset_catalog

    return dataset_catalog()


def catalog_table() -> pd.DataFrame:
    """The catalogue as the Datasets page shows it."""
    df = pd.DataFrame(catalog())
    cols = ["name", "paper_name", "kind", "rows", "features", "target", "available", "source", "where", "note"]
    return df[[c for c in cols if c in df]]


def dataset_choices() -> tuple[list[str], dict[str, str]]:
    """Dataset names (available first) and their select-box labels ('mnist (not available)')."""
    items = catalog()
    names = [d["name"] for d in items if d["available"]] + [d["name"] for d in items if not d["available"]]
    labels = {}
    for d in items:
        label = f"{d['name']} — {d.get('paper_name') or d['name']} ({d['rows']}×{d['features']})"
        labels[d["name"]] = label if d["available"] else f"{d['name']} (not available: needs download)"
    return names, labels


def available_datasets() -> list[str]:
    return [d["name"] for d in catalog() if d["available"]]


def check_dataset(name: str) -> None:
    """ConfigError unless `name` is registered and its files are present."""
    items = {d["name"]: d for d in catalog()}
    if name not in items:
        raise ConfigError(f"The 'dataset' parameter must be one of {', '.join(map(repr, items))}. Got {name!r} instead.")
    if not items[name]["available"]:
        raise ConfigError(f"The dataset {name!r} is not available here: {items[name]['note']}. "
                          f"Fetch it with `python -m dfkd_core datasets --download {name}`.")


def dataset_note(name: str) -> str:
    for d in catalog():
        if d["name"] == name:
            return d.get("note") or ""
    return ""


# ---------------------------------------------------------------------------- runs
def store(home=None):
    from ..runs.runstore import RunStore

    return RunStore(home)


def submit(cfg: DistillConfig, title: str | None = None) -> str:
    """Validate and start a run in a worker process; ConfigError (message for st.error) if it cannot start."""
    from ..runs import jobs

    cfg.validate()
    if cfg.data_file or cfg.input_spec:  # the user's own data: stored files, not a registered dataset
        from ..models.user_models import store_user_inputs

        return jobs.submit(store_user_inputs(cfg), title=title)
    check_dataset(cfg.dataset)
    return jobs.submit(cfg, title=title)


def stop(run_id: str) -> None:
    from ..runs import jobs

    jobs.stop(run_id)


def recover() -> list[str]:
    from ..runs import jobs

    return jobs.recover()


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

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def active(self) -> bool:
        return self.run.status in ACTIVE

    @property
    def teacher_rmse(self) -> float | None:
        v = self.run.teacher_test_rmse
        return None if v is None or not np.isfinite(v) else float(v)

    @property
    def teacher_val_rmse(self) -> float | None:
        """The validation charts' reference line (runs stored before it was recorded: None)."""
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
    return RunView(run, metrics, s.snapshot_index(run_id), s.results(run_id), epoch, epochs)


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
    return " · ".join(bits)


@functools.lru_cache(maxsize=512)
def _snapshot(home: str, run_id: str, member: str, epoch: int) -> dict[str, np.ndarray]:
    """Snapshots never change once written: cache them per process."""
    return store(home).load_snapshot(run_id, member, epoch)


def snapshot(run_id: str, member: str, epoch: int) -> dict[str, np.ndarray]:
    return _snapshot(str(store().home), run_id, member, int(epoch))


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
        data = _snapshot(home, view.run.id, member, int(epoch))
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
        x = snapshot(view.run.id, member, e)["x"]
        out.setdefault(Member.from_key(member).sampler, []).append(np.asarray(x).reshape(len(x), -1))
    return {k: np.concatenate(v) for k, v in out.items()}


def projection(view: RunView, epoch: int, method: str = "auto"):
    """Real vs synthetic points of the run's dataset at a snapshot epoch (a projection.Projection);
    data with two features are shown in their own plane ('plane'), whatever `method` says."""
    from .embedding import project_dataset

    cfg = view.run.config
    _check_projectable(cfg)
    synthetic = synthetic_batches(view, epoch)
    if is_plane(cfg.dataset):
        return plane_projection(cfg.dataset, cfg.split_seed, synthetic)
    return project_dataset(cfg.dataset, cfg.split_seed, synthetic, method)


def is_plane(dataset: str) -> bool:
    """Whether the dataset's inputs have two features (toy2d): drawn as they are, no projection."""
    from ..data import DATASETS  # the spec alone: the catalogue looks at files (1.95 s cold, a pause in the curves)

    return dataset in DATASETS and DATASETS.get(dataset).features == 2


def plane_projection(dataset: str, split_seed: int, synthetic: Mapping[str, np.ndarray]):
    """The projection.Projection of 2-D data: the features themselves as x and y."""
    from .embedding import Projection, dataset_loader, flatten, get_base, projection_key

    base = get_base(projection_key(dataset, split_seed), dataset_loader(dataset, split_seed), split_seed)
    real = base.rows
    frames = [pd.DataFrame({"x": real[:, 0], "y": real[:, 1], "source": "real", "nn_dist": np.nan})]
    summary = []
    for source, x in synthetic.items():
        x = flatten(x)
        if len(x):
            dist = base.nearest_distance(x)
            frames.append(pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "source": str(source), "nn_dist": dist}))
            summary.append(dict(sampler=str(source), points=len(x), nn_dist_median=float(np.median(dist)),
                                nn_dist_max=float(np.max(dist)), real_nn_median=base.real_nn_median))
    return Projection(pd.concat(frames, ignore_index=True), "input plane", pd.DataFrame(summary),
                      "Two input features: the points are drawn in their own plane (x₁, x₂), no projection.")


_PROJECTION_JOBS: "dict[tuple, Any]" = {}  # (home, run, epoch, method, UMAP on disk, snapshots) -> Future
_PROJECTION_LOCK = threading.Lock()
_PROJECTION_POOL: Any = None  # one worker process, started on first use
_UMAP_PENDING: set[str] = set()  # projection keys whose 'auto' projection came back as PCA (UMAP still fitting)


def _project_in_worker(home: str, dataset: str, split_seed: int, synthetic: Mapping[str, np.ndarray], method: str):
    """The projection, computed in the projection worker process (UMAP and numba live there)."""
    import os

    os.environ["DFKD_HOME"] = home  # the page's run store (and UMAP cache), whatever the worker started with
    if is_plane(dataset):
        return plane_projection(dataset, split_seed, synthetic)
    from .embedding import project_dataset

    return project_dataset(dataset, split_seed, synthetic, method)


def _lower_priority() -> None:
    """The projection worker yields the CPU to the page's server and the training worker."""
    import os

    try:
        os.nice(10)
    except OSError:
        pass


def _projection_pool():
    """A one-process pool: UMAP's fit and numba's compilation hold the GIL for seconds, which
    froze the page's curves when they ran in a thread of the Streamlit server (issue 15)."""
    global _PROJECTION_POOL
    if _PROJECTION_POOL is None:
        import atexit
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _PROJECTION_POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                               initializer=_lower_priority)
        # shut down before interpreter teardown: the executor's own weakref callback otherwise
        # runs after its modules are gone and prints a traceback at exit
        atexit.register(_PROJECTION_POOL.shutdown, wait=False, cancel_futures=True)
    return _PROJECTION_POOL


def projection_later(view: RunView, epoch: int, method: str = "auto", wait: float = 0.5):
    """`projection(view, epoch, method)` computed off the page's thread, in a worker process:
    the Projection when it is ready within `wait` seconds, else None (the page shows "fitting…"
    and polls). The page's curves never wait for UMAP's fit or its first (compiling) transform.
    With 'auto' the worker answers PCA until its UMAP fit is on disk, then UMAP."""
    from concurrent.futures import TimeoutError as Pending
    from concurrent.futures.process import BrokenProcessPool

    from .embedding import projection_key, umap_path

    global _PROJECTION_POOL
    cfg = view.run.config
    _check_projectable(cfg)
    pkey = projection_key(cfg.dataset, cfg.split_seed)
    on_disk = umap_path(pkey).exists()
    key = (str(store().home), view.run.id, int(epoch), method, on_disk, len(view.snapshots))
    with _PROJECTION_LOCK:
        job = _PROJECTION_JOBS.get(key)
        if job is None or (job.done() and job.exception() is not None and isinstance(job.exception(), BrokenProcessPool)):
            if job is not None:  # the worker died (e.g. out of memory): start a new one
                _PROJECTION_POOL = None
            if len(_PROJECTION_JOBS) > 64:
                for old in [k for k, j in _PROJECTION_JOBS.items() if j.done()][:32]:
                    del _PROJECTION_JOBS[old]
            job = _PROJECTION_JOBS[key] = _projection_pool().submit(
                _project_in_worker, str(store().home), cfg.dataset, cfg.split_seed, synthetic_batches(view, epoch), method)
    try:
        result = job.result(timeout=wait)  # a DfkdError raised in the worker reaches the page here
    except Pending:
        return None
    if method == "auto" and result.method == "PCA" and "being fitted" in result.note:
        _UMAP_PENDING.add(pkey)
    else:
        _UMAP_PENDING.discard(pkey)
    return result


def hold_projection(state, key: str, run_id: str, epoch: int, method: str, ready):
    """(projection, its epoch, pending): the one asked for when `ready`, else the last one this
    session drew for the run and method, so the chart does not vanish at each new snapshot (runs.live)."""
    from ..runs import live

    return live.hold_projection(state, key, run_id, epoch, method, ready)


def _check_projectable(cfg) -> None:
    """Projections are fitted on a registered dataset's rows (issue 13: not on the user's own data)."""
    if cfg.data_file or cfg.input_spec:
        raise ConfigError("Real vs synthetic points are not available for a run on your own data or input spec.")


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
            data = snapshot(view.run.id, member, epoch)
            for i in range(min(per_sampler, len(data["x"]))):
                items.append(dict(image=as_image(data["x"][i]), row=f"{sampler} @ {epoch}",
                                  title=f"T(x)={float(data['teacher_pred'][i]):.1f}"))
    return items


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


def result_summary(results: pd.DataFrame, metric: str = "test_rmse") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test metric per sampler (and α where several), mean ± sd over seeds: the paper's
    protocol (best on validation) and each strictly data-free selection side by side.

    Returns (table for display, numbers with group, <metric>_mean, <metric>_sd for the bars)."""
    if results is None or results.empty:
        return pd.DataFrame(), pd.DataFrame()
    df = results.copy()
    several_alphas = df["alpha"].nunique() > 1
    df["group"] = df["sampler"] + ((", α " + df["alpha"].astype(str)) if several_alphas else "")
    index = 1 if metric == "test_rmse" else 2  # other_selections: name -> [epoch, test_rmse, test_mae]
    selections = sorted({k for d in df["other_selections"] if isinstance(d, dict) for k in d})
    shown, numbers = [], []
    order = list(dict.fromkeys(df["group"]))
    for group in order:
        part = df[df["group"] == group]
        mean, sd = _mean_sd(part[metric])
        row = {"sampler": group, "seeds": len(part), f"{metric} (validation-selected, paper)": _fmt(mean, sd)}
        for name in selections:
            vals = pd.Series([d[name][index] if isinstance(d, dict) and name in d else np.nan for d in part["other_selections"]])
            row[f"{metric} ({name}-selected, data-free)"] = _fmt(*_mean_sd(vals))
        row["best epoch"] = ", ".join(str(int(e)) for e in part["best_epoch"].dropna())
        if "teacher_queries" in part and pd.to_numeric(part["teacher_queries"], errors="coerce").fillna(0).sum() > 0:
            row["teacher queries"] = int(pd.to_numeric(part["teacher_queries"]).mean())
        shown.append(row)
        numbers.append({"group": group, f"{metric}_mean": mean, f"{metric}_sd": sd})
    return pd.DataFrame(shown), pd.DataFrame(numbers)


def teacher_row(view: RunView, metric: str = "test_rmse") -> str:
    v = view.run.teacher_test_rmse if metric == "test_rmse" else view.run.teacher_test_mae
    return "—" if v is None else f"{v:.4f}"


# ---------------------------------------------------------------------------- comparing and exporting
def compare_metrics(run_ids: Sequence[str]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Metrics of several runs stacked with a `run` column (its title or id), and each run's teacher RMSE."""
    s = store()
    frames, teachers = [], {}
    for run_id in run_ids:
        info = s.get_run(run_id)
        label = run_id
        m = s.metrics(run_id)
        m["run"] = label
        frames.append(m)
        if info.teacher_test_rmse is not None:
            teachers[label] = float(info.teacher_test_rmse)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), teachers


def compare_results(run_ids: Sequence[str]) -> pd.DataFrame:
    s = store()
    rows = []
    for run_id in run_ids:
        info = s.get_run(run_id)
        table, _ = result_summary(s.results(run_id))
        if table.empty:
            continue
        table.insert(0, "run", run_id)
        table.insert(1, "dataset", info.dataset)
        table.insert(2, "teacher test_rmse", "—" if info.teacher_test_rmse is None else f"{info.teacher_test_rmse:.4f}")
        rows.append(table)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def metrics_csv(run_ids: Sequence[str]) -> bytes:
    s = store()
    frames = []
    for run_id in run_ids:
        m = s.metrics(run_id)
        m.insert(0, "run", run_id)
        frames.append(m)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_csv(index=False).encode()


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


def umap_warming(run_id: str) -> bool:
    """Whether UMAP for the run's dataset is being fitted in the background right now (in this
    process, or in the projection worker: its fit is not on disk yet)."""
    from .embedding import projection_key, umap_fitting, umap_path

    try:
        cfg = store().get_run(run_id).config
    except DfkdError:
        return False
    if cfg is None:
        return False
    key = projection_key(cfg.dataset, cfg.split_seed)
    return umap_fitting(key) or (key in _UMAP_PENDING and not umap_path(key).exists())


# ---------------------------------------------------------------------------- case-study presets
MNIST_SAMPLERS = ("gaussian", "generator", "direct")  # Table 5 / Figs. 8-9
BLACKBOX_SAMPLERS = ("evolution", "gaussian")  # Table 6: DE on the SVR teacher vs random samples


def snapshot_plan(epochs: int) -> tuple[int, ...]:
    """Snapshot epochs for a shortened run: 0, ¼ and ½ of the way (the engine adds the last)."""
    try:
        epochs = int(epochs)
    except (TypeError, ValueError):
        return DEFAULT.snapshot_epochs
    return tuple(sorted({e for e in (0, epochs // 4, epochs // 2) if 0 <= e < max(epochs, 1)}))


def mnist_config(dataset: str = "digits", epochs: int = 50, samplers: Sequence[str] = MNIST_SAMPLERS,
                 seeds: Sequence[int] = (0,)) -> DistillConfig:
    """The 'paper-mnist' preset (CNN f=10 → f=5, log-cosh, eq. 8) on `dataset` with fewer epochs."""
    return preset_config("paper-mnist", dataset=dataset, epochs=epochs, samplers=tuple(samplers),
                         seeds=tuple(seeds), snapshot_epochs=snapshot_plan(epochs))


def blackbox_config(dataset: str = "protein", epochs: int = 100, samplers: Sequence[str] = BLACKBOX_SAMPLERS,
                    seeds: Sequence[int] = (0,)) -> DistillConfig:
    """The 'paper-protein' preset (SVR teacher queried as a black box, eq. 9, DE best2bin) on `dataset`."""
    return preset_config("paper-protein", dataset=dataset, teacher="svr", epochs=epochs, samplers=tuple(samplers),
                         seeds=tuple(seeds), snapshot_epochs=snapshot_plan(epochs))


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

"""The Distill form without Streamlit: each DistillConfig field as a widget spec (its help from
the field's metadata), the config the widgets assemble and its URL form, α previews, the
registered samplers and objective terms for the select boxes, the dataset catalogue, and the
case-study pages' configs (MNIST, black-box teacher)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import config
from ..config import PAPER_OBJECTIVES, PRESETS, DistillConfig, parse_config, preset_config, read_config
from ..errors import ConfigError, DfkdError

DEFAULT = DistillConfig()
ALPHA_CHOICES = ("decreasing", "0", "1", "constant:0.3", "cosine", "increasing")
MAIN_FIELDS = ("dataset", "student_hidden", "samplers", "alphas", "seeds", "epochs")  # drawn outside "Advanced"
# the values DistillConfig accepts, declared once in config.CHOICES; the device field takes any
# 'cuda:N' there, the form offers these three
CHOICES: dict[str, tuple[str, ...]] = {**config.CHOICES, "device": ("auto", "cpu", "cuda")}
# "Your model" fields: files stored under DFKD_HOME and how to reach the teacher. They come from the
# uploads or from a stored run (by its id, the URL's INPUTS_OF), never from a link or the form's URL.
USER_FIELDS = ("teacher_file", "teacher_activation", "teacher_units", "teacher_timeout", "teacher_query_budget", "data_file", "target",
               "nan_policy", "input_spec")
INPUTS_OF = "inputs_of"
SECTIONS = (  # the "Advanced" expander's groups, in DistillConfig's order
    ("Teacher and student", ("split_seed", "teacher", "student")),
    ("Algorithm 1", ("batch_size", "batches_per_epoch", "lr", "weight_decay", "student_loss")),
    ("Synthetic-data objective", ("objective", "input_norm_scope", "y_rand")),
    ("Direct sampler (Algorithm 2)", ("direct_optimizer", "direct_lr", "direct_steps")),
    ("Generator sampler", ("generator_z_dim", "generator_hidden", "generator_lr", "generator_weight_decay", "generator_steps")),
    ("Evolution sampler", ("de_strategy", "de_generations", "de_mutation", "de_recombination")),
    ("Evaluation and output", ("eval_every", "snapshot_epochs", "selection", "device", "engine")),
)


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


def field_spec(name: str) -> FieldSpec:
    default = getattr(DEFAULT, name)
    help_text = config.field_help(name) + f" (default {widget_value(name, default)})"
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
    params = {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items() if k not in ("run", INPUTS_OF)}
    names = {f.name for f in dataclasses.fields(DistillConfig)} - set(USER_FIELDS)  # a link never names server files
    base = preset_config(params["preset"]) if params.get("preset") in PRESETS else DEFAULT
    cfg, problems = read_config({k: v for k, v in params.items() if k in names}, base=base)
    if not problems:
        return cfg, None
    return cfg, "The link's settings are not valid; fix them before pressing Start:\n" + "\n".join(f"- {p}" for p in problems)


def query_for(cfg: DistillConfig, run_id: str | None = None, inputs_of: str | None = None) -> dict[str, str]:
    """cfg.to_query() for the URL, plus the run in view and the run whose uploaded files the form
    uses (`inputs_of`); never the files' paths on the server (USER_FIELDS stay out)."""
    q = {k: v for k, v in cfg.to_query().items() if k not in USER_FIELDS}
    if run_id:
        q["run"] = run_id
    if inputs_of:
        q[INPUTS_OF] = inputs_of
    return q


def form_config(cfg: DistillConfig) -> DistillConfig:
    """The settings the form shows of a config: a run on the user's own teacher, data or spec keeps
    its settings, but its files (USER_FIELDS) stay with the stored run, referenced by its id, and
    its dataset ('user') is not one to pick: the form shows the default dataset instead."""
    changes = {name: getattr(DEFAULT, name) for name in USER_FIELDS if getattr(cfg, name) != getattr(DEFAULT, name)}
    if cfg.data_file or cfg.input_spec:
        changes["dataset"] = DEFAULT.dataset
    return cfg.replace(**changes) if changes else cfg


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

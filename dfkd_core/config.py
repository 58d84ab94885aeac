"""DistillConfig: every hyperparameter of a distillation run with the paper's defaults,
the presets that reproduce the paper's experiments, and the one place where settings are
read and checked (parse_config / read_config: CLI flags, config files, URLs, the form).
The UI, the CLI and the run store all use this one object; `asdict(cfg)` is what is stored
and what goes in the URL."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .errors import ConfigError, ConfigErrors, DfkdError


@dataclass(frozen=True)
class Member:
    """One student of a comparison: which sampler, which α schedule, which seed."""

    sampler: str
    alpha: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.sampler}|{self.alpha}|{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.sampler}, α {self.alpha}, seed {self.seed}"

    @classmethod
    def from_key(cls, key: str) -> "Member":
        sampler, alpha, seed = key.split("|")
        return cls(sampler, alpha, int(seed))


# The paper's synthetic-data objectives as (term, weight) pairs of objectives.TERMS; `--objective eq8`
# expands to these (eq. 8 also wants y_rand 'digits', eq. 9 y_rand 'unit': the presets below set both).
EQ5 = (("neg_squared_discrepancy", 1.0), ("l2sq_input", 1e-5), ("student_sq", 1e-5))  # −(T − S)² + β‖x‖² + γS(x)², β = γ = 1e-5
PAPER_OBJECTIVES: dict[str, tuple[tuple[str, float], ...]] = {
    "eq3": EQ5,  # the generator's objective: the same terms as eq. 5, over the generator's outputs
    "eq5": EQ5,  # direct optimization of the points
    # MNIST: −ε·logcosh(T − S) + β|x| + γ(T − y_rand)², y_rand ∈ {0..9}; ε 1e-6, β 1e-6, γ 1
    "eq8": (("neg_logcosh_discrepancy", 1e-6), ("l1_input", 1e-6), ("teacher_to_random", 1.0)),
    # protein: −ε(T − S)² + (1 − ε)(T − y_rand)², y_rand ~ U[0, 1]; ε 0.05
    "eq9": (("neg_squared_discrepancy", 0.05), ("teacher_to_random", 0.95)),
}
MAX_OBJECTIVE_TERMS = 10  # terms of one objective
# fields that name a file on this machine: given on the command line or by an upload, never by a link
FILE_FIELDS = ("teacher_file", "data_file", "input_spec")
WEIGHT_RANGE = (0.0, 1e6)  # a term's weight; the sign is in the term (neg_squared_discrepancy)
# DistillConfig's fields before the objective was a list of pairs; stored runs and old config
# files still hold them (legacy_objective reads them as objectives.build_objective did)
LEGACY_OBJECTIVE_FIELDS = {"discrepancy": "mse", "epsilon": 1.0, "input_norm": "l2sq", "beta": 1e-5,
                           "output_term": "student_sq", "gamma": 1e-5}
LEGACY_OBJECTIVE_NAMES = ("eq3", "eq5", "eq8", "eq9", "custom")  # the old 'objective' field's values (it changed nothing)


def setting(default: Any, help: str) -> Any:
    """A DistillConfig field: its default and the sentence that explains it (`field.metadata["help"]`,
    what the form's widget shows as its help and `--help` can print)."""
    return dataclasses.field(default=default, metadata={"help": help})


def field_help(name: str) -> str:
    """The help sentence of a DistillConfig field ('' for no such field)."""
    for f in dataclasses.fields(DistillConfig):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""


@dataclass(frozen=True)
class DistillConfig:
    # --- what to distill
    dataset: str = setting("friedman1", "a registered dataset name (see `python -m dfkd_core datasets`)")
    split_seed: int = setting(0, "seeds the train/val/test split and the teacher's training")
    teacher: str = setting("auto", "'auto': the dataset's paper teacher (MLP 500 / CNN f=10 / SVR)")
    student: str = setting("auto", "'auto': MLP with `student_hidden` units / CNN f=5 / RBF network")
    student_hidden: int = setting(50, "paper: 25 or 50 tanh units (Tables 3-4)")
    # --- the user's own teacher and data (dfkd_core/user_models.py, data/user.py); '' = the product's own
    teacher_file: str = setting("", "TorchScript / state_dict / skops file (stored under DFKD_HOME), or an http(s):// endpoint")
    teacher_activation: str = setting("", "hidden activation of a state_dict teacher: 'tanh', 'relu', 'sigmoid', ...")
    teacher_units: str = setting("auto", "the teacher's inputs and output: 'raw' (the data's units), 'standardized' "
                                 "((x−μ)/σ in, (y−μ_y)/σ_y out) or 'auto' (scored both ways on the validation rows; "
                                 "'raw' with only an input spec)")
    teacher_timeout: float = setting(10.0, "HTTP teacher: seconds per request (each failed request is retried twice)")
    teacher_query_budget: int = setting(0, "HTTP teacher: most points ever sent (0 = no limit)")
    data_file: str = setting("", "a CSV / Parquet table (stored under DFKD_HOME) for the prior, validation and test")
    target: str = setting("", "data_file's target column")
    nan_policy: str = setting("refuse", "data_file rows with missing values: 'refuse' or 'drop'")
    input_spec: str = setting("", "a JSON input spec instead of data: strictly data-free (selection 'synthetic')")
    # --- the comparison: every combination of these is one student, trained side by side
    samplers: tuple[str, ...] = setting(("direct",), "registered sampler names")
    alphas: tuple[str, ...] = setting(("decreasing",), "α schedule specs: 'decreasing', '0', '1', 'constant:0.3', 'cosine', ...")
    seeds: tuple[int, ...] = setting((0,), "student seeds (init, sampling)")
    # --- Algorithm 1
    epochs: int = setting(2000, "t_max (paper: 2000 tabular, 1000 MNIST)")
    batch_size: int = setting(50, "m: synthetic points in each batch")
    batches_per_epoch: int = setting(10, "n_s: student batches per epoch")
    lr: float = setting(1e-3, "student RMSprop learning rate")
    weight_decay: float = setting(1e-5, "student RMSprop weight decay (protein: 1e-6)")
    student_loss: str = setting("mse", "'mse' or 'logcosh' (MNIST)")
    # --- synthetic-data objective L_G = Σ weight · term (objectives.TERMS; eqs. 3, 5, 8, 9 in PAPER_OBJECTIVES)
    objective: tuple[tuple[str, float], ...] = setting(EQ5, "(term, weight) pairs, as text 'neg_squared_discrepancy:1,l2sq_input:1e-05,…' or 'eq3'/'eq5'/'eq8'/'eq9'")
    input_norm_scope: str = setting("sample", "'sample': β per point, as eqs. 3/5 read; 'batch': β per batch, as the paper's code")
    y_rand: str = setting("none", "random targets of 'teacher_to_random': 'none' (then 'unit'), 'digits' (integers 0-9), 'unit' (uniform [0, 1])")
    # --- direct sampler (Algorithm 2)
    direct_optimizer: str = setting("rmsprop", "fresh optimizer per batch: 'rmsprop', 'adam' or 'sgd'")
    direct_lr: float = setting(0.1, "η (paper: 0.1 tabular, 1e-3 MNIST)")
    direct_steps: int = setting(2, "τ_max (paper: 2 tabular, 20 MNIST)")
    # --- generator sampler (Kang & Kang)
    generator_z_dim: int = setting(50, "length of the generator's random input z")
    generator_hidden: int = setting(500, "hidden units of the generator (Kang & Kang: 500)")
    generator_lr: float = setting(1e-3, "generator RMSprop learning rate")
    generator_steps: int = setting(1, "generator updates per epoch, before its n_s student batches (paper: 1 tabular, 20 MNIST)")
    generator_weight_decay: float = setting(1e-5, "generator RMSprop weight decay (the paper's code: 1e-5)")
    # --- evolution sampler (black-box teachers)
    de_strategy: str = setting("best2bin", "scipy differential_evolution strategy (paper: 'best2bin')")
    de_generations: int = setting(25, "generations of differential evolution per synthetic batch (paper: 25)")
    de_mutation: float = setting(0.5, "differential weight F of differential evolution")
    de_recombination: float = setting(0.7, "crossover probability CR of differential evolution")
    # --- evaluation and output
    eval_every: int = setting(1, "validate every k epochs")
    snapshot_epochs: tuple[int, ...] = setting((0, 50, 100, 500), "epochs whose synthetic batches are kept for the figures (plus the last epoch)")
    selection: str = setting("validation", "'validation' (paper), 'last' or 'synthetic' (strictly data-free)")
    device: str = setting("auto", "'auto', 'cpu', 'cuda'")
    engine: str = setting("auto", "'auto': the fastest stack form for the run (fused MLP where it fits); 'generic': torch.func for every model")
    preset: str = setting("", "name of the preset this config started from ('' = none)")

    # ------------------------------------------------------------------ helpers
    def members(self) -> list[Member]:
        return [Member(s, a, seed) for s, a, seed in itertools.product(self.samplers, self.alphas, self.seeds)]

    def replace(self, **changes: Any) -> "DistillConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistillConfig":
        """The config of `data` (JSON values or strings), types checked (see _coerce); every
        value that cannot be read is reported at once (ConfigErrors)."""
        values, problems = coerce_settings(data)
        if problems:
            raise ConfigErrors(problems)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "DistillConfig":
        return cls.from_dict(json_settings(text))

    def to_query(self) -> dict[str, str]:
        """Fields that differ from the defaults, as strings, for a URL: tuples joined with ',',
        or with ';' when an item holds a comma (a custom α spec 'custom:0:1,1000:0'). The fields
        that name files (FILE_FIELDS) never go into a URL."""
        default = DistillConfig()
        out = {}
        for f in dataclasses.fields(self):
            if f.name in FILE_FIELDS:
                continue
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                if f.name == "objective":
                    out[f.name] = objective_text(value)
                elif isinstance(value, tuple):
                    items = [str(v) for v in value]
                    out[f.name] = (";" if any("," in i for i in items) else ",").join(items)
                else:
                    out[f.name] = str(value)
        return out

    @classmethod
    def from_query(cls, query: dict[str, str]) -> "DistillConfig":
        """The config of a URL's query; a link never names a file (FILE_FIELDS are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)} - set(FILE_FIELDS)
        return cls.from_dict({k: v for k, v in query.items() if k in names})

    def validate(self) -> "DistillConfig":
        """Check every value and the run's memory and work (limits.py); raise ConfigErrors
        listing every problem, each saying what was expected and what came in."""
        problems = self.problems()
        if problems:
            raise ConfigErrors(problems)
        from .limits import check_budget

        try:
            check_budget(self)  # the user's data, spec and teacher too: counted from their headers, nothing decoded
        except ConfigErrors:
            raise
        except DfkdError as exc:  # the user's file cannot be measured: the same message as when it is read
            raise ConfigErrors([str(exc)]) from None
        return self

    def problems(self) -> list[str]:
        """What validate() refuses, one message per problem (the budget aside)."""
        out: list[str] = []

        def check(fn, *args) -> None:
            try:
                fn(self, *args)
            except ConfigErrors as exc:
                out.extend(exc.problems)
            except DfkdError as exc:
                out.append(str(exc))

        for name, (low, high) in INT_RANGES.items():
            check(_check_int, name, low, high)
        for name, (low, high, open_low) in FLOAT_RANGES.items():
            check(_check_float, name, low, high, open_low)
        for name, choices in CHOICES.items():
            check(_check_choice, name, choices)
        for name in ("dataset", "teacher", "student", "device", "preset"):
            check(_check_text, name)
        for name in TUPLE_FIELDS:
            check(_check_items, name)
        check(_check_objective)
        check(_check_names)
        from .userrun import validate_user_fields  # a known upward edge: see tests/test_architecture.py

        check(validate_user_fields)  # the user's teacher / data / input spec fields (issue 13)
        return out


# ---------------------------------------------------------------- reading values
# The same rules for the CLI flags, `--set`, JSON config files, URLs and the dashboard's widgets:
# - int fields take a JSON integer or a string of decimal digits ('12', '-3'); 1.5, 5.0, 1e3,
#   '1e3', '2**70' and true are refused (1e3 is a float in JSON, so '1e3' is refused too);
# - float fields take a JSON number or a string float() reads ('1e-3'); true/false are refused,
#   'nan' and 'inf' are read and then refused by the ranges below;
# - text fields take a string (a JSON number is refused), at most MAX_TEXT characters;
# - list fields take a JSON list or a string split on ',' (on ';' when it holds one, as
#   to_query writes): 'custom:0:1,1000:0' stays one α spec (see split_alphas).
SEED_RANGE = (0, 2**32 - 1)  # numpy's and torch's seeds
INT_RANGES: dict[str, tuple[int, int]] = {
    "split_seed": SEED_RANGE,
    "student_hidden": (1, 10_000),
    "epochs": (1, 1_000_000),
    "batch_size": (1, 10_000),
    "batches_per_epoch": (1, 10_000),
    "direct_steps": (0, 10_000),
    "generator_z_dim": (1, 10_000),
    "generator_hidden": (1, 10_000),
    "generator_steps": (0, 10_000),
    "de_generations": (0, 10_000),
    "eval_every": (1, 1_000_000),
}
FLOAT_RANGES: dict[str, tuple[float, float, bool]] = {  # (low, high, low excluded)
    "lr": (0.0, 10.0, True), "direct_lr": (0.0, 10.0, True), "generator_lr": (0.0, 10.0, True),
    "weight_decay": (0.0, 1e6, False), "generator_weight_decay": (0.0, 1e6, False),
    "de_mutation": (0.0, 2.0, False), "de_recombination": (0.0, 1.0, False),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "student_loss": ("mse", "logcosh"),
    "input_norm_scope": ("sample", "batch"),
    "y_rand": ("none", "digits", "unit"),
    "direct_optimizer": ("rmsprop", "adam", "sgd"),
    "selection": ("validation", "last", "synthetic"),
    "engine": ("auto", "generic"),
    "teacher_units": ("auto", "raw", "standardized"),  # models.user_models.TEACHER_UNITS
    # scipy.optimize.differential_evolution's strategies
    "de_strategy": ("best1bin", "best1exp", "best2bin", "best2exp", "rand1bin", "rand1exp", "rand2bin", "rand2exp",
                    "randtobest1bin", "randtobest1exp", "currenttobest1bin", "currenttobest1exp"),
}
TUPLE_FIELDS = ("samplers", "alphas", "seeds", "snapshot_epochs")
MAX_TEXT = 1000  # characters of one text value (a custom α spec is the longest)
MAX_ITEMS = 1000  # items of one list (a comparison holds at most 1000 students anyway)
MAX_STUDENTS = 1000
MAX_CONFIG_BYTES = 1_000_000  # a config file
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_DEVICE = re.compile(r"auto|cpu|cuda|cuda:[0-9]{1,2}")
_KNOT = re.compile(r"[+-]?[0-9]+\s*:\s*[^:,;]*")  # 'epoch:alpha', the tail of a custom α spec


# values of earlier versions still read from stored runs and old config files: the engine's
# 'batched' became the automatic choice, its 'reference' loop the generic stack form
LEGACY_VALUES = {"engine": {"batched": "auto", "reference": "generic"}}


def coerce_settings(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """({field: value} of every value of `data` that can be read, [one message per value that cannot])."""
    fields = {f.name: f for f in dataclasses.fields(DistillConfig)}
    if not isinstance(data, Mapping):
        return {}, [f"The configuration must be a JSON object. Got {type(data).__name__} instead."]
    problems = []
    data, legacy, conflict = _without_legacy_objective(data)
    if conflict:
        problems.append(conflict)
    if legacy is not None:
        try:
            data["objective"] = legacy_objective(legacy)
        except ConfigErrors as exc:
            problems += exc.problems
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        problems.append(f"Unknown configuration key(s): {', '.join(k if k.isidentifier() and len(k) <= 40 else _shown(k, 40) for k in unknown[:10])}"
                        f"{' …' if len(unknown) > 10 else ''}. Known keys: {', '.join(fields)}.")
    values = {}
    for name, raw in data.items():
        if name in fields:
            raw = LEGACY_VALUES.get(name, {}).get(raw, raw) if isinstance(raw, str) else raw
            try:
                values[name] = _coerce(fields[name], raw)
            except ConfigError as exc:
                problems.append(str(exc))
    return values, problems


def read_config(data: Mapping[str, Any], base: DistillConfig | None = None) -> tuple[DistillConfig, list[str]]:
    """The config of `data` over `base` (values that cannot be read keep base's) and every
    problem at once: values that cannot be read, then what validate() refuses of the rest."""
    values, problems = coerce_settings(data)
    cfg = dataclasses.replace(base or DistillConfig(), **values)
    problems += cfg.problems()
    if not problems:
        try:
            cfg.validate()
        except ConfigErrors as exc:
            problems += exc.problems
        except DfkdError as exc:
            problems.append(str(exc))
    return cfg, problems


def parse_config(data: Mapping[str, Any], base: DistillConfig | None = None) -> DistillConfig:
    """read_config, raising ConfigErrors with every problem: the one entry point where a run's settings come in."""
    cfg, problems = read_config(data, base)
    if problems:
        raise ConfigErrors(problems)
    return cfg


def json_settings(text: str | bytes) -> dict[str, Any]:
    """The JSON object of a config file, or ConfigError saying why not."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The configuration must be a JSON object. Got invalid JSON ({exc}).") from None
    except RecursionError:
        raise ConfigError("The configuration must be a JSON object. Got JSON nested too deeply.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The configuration must be a JSON object. Got {type(data).__name__} instead.")
    return data


def config_file_settings(path: str) -> dict[str, Any]:
    """The settings of a `--config` JSON file (a file of the former shape: its objective as pairs),
    or ConfigError saying why not (unreadable, larger than MAX_CONFIG_BYTES, not a JSON object)."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {path!r}: {exc.strerror}.") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"The config file {path!r} must be at most {MAX_CONFIG_BYTES} bytes. Got more instead.")
    return upgrade_legacy_objective(json_settings(text))


def parse_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An int setting of a command (`--seed`, `--pool`, …), by the rules of the config's int
    fields, in [low, high] when given (else its range is checked where it is used)."""
    number = _as_int(name, value)
    if low is not None and high is not None and not low <= number <= high:
        raise ConfigError(f"The {name!r} parameter must be an int in [{low}, {high}]. Got {_shown(number)} instead.")
    return number


def split_alphas(text: str) -> list[str]:
    """α specs of one string: split on ';' if it holds one, else on ',' keeping a custom spec's
    knots together ('custom:0:1,1000:0,decreasing' → ['custom:0:1,1000:0', 'decreasing'])."""
    if ";" in text:
        return [i.strip() for i in text.split(";") if i.strip()]
    out: list[str] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if out and out[-1].startswith("custom:") and _KNOT.fullmatch(item):
            out[-1] += "," + item
        else:
            out.append(item)
    return out


def objective_text(pairs: Iterable[tuple[str, float]]) -> str:
    """(term, weight) pairs as the text the CLI, URLs and config files take: 'neg_squared_discrepancy:1,l2sq_input:1e-05'."""
    return ",".join(f"{name}:{_weight_text(weight)}" for name, weight in pairs)


def _weight_text(weight: Any) -> str:
    """1.0 → '1', 1e-05 → '1e-05'; full precision where %g would round."""
    if isinstance(weight, numbers.Real) and not isinstance(weight, bool):
        short = f"{float(weight):g}"
        return short if float(short) == float(weight) else repr(float(weight))
    return str(weight)


_OBJECTIVE_FORM = (f"(term, weight) pairs as 'neg_squared_discrepancy:1,l2sq_input:1e-05' or one of "
                   f"{', '.join(map(repr, PAPER_OBJECTIVES))}")


def parse_objective(value: Any) -> tuple[tuple[str, float], ...]:
    """The objective's (term, weight) pairs from text ('term:weight,…' or a paper equation's name),
    a JSON list of [term, weight] pairs (as stored) or an object {term: weight}. Which terms are
    registered, the weights' range and repeated terms are checked by DistillConfig.problems()."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TEXT:
            raise ConfigError(f"The 'objective' parameter must be at most {MAX_TEXT} characters. Got {_shown(value)} instead.")
        if text in PAPER_OBJECTIVES:
            return PAPER_OBJECTIVES[text]
        items: list[Any] = [i.strip() for i in re.split(r"[,;]", text) if i.strip()]
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"The 'objective' parameter must be {_OBJECTIVE_FORM}. Got {_shown(value)} instead.")
    if len(items) > MAX_OBJECTIVE_TERMS:
        raise ConfigError(f"The 'objective' parameter must have at most {MAX_OBJECTIVE_TERMS} terms. Got {len(items)} instead.")
    pairs = []
    for item in items:
        if isinstance(item, str) and ":" in item:
            name, _, weight = item.partition(":")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            name, weight = item
        else:
            raise ConfigError(f"The 'objective' parameter must be {_OBJECTIVE_FORM}. Got {_shown(item)} instead.")
        if not isinstance(name, str) or len(name) > MAX_TEXT:
            raise ConfigError(f"The 'objective' parameter must name its terms by text. Got {_shown(name)} instead.")
        pairs.append((name.strip(), _as_weight(name.strip(), weight)))
    return tuple(pairs)


def _as_weight(term: str, value: Any) -> float:
    try:
        return _as_float("objective", value)
    except ConfigError:
        raise ConfigError(f"The weight of {_shown(term, 40)} in the 'objective' parameter must be a number. "
                          f"Got {_shown(value)} instead.") from None


def _without_legacy_objective(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """(data without the legacy objective fields, those fields or None, a conflict message or None).
    The legacy fields stand for the objective unless `data` also gives one as pairs."""
    legacy = {k: v for k, v in data.items() if k in LEGACY_OBJECTIVE_FIELDS}
    if not legacy:
        return dict(data), None, None
    rest = {k: v for k, v in data.items() if k not in LEGACY_OBJECTIVE_FIELDS}
    given = rest.get("objective")
    if given is None or (isinstance(given, str) and given.strip() in LEGACY_OBJECTIVE_NAMES):
        rest.pop("objective", None)
        return rest, legacy, None
    names = ", ".join(map(repr, legacy))
    return rest, None, (f"The {names} parameter(s) must be given as term:weight pairs of the 'objective' parameter "
                        f"(e.g. 'neg_squared_discrepancy:0.5,l2sq_input:1e-05'). Got {names} beside objective "
                        f"{_shown(given)} instead.")


def upgrade_legacy_objective(data: Mapping[str, Any]) -> dict[str, Any]:
    """A whole config of the former shape (a config file) with its legacy objective fields turned
    into 'objective' pairs, so that a later layer (a flag) may replace the objective; unchanged
    where they cannot be read (coerce_settings then reports why)."""
    rest, legacy, conflict = _without_legacy_objective(data)
    if legacy is None or conflict:
        return dict(data)
    try:
        return {**rest, "objective": legacy_objective(legacy)}
    except ConfigErrors:
        return dict(data)


def legacy_objective(fields: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    """The (term, weight) pairs of a stored config's discrepancy/epsilon, input_norm/beta and
    output_term/gamma fields (missing ones take their old defaults), as build_objective read them."""
    values: dict[str, Any] = dict(LEGACY_OBJECTIVE_FIELDS)
    problems = []
    for name, raw in fields.items():
        try:
            values[name] = _as_float(name, raw) if isinstance(LEGACY_OBJECTIVE_FIELDS[name], float) else _as_text(name, raw)
        except ConfigError as exc:
            problems.append(str(exc))
    for name, choices in (("discrepancy", ("mse", "logcosh")), ("input_norm", ("l2sq", "l1")),
                          ("output_term", ("student_sq", "teacher_to_random", "none"))):
        if values[name] not in choices:
            problems.append(f"The {name!r} parameter must be one of {', '.join(map(repr, choices))}. Got {_shown(values[name])} instead.")
    if problems:
        raise ConfigErrors(problems)
    disc = "neg_logcosh_discrepancy" if values["discrepancy"] == "logcosh" else "neg_squared_discrepancy"
    norm = "l1_input" if values["input_norm"] == "l1" else "l2sq_input"
    pairs = [(disc, values["epsilon"]), (norm, values["beta"])]
    if values["output_term"] != "none":
        pairs.append((values["output_term"], values["gamma"]))
    return tuple(pairs)


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """A JSON / query-string / widget value as the field's type, by the rules above."""
    name, default = f.name, f.default
    if name == "objective":
        return parse_objective(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            if len(value) > MAX_TEXT * 10:
                raise ConfigError(f"The {name!r} parameter must be at most {MAX_TEXT * 10} characters. Got {_shown(value)} instead.")
            items: list[Any] = split_alphas(value) if name == "alphas" else [i.strip() for i in value.split(";" if ";" in value else ",")]
            items = [i for i in items if i]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ConfigError(f"The {name!r} parameter must be a list or a comma-separated string. Got {_shown(value)} instead.")
        if len(items) > MAX_ITEMS:
            raise ConfigError(f"The {name!r} parameter must have at most {MAX_ITEMS} items. Got {len(items)} instead.")
        if name in ("seeds", "snapshot_epochs"):
            return tuple(_as_int(name, i) for i in items)
        return tuple(_as_text(name, i) for i in items)
    if isinstance(default, int):
        return _as_int(name, value)
    if isinstance(default, float):
        return _as_float(name, value)
    return _as_text(name, value)


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and len(value) <= 100 and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise ConfigError(f"The {name!r} parameter must be an integer (digits only). Got {_shown(value)} instead.")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            pass
    elif isinstance(value, str) and len(value) <= 100:
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"The {name!r} parameter must be a number. Got {_shown(value)} instead.")


def _as_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"The {name!r} parameter must be a string. Got {_shown(value)} instead.")
    if len(value) > MAX_TEXT:
        raise ConfigError(f"The {name!r} parameter must be at most {MAX_TEXT} characters. Got {_shown(value)} instead.")
    return value.strip()


def _shown(value: Any, limit: int = 60) -> str:
    """repr(value), shortened: a message stays one short line whatever came in."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}… ({len(text)} characters)"


def _check_int(cfg: DistillConfig, name: str, low: int, high: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"The {name!r} parameter must be an int in [{low}, {high}]. Got {_shown(value)} instead.")


def _check_float(cfg: DistillConfig, name: str, low: float, high: float, open_low: bool = False) -> None:
    value = getattr(cfg, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low < value if open_low else low <= value) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ConfigError(f"The {name!r} parameter must be a float in {bracket}{low:g}, {high:g}]. Got {_shown(value)} instead.")


def _check_choice(cfg: DistillConfig, name: str, choices: Iterable[str]) -> None:
    value = getattr(cfg, name)
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"The {name!r} parameter must be one of {', '.join(map(repr, choices))}. Got {_shown(value)} instead.")


def _check_text(cfg: DistillConfig, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ConfigError(f"The {name!r} parameter must be a string of at most {MAX_TEXT} characters. Got {_shown(value)} instead.")
    if name == "device" and not _DEVICE.fullmatch(value):
        raise ConfigError(f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'. Got {_shown(value)} instead.")
    if name == "preset" and value and value not in PRESETS:
        raise ConfigError(f"The 'preset' parameter must be '' or one of {', '.join(map(repr, PRESETS))}. Got {_shown(value)} instead.")
    if name in ("teacher", "student") and value != "auto" and not (name == "teacher" and value == "svr"):
        from .limits import parse_arch

        parse_arch(value, name)


def _check_items(cfg: DistillConfig, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, tuple) or (not value and name != "snapshot_epochs"):
        raise ConfigError(f"The {name!r} parameter must be a non-empty list. Got {_shown(value)} instead.")
    if len(value) > MAX_ITEMS:
        raise ConfigError(f"The {name!r} parameter must have at most {MAX_ITEMS} items. Got {len(value)} instead.")
    if name in ("seeds", "snapshot_epochs"):
        low, high = SEED_RANGE if name == "seeds" else (0, INT_RANGES["epochs"][1])
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high]
        if bad:
            raise ConfigError(f"The {name!r} parameter must hold ints in [{low}, {high}]. Got {_shown(bad[0])} instead.")
    elif any(not isinstance(v, str) or not v or len(v) > MAX_TEXT for v in value):
        raise ConfigError(f"The {name!r} parameter must hold names. Got {_shown(value)} instead.")
    repeated = sorted({str(v) for v in value if value.count(v) > 1})
    if repeated and name != "snapshot_epochs":
        raise ConfigError(f"The {name!r} parameter must not repeat a value. Got {', '.join(repeated)} more than once.")


def _check_objective(cfg: DistillConfig) -> None:
    """(term, weight) pairs: at least one, at most MAX_OBJECTIVE_TERMS, each term registered in
    objectives.TERMS (a term registered anywhere is usable), weights in WEIGHT_RANGE, no term twice."""
    from .synth.objectives import TERMS

    value = cfg.objective
    if not (isinstance(value, tuple) and value and all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value)):
        raise ConfigError(f"The 'objective' parameter must hold at least one (term, weight) pair. Got {_shown(value)} instead.")
    if len(value) > MAX_OBJECTIVE_TERMS:
        raise ConfigError(f"The 'objective' parameter must have at most {MAX_OBJECTIVE_TERMS} terms. Got {len(value)} instead.")
    problems = []
    names = [name for name, _ in value]
    unknown = [name for name in names if name not in TERMS]
    if unknown:
        problems.append(f"The 'objective' parameter must name registered terms ({', '.join(TERMS.names())}). "
                        f"Got {_shown(unknown[0], 40)} instead.")
    low, high = WEIGHT_RANGE
    for name, weight in value:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight) and low <= weight <= high):
            problems.append(f"The weight of {_shown(name, 40)} in the 'objective' parameter must be a float in "
                            f"[{low:g}, {high:g}]. Got {_shown(weight)} instead.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"The 'objective' parameter must not repeat a term. Got {', '.join(repeated)} more than once.")
    if problems:
        raise ConfigErrors(problems)


def _check_names(cfg: DistillConfig) -> None:
    """Names that live in registries, the size of the comparison, CNNs for images only."""
    from .data import DATASETS
    from .synth.samplers import SAMPLERS
    from .synth.schedules import parse_alpha

    problems = []
    names = {k: v for k in ("samplers", "alphas") for v in [getattr(cfg, k)]
             if isinstance(v, tuple) and all(isinstance(i, str) for i in v)}  # others are refused already
    user_data = bool(cfg.data_file or cfg.input_spec)  # dataset 'user': checked by userrun.validate_user_fields
    checks = [lambda: DATASETS.get(str(cfg.dataset))] * (not user_data) + [lambda a=a: parse_alpha(a) for a in names.get("alphas", ())] \
        + [lambda s=s: SAMPLERS.get(s) for s in names.get("samplers", ())]
    for check in checks:
        try:
            check()
        except DfkdError as exc:
            problems.append(str(exc))
    n = math.prod(len(v) if isinstance(v, tuple) else 1 for v in (cfg.samplers, cfg.alphas, cfg.seeds))
    if n > MAX_STUDENTS:
        problems.append(f"A comparison may hold at most {MAX_STUDENTS} students (samplers × alphas × seeds). Got {n} instead.")
    if cfg.dataset in DATASETS.names():
        kind = DATASETS.get(cfg.dataset).kind
        for name in ("teacher", "student"):
            value = getattr(cfg, name)
            if isinstance(value, str) and value.startswith("cnn") and kind != "image" and _is_arch(value):
                problems.append(f"The {name!r} parameter can be a CNN only for image data. Got {value!r} for {cfg.dataset!r} ({kind}).")
    for name in names.get("samplers", ()) if isinstance(cfg.batch_size, int) else ():
        part = SAMPLERS.get(name) if name in SAMPLERS else None  # each sampler declares the smallest batch it takes
        if part is not None and 1 <= cfg.batch_size < part.min_batch:  # below 1: the range check refuses it
            problems.append(f"The 'batch_size' parameter must be at least {part.min_batch} with the {name!r} sampler "
                            f"({part.min_batch_reason}). Got {cfg.batch_size} instead.")
    if problems:
        raise ConfigErrors(problems)


def _is_arch(value: str) -> bool:
    from .limits import parse_arch

    try:
        parse_arch(value)
    except ConfigError:
        return False
    return True


# The paper's experiments as overrides of the defaults above.
PRESETS: dict[str, dict[str, Any]] = {
    # Tables 3-4 (sections 3.4, 4.1): MLP teacher 500, students 25/50, eq. 5, direct RMSprop lr 0.1 × 2 steps;
    # where the text is silent or differs from the paper's code (zhoutianxun/data_free_KD_regression,
    # run_experiment.py and trainer.py), as the code does: one generator update per epoch, generator weight
    # decay 1e-5, β per batch (input_norm_scope 'batch'; eqs. 3 and 5 read β per point)
    "paper-tabular": dict(
        epochs=2000, batch_size=50, batches_per_epoch=10, lr=1e-3, weight_decay=1e-5, student_loss="mse",
        objective=PAPER_OBJECTIVES["eq5"], y_rand="none", direct_optimizer="rmsprop", direct_lr=0.1, direct_steps=2,
        generator_steps=1, generator_weight_decay=1e-5, input_norm_scope="batch", selection="validation",
    ),
    # Table 5 (sections 3.5, 4.3): CNN f=10 → f=5, log-cosh, eq. 8 with β 1e-6, γ 1, ε 1e-6,
    # direct RMSprop lr 1e-3 × 20 steps, 20 generator rounds per epoch, 1000 epochs, MAE
    "paper-mnist": dict(
        epochs=1000, batch_size=50, batches_per_epoch=10, lr=1e-3, weight_decay=1e-5, student_loss="logcosh",
        objective=PAPER_OBJECTIVES["eq8"], y_rand="digits", direct_optimizer="rmsprop", direct_lr=1e-3,
        direct_steps=20, generator_steps=20, selection="validation",
    ),
    # Table 6 (sections 3.6, 4.4): SVR teacher, RBF student (100 units), eq. 9 with ε 0.05,
    # DE best2bin 25 generations, weight decay 1e-6, decreasing α. The paper gives no epoch
    # count for this case study; 500 epochs is where our runs level off.
    "paper-protein": dict(
        epochs=500, batch_size=50, batches_per_epoch=10, lr=1e-3, weight_decay=1e-6, student_loss="mse",
        objective=PAPER_OBJECTIVES["eq9"], y_rand="unit", de_strategy="best2bin", de_generations=25,
        alphas=("decreasing",), selection="validation",
    ),
}


def preset_config(name: str, **overrides: Any) -> DistillConfig:
    """A config from a named preset plus overrides (unknown preset → ConfigError)."""
    if name not in PRESETS:
        raise ConfigError(f"The 'preset' parameter must be one of {', '.join(map(repr, PRESETS))}. Got {name!r} instead.")
    return DistillConfig(**{**PRESETS[name], "preset": name, **overrides})

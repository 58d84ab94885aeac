"""DistillConfig: every hyperparameter of a distillation run with the paper's defaults,
and the presets that reproduce the paper's experiments. The UI, the CLI and the run
store all use this one object; `asdict(cfg)` is what is stored and what goes in the URL."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import ConfigError


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


@dataclass(frozen=True)
class DistillConfig:
    # --- what to distill
    dataset: str = "friedman1"  # a registered dataset name (see `python -m dfkd_core datasets`)
    split_seed: int = 0  # seeds the train/val/test split and the teacher's training
    teacher: str = "auto"  # 'auto': the dataset's paper teacher (MLP 500 / CNN f=10 / SVR)
    student: str = "auto"  # 'auto': MLP with `student_hidden` units / CNN f=5 / RBF network
    student_hidden: int = 50  # paper: 25 or 50 tanh units (Tables 3-4)
    # --- the user's own teacher and data (dfkd_core/user_models.py, data/user.py); '' = the product's own
    teacher_file: str = ""  # TorchScript / state_dict / skops file (stored under DFKD_HOME), or an http(s):// endpoint
    teacher_activation: str = ""  # hidden activation of a state_dict teacher: 'tanh', 'relu', 'sigmoid', ...
    teacher_timeout: float = 10.0  # HTTP teacher: seconds per request (each failed request is retried twice)
    teacher_query_budget: int = 0  # HTTP teacher: most points ever sent (0 = no limit)
    data_file: str = ""  # a CSV / Parquet table (stored under DFKD_HOME) for the prior, validation and test
    target: str = ""  # data_file's target column
    nan_policy: str = "refuse"  # data_file rows with missing values: 'refuse' or 'drop'
    input_spec: str = ""  # a JSON input spec instead of data: strictly data-free (selection 'synthetic')
    # --- the comparison: every combination of these is one student, trained side by side
    samplers: tuple[str, ...] = ("direct",)  # registered sampler names
    alphas: tuple[str, ...] = ("decreasing",)  # α schedule specs: 'decreasing', '0', '1', 'constant:0.3', 'cosine', ...
    seeds: tuple[int, ...] = (0,)  # student seeds (init, sampling)
    # --- Algorithm 1
    epochs: int = 2000  # t_max (paper: 2000 tabular, 1000 MNIST)
    batch_size: int = 50  # m
    batches_per_epoch: int = 10  # n_s
    lr: float = 1e-3  # student RMSprop learning rate
    weight_decay: float = 1e-5  # student RMSprop weight decay (protein: 1e-6)
    student_loss: str = "mse"  # 'mse' or 'logcosh' (MNIST)
    # --- synthetic-data objective (eqs. 3, 5, 8, 9 are presets of these terms)
    objective: str = "eq5"  # 'eq3' (generator) / 'eq5' (direct) / 'eq8' (MNIST) / 'eq9' (protein) / 'custom'
    discrepancy: str = "mse"  # 'mse' or 'logcosh'
    epsilon: float = 1.0  # weight of the discrepancy term
    beta: float = 1e-5  # weight of the input-norm term
    input_norm: str = "l2sq"  # 'l2sq' (β‖x‖²) or 'l1' (β|x|)
    input_norm_scope: str = "sample"  # 'sample': β per point, as eqs. 3/5 read; 'batch': β per batch, as the paper's code
    gamma: float = 1e-5  # weight of the output term
    output_term: str = "student_sq"  # 'student_sq' (γ·S(x)²), 'teacher_to_random' (γ·(T(x)−y_rand)²), 'none'
    y_rand: str = "none"  # 'none', 'digits' (integers 0-9), 'unit' (uniform [0, 1])
    # --- direct sampler (Algorithm 2)
    direct_optimizer: str = "rmsprop"  # fresh optimizer per batch: 'rmsprop', 'adam' or 'sgd'
    direct_lr: float = 0.1  # η (paper: 0.1 tabular, 1e-3 MNIST)
    direct_steps: int = 2  # τ_max (paper: 2 tabular, 20 MNIST)
    # --- generator sampler (Kang & Kang)
    generator_z_dim: int = 50
    generator_hidden: int = 500
    generator_lr: float = 1e-3  # generator RMSprop learning rate
    generator_steps: int = 1  # generator updates per epoch, before its n_s student batches (paper: 1 tabular, 20 MNIST)
    generator_weight_decay: float = 1e-5  # generator RMSprop weight decay (the paper's code: 1e-5)
    # --- evolution sampler (black-box teachers)
    de_strategy: str = "best2bin"
    de_generations: int = 25
    de_mutation: float = 0.5
    de_recombination: float = 0.7
    # --- evaluation and output
    eval_every: int = 1  # validate every k epochs
    snapshot_epochs: tuple[int, ...] = (0, 50, 100, 500)  # plus the last epoch
    selection: str = "validation"  # 'validation' (paper), 'last' or 'synthetic' (strictly data-free)
    device: str = "auto"  # 'auto', 'cpu', 'cuda'
    engine: str = "auto"  # 'auto' (batched where possible), 'batched', 'reference'
    preset: str = ""  # name of the preset this config started from ('' = none)

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
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"Unknown configuration key(s): {', '.join(unknown)}. Known keys: {', '.join(names)}.")
        kwargs = {k: _coerce(names[k], v) for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "DistillConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The configuration must be a JSON object. Got invalid JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"The configuration must be a JSON object. Got {type(data).__name__} instead.")
        return cls.from_dict(data)

    def to_query(self) -> dict[str, str]:
        """Fields that differ from the defaults, as strings, for a URL: tuples joined with ',',
        or with ';' when an item holds a comma (a custom α spec 'custom:0:1,1000:0')."""
        default = DistillConfig()
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                if isinstance(value, tuple):
                    items = [str(v) for v in value]
                    out[f.name] = (";" if any("," in i for i in items) else ",").join(items)
                else:
                    out[f.name] = str(value)
        return out

    @classmethod
    def from_query(cls, query: dict[str, str]) -> "DistillConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls.from_dict({k: v for k, v in query.items() if k in names})

    def validate(self) -> "DistillConfig":
        """Check every value; raise ConfigError saying what was expected and what came in."""
        _check_int(self, "epochs", 1, 1_000_000)
        _check_int(self, "batch_size", 1, 100_000)
        _check_int(self, "batches_per_epoch", 1, 10_000)
        _check_int(self, "student_hidden", 1, 100_000)
        _check_int(self, "direct_steps", 0, 10_000)
        _check_int(self, "generator_steps", 0, 10_000)
        _check_int(self, "generator_z_dim", 1, 100_000)
        _check_int(self, "generator_hidden", 1, 100_000)
        _check_int(self, "de_generations", 0, 100_000)
        _check_int(self, "eval_every", 1, 1_000_000)
        for name in ("lr", "direct_lr", "generator_lr"):
            _check_float(self, name, 0.0, 10.0, open_low=True)
        for name in ("weight_decay", "generator_weight_decay", "beta", "gamma", "epsilon"):
            _check_float(self, name, 0.0, 1e6)
        _check_float(self, "de_mutation", 0.0, 2.0)
        _check_float(self, "de_recombination", 0.0, 1.0)
        _check_choice(self, "student_loss", ("mse", "logcosh"))
        _check_choice(self, "discrepancy", ("mse", "logcosh"))
        _check_choice(self, "input_norm", ("l2sq", "l1"))
        _check_choice(self, "input_norm_scope", ("sample", "batch"))
        _check_choice(self, "output_term", ("student_sq", "teacher_to_random", "none"))
        _check_choice(self, "y_rand", ("none", "digits", "unit"))
        _check_choice(self, "direct_optimizer", ("rmsprop", "adam", "sgd"))
        _check_choice(self, "selection", ("validation", "last", "synthetic"))
        _check_choice(self, "engine", ("auto", "batched", "reference"))
        _check_choice(self, "objective", ("eq3", "eq5", "eq8", "eq9", "custom"))
        for name in ("samplers", "alphas", "seeds"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value:
                raise ConfigError(f"The {name!r} parameter must be a non-empty list. Got {value!r} instead.")
        if len(self.members()) > 1000:
            raise ConfigError(f"A comparison may hold at most 1000 students. Got {len(self.members())} instead.")
        if any(not isinstance(e, int) or e < 0 for e in self.snapshot_epochs):
            raise ConfigError(f"The 'snapshot_epochs' parameter must be non-negative integers. Got {self.snapshot_epochs!r} instead.")
        # names that live in registries are checked where they are looked up (samplers, schedules, datasets)
        from .schedules import parse_alpha
        from .samplers import SAMPLERS

        for alpha in self.alphas:
            parse_alpha(alpha)
        for sampler in self.samplers:
            SAMPLERS.get(sampler)
        from .user_models import validate_user_fields

        validate_user_fields(self)
        return self


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Turn JSON / query-string values into the field's type (lists → tuples, '1,2' → (1, 2),
    'a;b,c' → ('a', 'b,c'): a string holding ';' is split there only, as to_query writes it)."""
    default = f.default
    try:
        if isinstance(default, tuple):
            items = value.split(";" if ";" in value else ",") if isinstance(value, str) else list(value)
            items = [i.strip() if isinstance(i, str) else i for i in items if not (isinstance(i, str) and not i.strip())]
            if f.name in ("seeds", "snapshot_epochs"):
                return tuple(int(i) for i in items)
            return tuple(str(i) for i in items)
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"The {f.name!r} parameter must be of type {type(default).__name__}. Got {value!r} instead.") from None


def _check_int(cfg: DistillConfig, name: str, low: int, high: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"The {name!r} parameter must be an int in [{low}, {high}]. Got {value!r} instead.")


def _check_float(cfg: DistillConfig, name: str, low: float, high: float, open_low: bool = False) -> None:
    value = getattr(cfg, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low < value if open_low else low <= value) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ConfigError(f"The {name!r} parameter must be a float in {bracket}{low:g}, {high:g}]. Got {value!r} instead.")


def _check_choice(cfg: DistillConfig, name: str, choices: Iterable[str]) -> None:
    value = getattr(cfg, name)
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"The {name!r} parameter must be one of {', '.join(map(repr, choices))}. Got {value!r} instead.")


# The paper's experiments as overrides of the defaults above.
PRESETS: dict[str, dict[str, Any]] = {
    # Tables 3-4 (sections 3.4, 4.1): MLP teacher 500, students 25/50, eq. 5, direct RMSprop lr 0.1 × 2 steps;
    # where the text is silent or differs from the paper's code (zhoutianxun/data_free_KD_regression,
    # run_experiment.py and trainer.py), as the code does: one generator update per epoch, generator weight
    # decay 1e-5, β per batch (input_norm_scope 'batch'; eqs. 3 and 5 read β per point)
    "paper-tabular": dict(
        epochs=2000, batch_size=50, batches_per_epoch=10, lr=1e-3, weight_decay=1e-5, student_loss="mse",
        objective="eq5", discrepancy="mse", epsilon=1.0, beta=1e-5, input_norm="l2sq", gamma=1e-5,
        output_term="student_sq", y_rand="none", direct_optimizer="rmsprop", direct_lr=0.1, direct_steps=2,
        generator_steps=1, generator_weight_decay=1e-5, input_norm_scope="batch", selection="validation",
    ),
    # Table 5 (sections 3.5, 4.3): CNN f=10 → f=5, log-cosh, eq. 8 with β 1e-6, γ 1, ε 1e-6,
    # direct RMSprop lr 1e-3 × 20 steps, 20 generator rounds per epoch, 1000 epochs, MAE
    "paper-mnist": dict(
        epochs=1000, batch_size=50, batches_per_epoch=10, lr=1e-3, weight_decay=1e-5, student_loss="logcosh",
        objective="eq8", discrepancy="logcosh", epsilon=1e-6, beta=1e-6, input_norm="l1", gamma=1.0,
        output_term="teacher_to_random", y_rand="digits", direct_optimizer="rmsprop", direct_lr=1e-3,
        direct_steps=20, generator_steps=20, selection="validation",
    ),
    # Table 6 (sections 3.6, 4.4): SVR teacher, RBF student (100 units), eq. 9 with ε 0.05,
    # DE best2bin 25 generations, weight decay 1e-6, decreasing α. The paper gives no epoch
    # count for this case study; 500 epochs is where our runs level off.
    "paper-protein": dict(
        epochs=500, batch_size=50, batches_per_epoch=10, lr=1e-3, weight_decay=1e-6, student_loss="mse",
        objective="eq9", discrepancy="mse", epsilon=0.05, beta=0.0, input_norm="l2sq", gamma=0.95,
        output_term="teacher_to_random", y_rand="unit", de_strategy="best2bin", de_generations=25,
        alphas=("decreasing",), selection="validation",
    ),
}


def preset_config(name: str, **overrides: Any) -> DistillConfig:
    """A config from a named preset plus overrides (unknown preset → ConfigError)."""
    if name not in PRESETS:
        raise ConfigError(f"The 'preset' parameter must be one of {', '.join(map(repr, PRESETS))}. Got {name!r} instead.")
    return DistillConfig(**{**PRESETS[name], "preset": name, **overrides})

"""A user's run, in one place for the CLI and the page: what the user gives (a teacher file or URL,
a data table or an input spec, the target, the teacher's units and activation) checked, stored
once under DFKD_HOME, and turned into a configuration; then, when the run starts, the split and
the teacher in the units that fit it ('auto' scores both on the validation rows), and how many
queries an HTTP teacher will be asked."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data.split import Split
from .data.user import (NAN_POLICIES, USER_DATASET, original_name, read_input_spec, read_table, spec_prior, spec_scaling,
                        spec_split, store_user_file, table_columns_of, table_split)
from .errors import ConfigError, DfkdError, ModelError
from .events import RunNote
from .models.teachers import Teacher, TeacherInfo, evaluate
from .models import sandbox
from .models.user_models import (ACTIVATIONS, PROBE_SIZE, check_input_count, check_model_file, check_teacher,
                                 gradient_samplers_refused, load_user_model, raw_teacher_function, teacher_scaling, teacher_source_kind,
                                 user_teacher_for, wrap_user_model)

CLEARLY_BETTER = 0.5  # 'auto' takes the units whose validation RMSE is below half the other's
UNITS_CAUSES = ("the teacher's units (--teacher-units raw or standardized: was it trained on standardized inputs "
                "and targets?)", "its hidden activation (--teacher-activation)",
                "the column order (the data's feature columns must come in the order the teacher takes them)")


def uses_user_inputs(cfg) -> bool:
    return bool(cfg.teacher_file or cfg.data_file or cfg.input_spec)


# ---------------------------------------------------------------- the configuration's user fields
def validate_user_fields(cfg) -> None:
    """DistillConfig.validate's check of the user-input fields (teacher_file ... input_spec)."""
    if cfg.nan_policy not in NAN_POLICIES:
        raise ConfigError(f"The 'nan_policy' parameter must be one of {', '.join(map(repr, NAN_POLICIES))}. Got {cfg.nan_policy!r} instead.")
    if cfg.teacher_activation and cfg.teacher_activation not in ACTIVATIONS:
        raise ConfigError(f"The 'teacher_activation' parameter must be one of {', '.join(map(repr, ACTIVATIONS))}. "
                          f"Got {cfg.teacher_activation!r} instead.")
    timeout = cfg.teacher_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise ConfigError(f"The 'teacher_timeout' parameter must be a float in (0, 600] seconds. Got {timeout!r} instead.")
    budget = cfg.teacher_query_budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"The 'teacher_query_budget' parameter must be an int >= 0 (0: no limit). Got {budget!r} instead.")
    if cfg.data_file and cfg.input_spec:
        raise ConfigError("Give either the 'data_file' parameter or the 'input_spec' parameter, not both. "
                          f"Got {cfg.data_file!r} and {cfg.input_spec!r}.")
    if (cfg.data_file or cfg.input_spec) and cfg.dataset != USER_DATASET:
        raise ConfigError(f"The 'dataset' parameter must be {USER_DATASET!r} for a run on your own data or input spec. "
                          f"Got {cfg.dataset!r} instead.")
    if cfg.dataset == USER_DATASET and not (cfg.data_file or cfg.input_spec):
        raise ConfigError(f"The {USER_DATASET!r} dataset needs the 'data_file' or the 'input_spec' parameter. Got neither.")
    if cfg.data_file and not cfg.target:
        raise ConfigError(f"The 'target' parameter must name the target column of {original_name(cfg.data_file)!r}. Got nothing.")
    if cfg.input_spec:
        if not cfg.teacher_file:
            raise ConfigError("The 'teacher_file' parameter is needed with an input spec: with no data, no teacher can be trained here.")
        if cfg.selection == "validation":
            raise ConfigError("With an input spec there is no real data to validate on: the 'selection' parameter must be "
                              "'synthetic' or 'last'. Got 'validation' instead.")
    if isinstance(cfg.teacher_file, str) and cfg.teacher_file.startswith(("http://", "https://")):
        from .models.http_teacher import check_endpoint

        check_endpoint(cfg.teacher_file)  # an endpoint off the allowed hosts is refused before any request
    if cfg.teacher_file and (cfg.teacher_file.startswith(("http://", "https://")) or Path(cfg.teacher_file).is_file()):
        from .synth.samplers import SAMPLERS
        from .synth.schedules import parse_alpha

        if any(parse_alpha(a).constant != 0.0 for a in cfg.alphas):  # α = 0 never calls the sampler
            gradient_samplers_refused(teacher_source_kind(cfg.teacher_file), cfg.samplers,
                                      lambda s: SAMPLERS.get(s).needs_gradients)


# ---------------------------------------------------------------- the user's files: checked, then kept
def check_user_files(cfg) -> None:
    """Open every file the user gave as the run will (the teacher loaded, never unpickled; the
    table's header and target; the spec parsed) so that a refused file is never stored."""
    if cfg.teacher_file and not cfg.teacher_file.startswith(("http://", "https://")):
        if not Path(cfg.teacher_file).expanduser().is_file():
            raise ModelError(f"The teacher file {cfg.teacher_file!r} does not exist.")
        # loaded and gated in a confined checker process: a TorchScript file runs code while it loads
        check_model_file(Path(cfg.teacher_file).expanduser(), activation=cfg.teacher_activation)
    if cfg.data_file:
        columns = table_columns_of(Path(cfg.data_file).expanduser())
        if cfg.target and cfg.target not in columns:
            from .data.user import columns_text

            raise ConfigError(f"The 'target' parameter (--target) must be a column of {original_name(cfg.data_file)!r} "
                              f"({columns_text(columns)}). Got {cfg.target!r} instead.")
    if cfg.input_spec:
        read_input_spec(Path(cfg.input_spec).expanduser())


def store_user_inputs(cfg):
    """The config with its teacher / data / spec files checked (check_user_files) and then copied
    under DFKD_HOME/user_files (content-addressed, each once) and pointing there, so workers and
    later sessions find them. A config whose files are all in the store already (a worker starting a
    submitted run) is returned as it is: its files were checked when they were kept."""
    from .data.user import user_files_dir

    folder = user_files_dir().resolve()
    files = [f for f in (cfg.teacher_file, cfg.data_file, cfg.input_spec) if f and not f.startswith(("http://", "https://"))]
    if all(Path(f).expanduser().resolve().parent == folder for f in files):
        return cfg
    check_user_files(cfg)
    changes = {}
    if cfg.teacher_file and not cfg.teacher_file.startswith(("http://", "https://")):
        changes["teacher_file"] = store_user_file(cfg.teacher_file, "teacher")
    if cfg.data_file:
        changes["data_file"] = store_user_file(cfg.data_file, "data")
    if cfg.input_spec:
        changes["input_spec"] = store_user_file(cfg.input_spec, "input spec")
    changes = {k: v for k, v in changes.items() if v != getattr(cfg, k)}
    return cfg.replace(**changes) if changes else cfg


def store_upload(name: str, data: bytes, role: str, referenced=None) -> str:
    """An uploaded file checked, then stored under DFKD_HOME/user_files (content-addressed, its name
    kept) within DFKD_MAX_UPLOAD_GB (data.user.store_upload_bytes; `referenced`: the files stored
    runs name, so old unused uploads can be swept first)."""
    import tempfile

    sandbox.exposed()  # an exposed server marks itself (DFKD_EXPOSED=1) for the workers it will start
    if not data:
        raise ModelError(f"The uploaded {role} file {name!r} is empty.")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(data)
        if role == "teacher":  # checked (in a confined checker, never here) before it is kept
            check_model_file(path, activation="identity")
        elif role == "data":
            table_columns_of(path)  # readable, with a header row
        elif role == "input spec":
            read_input_spec(path)
    from .data.user import store_upload_bytes

    return store_upload_bytes(name, data, role, referenced=referenced)


def user_run_config(base, *, teacher_file: str = "", teacher_activation: str = "", teacher_units: str = "auto",
                    data_file: str = "", target: str = "", nan_policy: str = "refuse", input_spec: str = "",
                    teacher_timeout: float | None = None, teacher_query_budget: int | None = None):
    """The user's inputs on top of `base` (the form's or the flags' config): dataset 'user', the
    data-free 'synthetic' selection with an input spec, validated once."""
    changes = dict(dataset=USER_DATASET, teacher_file=teacher_file, teacher_activation=teacher_activation,
                   teacher_units=teacher_units, data_file=data_file, target=target, nan_policy=nan_policy,
                   input_spec=input_spec)
    if teacher_timeout is not None:
        changes["teacher_timeout"] = teacher_timeout
    if teacher_query_budget is not None:
        changes["teacher_query_budget"] = teacher_query_budget
    if input_spec and base.selection == "validation":
        changes["selection"] = "synthetic"
    if not (data_file or input_spec):
        raise ConfigError("Upload a data file (CSV or Parquet) or give an input spec. Got neither.")
    return base.replace(**changes).validate()


# ---------------------------------------------------------------- the teacher's units
@dataclass(frozen=True)
class UnitsChoice:
    """Which units the teacher gets, and why: its validation RMSE (standardized target) each way
    it was scored, beside predicting the training rows' mean."""

    units: str  # 'raw' or 'standardized'
    requested: str  # 'auto', 'raw' or 'standardized'
    rmse: dict  # units → validation RMSE (standardized target units); inf where its answers were not finite
    mean_rmse: float  # predicting the mean of the training targets
    warning: str = ""

    def line(self) -> str:
        """'teacher units: standardized (chosen by auto: validation RMSE 0.152 standardized, 4.51 raw; the mean 1.00)'."""
        scores = ", ".join(f"{_num(v)} {k}" for k, v in self.rmse.items())
        how = "chosen by auto" if self.requested == "auto" else "as asked"
        return f"teacher units: {self.units} ({how}; validation RMSE {scores}; predicting the mean {_num(self.mean_rmse)})"

    def card(self) -> dict:
        return {"units": self.units, "requested": self.requested, "validation_rmse": dict(self.rmse),
                "mean_validation_rmse": self.mean_rmse, "warning": self.warning}


def _num(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "not finite"


def choose_units(kind: str, model, split: Split, requested: str, label: str,
                 device: torch.device | str = "cpu") -> UnitsChoice:
    """'raw' or 'standardized' for the user's model on this split. With real validation rows,
    'auto' scores both ways — raw: teacher(x) against y; standardized: teacher((x − μ)/σ)·σ_y + μ_y
    against y — and takes standardized only when it is clearly right (RMSE below half the raw one's
    and below the mean's); an asked-for unit is scored alone. No validation rows (an input spec):
    the asked-for unit, 'raw' for 'auto'. Either way a unit that does no better than predicting the
    mean gets a warning naming the likely causes."""
    real = bool(split.extra.get("real_data", True))
    if not real:
        units = "raw" if requested == "auto" else requested
        return UnitsChoice(units, requested, {}, float("nan"))
    x_val, y_val = split.x_val.to(device), split.y_val.to(device)
    mean_rmse = float((split.y_val.double() - split.y_train.double().mean()).pow(2).mean().sqrt())
    candidates = ("raw", "standardized") if requested == "auto" else (requested,)
    rmse = {}
    for units in candidates:
        teacher = wrap_user_model(kind, model, split, *teacher_scaling(split, units))
        if isinstance(model, torch.nn.Module):
            teacher.module.to(device)
        try:
            with torch.no_grad():
                value, _ = evaluate(teacher.predict, x_val, y_val)
        except DfkdError:
            raise
        except Exception:  # noqa: BLE001 - a wrong input count ...: check_teacher says what went wrong, in one line
            check_teacher(teacher, x_val[:PROBE_SIZE], split.dim, label)
            raise
        rmse[units] = value if math.isfinite(value) else math.inf
    if requested == "auto":
        raw, std = rmse["raw"], rmse["standardized"]
        units = "standardized" if std < CLEARLY_BETTER * raw and std < mean_rmse else "raw"
    else:
        units = requested
    warning = ""
    if not rmse[units] < mean_rmse:
        warning = (f"the teacher {label} does no better than predicting the mean on the validation rows (RMSE "
                   f"{_num(rmse[units])} in {units} units; the mean {_num(mean_rmse)}). Likely causes: "
                   + "; ".join(UNITS_CAUSES) + ".")
    return UnitsChoice(units, requested, rmse, mean_rmse, warning)


# ---------------------------------------------------------------- the run's split and teacher
def prepare_user_run(cfg, device: torch.device, data_dir=None,
                     teacher_progress: Callable[[int, float], None] | None = None) -> tuple[Split, Teacher, TeacherInfo]:
    """The split and the teacher of a run on the user's teacher and/or data: a table split by
    the paper's protocol (or a registered dataset's split), or a data-free split of the input spec
    labelled by the teacher; the product's own teacher is trained on the user's table when no
    teacher file is given. The teacher's units (cfg.teacher_units) are settled here and said in
    the split's note and the teacher's info (extra['units']). The data-trained reference student
    is trained after the run's students (reference_after_training)."""
    from .data import load_split
    from .models.teachers import get_teacher

    options = dict(activation=cfg.teacher_activation, timeout=cfg.teacher_timeout, query_budget=cfg.teacher_query_budget)
    label = repr(original_name(cfg.teacher_file)) if cfg.teacher_file and not cfg.teacher_file.startswith(("http://", "https://")) \
        else str(cfg.teacher_file)
    if cfg.input_spec:
        spec = read_input_spec(cfg.input_spec)
        kind, model = load_user_model(cfg.teacher_file, **options)
        check_input_count(model, len(spec.features), cfg.teacher_file, "the input spec has")
        units = "raw" if cfg.teacher_units == "auto" else cfg.teacher_units
        x_mean, x_std = spec_scaling(spec)
        probe_split = spec_split_probe(spec)
        xm, xs = (x_mean, x_std) if units == "raw" else (np.zeros(len(x_mean)), np.ones(len(x_std)))
        check_teacher(wrap_user_model(kind, model, probe_split, xm, xs, 0.0, 1.0), probe_split.x_val, len(spec.features), label)
        raw_fn = raw_teacher_function(kind, model)
        label_fn = raw_fn if units == "raw" else (lambda x: raw_fn((np.asarray(x) - x_mean) / x_std))
        split = spec_split(spec, label_fn, cfg.split_seed, name=f"{USER_DATASET}-{Path(cfg.input_spec).stem}")
        teacher, info = user_teacher_for(kind, model, split, cfg.teacher_file, device, units=units)
        info.extra["units_choice"] = UnitsChoice(units, cfg.teacher_units, {}, float("nan")).card()
        return _with_note(split, f"teacher units: {units}"), teacher, info
    if cfg.data_file:
        table = read_table(cfg.data_file, cfg.target, cfg.nan_policy)
        split = table_split(table, cfg.split_seed, name=f"{USER_DATASET}-{Path(cfg.data_file).stem}")
    else:
        split = load_split(cfg.dataset, seed=cfg.split_seed, data_dir=data_dir)
    if cfg.teacher_file:
        import time

        start = time.perf_counter()
        kind, model = load_user_model(cfg.teacher_file, **options)
        check_input_count(model, split.dim, cfg.teacher_file)
        choice = choose_units(kind, model, split, cfg.teacher_units, label, device)
        teacher, info = user_teacher_for(kind, model, split, cfg.teacher_file, device, units=choice.units)
        info.seconds = time.perf_counter() - start
        info.extra["units_choice"] = choice.card()
        note = choice.line() + (f"; warning: {choice.warning}" if choice.warning else "")
        return _with_note(split, note), teacher, info
    teacher, info = get_teacher(split, cfg.teacher, device, progress=teacher_progress)
    return split, teacher, info


REFERENCE_MAX_EPOCHS = 2000  # the paper's run length: a longer run's reference stops here


def wants_reference(cfg, split: Split) -> bool:
    """A run of the user's teacher on the user's rows: what going data-free cost is measured."""
    return bool(cfg.teacher_file and split.extra.get("real_data") and split.kind == "tabular")


def reference_after_training(run) -> Callable[[Callable[[], bool] | None], RunNote | None]:
    """The engine loop's after-training step of a run on the user's rows (RunContext.after_training):
    train the reference student (reference_student) once the run's students are trained, keep it in
    the teacher's info (extra['reference']: the CLI's JSON rows and model card read it) and return the
    note line for the stored run; None when the run is stopped meanwhile."""
    def train(should_stop: Callable[[], bool] | None = None) -> RunNote | None:
        reference = reference_student(run.cfg, run.split, run.device, should_stop)
        if reference is None:
            return None
        run.teacher_info.extra["reference"] = reference
        return RunNote(f"data-trained reference student: test RMSE {reference['test_rmse']:.4f}")

    return train


def reference_student(cfg, split: Split, device: torch.device | str = "cpu",
                      should_stop: Callable[[], bool] | None = None) -> dict | None:
    """What going data-free cost: the run's student (same architecture, init seed, optimizer and
    epochs × n_s steps of 2m points, at most REFERENCE_MAX_EPOCHS epochs) trained on the real
    training rows' labels instead of the teacher's on synthetic points, picked by validation RMSE as
    the paper picks; its validation and test RMSE (standardized target) and the epoch picked. None
    when `should_stop` says so (checked every epoch)."""
    from .models.teachers import build_model, default_student_arch

    arch = default_student_arch(split, cfg.student_hidden) if cfg.student == "auto" else cfg.student
    seed = cfg.seeds[0] if cfg.seeds else 0
    torch.manual_seed(seed)
    student = build_model(arch, split, torch.Generator().manual_seed(seed)).to(device)
    opt = torch.optim.RMSprop(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x, y = split.x_train.to(device), split.y_train.to(device)
    x_val, y_val = split.x_val.to(device), split.y_val.to(device)
    rows = torch.Generator().manual_seed(seed + 1)
    best = (math.inf, -1, None)
    epochs = min(cfg.epochs, REFERENCE_MAX_EPOCHS)
    for epoch in range(epochs):
        if should_stop is not None and should_stop():
            return None
        student.train()
        for _ in range(cfg.batches_per_epoch):
            pick = torch.randint(len(x), (2 * cfg.batch_size,), generator=rows).to(device)
            opt.zero_grad(set_to_none=True)
            loss = (student(x[pick]).reshape(-1) - y[pick]).pow(2).mean()
            loss.backward()
            opt.step()
        if epoch % cfg.eval_every == 0 or epoch == epochs - 1:
            student.eval()
            with torch.no_grad():
                val, _ = evaluate(lambda z: student(z).reshape(-1), x_val, y_val)
            if val < best[0]:
                best = (val, epoch, {k: v.detach().clone() for k, v in student.state_dict().items()})
    student.load_state_dict(best[2])
    student.eval()
    with torch.no_grad():
        test, test_mae = evaluate(lambda z: student(z).reshape(-1), split.x_test.to(device), split.y_test.to(device))
    return {"val_rmse": best[0], "test_rmse": test, "test_mae": test_mae, "best_epoch": best[1], "epochs": epochs,
            "note": "the same student trained on the real labels of the training rows (same split, epochs and steps"
                    + (f"; {epochs} of the run's {cfg.epochs} epochs)" if epochs < cfg.epochs else ")")}


def _with_note(split: Split, text: str) -> Split:
    return dataclasses.replace(split, note="; ".join(t for t in (split.note, text) if t))


def spec_split_probe(spec) -> Split:
    """A few prior points of the spec as a Split (only to probe the teacher before labelling)."""
    prior = spec_prior(spec)
    z = prior.sample(PROBE_SIZE, torch.Generator().manual_seed(5))
    return Split("probe", "tabular", z, torch.zeros(len(z)), z, torch.zeros(len(z)), z, torch.zeros(len(z)), prior)


def units_choice(info: TeacherInfo) -> dict:
    """The card of a run's units choice ({} for the product's own teacher)."""
    return dict(info.extra.get("units_choice") or {})


# ---------------------------------------------------------------- what an HTTP teacher will be asked
def query_plan(cfg, n_val: int, n_test: int) -> dict:
    """Points an HTTP teacher is sent by this run: before training (the probe, 'auto' scoring both
    units on the validation rows, the teacher's validation and test errors, the data-free selection's
    probe) and in training (per epoch and member: the synthetic batch's labels, and for 'evolution'
    its population at every generation). Exact for the registered samplers (evolution runs all its
    generations)."""
    from .synth.schedules import SYNTHETIC_PROBE_SIZE, batch_sizes, parse_alpha

    scoring = n_val * (2 if cfg.teacher_units == "auto" and cfg.data_file else 1 if cfg.data_file else 0)
    before = PROBE_SIZE + scoring + n_val + n_test + SYNTHETIC_PROBE_SIZE
    per_epoch = 0
    for member in cfg.members():
        m_g, m_p = batch_sizes(parse_alpha(member.alpha), cfg.batch_size)
        searched = m_g * (cfg.de_generations + 1) if member.sampler == "evolution" and m_g else 0
        per_epoch += cfg.batches_per_epoch * (m_g + m_p + searched)
    total = before + per_epoch * cfg.epochs
    budget = int(cfg.teacher_query_budget or 0)
    plan = {"before_training": before, "per_epoch": per_epoch, "total": total, "budget": budget}
    if budget and total > budget:
        plan["epochs_within_budget"] = max(0, (budget - before) // per_epoch) if per_epoch else cfg.epochs
    return plan


def query_plan_line(plan: dict) -> str:
    """'the HTTP teacher will be sent 1 416 points (1 256 before training, 80 per epoch)...'."""
    def n(value: int) -> str:
        return f"{value:,}".replace(",", " ")

    text = (f"the HTTP teacher will be sent {n(plan['total'])} points ({n(plan['before_training'])} before training, "
            f"{n(plan['per_epoch'])} per epoch)")
    if plan["budget"] and "epochs_within_budget" in plan:
        text += (f"; its budget of {n(plan['budget'])} runs out after about {plan['epochs_within_budget']} epochs: the run "
                 "will end 'interrupted' there, its best student kept")
    elif plan["budget"]:
        text += f"; within its budget of {n(plan['budget'])}"
    return text


def http_query_plan(cfg) -> dict | None:
    """query_plan of a configuration with an HTTP teacher (None for other teachers), with the
    split's validation and test sizes read from the data (or the spec's fixed sizes)."""
    if not str(cfg.teacher_file).startswith(("http://", "https://")):
        return None
    from .data.protocol import split_sizes, train_size
    from .data.user import SPEC_SPLIT

    if cfg.input_spec:
        n_val, n_test = SPEC_SPLIT[1], SPEC_SPLIT[2]
    elif cfg.data_file:
        rows = len(read_table(cfg.data_file, cfg.target, cfg.nan_policy).y)
        _, n_val, n_test = split_sizes(rows, train_size(rows, None))
    else:
        return None
    return query_plan(cfg, n_val, n_test)


def page_query_plan(base, url: str, data_file: str, target: str, units: str, budget: int, spec: bool = False) -> str:
    """The page's line, before the start, of what a run on an HTTP teacher will send it ('' when
    it cannot be said yet: no data or target chosen)."""
    if not url.strip() or (not spec and not (data_file and target)):
        return ""
    try:
        cfg = base.replace(dataset=USER_DATASET, teacher_file=url.strip(), data_file=data_file, target=target,
                           teacher_units=units, teacher_query_budget=int(budget),
                           input_spec="spec" if spec else "")
        if spec:
            from .data.user import SPEC_SPLIT

            return query_plan_line(query_plan(cfg, SPEC_SPLIT[1], SPEC_SPLIT[2]))
        plan = http_query_plan(cfg)
    except (DfkdError, TypeError, ValueError):
        return ""
    return query_plan_line(plan) if plan else ""


def note_parts(note: str) -> tuple[str, str]:
    """A run's note split into what it says and its warning (prepare_user_run writes '; warning: ...')."""
    text, _, warning = (note or "").partition("; warning: ")
    return text, warning

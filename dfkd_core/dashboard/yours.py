""""Your model" on the Distill page, without Streamlit: the user's uploads (a teacher file or an
endpoint URL, a data table or an input spec, filled in as a table or uploaded) stored under
DFKD_HOME and turned into a run's config; and a stored run's own inputs reused by its run id
("Open on Distill" of a your-model run: the URL names the run, never a file on the server)."""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pandas as pd

from ..config import DistillConfig
from ..errors import DfkdError
from .forms import USER_FIELDS
from .views import store, submit

SPEC_ROWS_WITHOUT_TEACHER = 2  # the spec table's rows when the teacher does not say how many inputs it takes
SPEC_COLUMNS = ("name", "mean", "std", "min", "max")


def activation_names() -> list[str]:
    """The hidden activations a state_dict teacher can name (the file holds weights only)."""
    from ..models.user_models import ACTIVATIONS

    return list(ACTIVATIONS)


def spec_constraints() -> tuple[str, ...]:
    from ..data.user import SPEC_CONSTRAINTS

    return tuple(SPEC_CONSTRAINTS)


def gradient_free_reason() -> str:
    from ..models.user_models import GRADIENT_FREE_REASON

    return GRADIENT_FREE_REASON


def teacher_unit_names() -> tuple[str, ...]:
    """What a teacher can take and return: 'auto', 'raw', 'standardized' (userrun.choose_units)."""
    from ..models.user_models import TEACHER_UNITS

    return tuple(TEACHER_UNITS)


def query_plan_caption(base: DistillConfig, url: str, data: tuple[str, bytes] | None, target: str, units: str,
                       budget: int) -> str:
    """Before the start: how many points a run on the endpoint `url` will send it ('' when it
    cannot be said yet)."""
    from ..userrun import page_query_plan

    try:
        data_file = store_upload(*data, "data") if data is not None else ""
    except DfkdError:
        return ""
    return page_query_plan(base, url, data_file, target, units, budget, spec=data is None)


def note_parts(note: str) -> tuple[str, str]:
    """A run's note and its warning apart (a teacher no better than the mean is warned about)."""
    from ..userrun import note_parts as parts

    return parts(note)


def store_upload(name: str, data: bytes, role: str) -> str:
    """An uploaded file checked, then stored under DFKD_HOME/user_files (content-addressed): its stored path."""
    from ..userrun import store_upload as stored

    return stored(name, data, role)


def table_columns(name: str, data: bytes) -> list[str]:
    """The header of an uploaded CSV / Parquet table (the target picker's options)."""
    from ..models.user_models import table_columns as columns

    return columns(store_upload(name, data, "data"))


def teacher_inputs(name: str, data: bytes, activation: str = "") -> int | None:
    """How many inputs an uploaded teacher takes, when its file says so; else None."""
    from ..models.user_models import teacher_input_dim

    try:
        return teacher_input_dim(store_upload(name, data, "teacher"), activation)
    except DfkdError:
        return None


def spec_table_rows(teacher: tuple[str, bytes] | None = None, activation: str = "") -> pd.DataFrame:
    """The input-spec table's starting rows: one per input of the uploaded teacher (name, bytes)
    when its file states its input size, else SPEC_ROWS_WITHOUT_TEACHER; mean 0, std 1."""
    n = (teacher_inputs(*teacher, activation) if teacher is not None else None) or SPEC_ROWS_WITHOUT_TEACHER
    return pd.DataFrame({"name": [f"x{i + 1}" for i in range(n)], "mean": [0.0] * n, "std": [1.0] * n,
                         "min": [None] * n, "max": [None] * n}).astype({"min": "float64", "max": "float64"})


def upload_run_config(base: DistillConfig, *, teacher: tuple[str, bytes] | None = None, url: str = "",
                      activation: str = "", units: str = "auto", data: tuple[str, bytes] | None = None, target: str = "",
                      nan_policy: str = "refuse", spec: tuple[str, bytes] | None = None,
                      spec_rows: Sequence[Mapping[str, Any]] | None = None, constraint: str = "none",
                      timeout: float = 10.0, budget: int = 0) -> DistillConfig:
    """The form's settings (`base`) as a run on the user's teacher (a file or an endpoint URL) and
    data (a table) or input spec (an uploaded JSON or the table's rows), every file stored under
    DFKD_HOME. Raises DfkdError with one line for the page."""
    from ..data.user import spec_from_rows
    from ..models.user_models import teacher_endpoint
    from ..userrun import user_run_config

    url = (url or "").strip()
    if teacher is None and not url:
        raise DfkdError("Upload your teacher file or give the URL of its endpoint first.")
    teacher_file = teacher_endpoint(url) if url else store_upload(*teacher, "teacher")
    input_spec = ""
    if data is None and spec_rows is not None:
        spec_json = json.dumps(spec_from_rows(list(spec_rows), constraint), indent=1)
        input_spec = store_upload("input_spec_table.json", spec_json.encode(), "input spec")
    elif data is None and spec is not None:
        input_spec = store_upload(*spec, "input spec")
    return user_run_config(base, teacher_file=teacher_file, teacher_activation=activation or "", teacher_units=units or "auto",
                           data_file=store_upload(*data, "data") if data is not None else "", target=target or "",
                           nan_policy=nan_policy, input_spec=input_spec, teacher_timeout=float(timeout),
                           teacher_query_budget=int(budget))


def user_inputs(run_id: str | None) -> dict[str, Any] | None:
    """The "Your model" fields (USER_FIELDS) of a stored run on the user's own teacher, data or spec;
    None for a run on a registered dataset, or one no longer stored."""
    if not run_id:
        return None
    try:
        cfg = store().get_run(run_id).config
    except DfkdError:
        return None
    if cfg is None or not (cfg.data_file or cfg.input_spec):
        return None
    return {name: getattr(cfg, name) for name in USER_FIELDS}


def user_inputs_note(run_id: str) -> str:
    """'the teacher 'model.pt' and the input spec 'spec.json' of run X', in the files' own names."""
    from ..data.user import original_name

    inputs = user_inputs(run_id) or {}
    teacher = inputs.get("teacher_file", "")
    parts = [f"the teacher {teacher!r}" if teacher.startswith(("http://", "https://"))
             else f"the teacher {original_name(teacher)!r}" if teacher else "the product's own teacher"]
    if inputs.get("data_file"):
        parts.append(f"the data {original_name(inputs['data_file'])!r} (target {inputs.get('target')!r})")
    if inputs.get("input_spec"):
        parts.append(f"the input spec {original_name(inputs['input_spec'])!r}")
    return " and ".join(parts) + f" of run {run_id}"


def submit_with_inputs_of(cfg: DistillConfig, run_id: str, title: str | None = None) -> str:
    """Start a run with the form's settings on the teacher and data (or spec) of the stored run
    `run_id` (its files, already under DFKD_HOME). ConfigError if that run has none."""
    from ..data.user import USER_DATASET
    from ..errors import ConfigError

    inputs = user_inputs(run_id)
    if inputs is None:
        raise ConfigError(f"The run {run_id!r} has no teacher or data of yours to reuse (deleted, or a run on a "
                          "registered dataset).")
    changes = dict(inputs, dataset=USER_DATASET)
    if inputs["input_spec"] and cfg.selection == "validation":
        changes["selection"] = "synthetic"  # a data-free run has no validation data to select on
    if title is None:
        title = store().get_run(run_id).title
    return submit(cfg.replace(**changes), title=title)


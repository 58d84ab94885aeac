"""Data the user brings, or none: a CSV / Parquet table with a target column split by the
paper's tabular protocol, or a strictly data-free input spec (names, per-feature mean/std or
min/max, clip or simplex constraint). Files are stored content-addressed under DFKD_HOME."""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import paths
from ..errors import DatasetError
from .priors import Prior
from .protocol import _partition, _t, split_sizes, standardize, train_size
from .split import Split

MAX_FILE_BYTES = 512 * 2**20  # a larger table is refused before it is read
MAX_ROWS = 2_000_000
MAX_FEATURES = 10_000
MIN_ROWS = 10  # fewer cannot be split into train / validation / test
NAN_POLICIES = ("refuse", "drop")
SPEC_CONSTRAINTS = ("none", "clip", "simplex")
SPEC_BOX_SIGMAS = 3.0  # a mean/std feature's box for the QMC samplers: mean ± 3σ
SPEC_SPLIT = (1000, 500, 2000)  # synthetic train / validation / test points of a data-free run
USER_DATASET = "user"  # DistillConfig.dataset of a run on the user's data or spec


@dataclass(frozen=True)
class UserTable:
    """A checked numeric table: X (n, d) and y (n,) as float64 in the file's units."""

    X: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    target: str
    source: str
    dropped_rows: int = 0
    constant_columns: tuple[str, ...] = ()
    rows: np.ndarray | None = None  # each table row's data-row index in the file (0-based; rows dropped for NaN skipped)


@dataclass(frozen=True)
class InputSpec:
    """Per-feature mean/std (and box) of the inputs in the teacher's units, and a constraint."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    constraint: str = "none"
    source: str = ""
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- stored with the run
def user_files_dir() -> Path:
    path = paths.home_dir() / "user_files"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_user_file(path: str | Path, role: str) -> str:
    """Copy a user's file under DFKD_HOME/user_files named by its sha256 (the same file is
    stored once), with a sidecar naming the original; returns the stored path. A file already
    in the store is returned as it is."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"The {role} file {str(path)!r} does not exist.")
    folder = user_files_dir()
    if path.resolve().parent == folder.resolve():
        return str(path.resolve())
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    target = folder / f"{sha[:20]}{''.join(path.suffixes[-1:]).lower()}"
    if not target.exists():
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
        meta = {"original": path.name, "role": role, "sha256": sha, "bytes": target.stat().st_size, "stored_at": time.time()}
        target.with_name(target.name + ".json").write_text(json.dumps(meta), encoding="utf-8")
    return str(target)


def list_user_files() -> list[dict]:
    """Every stored user file (teacher, data, spec) with its original name, newest first."""
    rows = []
    for meta_path in user_files_dir().glob("*.json"):
        stored = meta_path.with_suffix("")
        if not stored.exists():
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        rows.append({**meta, "path": str(stored)})
    return sorted(rows, key=lambda r: -float(r.get("stored_at", 0)))


def original_name(path: str | Path) -> str:
    """The name the user's file had before it was stored."""
    meta = Path(str(path) + ".json")
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("original", Path(path).name)
    except (OSError, json.JSONDecodeError):
        return Path(path).name


# ---------------------------------------------------------------- tables
def read_table(path: str | Path, target: str, nan_policy: str = "refuse") -> UserTable:
    """A CSV or Parquet file as a numeric table: every column numeric, the target present,
    missing values refused or their rows dropped, size limits kept, constant columns flagged."""
    import pandas as pd

    path = Path(path)
    name = original_name(path)
    if nan_policy not in NAN_POLICIES:
        raise DatasetError(f"The 'nan_policy' parameter must be one of {', '.join(map(repr, NAN_POLICIES))}. Got {nan_policy!r} instead.")
    if not path.is_file():
        raise DatasetError(f"The data file {str(path)!r} does not exist.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(f"The data file {name!r} must be at most {MAX_FILE_BYTES // 2**20} MiB. Got {size / 2**20:.0f} MiB.")
    if size == 0:
        raise DatasetError(f"The data file {name!r} is empty.")
    try:
        df = _read_frame(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
        text = str(exc).strip().splitlines()
        raise DatasetError(f"The data file {name!r} cannot be read as a table: {text[0] if text else type(exc).__name__}.") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise DatasetError(f"The data file {name!r} has no rows. It must have a header and at least {MIN_ROWS} rows.")
    df.columns = [str(c).strip() for c in df.columns]
    refuse_headerless(df.columns, name)
    if not target:
        raise DatasetError(f"The 'target' parameter (--target) must name a column of {name!r} ({_columns(df)}). Got nothing.")
    if target not in df.columns:
        raise DatasetError(f"The 'target' parameter (--target) must be a column of {name!r} ({_columns(df)}). Got {target!r} instead.")
    if df.columns.duplicated().any():
        raise DatasetError(f"The data file {name!r} has duplicate column names: {', '.join(sorted(set(df.columns[df.columns.duplicated()])))}.")
    if len(df) > MAX_ROWS or df.shape[1] - 1 > MAX_FEATURES:
        raise DatasetError(f"The data file {name!r} must have at most {MAX_ROWS} rows and {MAX_FEATURES} features. "
                           f"Got {len(df)} rows and {df.shape[1] - 1} features.")
    for col in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])):
            bad = df[col][pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()]
            example = f" ({bad.iloc[0]!r} in data row {int(bad.index[0]) + 1})" if len(bad) else ""
            raise DatasetError(f"Every column of {name!r} must be numeric. Got text in column {col!r}{example}.")
    values = df.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        row = int(np.where(np.isinf(values).any(axis=1))[0][0])
        raise DatasetError(f"The data file {name!r} must hold finite numbers. Got inf in data row {row + 1}.")
    missing = np.isnan(values).any(axis=1)
    dropped = 0
    rows = np.arange(len(values))
    if missing.any():
        if nan_policy == "refuse":
            raise DatasetError(f"The data file {name!r} has {int(missing.sum())} rows with missing values (first: data row "
                               f"{int(np.argmax(missing)) + 1}). Drop them (--nan drop) or fill them in.")
        values, dropped, rows = values[~missing], int(missing.sum()), rows[~missing]
    if len(values) < MIN_ROWS:
        raise DatasetError(f"The data file {name!r} must have at least {MIN_ROWS} complete rows. Got {len(values)}.")
    features = tuple(c for c in df.columns if c != target)
    if not features:
        raise DatasetError(f"The data file {name!r} must have at least one feature column besides the target {target!r}.")
    t = list(df.columns).index(target)
    X = np.delete(values, t, axis=1)
    y = values[:, t]
    if np.ptp(y) == 0:
        raise DatasetError(f"The target column {target!r} of {name!r} must vary. Got the constant {y[0]:g}.")
    constant = tuple(f for f, span in zip(features, np.ptp(X, axis=0)) if span == 0)
    return UserTable(X, y, features, target, name, dropped, constant, rows)


COLUMNS_SHOWN = 40  # a longer header is listed up to here, then how many more


def _read_frame(path: Path, **options):
    """The table as pandas reads it: Parquet, a .csv with commas, else the separator sniffed."""
    import pandas as pd

    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, **options)
    return pd.read_csv(path, sep=None, engine="python", **options)


def source_rows(path: str | Path, rows) -> "pd.DataFrame":  # noqa: F821 - pandas is imported lazily
    """The data rows `rows` (0-based data-row indices) of the user's file exactly as written there:
    every cell as its text for CSV, the stored values for Parquet; the file's own column order."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        df = _read_frame(path)
    else:
        df = _read_frame(path, dtype=str, keep_default_na=False)
    df.columns = [str(c).strip() for c in df.columns]
    return df.iloc[np.asarray(rows, dtype=np.int64)]


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(\.\d+)?")  # pandas adds '.1' to a repeated name


def refuse_headerless(columns, name: str) -> None:
    """A table whose 'header' is all numbers has no header row: its first data row was read as one."""
    cols = [str(c).strip() for c in columns]
    if cols and all(_NUMBER.fullmatch(c) for c in cols):
        shown = ", ".join(cols[:6]) + (", …" if len(cols) > 6 else "")
        raise DatasetError(f"The data file {name!r} has no header row: its first line ({shown}) is all numbers. "
                           "Add a first line naming the columns (the target among them), e.g. x1,x2,…,y.")


def columns_text(columns) -> str:
    """'columns: 'a', 'b', …' naming every column, or the first COLUMNS_SHOWN and how many more."""
    cols = list(columns)
    more = f", … and {len(cols) - COLUMNS_SHOWN} more" if len(cols) > COLUMNS_SHOWN else ""
    return "columns: " + ", ".join(map(repr, cols[:COLUMNS_SHOWN])) + more


def _columns(df) -> str:
    return columns_text(df.columns)


def table_columns_of(path: str | Path) -> list[str]:
    """The header of a CSV / Parquet file (for the target picker and the check before a file is
    kept): names stripped, a headerless file refused."""
    import pandas as pd

    path = Path(path)
    name = original_name(path)
    if path.is_file() and path.stat().st_size == 0:
        raise DatasetError(f"The data file {name!r} is empty.")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            columns = list(pq.read_schema(path).names)
        else:
            columns = [str(c).strip() for c in _read_frame(path, nrows=0 if path.suffix.lower() == ".csv" else 5).columns]
    except Exception as exc:  # noqa: BLE001
        text = str(exc).strip().splitlines()
        raise DatasetError(f"The data file {name!r} cannot be read as a table: {text[0] if text else type(exc).__name__}") from None
    refuse_headerless(columns, name)
    return columns


def table_split(table: UserTable, seed: int = 0, name: str = USER_DATASET) -> Split:
    """The paper's tabular protocol (section 3.3) on the user's table: X and y standardized on
    the whole set, min(5000, 60 %) rows train, of the rest 10 % validation and 90 % test, prior
    N(0, I) with the training rows' box. x_mean / x_std / y convert at the teacher's boundary."""
    X, x_mean, x_std = standardize(table.X)
    y2, y_mean, y_std = standardize(table.y[:, None])
    y = y2[:, 0]
    n = len(y)
    sizes = split_sizes(n, train_size(n, None))
    rng = np.random.default_rng(int(seed))
    tr, va, te = _partition(rng.permutation(n), sizes[0], sizes[1])
    d = X.shape[1]
    x_train = X[tr]
    prior = Prior("gaussian", torch.zeros(d), torch.ones(d), _t(x_train.min(axis=0)), _t(x_train.max(axis=0)))
    notes = [f"your data: {table.source}, {n} rows × {d} features, target {table.target!r}"]
    if table.dropped_rows:
        notes.append(f"{table.dropped_rows} rows with missing values dropped")
    if table.constant_columns:
        notes.append(f"constant columns (no information): {', '.join(table.constant_columns)}")
    extra = {"source": table.source, "rows": n, "files": [table.source], "n_train": sizes[0], "n_val": sizes[1],
             "n_test": sizes[2], "x_mean": x_mean.tolist(), "x_std": x_std.tolist(), "features": list(table.features),
             "target": table.target, "real_data": True, "test_rows": te.tolist(),
             "test_file_rows": (table.rows[te] if table.rows is not None else te).tolist(),  # data rows of the file
             "dropped_rows": table.dropped_rows, "constant_columns": list(table.constant_columns)}
    return Split(name=name, kind="tabular", x_train=_t(x_train), y_train=_t(y[tr]), x_val=_t(X[va]), y_val=_t(y[va]),
                 x_test=_t(X[te]), y_test=_t(y[te]), prior=prior, seed=int(seed), y_mean=float(y_mean[0]),
                 y_std=float(y_std[0]), note="; ".join(notes), extra=extra)


# ---------------------------------------------------------------- input specs
def read_input_spec(path: str | Path) -> InputSpec:
    """A JSON input spec: {"features": [{"name": "x1", "mean": 0, "std": 1} | {"name": "x2",
    "min": 0, "max": 1}, ...], "constraint": "none" | "clip" | "simplex"}. A min/max feature is
    uniform on its range (mean (min+max)/2, std (max−min)/√12); 'clip' keeps points in the box."""
    path = Path(path)
    name = original_name(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"The input spec {str(path)!r} cannot be read: {exc.strerror}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"The input spec {name!r} must be JSON. Got invalid JSON ({exc}).") from None
    return parse_input_spec(data, name)


def parse_input_spec(data, name: str = "input spec") -> InputSpec:
    """An InputSpec from the spec's JSON object (see read_input_spec); the dashboard's table too."""
    if not isinstance(data, dict) or not isinstance(data.get("features"), list) or not data["features"]:
        raise DatasetError(f"The input spec {name!r} must be an object with a non-empty 'features' list. Got {str(data)[:60]!r}.")
    constraint = data.get("constraint", "none")
    if constraint not in SPEC_CONSTRAINTS:
        raise DatasetError(f"The 'constraint' of {name!r} must be one of {', '.join(map(repr, SPEC_CONSTRAINTS))}. Got {constraint!r} instead.")
    if len(data["features"]) > MAX_FEATURES:
        raise DatasetError(f"The input spec {name!r} may have at most {MAX_FEATURES} features. Got {len(data['features'])}.")
    names, mean, std, lower, upper = [], [], [], [], []
    for i, feat in enumerate(data["features"]):
        label = feat.get("name", f"x{i + 1}") if isinstance(feat, dict) else f"x{i + 1}"
        if not isinstance(feat, dict):
            raise DatasetError(f"Feature {i + 1} of {name!r} must be an object with mean/std or min/max. Got {feat!r} instead.")
        nums = {}
        for key in ("mean", "std", "min", "max"):
            if key in feat:
                value = feat[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise DatasetError(f"The {key!r} of feature {label!r} in {name!r} must be a finite number. Got {value!r} instead.")
                nums[key] = float(value)
        has_box = "min" in nums and "max" in nums
        if has_box and nums["min"] >= nums["max"]:
            raise DatasetError(f"Feature {label!r} in {name!r} must have min < max. Got min {nums['min']:g}, max {nums['max']:g}.")
        if "std" in nums and nums["std"] <= 0:
            raise DatasetError(f"The 'std' of feature {label!r} in {name!r} must be > 0. Got {nums['std']:g} instead.")
        if "mean" in nums and "std" in nums:
            m, s = nums["mean"], nums["std"]
            lo, hi = (nums["min"], nums["max"]) if has_box else (m - SPEC_BOX_SIGMAS * s, m + SPEC_BOX_SIGMAS * s)
        elif has_box:
            lo, hi = nums["min"], nums["max"]
            m, s = (lo + hi) / 2, (hi - lo) / math.sqrt(12)
        else:
            raise DatasetError(f"Feature {label!r} in {name!r} must give 'mean' and 'std', or 'min' and 'max'. Got {sorted(feat)}.")
        names.append(str(label))
        mean.append(m), std.append(s), lower.append(lo), upper.append(hi)
    if len(set(names)) != len(names):
        raise DatasetError(f"The feature names of {name!r} must be unique. Got {names}.")
    if constraint == "simplex" and (min(lower) < 0 or max(upper) > 1):
        lower, upper = [max(0.0, v) for v in lower], [min(1.0, v) for v in upper]
    return InputSpec(tuple(names), np.array(mean), np.array(std), np.array(lower), np.array(upper), constraint, name)


SPEC_TABLE_COLUMNS = ("name", "mean", "std", "min", "max")  # the dashboard's input-spec table


def spec_from_rows(rows, constraint: str = "none") -> dict:
    """The JSON input spec of the dashboard's table (one row per feature: name, mean, std, min,
    max; blank cells are None or NaN; rows left wholly blank are skipped), checked row by row
    and then by parse_input_spec."""
    def blank(value) -> bool:
        if value is None or type(value).__name__ == "NAType":  # pandas' NA in an emptied cell
            return True
        return (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())

    features = []
    for i, row in enumerate(rows, start=1):
        cells = {key: row.get(key) for key in SPEC_TABLE_COLUMNS}
        if all(blank(v) for v in cells.values()):
            continue
        if blank(cells["name"]):
            raise DatasetError(f"Row {i} of the input table must have a name. Got an empty name instead.")
        name = str(cells["name"]).strip()
        feat = {"name": name}
        for key in ("mean", "std", "min", "max"):
            value = cells[key]
            if blank(value):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, bool) or not math.isfinite(number):
                raise DatasetError(f"The {key!r} of row {i} ({name!r}) of the input table must be a finite number. Got {value!r} instead.")
            feat[key] = number
        for a, b in (("mean", "std"), ("min", "max")):
            if (a in feat) != (b in feat):
                given, missing = (a, b) if a in feat else (b, a)
                raise DatasetError(f"Row {i} ({name!r}) of the input table gives {given!r} without {missing!r}: fill both or neither.")
        if not ("mean" in feat or "min" in feat):
            raise DatasetError(f"Row {i} ({name!r}) of the input table must give 'mean' and 'std', or 'min' and 'max'. Got neither.")
        if "std" in feat and feat["std"] <= 0:
            raise DatasetError(f"The 'std' of row {i} ({name!r}) of the input table must be > 0. Got {feat['std']:g} instead.")
        if "min" in feat and feat["min"] >= feat["max"]:
            raise DatasetError(f"Row {i} ({name!r}) of the input table must have min < max. Got min {feat['min']:g}, max {feat['max']:g}.")
        features.append(feat)
    if not features:
        raise DatasetError("The input table must have at least one filled row (a name with mean/std or min/max). Got none.")
    spec = {"features": features, "constraint": constraint}
    parse_input_spec(spec, "the input table")
    return spec


def spec_scaling(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(x_mean, x_std) at the teacher's boundary: the spec's moments, or none for the simplex
    (fractions that sum to 1 stay fractions, as the protein case)."""
    if spec.constraint == "simplex":
        return np.zeros(len(spec.features)), np.ones(len(spec.features))
    return spec.mean, spec.std


def spec_prior(spec: InputSpec) -> Prior:
    """The spec's prior in standardized units: N(0, I) (clipped to the box for 'clip'), or the
    simplex prior in the teacher's units."""
    d = len(spec.features)
    if spec.constraint == "simplex":
        return Prior("simplex", _t(spec.mean), _t(spec.std), _t(spec.lower), _t(spec.upper))
    lower = (spec.lower - spec.mean) / spec.std
    upper = (spec.upper - spec.mean) / spec.std
    kind = "clipped_gaussian" if spec.constraint == "clip" else "gaussian"
    return Prior(kind, torch.zeros(d), torch.ones(d), _t(lower), _t(upper))


def spec_split(spec: InputSpec, teacher_raw: Callable[[np.ndarray], np.ndarray], seed: int = 0,
               name: str = USER_DATASET) -> Split:
    """A strictly data-free split: train / validation / test are held-out synthetic points of
    the spec's prior labelled by the teacher itself (so 'test RMSE' is agreement with the
    teacher), the target scaled by the teacher's answers on them. No real row anywhere."""
    prior = spec_prior(spec)
    gen = torch.Generator().manual_seed(777_001 + int(seed))
    n = sum(SPEC_SPLIT)
    z = prior.sample(n, gen)
    x_mean, x_std = spec_scaling(spec)
    raw = z.double().numpy() * x_std + x_mean
    y = np.asarray(teacher_raw(raw), dtype=np.float64).reshape(-1)
    if y.shape[0] != n or not np.isfinite(y).all():
        bad = int((~np.isfinite(y)).sum()) if y.shape[0] == n else -1
        raise DatasetError(f"The teacher must return {n} finite numbers on the spec's points. "
                           + (f"Got NaN or inf for {bad} of them." if bad >= 0 else f"Got {y.shape[0]} values."))
    y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
    ys = (y - y_mean) / y_std
    a, b = SPEC_SPLIT[0], SPEC_SPLIT[0] + SPEC_SPLIT[1]
    extra = {"source": spec.source, "rows": 0, "files": [spec.source], "n_train": SPEC_SPLIT[0], "n_val": SPEC_SPLIT[1],
             "n_test": SPEC_SPLIT[2], "x_mean": list(map(float, x_mean)), "x_std": list(map(float, x_std)),
             "features": list(spec.features), "target": "teacher", "real_data": False, "constraint": spec.constraint}
    note = (f"strictly data-free: input spec {spec.source} ({len(spec.features)} features, constraint {spec.constraint}); "
            "validation and test are the teacher's answers on held-out synthetic points")
    return Split(name=name, kind="tabular", x_train=z[:a].float(), y_train=_t(ys[:a]), x_val=z[a:b].float(), y_val=_t(ys[a:b]),
                 x_test=z[b:].float(), y_test=_t(ys[b:]), prior=prior, seed=int(seed), y_mean=y_mean, y_std=y_std,
                 note=note, extra=extra)

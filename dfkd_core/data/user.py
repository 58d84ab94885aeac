"""Data the user brings, or none: a CSV / Parquet table with a target column split by the
paper's tabular protocol, or a strictly data-free input spec (names, per-feature mean/std or
min/max, clip or simplex constraint). Files are stored content-addressed under DFKD_HOME."""
from __future__ import annotations

import hashlib
import json
import math
import os
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
MAX_SPEC_BYTES = 16 * 2**20  # an input spec file
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


def store_user_file(path: str | Path, role: str, *, upload: bool = False) -> str:
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
    if target.exists() and upload:  # uploaded again: kept from now on, as a fresh upload
        meta_path = target.with_name(target.name + ".json")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("upload"):
                meta["stored_at"] = time.time()
                meta_path.write_text(json.dumps(meta), encoding="utf-8")
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            pass
    if not target.exists():
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
        meta = {"original": path.name, "role": role, "sha256": sha, "bytes": target.stat().st_size, "stored_at": time.time(),
                "upload": upload}
        target.with_name(target.name + ".json").write_text(json.dumps(meta), encoding="utf-8")
    return str(target)


# ---------------------------------------------------------------- uploads from the dashboard
DEFAULT_MAX_UPLOAD_GB = 2.0  # all uploads kept together (DFKD_MAX_UPLOAD_GB)
UPLOAD_KEEP_S = 3600.0  # an upload no stored run names is swept once it is this old
FILE_FIELDS = ("teacher_file", "data_file", "input_spec")  # = config.FILE_FIELDS: the fields that name files


def max_upload_bytes() -> float:
    raw = os.environ.get("DFKD_MAX_UPLOAD_GB", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_MAX_UPLOAD_GB
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise DatasetError(f"The 'DFKD_MAX_UPLOAD_GB' environment variable must be a number >= 0. Got {raw[:40]!r} instead.")
    return value * 1e9


def _uploads() -> list[tuple[Path, dict]]:
    """(stored file, its sidecar) of every file kept from a dashboard upload."""
    out = []
    for meta_path in user_files_dir().glob("*.json"):
        stored = meta_path.with_suffix("")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(meta, dict) and meta.get("upload") and stored.is_file():
            out.append((stored, meta))
    return out


def sweep_uploads(referenced, *, older_than: float = UPLOAD_KEEP_S, only=None) -> list[str]:
    """Delete uploaded files that no stored run names (`referenced`: paths) and that are older
    than `older_than` seconds (`only`: restrict to these paths); returns what was deleted. Files
    given on the command line are never swept."""
    keep = {str(Path(p)) for p in referenced if p}
    only = None if only is None else {str(Path(p)) for p in only if p}
    now, gone = time.time(), []
    for stored, meta in _uploads():
        path = str(stored)
        if path in keep or (only is not None and path not in only):
            continue
        if now - float(meta.get("stored_at", 0) or 0) < older_than:
            continue
        for item in (stored, stored.with_name(stored.name + ".json")):
            try:
                item.unlink()
            except FileNotFoundError:
                pass
        gone.append(path)
    return gone


def store_upload_bytes(name: str, data: bytes, role: str, referenced=None) -> str:
    """An uploaded file kept under DFKD_HOME/user_files (content-addressed, its name kept),
    within DFKD_MAX_UPLOAD_GB for all uploads together: old uploads no stored run names
    (`referenced`: the paths runs name; None: sweep nothing) are swept first, and an upload
    that would still pass the quota is refused."""
    import tempfile

    if not data:
        raise DatasetError(f"The uploaded {role} file {Path(name).name!r} is empty.")
    if referenced is not None:
        sweep_uploads(referenced)
    held = sum(stored.stat().st_size for stored, _ in _uploads())
    quota = max_upload_bytes()
    if held + len(data) > quota:
        raise DatasetError(f"The uploaded {role} file {Path(name).name!r} ({len(data) / 1e6:.3g} MB) would pass the quota on "
                           f"uploads of {quota / 1e9:g} GB (DFKD_MAX_UPLOAD_GB; {held / 1e9:.3g} GB kept for stored runs). "
                           "Delete runs you no longer need, or ask the operator to raise it.")
    with tempfile.TemporaryDirectory(dir=user_files_dir()) as tmp:
        path = Path(tmp) / (Path(name).name or "upload")
        path.write_bytes(data)
        return store_user_file(path, role, upload=True)


def uploaded_only(cfg, uploads) -> None:
    """Refuse a run from the dashboard whose teacher, data or input spec is not a file uploaded
    for it (a link or a form value naming a path on the server). Says nothing about the path:
    not whether it exists, not what it holds."""
    allowed = {str(Path(p)) for p in uploads if p}
    named = []
    for field_name in FILE_FIELDS:
        value = getattr(cfg, field_name, "")
        if not value or (field_name == "teacher_file" and str(value).startswith(("http://", "https://"))):
            continue
        if str(Path(str(value))) not in allowed:
            named.append(field_name)
    if named:
        raise DatasetError(f"A teacher, data or input-spec file can only come from an upload in this browser session "
                           f"(the Your model section), never from a link or a typed path. Got {', '.join(map(repr, named))} "
                           "naming a file that was not uploaded here.")


def table_header(name: str, data: bytes) -> list[str]:
    """The column names of an uploaded CSV / Parquet file, read from its bytes (nothing stored)."""
    import io

    import pandas as pd

    try:
        if Path(name).suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            columns = list(pq.read_schema(io.BytesIO(data)).names)
        else:
            pd.read_csv(io.BytesIO(data), nrows=0)  # a header pandas can read ...
            columns = _header_names(data[:MAX_HEADER_BYTES + 1].split(b"\n", 1)[0], Path(name).suffix.lower(), Path(name).name)
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many kinds
        text = str(exc).strip().splitlines()
        raise DatasetError(f"The data file {Path(name).name!r} cannot be read as a table: {text[0][:200] if text else type(exc).__name__}") from None
    _refuse_duplicates(columns, Path(name).name)
    return columns


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
    rows, columns = table_shape(path)  # from the header and the Parquet metadata: nothing decoded yet
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = _read_parquet_capped(path, name)
        else:
            df = _read_csv_capped(path, len(columns), name)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
        text = str(exc).strip().splitlines()
        raise DatasetError(f"The data file {name!r} cannot be read as a table: {text[0][:200] if text else type(exc).__name__}.") from None
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


MAX_CELLS = 50_000_000  # rows × columns of a table (400 MB as float64), whatever the budgets
MAX_HEADER_BYTES = 4 * 2**20  # a CSV header line
PARQUET_NUMERIC = ("int", "uint", "float", "double", "halffloat", "bool", "decimal")


def _refuse_duplicates(columns, name: str) -> None:
    seen, repeated = set(), []
    for c in columns:
        if c in seen and c not in repeated:
            repeated.append(c)
        seen.add(c)
    if repeated:
        shown = ", ".join(repr(c)[:40] for c in repeated[:10])
        raise DatasetError(f"The data file {name!r} must name each column once. Got duplicate column names: {shown}.")


def _csv_header(path: Path, name: str) -> list[str]:
    """The first line of a CSV file as column names (read as text, so that pandas cannot rename
    a repeated name to 'a.1' before it is seen)."""
    with open(path, "rb") as fh:
        first = fh.readline(MAX_HEADER_BYTES + 1)
    return _header_names(first, path.suffix.lower(), name)


def _header_names(first: bytes, suffix: str, name: str) -> list[str]:
    import csv

    if len(first) > MAX_HEADER_BYTES:
        raise DatasetError(f"The data file {name!r} has a header line longer than {MAX_HEADER_BYTES // 2**20} MiB.")
    text = first.decode("utf-8-sig", errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text, delimiters=",;\t|") if suffix != ".csv" else csv.excel
    except csv.Error:
        dialect = csv.excel
    return [c.strip() for c in next(csv.reader([text.rstrip("\r\n")], dialect), [])]


def table_shape(path: str | Path) -> tuple[int, list[str]]:
    """(data rows, column names) of a CSV / Parquet file without decoding it: the Parquet
    metadata (row count, column types, uncompressed size), or the CSV's header and line count.
    Refuses, naming the cap, a table above MAX_ROWS, MAX_FEATURES, MAX_CELLS or the file cap."""
    path = Path(path)
    name = original_name(path)
    if not path.is_file():
        raise DatasetError(f"The data file {str(path)!r} does not exist.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(f"The data file {name!r} must be at most {MAX_FILE_BYTES // 2**20} MiB. Got {size / 2**20:.0f} MiB.")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
            schema = meta.schema.to_arrow_schema()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds
            text = str(exc).strip().splitlines()
            raise DatasetError(f"The data file {name!r} cannot be read as a table: {text[0][:200] if text else type(exc).__name__}.") from None
        columns = [str(c).strip() for c in schema.names]
        rows = int(meta.num_rows)
        text_columns = [f.name for f in schema if not str(f.type).startswith(PARQUET_NUMERIC)]
        if text_columns:
            raise DatasetError(f"Every column of {name!r} must be numeric. Got text in column {text_columns[0]!r} "
                               f"(Parquet type {schema.field(text_columns[0]).type}).")
    else:
        columns = _csv_header(path, name)
        with open(path, "rb") as fh:
            rows = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(2**20), b""))
        with open(path, "rb") as fh:  # a last line without its newline is a row too
            fh.seek(max(0, size - 1))
            rows += fh.read(1) not in (b"\n", b"")
        rows = max(0, rows - 1)  # the header
    _refuse_duplicates(columns, name)
    if rows > MAX_ROWS or len(columns) - 1 > MAX_FEATURES or rows * len(columns) > MAX_CELLS:
        raise DatasetError(f"The data file {name!r} must have at most {MAX_ROWS} rows, {MAX_FEATURES} features and "
                           f"{MAX_CELLS:,} cells. Got {'about ' if not path.suffix.lower() in ('.parquet', '.pq') else ''}"
                           f"{rows} rows and {max(0, len(columns) - 1)} features.")
    return rows, columns


def _read_parquet_capped(path: Path, name: str):
    """The Parquet file decoded batch by batch, stopped (and refused) as soon as it holds more
    rows or cells than the caps, whatever its metadata said."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames, rows = [], 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
        rows += batch.num_rows
        if rows > MAX_ROWS or rows * max(1, batch.num_columns) > MAX_CELLS:
            raise DatasetError(f"The data file {name!r} must have at most {MAX_ROWS} rows and {MAX_CELLS:,} cells. "
                               f"Got more than {rows - batch.num_rows} rows of {batch.num_columns} columns.")
        frames.append(batch.to_pandas())
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _read_csv_capped(path: Path, n_columns: int, name: str):
    """The CSV read in chunks, stopped (and refused) as soon as it passes the row or cell cap."""
    import pandas as pd

    options = {} if path.suffix.lower() == ".csv" else {"sep": None, "engine": "python"}
    frames, rows = [], 0
    for chunk in pd.read_csv(path, chunksize=200_000, **options):
        rows += len(chunk)
        if rows > MAX_ROWS or rows * max(1, chunk.shape[1]) > MAX_CELLS:
            raise DatasetError(f"The data file {name!r} must have at most {MAX_ROWS} rows and {MAX_CELLS:,} cells. "
                               f"Got more than {rows - len(chunk)} rows of {chunk.shape[1]} columns.")
        frames.append(chunk)
    if not frames:
        return pd.DataFrame(columns=range(n_columns))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


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
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise DatasetError(f"The input spec {str(path)!r} cannot be read: {exc.strerror}.") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise DatasetError(f"The input spec {name!r} must be at most {MAX_SPEC_BYTES // 2**20} MiB. Got more.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"The input spec {name!r} must be JSON. Got invalid JSON ({str(exc)[:120]}).") from None
    except RecursionError:
        raise DatasetError(f"The input spec {name!r} must be a flat object of features. Got JSON nested too deeply to read.") from None
    return parse_input_spec(data, name)


def spec_feature_count(path: str | Path) -> int:
    """How many inputs an input spec names (for the budget, before anything runs)."""
    return len(read_input_spec(path).features)


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

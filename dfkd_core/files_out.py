"""Files the product writes for people to open: CSV cells that a spreadsheet would run as a
formula are neutralised (OWASP's rule: a leading '), every file is written to a new temporary
file in its folder and renamed into place (a symbolic link planted at the name is replaced,
never followed), and JSON for scripts holds null where a number is NaN or infinite."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection: what starts a formula


def neutral_cell(value: Any) -> Any:
    """A text cell that starts like a formula, with a leading ' (shown as text by spreadsheets);
    numbers (negative ones too, also as text: '-1.5') and other text unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        try:
            float(value)
            return value  # a number written as text ('-1.5', '+2e3'): a spreadsheet reads a number
        except ValueError:
            return "'" + value
    return value


def neutral_frame(df):
    """A copy of the DataFrame whose text cells and column names cannot run as formulas."""
    out = df.copy()
    out.columns = [neutral_cell(c) if isinstance(c, str) else c for c in out.columns]
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if not (is_numeric_dtype(column.dtype) or is_bool_dtype(column.dtype)):  # text of any dtype (object, str, category)
            out.isetitem(i, column.astype(object).map(neutral_cell))
    return out


def csv_bytes(df) -> bytes:
    """The DataFrame as CSV (UTF-8, no index), its formula-like text cells neutralised."""
    return neutral_frame(df).to_csv(index=False).encode("utf-8")


def write_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Have write(tmp) fill a new temporary file beside `path`, then rename it onto `path`:
    a link at `path` is replaced by the file, whatever it pointed to stays untouched, and a
    reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide an export from its reader's other tools
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """`data` into `path` through a new file opened with O_NOFOLLOW (see write_file)."""
    def fill(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return write_file(path, fill)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_csv(path: str | Path, df) -> Path:
    """The DataFrame as a CSV file: formula cells neutralised, written without following links."""
    return write_bytes(path, csv_bytes(df))


def finite_json(value: Any) -> Any:
    """`value` with every NaN / inf float (numpy's too) as None, so json.dumps writes valid JSON."""
    if isinstance(value, float) or type(value).__name__ in ("float32", "float64", "float16"):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def json_text(value: Any, **options: Any) -> str:
    """json.dumps of `value` with NaN / inf as null: what every --json output prints."""
    return json.dumps(finite_json(value), allow_nan=False, **options)


def plain_folder(path: str | Path, what: str = "export folder") -> Path:
    """`path` as a folder to write into, created if missing; a symbolic link there is refused
    (an export never writes through a link it did not make)."""
    from .errors import ConfigError

    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"The {what} {str(path)!r} is a symbolic link: exports never write through links. "
                          "Give a plain folder.")
    path.mkdir(parents=True, exist_ok=True)
    return path

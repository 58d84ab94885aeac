"""Parsers for the dataset files as their public sources publish them (KEEL .dat, LIBSVM,
UJIIndoorLoc CSV, UCI CT slices CSV, MNIST IDX, eSol CSV) into float64 arrays X, y.

Every parser reads the file in one vectorized pass (pandas / numpy) and, only when
that pass fails or finds a bad value, rescans the text line by line to name the
first bad line. Bad input raises one `DatasetError` saying "<file>, line N: what".
"""
from __future__ import annotations

import gzip
import io
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError

#: UJIIndoorLoc: a WAP column holding 100 means "not detected"; we map it to this value,
#: 1 dBm below the weakest signal the set records (-104 dBm), as is customary.
INDOORLOC_NO_SIGNAL = -105.0
INDOORLOC_WAPS = tuple(f"WAP{i:03d}" for i in range(1, 521))
CTSCAN_FEATURES = tuple(f"value{i}" for i in range(384))
ESOL_AMINO_ACIDS = tuple("ARNDCEQGHILKMFPSTWYV")

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# ---------------------------------------------------------------- reading bytes / text


def _read_bytes(path: Path, member: str | None = None) -> bytes:
    """The file's content: gunzipped for .gz, the named member (by base name, nested zips
    searched too) for .zip. A truncated gzip says after which line its data ends."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if not raw:
        return raw
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        return _gunzip(path, raw)
    if path.suffix == ".zip":
        if member is None:
            raise DatasetError(f"{path}: a zip archive, but no member to read was named")
        return _zip_member(path, raw, member)
    return raw


def _gunzip(path: Path, raw: bytes) -> bytes:
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = []
    try:
        pos = 0
        while pos < len(raw):  # concatenated gzip members are legal
            out.append(decomp.decompress(raw[pos:]))
            if not decomp.eof:
                break
            rest = decomp.unused_data
            pos = len(raw) - len(rest)
            if not rest.strip(b"\x00"):
                break
            decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if not decomp.eof:
            raise EOFError("compressed data ends before the end-of-stream marker")
    except (zlib.error, EOFError) as exc:
        got = b"".join(out)
        lines = got.count(b"\n")
        raise DatasetError(
            f"{path}, line {lines + 1}: truncated or corrupt gzip data ({exc}); "
            f"{len(got)} bytes / {lines} complete lines decompressed. Download the file again."
        ) from None
    return b"".join(out)


def _zip_member(path: Path, raw: bytes, member: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            found = _find_in_zip(zf, Path(member).name)
            if found is None:
                names = ", ".join(zf.namelist()[:10])
                raise DatasetError(f"{path}: the archive holds no {Path(member).name!r} (has: {names})")
            return found
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable zip archive ({exc})") from None


def _find_in_zip(zf: zipfile.ZipFile, basename: str) -> bytes | None:
    names = zf.namelist()
    for name in names:
        if Path(name).name == basename:
            return zf.read(name)
    for name in names:  # UCI wraps some archives in a second zip
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(zf.read(name))) as inner:
                found = _find_in_zip(inner, basename)
                if found is not None:
                    return found
    return None


def _read_text(path: Path, member: str | None = None) -> str:
    text = _read_bytes(path, member).decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise DatasetError(f"{path}, line 1: the file is empty")
    return text


# ---------------------------------------------------------------- numeric blocks


def _numeric_block(path: Path, text: str, first_line: int, names: list[str]) -> np.ndarray:
    """Parse comma-separated numeric rows (one per line, `len(names)` cells each) into a
    float64 array. `first_line` is the file's line number of the block's first line."""
    if not text.strip():
        raise DatasetError(f"{path}, line {first_line}: no data rows")
    try:
        frame = pd.read_csv(
            io.BytesIO(text.encode()), header=None, sep=",", dtype=np.float64, engine="c",
        )
        values = frame.to_numpy(dtype=np.float64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, TypeError):
        values = None
    if values is None or values.shape[1] != len(names) or not np.isfinite(values).all():
        _raise_first_bad_line(path, text, first_line, names)
    return values


def _raise_first_bad_line(path: Path, text: str, first_line: int, names: list[str], used: list[int] | None = None) -> None:
    """Rescan `text` line by line and raise for the first line that does not have
    `len(names)` cells of which the `used` ones (default: all) are finite numbers.
    Only runs after the vectorized pass failed."""
    check = range(len(names)) if used is None else sorted(used)
    for offset, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        lineno = first_line + offset
        cells = line.split(",")
        if len(cells) != len(names):
            raise DatasetError(f"{path}, line {lineno}: {len(cells)} columns, expected {len(names)}")
        for j in check:
            cell = cells[j]
            try:
                value = float(cell)
            except ValueError:
                raise DatasetError(f"{path}, line {lineno}: column {names[j]!r} holds {cell.strip()!r}, not a number") from None
            if not math.isfinite(value):
                raise DatasetError(f"{path}, line {lineno}: column {names[j]!r} holds {cell.strip()!r}, not a finite number")
        empty = [names[j] for j, cell in enumerate(cells) if not cell.strip()]
        if empty:
            raise DatasetError(f"{path}, line {lineno}: column {empty[0]!r} is empty")
    raise DatasetError(f"{path}: could not parse the rows starting at line {first_line} as numbers")


def _split_header(path: Path, text: str) -> tuple[list[str], str]:
    """(column names of line 1, the text after line 1)."""
    head, _, body = text.partition("\n")
    names = [c.strip().strip('"') for c in head.strip().split(",")]
    return names, body


def _columns(path: Path, header: list[str], wanted: tuple[str, ...] | list[str], what: str) -> list[int]:
    index = {name: i for i, name in enumerate(header)}
    missing = [name for name in wanted if name not in index]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(f"{path}, line 1: missing {what} column{'s' if len(missing) > 1 else ''} {shown}")
    return [index[name] for name in wanted]


def _csv_with_header(path: Path, text: str, features: tuple[str, ...], target: str) -> tuple[np.ndarray, np.ndarray]:
    header, body = _split_header(path, text)
    (target_at,) = _columns(path, header, [target], "target")
    feature_at = _columns(path, header, features, "feature")
    values = _numeric_block_tolerant(path, body, header, used=feature_at + [target_at])
    return values[:, feature_at], values[:, target_at]


def _numeric_block_tolerant(path: Path, body: str, header: list[str], used: list[int]) -> np.ndarray:
    """Like `_numeric_block` for a CSV with a header, but only the `used` columns must be
    numbers (an id column such as CT's patientId may hold anything)."""
    if not body.strip():
        raise DatasetError(f"{path}, line 2: no data rows")
    data = body.encode()
    frame = None
    for dtype in (np.float64, None):  # all-numeric first (fast); else let an id column be text
        try:
            frame = pd.read_csv(io.BytesIO(data), header=None, sep=",", engine="c", dtype=dtype)
            break
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            frame = None
    ok = frame is not None and frame.shape[1] == len(header) and not frame.isna().to_numpy().any()
    if ok:
        sub = frame.iloc[:, used]
        ok = all(pd.api.types.is_numeric_dtype(t) for t in sub.dtypes)
        if ok:
            values = sub.to_numpy(dtype=np.float64)
            ok = bool(np.isfinite(values).all())
    if not ok:
        _raise_first_bad_line(path, body, 2, header, used)
    out = np.zeros((len(frame), len(header)), dtype=np.float64)
    out[:, used] = values
    return out


# ---------------------------------------------------------------- the parsers


def parse_keel(path: Path, target: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """KEEL .dat: `@relation`, one `@attribute NAME TYPE [range]` per column, `@inputs a, b`,
    `@output(s) y`, then CSV rows after `@data`. X holds the @inputs in their order, y the
    @output. `target`, when given, must be the file's @output."""
    path = Path(path)
    text = _read_text(path)
    attributes: list[str] = []
    inputs: list[str] | None = None
    output: tuple[str, int] | None = None
    pos = 0
    lineno = 0
    data_line = None
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end].strip()
        lineno += 1
        pos = end + 1
        if not line or line.startswith("%"):
            continue
        word, _, rest = line.replace("\t", " ").partition(" ")
        key = word.lower()
        if key == "@attribute":
            name = rest.strip().split()[0] if rest.strip() else ""
            if "[" in name:
                name = name[: name.index("[")]
            if not name:
                raise DatasetError(f"{path}, line {lineno}: @attribute without a name")
            attributes.append(name.strip("'\""))
        elif key == "@inputs":
            inputs = [n.strip() for n in rest.split(",") if n.strip()]
        elif key in ("@output", "@outputs"):
            names = [n.strip() for n in rest.split(",") if n.strip()]
            if len(names) != 1:
                raise DatasetError(f"{path}, line {lineno}: expected one @output column, got {len(names)}")
            output = (names[0], lineno)
        elif key == "@data":
            data_line = lineno
            break
        elif not key.startswith("@"):
            raise DatasetError(f"{path}, line {lineno}: data before the @data line")
    if data_line is None:
        raise DatasetError(f"{path}, line {lineno}: no @data line; not a KEEL .dat file")
    if output is None:
        raise DatasetError(f"{path}, line {data_line}: missing target column: no @output line before @data")
    out_name, out_line = output
    if out_name not in attributes:
        raise DatasetError(f"{path}, line {out_line}: missing target column {out_name!r}: it is not an @attribute")
    if target is not None and out_name != target:
        raise DatasetError(f"{path}, line {out_line}: the @output is {out_name!r}, expected {target!r}")
    if inputs is None:
        inputs = [a for a in attributes if a != out_name]
    unknown = [n for n in inputs if n not in attributes]
    if unknown:
        raise DatasetError(f"{path}: @inputs names {unknown[0]!r}, which is not an @attribute")
    values = _numeric_block(path, text[pos:], data_line + 1, attributes)
    cols = [attributes.index(n) for n in inputs]
    return values[:, cols], values[:, attributes.index(out_name)]


def parse_libsvm(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """LIBSVM sparse text: `y idx:val idx:val ...` per line, 1-based indices up to
    `n_features`; an index that is absent means 0."""
    path = Path(path)
    text = _read_text(path)
    lines = text.split("\n")
    X = np.zeros((len(lines), n_features), dtype=np.float64)
    y = np.zeros(len(lines), dtype=np.float64)
    n = 0
    for lineno, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            y[n] = float(tokens[0])
        except ValueError:
            raise DatasetError(f"{path}, line {lineno}: the target {tokens[0]!r} is not a number") from None
        if not math.isfinite(y[n]):
            raise DatasetError(f"{path}, line {lineno}: the target {tokens[0]!r} is not a finite number")
        for tok in tokens[1:]:
            idx, sep, val = tok.partition(":")
            try:
                i = int(idx)
                v = float(val)
            except ValueError:
                raise DatasetError(f"{path}, line {lineno}: {tok!r} is not index:value") from None
            if not sep:
                raise DatasetError(f"{path}, line {lineno}: {tok!r} is not index:value")
            if not 1 <= i <= n_features:
                raise DatasetError(f"{path}, line {lineno}: feature index {i} is outside 1..{n_features}")
            if not math.isfinite(v):
                raise DatasetError(f"{path}, line {lineno}: feature {i} holds {val!r}, not a finite number")
            X[n, i - 1] = v
        n += 1
    if n == 0:
        raise DatasetError(f"{path}, line 1: the file is empty")
    return X[:n], y[:n]


def parse_indoorloc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """UJIIndoorLoc trainingData.csv (plain, .gz, or the UCI zip): X = the 520 WAP RSSI
    columns in dBm, y = LONGITUDE. A WAP value of 100 means "not detected"; it becomes
    -105 (`INDOORLOC_NO_SIGNAL`, below the weakest recorded signal), as is customary."""
    path = Path(path)
    text = _read_text(path, member="trainingData.csv")
    X, y = _csv_with_header(path, text, INDOORLOC_WAPS, "LONGITUDE")
    X[X == 100] = INDOORLOC_NO_SIGNAL
    return X, y


def parse_ctscan(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """UCI "Relative location of CT slices": slice_localization_data.csv (or the UCI zip)
    with header patientId,value0..value383,reference. X = value0..value383 (the id column
    is dropped), y = reference (the slice's relative position, 0..100)."""
    path = Path(path)
    text = _read_text(path, member="slice_localization_data.csv")
    return _csv_with_header(path, text, CTSCAN_FEATURES, "reference")


def parse_esol(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """eSol amino-acid composition: CSV with the 20 fractions A,R,N,...,V and `solubility`
    in [0, 1]. X keeps the fractions as they are (each row sums to 1)."""
    path = Path(path)
    text = _read_text(path)
    return _csv_with_header(path, text, ESOL_AMINO_ACIDS, "solubility")


def parse_idx(path: Path, ndim: int | None = None) -> np.ndarray:
    """One IDX file (gzip or raw): magic 0x0000 TT DD (TT the element type, DD the number
    of dimensions), DD big-endian uint32 sizes, then the elements. `ndim` (3 for images,
    1 for labels) is checked against the magic number."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}, byte 0: {len(data)} bytes, too short for an IDX header" if data else f"{path}, line 1: the file is empty")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DatasetError(f"{path}, byte 0: magic number 0x{data[:4].hex()} is not an IDX file")
    dims_n = data[3]
    if ndim is not None and dims_n != ndim:
        want = "images (0x00000803)" if ndim == 3 else "labels (0x00000801)" if ndim == 1 else f"{ndim} dimensions"
        raise DatasetError(f"{path}, byte 0: magic number 0x{data[:4].hex()} is not an IDX file of {want}")
    header = 4 + 4 * dims_n
    if len(data) < header:
        raise DatasetError(f"{path}, byte {len(data)}: the IDX header is truncated")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=dims_n, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        raise DatasetError(f"{path}, byte {header}: the header promises {dims} = {expected} bytes of data, the file holds {got}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def parse_mnist(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An MNIST images/labels IDX pair: X of shape (n, 1, 28, 28) with pixels scaled to
    [0, 1], y the digit value as a float."""
    images = parse_idx(images_path, ndim=3)
    labels = parse_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise DatasetError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    X = images.astype(np.float64)[:, None, :, :] / 255.0
    return X, labels.astype(np.float64)

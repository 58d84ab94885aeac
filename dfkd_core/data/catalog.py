"""The dataset catalogue: one frozen DatasetSpec per dataset in the DATASETS registry, where
its files live and come from, and `load_dataset` (find or download, parse, cache in-process)."""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import paths
from ..errors import DatasetError
from ..registry import Registry
from . import parsers
from .download import Progress, cached_sha256, download_file, mirror_url, offline

KINDS = ("tabular", "image", "composition")
ACCEPT_MISMATCH_ENV = "DFKD_ACCEPT_CHECKSUM_MISMATCH"  # =1: use data files that differ from their published sha256

log = logging.getLogger(__name__)

MNIST_OFFLINE_NOTE = (
    "Offline: MNIST's 10 000 test images split 8000 train / 2000 held out; "
    "download the training images for the paper's setup"
)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and where it comes from. `files`, `urls`, `sha256`, `members` and
    `alternatives` run in parallel, one entry per file."""

    name: str  # registry key, e.g. 'compactiv'
    paper_name: str  # as the paper's tables spell it, e.g. 'Compactiv'
    kind: str  # 'tabular' | 'image' | 'composition'
    rows: int  # rows of the full set as published
    features: int  # input features (pixels for images)
    target: str  # the target column as the file names it
    files: tuple[str, ...] = ()  # paths relative to the data dir; the first spelling a download writes
    urls: tuple[str, ...] = ()  # public download URL per file (a zip when `members` names a member)
    sha256: tuple[str | None, ...] = ()  # of the file the data dir holds; None = not verified
    parser: str = ""  # which parser reads the files (see `_parse`), or 'builtin'
    source: str = ""  # where it comes from, in words
    builtin: bool = False  # generated or bundled with scikit-learn; needs no file
    input_shape: tuple[int, ...] = ()  # one input's shape; () means (features,)
    members: tuple[str | None, ...] = ()  # per file: the zip member to extract, or None
    alternatives: tuple[tuple[str, ...], ...] = ()  # per file: other accepted paths (.gz, the zip)
    optional: tuple[str, ...] = ()  # files only the full (paper) setup needs
    n_train: int | None = None  # the paper's training-set size; None = min(5000, 60 % of rows)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"The 'kind' of dataset {self.name!r} must be one of {KINDS}. Got {self.kind!r} instead.")
        n = len(self.files)
        defaults = {"urls": ("",) * n, "sha256": (None,) * n, "members": (None,) * n, "alternatives": ((),) * n}
        for name, default in defaults.items():
            value = getattr(self, name)
            if not value:
                object.__setattr__(self, name, default)
            elif len(value) != n:
                raise ValueError(f"Dataset {self.name!r}: {len(value)} {name} for {n} files")
        if not self.input_shape:
            object.__setattr__(self, "input_shape", (self.features,))

    def file_entries(self) -> list["DataFile"]:
        return [
            DataFile(path, url, sha, member, alts, path in self.optional)
            for path, url, sha, member, alts in zip(self.files, self.urls, self.sha256, self.members, self.alternatives)
        ]


class DataFile(NamedTuple):
    """One file of a dataset (see DatasetSpec)."""

    path: str
    url: str
    sha256: str | None
    member: str | None
    alternatives: tuple[str, ...]
    optional: bool

    def find(self, data_dir: Path) -> Path | None:
        """The first spelling present in `data_dir`, or None."""
        for rel in (self.path, *self.alternatives):
            candidate = Path(data_dir) / rel
            if candidate.is_file():
                return candidate
        return None


@dataclass(frozen=True)
class LoadedDataset:
    """A parsed dataset: X float64 (n, *input_shape), y float64 (n,)."""

    name: str
    X: np.ndarray
    y: np.ndarray
    source: str  # the file parsed (first one), or the built-in's description
    files: tuple[str, ...] = ()  # every file parsed
    test_start: int | None = None  # rows from here on are the source's own test set (MNIST, full set)
    note: str = ""
    extra: dict = field(default_factory=dict)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _add(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec


# ---------------------------------------------------------------- the specs

_KEEL = "https://sci2s.ugr.es/keel/dataset/data/regression/{}.zip"
_KEEL_SOURCE = "KEEL regression repository (https://sci2s.ugr.es/keel/); served as {0}.zip holding {0}.dat"


def _keel(name: str, paper: str, rows: int, features: int, target: str, sha: str) -> DatasetSpec:
    return _add(DatasetSpec(
        name=name, paper_name=paper, kind="tabular", rows=rows, features=features, target=target,
        files=(f"keel/{name}.dat",), urls=(_KEEL.format(name),), sha256=(sha,), members=(f"{name}.dat",),
        parser="keel", source=_KEEL_SOURCE.format(name), n_train=5000,
    ))


_keel("compactiv", "Compactiv", 8192, 21, "usr", "e7a024d097e44c0599b4c3840802d3b74bfe5d1ccfb3d6cdb368b47db7fc2642")
_add(DatasetSpec(
    name="cpusmall", paper_name="Cpusmall", kind="tabular", rows=8192, features=12, target="first column",
    files=("libsvm/cpusmall",),
    urls=("https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/regression/cpusmall",),
    sha256=("2b58ea931ae37dfede75e45e15b8f797eee01f229f2c8c66b70f820a55a65eab",),
    parser="libsvm", source="LIBSVM regression datasets (https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/)",
    n_train=5000,
))
_add(DatasetSpec(
    name="ctscan", paper_name="CTScan", kind="tabular", rows=53500, features=384, target="reference",
    files=("ctscan/slice_localization_data.csv",),
    urls=("https://archive.ics.uci.edu/static/public/206/relative+location+of+ct+slices+on+axial+axis.zip",),
    sha256=(None,), members=("slice_localization_data.csv",),
    alternatives=(("ctscan/slice_localization_data.csv.gz", "ctscan/slice_localization_data.zip"),),
    parser="ctscan", n_train=5000,
    source="UCI repository, 'Relative location of CT slices on axial axis' (patientId column dropped)",
))
_add(DatasetSpec(
    name="indoorloc", paper_name="Indoorloc", kind="tabular", rows=19937, features=520, target="LONGITUDE",
    files=("indoorloc/trainingData.csv.gz",),
    urls=("https://archive.ics.uci.edu/static/public/310/ujiindoorloc.zip",),
    sha256=(None,), members=("trainingData.csv",),
    alternatives=(("indoorloc/trainingData.csv", "indoorloc/ujiindoorloc.zip"),),
    parser="indoorloc", n_train=5000,
    source="UCI repository, UJIIndoorLoc trainingData.csv (WAP value 100 = no signal, mapped to -105 dBm)",
))
_keel("mv", "Mv", 40768, 10, "Y", "a0c8f1a7832a34ffaadc6e861593c1cd1386704607251aa8aca51854dcf9b19d")
_keel("pole", "Pole", 14998, 26, "Output", "dca27ea7a36429a62e498e19fed0cdba7dc3a6d911bfa76a4ed90766053e8e07")
_keel("puma32h", "Puma32h", 8192, 32, "thetadd6", "abe22621b21b8e081fdd32bb7c86fe1a60f1f7b11ed282dab45acd9d8c6938a4")

_MNIST = "https://storage.googleapis.com/cvdf-datasets/mnist/{}"
_MNIST_FILES = (
    ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ("train-images-idx3-ubyte.gz", None),
    ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
)
_add(DatasetSpec(
    name="mnist", paper_name="MNIST", kind="image", rows=70000, features=784, target="digit value",
    files=tuple(f"mnist/{f}" for f, _ in _MNIST_FILES), urls=tuple(_MNIST.format(f) for f, _ in _MNIST_FILES),
    sha256=tuple(s for _, s in _MNIST_FILES), parser="idx", input_shape=(1, 28, 28),
    optional=("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"), n_train=60000,
    source="MNIST IDX files (mirror https://storage.googleapis.com/cvdf-datasets/mnist/)",
))
_add(DatasetSpec(
    name="protein", paper_name="Protein solubility (eSol)", kind="composition", rows=3148, features=20,
    target="solubility", files=("protein/esol_aa_composition.csv",),
    urls=("https://raw.githubusercontent.com/zhoujianxun/data_free_KD_regression/main/data/esol_aa_composition.csv",),
    sha256=("b29986eabf210ef9a70c5a4bc6741aa61d31c19bf801819adc21354c5278f831",), parser="esol", n_train=2500,
    source="eSol amino-acid composition table published with the paper's code (Niwa et al. 2009; Han et al. 2019)",
))

_add(DatasetSpec(
    name="diabetes", paper_name="Diabetes (scikit-learn)", kind="tabular", rows=442, features=10,
    target="disease progression", parser="builtin", builtin=True,
    source="built-in: sklearn.datasets.load_diabetes",
))
_add(DatasetSpec(
    name="digits", paper_name="Digits 8×8 (scikit-learn)", kind="image", rows=1797, features=64,
    target="digit value", parser="builtin", builtin=True, input_shape=(1, 8, 8),
    source="built-in: sklearn.datasets.load_digits, pixels scaled to [0, 1], predict the digit value",
))
_add(DatasetSpec(
    name="friedman1", paper_name="Friedman #1", kind="tabular", rows=10000, features=10, target="y",
    parser="builtin", builtin=True, n_train=5000,
    source="built-in: sklearn.datasets.make_friedman1(n_samples=10000, n_features=10, noise=1.0, random_state=0)",
))
_add(DatasetSpec(
    name="toy2d", paper_name="Toy 2-D", kind="tabular", rows=6000, features=2, target="y",
    parser="builtin", builtin=True,
    source="built-in: y = sin(2·x1)·cos(x2) + 0.1·x1², x uniform in [-2, 2]², 6000 rows (seed 0)",
))


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as `name`; RegistryError listing the names otherwise."""
    return DATASETS.get(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


# ---------------------------------------------------------------- built-ins


def _builtin_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
    elif name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X.reshape(-1, 1, 8, 8) / 16.0
    elif name == "friedman1":
        from sklearn.datasets import make_friedman1

        X, y = make_friedman1(n_samples=10000, n_features=10, noise=1.0, random_state=0)
    elif name == "toy2d":
        rng = np.random.default_rng(0)
        X = rng.uniform(-2.0, 2.0, size=(6000, 2))
        y = np.sin(2 * X[:, 0]) * np.cos(X[:, 1]) + 0.1 * X[:, 0] ** 2
    else:  # pragma: no cover - a spec marked builtin without a generator
        raise DatasetError(f"No built-in generator for dataset {name!r}")
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)


# ---------------------------------------------------------------- finding, downloading, parsing


def _data_dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()


def _missing_message(entry: DataFile, dest: Path, why: str) -> str:
    how = f"extract {entry.member} from it and " if entry.member else ""
    return f"{entry.path} is missing (no file at {dest}) and {why}. Download {entry.url}, {how}put it at {dest}."


def accept_checksum_mismatch() -> bool:
    """Whether DFKD_ACCEPT_CHECKSUM_MISMATCH is set to something other than '', '0', 'false', 'no'."""
    return os.environ.get(ACCEPT_MISMATCH_ENV, "").strip().lower() not in ("", "0", "false", "no")


def verify_file(entry: DataFile, path: Path, dataset: str) -> str:
    """Check a data file against its published sha256: 'ok', 'unverified' (no published checksum,
    or another spelling such as a .gz or a zip) or 'accepted' (differs, and the user set
    DFKD_ACCEPT_CHECKSUM_MISMATCH=1; logged as a warning). A difference otherwise is a DatasetError
    saying what was expected and how to accept it: a truncated or modified file is never used silently."""
    if entry.sha256 is None or path.name != Path(entry.path).name:
        return "unverified"
    actual = cached_sha256(path)
    if actual == entry.sha256.lower():
        return "ok"
    size = path.stat().st_size
    if accept_checksum_mismatch():
        log.warning("Using %s although it differs from the published file (sha256 %s, expected %s): %s is set.",
                    path, actual, entry.sha256, ACCEPT_MISMATCH_ENV)
        return "accepted"
    raise DatasetError(
        f"The data file {path} is not the published {entry.path}: expected sha256 {entry.sha256}, "
        f"got {actual} ({size} bytes); it may be truncated or modified. Delete it and fetch it again with "
        f"`python -m dfkd_core datasets --download {dataset}` (or from {entry.url}), or set "
        f"{ACCEPT_MISMATCH_ENV}=1 to use it anyway.")


def verify_dataset(name: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """verify_file for every present file of dataset `name` (relative path → result); raises
    DatasetError on a mismatch. For refusing a run before it starts (jobs.submit)."""
    spec = get_dataset(name)
    if spec.builtin:
        return {}
    root = _data_dir(data_dir)
    out = {}
    for entry in spec.file_entries():
        path = entry.find(root)
        if path is not None:
            out[entry.path] = verify_file(entry, path, spec.name)
    return out


def _ensure(spec: DatasetSpec, data_dir: Path, download: bool | None, progress: Progress | None) -> dict[str, Path]:
    """Relative path → the file on disk, downloading what is missing when allowed.
    Optional files are fetched only when download is True (not on None = auto)."""
    found: dict[str, Path] = {}
    allowed = (not offline()) if download is None else bool(download)
    for entry in spec.file_entries():
        path = entry.find(data_dir)
        if path is None:
            dest = data_dir / entry.path
            if entry.optional and download is not True:
                continue
            if not allowed:
                why = "downloads are off (DFKD_OFFLINE=1)" if download is None else "download=False"
                raise DatasetError(_missing_message(entry, dest, why))
            url = mirror_url(entry.path)
            member = None if url else entry.member
            path = download_file(url or entry.url, dest, relpath=entry.path, sha256=entry.sha256, member=member, progress=progress)
        else:
            verify_file(entry, path, spec.name)
        found[entry.path] = path
    return found


@functools.lru_cache(maxsize=8)
def _parse_cached(parser: str, key: tuple[tuple[str, int, int], ...], target: str, features: int) -> tuple[np.ndarray, np.ndarray]:
    files = [Path(p) for p, _, _ in key]
    if parser == "keel":
        X, y = parsers.parse_keel(files[0], target=target)
    elif parser == "libsvm":
        X, y = parsers.parse_libsvm(files[0], n_features=features)
    elif parser == "indoorloc":
        X, y = parsers.parse_indoorloc(files[0])
    elif parser == "ctscan":
        X, y = parsers.parse_ctscan(files[0])
    elif parser == "esol":
        X, y = parsers.parse_esol(files[0])
    elif parser == "idx":
        X, y = parsers.parse_mnist(files[0], files[1])
    else:  # pragma: no cover - a spec naming an unknown parser
        raise DatasetError(f"No parser {parser!r}")
    for array in (X, y):
        array.flags.writeable = False  # shared by every caller of the cache
    return X, y


def _parse(parser: str, files: list[Path], target: str, features: int) -> tuple[np.ndarray, np.ndarray]:
    key = []
    for path in files:
        stat = path.stat()
        key.append((str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    return _parse_cached(parser, tuple(key), target, features)


def _check_shape(spec: DatasetSpec, X: np.ndarray, source: Path) -> None:
    if tuple(X.shape[1:]) != spec.input_shape:
        raise DatasetError(f"{source}: rows have shape {tuple(X.shape[1:])}, expected {spec.input_shape} for {spec.name}")


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool | None = None,
    progress: Progress | None = None,
) -> LoadedDataset:
    """Parse dataset `name` from `data_dir` (default: dfkd_core.paths.data_dir()).

    download: None (default) fetches missing required files unless DFKD_OFFLINE=1;
    True also fetches the optional full-set files (MNIST's training images); False never
    downloads. `progress(done, total, label)` is called while a file downloads.
    Parsed arrays are cached in-process by path, mtime and size; they are read-only."""
    spec = get_dataset(name)
    if spec.builtin:
        X, y = _builtin_arrays(spec.name)
        return LoadedDataset(spec.name, X, y, source=spec.source, extra={"rows": len(y)})
    root = _data_dir(data_dir)
    found = _ensure(spec, root, download, progress)
    if spec.parser == "idx":
        return _load_mnist(spec, found)
    path = found[spec.files[0]]
    X, y = _parse(spec.parser, [path], spec.target, spec.features)
    _check_shape(spec, X, path)
    return LoadedDataset(spec.name, X, y, source=str(path), files=(str(path),), extra={"rows": len(y)})


def _load_mnist(spec: DatasetSpec, found: dict[str, Path]) -> LoadedDataset:
    test = [found["mnist/t10k-images-idx3-ubyte.gz"], found["mnist/t10k-labels-idx1-ubyte.gz"]]
    X_test, y_test = _parse("idx", test, spec.target, spec.features)
    _check_shape(spec, X_test, test[0])
    train = [found.get("mnist/train-images-idx3-ubyte.gz"), found.get("mnist/train-labels-idx1-ubyte.gz")]
    if all(train):
        X_train, y_train = _parse("idx", train, spec.target, spec.features)
        _check_shape(spec, X_train, train[0])
        X = np.concatenate([X_train, X_test])
        y = np.concatenate([y_train, y_test])
        files = tuple(str(p) for p in train + test)
        return LoadedDataset(spec.name, X, y, source=str(train[0].parent), files=files, test_start=len(y_train),
                             extra={"rows": len(y)})
    files = tuple(str(p) for p in test)
    return LoadedDataset(spec.name, X_test, y_test, source=str(test[0].parent), files=files, note=MNIST_OFFLINE_NOTE,
                         extra={"rows": len(y_test)})


# ---------------------------------------------------------------- the catalogue


def file_status(spec: DatasetSpec, data_dir: str | Path | None = None, verify: bool = False) -> list[dict]:
    """One dict per file: path, present, found_at, url, sha256 and, with verify=True,
    check = 'ok' | 'mismatch' | 'unverified' (no known checksum) | 'missing'."""
    root = _data_dir(data_dir)
    rows = []
    for entry in spec.file_entries():
        where = entry.find(root)
        row = {"path": entry.path, "present": where is not None, "found_at": str(where) if where else None,
               "url": entry.url, "sha256": entry.sha256, "optional": entry.optional}
        if verify:
            if where is None:
                row["check"] = "missing"
            elif entry.sha256 is None or where.name != Path(entry.path).name:
                row["check"] = "unverified"  # no published checksum, or another spelling (.gz, zip)
            else:
                row["actual_sha256"] = cached_sha256(where)
                row["check"] = "ok" if row["actual_sha256"] == entry.sha256 else "mismatch"
        rows.append(row)
    return rows


def dataset_catalog(data_dir: str | Path | None = None, verify: bool = False) -> list[dict]:
    """The catalogue as the CLI and the dashboard show it: one dict per dataset with name,
    paper_name, kind, rows, features, input_shape, target, available, builtin, source,
    where, files and note. Rows come from the specs (no file is parsed); MNIST with only
    its test images reports 10000 rows and says so in `note`."""
    root = _data_dir(data_dir)
    out = []
    for name, spec in DATASETS.items():
        files = [] if spec.builtin else file_status(spec, root, verify=verify)
        required = [f for f in files if not f["optional"]]
        available = spec.builtin or all(f["present"] for f in required)
        rows, note = spec.rows, ""
        if spec.name == "mnist" and not all(f["present"] for f in files if f["optional"]):
            rows, note = 10000, MNIST_OFFLINE_NOTE
        if not available:
            note = note or "needs download: " + ", ".join(f["url"] for f in required if not f["present"])
        out.append({
            "name": name,
            "paper_name": spec.paper_name,
            "kind": spec.kind,
            "rows": rows,
            "features": spec.features,
            "input_shape": list(spec.input_shape),
            "target": spec.target,
            "available": available,
            "builtin": spec.builtin,
            "source": spec.source,
            "where": "built-in" if spec.builtin else str(root / Path(spec.files[0]).parent),
            "files": files,
            "note": note,
        })
    return out

"""The paper's split protocol and the prior built for each kind of data: `load_split(name,
seed)` turns a parsed dataset into a Split (train / validation / test tensors + Prior).

Tabular (section 3.3): X and y standardized on the whole set (a constant feature keeps
std 1), a seeded permutation, 5000 rows for training (built-ins without a paper size:
min(5000, floor(60 % of rows))), of the rest floor(10 %) validation and the remaining
~90 % test. Prior N(0, I) with box bounds = per-feature min/max of the standardized
training rows.
Images (MNIST, digits; section 3.5): pixels in [0, 1] as they are, y = the digit value
(not standardized: MAE in digit units, Table 5). MNIST with its training images: the
60 000 training images train, its 10 000 test images are split 10 % validation / 90 %
test. Offline (test images only): 8000 train, 2000 held out (10 % / 90 %). Prior: per-pixel
N(μ, σ) over the whole loaded image set, clipped to [0, 1].
Composition (eSol protein; section 3.6): fractions and solubility as they are; 2500 train,
the rest 10 % / 90 %. Prior: per-feature N(μ, σ) of the training rows, clipped to [0, 1]
and renormalized onto the simplex.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .catalog import LoadedDataset, get_dataset, load_dataset
from .download import Progress
from .priors import Prior
from .split import Split

VAL_FRACTION = 0.1  # of the rows left after the training set; floor, at least 1
DEFAULT_TRAIN = 5000  # rows for training when the spec gives no paper size ...
DEFAULT_TRAIN_FRACTION = 0.6  # ... capped at this share of a small dataset
MNIST_OFFLINE_TRAIN = 8000


def split_sizes(n: int, n_train: int) -> tuple[int, int, int]:
    """(train, validation, test): of the n - n_train rows left, floor(10 %) (at least 1)
    validate and the rest test."""
    rest = n - n_train
    if n_train < 1 or rest < 2:
        raise ValueError(f"Cannot split {n} rows with {n_train} for training: need at least 2 rows left.")
    n_val = max(1, int(rest * VAL_FRACTION))
    return n_train, n_val, rest - n_val


def train_size(n: int, paper_size: int | None) -> int:
    """The paper's training-set size when it has one and it leaves rows over, else
    min(5000, floor(60 % of n))."""
    if paper_size is not None and paper_size < n - 1:
        return paper_size
    return min(DEFAULT_TRAIN, int(n * DEFAULT_TRAIN_FRACTION))


def standardize(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a - mean) / std along axis 0 (population std); a column with std 0 keeps std 1."""
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (a - mean) / std, mean, std


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _partition(perm: np.ndarray, n_train: int, n_val: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]


def load_split(
    name: str,
    seed: int = 0,
    data_dir: str | Path | None = None,
    download: bool | None = None,
    progress: Progress | None = None,
) -> Split:
    """Dataset `name` split by the paper's protocol with permutation seed `seed`.
    `data_dir`, `download` and `progress` are passed to `load_dataset`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"The 'seed' parameter of load_split must be an int. Got {seed!r} instead.")
    spec = get_dataset(name)
    ds = load_dataset(spec.name, data_dir=data_dir, download=download, progress=progress)
    rng = np.random.default_rng(int(seed))
    if spec.kind == "tabular":
        return _tabular(spec, ds, rng, int(seed))
    if spec.kind == "image":
        return _images(spec, ds, rng, int(seed))
    return _composition(spec, ds, rng, int(seed))


def _extra(ds: LoadedDataset, sizes: tuple[int, int, int], **more) -> dict:
    return {"source": ds.source, "rows": int(len(ds.y)), "files": list(ds.files),
            "n_train": sizes[0], "n_val": sizes[1], "n_test": sizes[2], **more}


def _tabular(spec, ds: LoadedDataset, rng: np.random.Generator, seed: int) -> Split:
    X, x_mean, x_std = standardize(ds.X)
    y2, y_mean, y_std = standardize(ds.y[:, None])
    y = y2[:, 0]
    n = len(y)
    sizes = split_sizes(n, train_size(n, spec.n_train))
    tr, va, te = _partition(rng.permutation(n), sizes[0], sizes[1])
    x_train = X[tr]
    d = X.shape[1]
    prior = Prior("gaussian", torch.zeros(d), torch.ones(d), _t(x_train.min(axis=0)), _t(x_train.max(axis=0)))
    return Split(
        name=spec.name, kind=spec.kind, x_train=_t(x_train), y_train=_t(y[tr]), x_val=_t(X[va]), y_val=_t(y[va]),
        x_test=_t(X[te]), y_test=_t(y[te]), prior=prior, seed=seed, y_mean=float(y_mean[0]), y_std=float(y_std[0]),
        note=ds.note, extra=_extra(ds, sizes, x_mean=x_mean.tolist(), x_std=x_std.tolist()),
    )


def _images(spec, ds: LoadedDataset, rng: np.random.Generator, seed: int) -> Split:
    X, y = ds.X, ds.y
    n = len(y)
    if ds.test_start is not None:  # MNIST with its training images: the paper's setup
        n_train = ds.test_start
        held = n - n_train
        n_val = max(1, int(held * VAL_FRACTION))  # 10 % / 90 % of the test images
        n_test = held - n_val
        tr = rng.permutation(n_train)
        rest = n_train + rng.permutation(held)
        va, te = rest[:n_val], rest[n_val:]
        sizes = (n_train, n_val, n_test)
    else:
        n_train = MNIST_OFFLINE_TRAIN if spec.name == "mnist" else train_size(n, None)
        sizes = split_sizes(n, n_train)
        tr, va, te = _partition(rng.permutation(n), sizes[0], sizes[1])
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    prior = Prior("clipped_gaussian", _t(mean), _t(std), torch.zeros(spec.input_shape), torch.ones(spec.input_shape))
    return Split(
        name=spec.name, kind=spec.kind, x_train=_t(X[tr]), y_train=_t(y[tr]), x_val=_t(X[va]), y_val=_t(y[va]),
        x_test=_t(X[te]), y_test=_t(y[te]), prior=prior, seed=seed, note=ds.note, extra=_extra(ds, sizes),
    )


def _composition(spec, ds: LoadedDataset, rng: np.random.Generator, seed: int) -> Split:
    X, y = ds.X, ds.y
    n = len(y)
    sizes = split_sizes(n, train_size(n, spec.n_train))
    tr, va, te = _partition(rng.permutation(n), sizes[0], sizes[1])
    x_train = X[tr]
    d = X.shape[1]
    prior = Prior("simplex", _t(x_train.mean(axis=0)), _t(x_train.std(axis=0)), torch.zeros(d), torch.ones(d))
    return Split(
        name=spec.name, kind=spec.kind, x_train=_t(x_train), y_train=_t(y[tr]), x_val=_t(X[va]), y_val=_t(y[va]),
        x_test=_t(X[te]), y_test=_t(y[te]), prior=prior, seed=seed, note=ds.note, extra=_extra(ds, sizes),
    )

"""2-D projections of real vs synthetic points (paper Fig. 5): UMAP fitted once per
(dataset, split_seed) on at most 2000 real training rows, cached on disk under DFKD_HOME
and in-process, then `.transform()`ed onto synthetic batches; a PCA of the same rows
stands in while UMAP warms up in a background thread.

UMAP's `.transform` pulls far-away points toward the real ones, so every synthetic point
also carries its distance to the nearest real training point in input space
(sklearn NearestNeighbors), shown in the hover and summarized per sampler.

`umap` is imported lazily inside the fitting function: importing it compiles numba code
and its first fit takes 10–20 s, which must stay off the app's import path.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ..paths import home_dir

log = logging.getLogger(__name__)

MAX_FIT_ROWS = 2000  # real training rows a projection is fitted on
UMAP_PARAMS = dict(n_neighbors=15, min_dist=0.1, n_components=2, n_jobs=1)  # seeded UMAP runs on one thread anyway

# in-process caches, keyed by `projection_key(dataset, split_seed)`
_BASES: dict[str, "RealBase"] = {}
_UMAPS: dict[str, object] = {}
_UMAP_ERRORS: dict[str, str] = {}
_THREADS: dict[str, threading.Thread] = {}
_LOCKS: dict[str, threading.Lock] = {}
_GLOBAL_LOCK = threading.Lock()
FIT_COUNTS: Counter[str] = Counter()  # UMAP fits per key in this process (a cache hit does not count)


def projection_key(dataset: str, split_seed: int = 0) -> str:
    return f"{dataset}-split{int(split_seed)}"


def _lock(key: str) -> threading.Lock:
    with _GLOBAL_LOCK:
        return _LOCKS.setdefault(key, threading.Lock())


def flatten(x) -> np.ndarray:
    """(n, *shape) tensor or array → (n, d) float32 numpy."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), -1)


@dataclass
class RealBase:
    """The real rows a projection is fitted on, their PCA, and a nearest-neighbour index
    over the training inputs for the distance of synthetic points to real ones."""

    key: str
    rows: np.ndarray  # (≤ MAX_FIT_ROWS, d)
    pca: "PCA"  # sklearn is imported where a base is built: the page's thread only asks for keys and paths
    pca_rows: np.ndarray  # (n, 2)
    nn: "NearestNeighbors"
    real_nn_median: float  # median distance of a real row to its nearest other real row

    @classmethod
    def build(cls, key: str, train: np.ndarray, seed: int = 0) -> "RealBase":
        from sklearn.decomposition import PCA
        from sklearn.neighbors import NearestNeighbors

        train = flatten(train)
        rows = train
        if len(train) > MAX_FIT_ROWS:
            idx = np.random.default_rng(seed).choice(len(train), MAX_FIT_ROWS, replace=False)
            rows = train[np.sort(idx)]
        pca = PCA(n_components=2, random_state=seed).fit(rows)
        nn = NearestNeighbors(n_neighbors=1).fit(train)
        d, _ = NearestNeighbors(n_neighbors=2).fit(rows).kneighbors(rows[: min(len(rows), 500)])
        return cls(key, rows, pca, pca.transform(rows), nn, float(np.median(d[:, 1])))

    def nearest_distance(self, x: np.ndarray) -> np.ndarray:
        d, _ = self.nn.kneighbors(flatten(x), n_neighbors=1)
        return d[:, 0]


def get_base(key: str, train_loader: Callable[[], np.ndarray], seed: int = 0) -> RealBase:
    """The cached RealBase for `key`, built from `train_loader()` on first use."""
    base = _BASES.get(key)
    if base is None:
        base = RealBase.build(key, train_loader(), seed)
        _BASES[key] = base
    return base


def dataset_loader(dataset: str, split_seed: int = 0) -> Callable[[], np.ndarray]:
    """A loader of the dataset's (standardized) training inputs, as the engine sees them."""

    def load() -> np.ndarray:
        from ..data import load_split

        return flatten(load_split(dataset, seed=split_seed).x_train)

    return load


# ---------------------------------------------------------------------------- UMAP
def umap_path(key: str) -> Path:
    """The disk cache of a UMAP fit: its embedding of the fit rows in an .npz (never a pickle)."""
    return home_dir() / "projections" / f"umap-{key}.npz"


def _rows_digest(rows: np.ndarray) -> str:
    import hashlib

    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return hashlib.sha256(repr(rows.shape).encode() + rows.tobytes()).hexdigest()


def _load_embedding(path: Path, rows: np.ndarray) -> np.ndarray | None:
    """The cached embedding of `rows`, or None when there is none, or it is unreadable, not an
    .npz (allow_pickle=False: a pickle is refused, never executed) or of other rows. An unusable
    file is removed so that the fit that follows replaces it."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            embedding = np.asarray(data["embedding"], dtype=np.float32)
            digest = str(data["rows_sha256"])
        if digest != _rows_digest(rows) or embedding.shape != (len(rows), UMAP_PARAMS["n_components"]):
            raise ValueError("it was fitted on other rows")
        if not np.isfinite(embedding).all():
            raise ValueError("it holds non-finite coordinates")
        return embedding
    except Exception as exc:  # a stale, truncated or foreign cache file is refitted
        log.warning("UMAP cache %s unusable (%s: %s); refitting", path, type(exc).__name__, exc)
        path.unlink(missing_ok=True)
        return None


def umap_ready(key: str) -> bool:
    return key in _UMAPS


def umap_fitting(key: str) -> bool:
    """Whether a background thread is fitting (or loading) UMAP for `key` now."""
    thread = _THREADS.get(key)
    return thread is not None and thread.is_alive()


def umap_error(key: str) -> str | None:
    return _UMAP_ERRORS.get(key)


def fit_umap(key: str, base: RealBase, seed: int = 0):
    """The fitted UMAP for `key`: from memory, else rebuilt from the embedding cached on disk,
    else fitted now (10–20 s) and its embedding saved. Thread-safe: concurrent callers wait for the one fit."""
    model = _UMAPS.get(key)
    if model is not None:
        return model
    with _lock(key):
        model = _UMAPS.get(key)
        if model is not None:
            return model
        import umap  # lazy: slow import (numba)

        path = umap_path(key)
        embedding = _load_embedding(path, base.rows)
        if embedding is not None:
            # Rebuild the fit from its stored embedding: the same seeded neighbour graph, no
            # optimisation epochs (0.3 s instead of 10–20 s), then the stored coordinates
            # exactly, so `.transform` gives what the original fit gave.
            model = umap.UMAP(random_state=seed, init=embedding, n_epochs=0, **UMAP_PARAMS).fit(base.rows)
            model.embedding_ = embedding
            model.n_epochs, model.init = None, "spectral"  # as fitted: transform's epochs derive from n_epochs
        else:
            model = umap.UMAP(random_state=seed, **UMAP_PARAMS).fit(base.rows)
            FIT_COUNTS[key] += 1
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                with open(tmp, "wb") as fh:
                    np.savez(fh, embedding=np.asarray(model.embedding_, dtype=np.float32),
                             rows_sha256=np.asarray(_rows_digest(base.rows)))
                tmp.replace(path)
            except OSError as exc:  # a read-only or full home: the fit still serves this process
                log.warning("UMAP cache %s not written (%s)", path, exc)
        _UMAPS[key] = model
        _UMAP_ERRORS.pop(key, None)
        return model


def warm_up(key: str, base: RealBase, seed: int = 0) -> bool:
    """Start fitting (or loading) UMAP for `key` in a background thread; True when ready now."""
    if umap_ready(key):
        return True
    with _GLOBAL_LOCK:
        thread = _THREADS.get(key)
        if thread is None or not thread.is_alive():
            if key in _UMAP_ERRORS:
                return False

            def work() -> None:
                try:
                    fit_umap(key, base, seed)
                except Exception as exc:  # shown by the page instead of UMAP
                    log.exception("UMAP fit for %s failed", key)
                    _UMAP_ERRORS[key] = f"{type(exc).__name__}: {exc}"

            thread = threading.Thread(target=work, name=f"umap-{key}", daemon=True)
            _THREADS[key] = thread
            thread.start()
    return False


def wait_for_umap(key: str, timeout: float | None = None) -> bool:
    thread = _THREADS.get(key)
    if thread is not None:
        thread.join(timeout)
    return umap_ready(key)


def clear_memory_cache() -> None:
    """Forget in-process fits (the disk cache stays): for tests."""
    _BASES.clear()
    _UMAPS.clear()
    _UMAP_ERRORS.clear()


# ---------------------------------------------------------------------------- projecting
@dataclass
class Projection:
    points: pd.DataFrame  # x, y, source ('real' or sampler), nn_dist
    method: str  # 'UMAP' or 'PCA'
    summary: pd.DataFrame  # per sampler: points, nn distance median / max, real rows' own median
    note: str = ""


def project(
    key: str,
    base: RealBase,
    synthetic: Mapping[str, np.ndarray],
    method: str = "auto",
    seed: int = 0,
) -> Projection:
    """Project the real rows and each sampler's synthetic batch into 2-D.

    method: 'pca'; 'umap' (fits now if needed, blocking); 'auto' (UMAP when ready, else PCA
    while UMAP warms up in the background)."""
    method = method.lower()
    if method not in ("auto", "umap", "pca"):
        raise ValueError(f"The 'method' parameter must be 'auto', 'umap' or 'pca'. Got {method!r} instead.")
    note = ""
    if method == "auto":
        if umap_ready(key):
            method = "umap"
        else:
            warm_up(key, base, seed)
            method = "pca"
            error = umap_error(key)
            note = f"UMAP failed ({error}); showing PCA." if error else "UMAP is being fitted in the background; showing PCA until it is ready."
    if method == "umap":
        model = fit_umap(key, base, seed)
        real_xy = np.asarray(model.embedding_)
        transform = model.transform
        name = "UMAP"
    else:
        real_xy = base.pca_rows
        transform = base.pca.transform
        name = "PCA"
    frames = [pd.DataFrame({"x": real_xy[:, 0], "y": real_xy[:, 1], "source": "real", "nn_dist": np.nan})]
    summary = []
    for source, x in synthetic.items():
        x = flatten(x)
        if len(x) == 0:
            continue
        xy = np.asarray(transform(x))
        dist = base.nearest_distance(x)
        frames.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "source": str(source), "nn_dist": dist}))
        summary.append(dict(sampler=str(source), points=len(x), nn_dist_median=float(np.median(dist)),
                            nn_dist_max=float(np.max(dist)), real_nn_median=base.real_nn_median))
    return Projection(pd.concat(frames, ignore_index=True), name, pd.DataFrame(summary), note)


def project_dataset(dataset: str, split_seed: int, synthetic: Mapping[str, np.ndarray], method: str = "auto") -> Projection:
    """`project` with the real rows of a registered dataset's training split."""
    key = projection_key(dataset, split_seed)
    base = get_base(key, dataset_loader(dataset, split_seed), split_seed)
    return project(key, base, synthetic, method, split_seed)

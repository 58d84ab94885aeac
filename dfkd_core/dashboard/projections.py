"""Real vs synthetic points of a run for the Distill page (paper Fig. 5): the projection of a
snapshot epoch computed in a one-process worker pool off the page's thread (UMAP's fit and
numba hold the GIL for seconds), 2-D data drawn in its own plane, and whether UMAP is still
being fitted (the page keeps polling until it is)."""
from __future__ import annotations

import threading
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError, DfkdError
from .views import RunView, store, synthetic_batches


def projection(view: RunView, epoch: int, method: str = "auto"):
    """Real vs synthetic points of the run's dataset at a snapshot epoch (a projection.Projection);
    data with two features are shown in their own plane ('plane'), whatever `method` says."""
    from .embedding import project_dataset

    cfg = view.run.config
    _check_projectable(cfg)
    synthetic = synthetic_batches(view, epoch)
    if is_plane(cfg.dataset):
        return plane_projection(cfg.dataset, cfg.split_seed, synthetic)
    return project_dataset(cfg.dataset, cfg.split_seed, synthetic, method)


def is_plane(dataset: str) -> bool:
    """Whether the dataset's inputs have two features (toy2d): drawn as they are, no projection."""
    from ..data import DATASETS  # the spec alone: the catalogue looks at files (1.95 s cold, a pause in the curves)

    return dataset in DATASETS and DATASETS.get(dataset).features == 2


def plane_projection(dataset: str, split_seed: int, synthetic: Mapping[str, np.ndarray]):
    """The projection.Projection of 2-D data: the features themselves as x and y."""
    from .embedding import Projection, dataset_loader, flatten, get_base, projection_key

    base = get_base(projection_key(dataset, split_seed), dataset_loader(dataset, split_seed), split_seed)
    real = base.rows
    frames = [pd.DataFrame({"x": real[:, 0], "y": real[:, 1], "source": "real", "nn_dist": np.nan})]
    summary = []
    for source, x in synthetic.items():
        x = flatten(x)
        if len(x):
            dist = base.nearest_distance(x)
            frames.append(pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "source": str(source), "nn_dist": dist}))
            summary.append(dict(sampler=str(source), points=len(x), nn_dist_median=float(np.median(dist)),
                                nn_dist_max=float(np.max(dist)), real_nn_median=base.real_nn_median))
    return Projection(pd.concat(frames, ignore_index=True), "input plane", pd.DataFrame(summary),
                      "Two input features: the points are drawn in their own plane (x₁, x₂), no projection.")


_PROJECTION_JOBS: "dict[tuple, Any]" = {}  # (home, run, epoch, method, UMAP on disk, snapshots, early ones) -> Future
_PROJECTION_LOCK = threading.Lock()
_PROJECTION_POOL: Any = None  # one worker process, started on first use
_UMAP_PENDING: set[str] = set()  # projection keys whose 'auto' projection came back as PCA (UMAP still fitting)


def _project_in_worker(home: str, dataset: str, split_seed: int, synthetic: Mapping[str, np.ndarray], method: str):
    """The projection, computed in the projection worker process (UMAP and numba live there)."""
    import os

    os.environ["DFKD_HOME"] = home  # the page's run store (and UMAP cache), whatever the worker started with
    if is_plane(dataset):
        return plane_projection(dataset, split_seed, synthetic)
    from .embedding import project_dataset

    return project_dataset(dataset, split_seed, synthetic, method)


def _lower_priority() -> None:
    """The projection worker yields the CPU to the page's server and the training worker."""
    import os

    try:
        os.nice(10)
    except OSError:
        pass


def _projection_pool():
    """A one-process pool: UMAP's fit and numba's compilation hold the GIL for seconds, which
    froze the page's curves when they ran in a thread of the Streamlit server (issue 15)."""
    global _PROJECTION_POOL
    if _PROJECTION_POOL is None:
        import atexit
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _PROJECTION_POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                               initializer=_lower_priority)
        # shut down before interpreter teardown: the executor's own weakref callback otherwise
        # runs after its modules are gone and prints a traceback at exit
        atexit.register(_PROJECTION_POOL.shutdown, wait=False, cancel_futures=True)
    return _PROJECTION_POOL


def projection_later(view: RunView, epoch: int, method: str = "auto", wait: float = 0.5):
    """`projection(view, epoch, method)` computed off the page's thread, in a worker process:
    the Projection when it is ready within `wait` seconds, else None (the page shows "fitting…"
    and polls). The page's curves never wait for UMAP's fit or its first (compiling) transform.
    With 'auto' the worker answers PCA until its UMAP fit is on disk, then UMAP."""
    from concurrent.futures import TimeoutError as Pending
    from concurrent.futures.process import BrokenProcessPool

    from .embedding import projection_key, umap_path

    global _PROJECTION_POOL
    cfg = view.run.config
    _check_projectable(cfg)
    pkey = projection_key(cfg.dataset, cfg.split_seed)
    on_disk = umap_path(pkey).exists()
    key = (str(store().home), view.run.id, int(epoch), method, on_disk, len(view.snapshots), len(view.early))
    with _PROJECTION_LOCK:
        job = _PROJECTION_JOBS.get(key)
        if job is None or (job.done() and job.exception() is not None and isinstance(job.exception(), BrokenProcessPool)):
            if job is not None:  # the worker died (e.g. out of memory): start a new one
                _PROJECTION_POOL = None
            if len(_PROJECTION_JOBS) > 64:
                for old in [k for k, j in _PROJECTION_JOBS.items() if j.done()][:32]:
                    del _PROJECTION_JOBS[old]
            job = _PROJECTION_JOBS[key] = _projection_pool().submit(
                _project_in_worker, str(store().home), cfg.dataset, cfg.split_seed, synthetic_batches(view, epoch), method)
    try:
        result = job.result(timeout=wait)  # a DfkdError raised in the worker reaches the page here
    except Pending:
        return None
    if method == "auto" and result.method == "PCA" and "being fitted" in result.note:
        _UMAP_PENDING.add(pkey)
    else:
        _UMAP_PENDING.discard(pkey)
    return result


UNAVAILABLE = ("Real vs synthetic points are drawn for the registered datasets only: a run on your own data or "
               "input spec has no projection fitted on its rows.")


def projection_unavailable(view: RunView) -> str | None:
    """Why the run in view has no real-vs-synthetic projection (a notice for the page), or None."""
    cfg = view.run.config
    return UNAVAILABLE if cfg is not None and (cfg.data_file or cfg.input_spec) else None


def _check_projectable(cfg) -> None:
    """Projections are fitted on a registered dataset's rows (issue 13: not on the user's own data)."""
    if cfg.data_file or cfg.input_spec:
        raise ConfigError(UNAVAILABLE)



def umap_warming(run_id: str) -> bool:
    """Whether UMAP for the run's dataset is being fitted in the background right now (in this
    process, or in the projection worker: its fit is not on disk yet)."""
    from .embedding import projection_key, umap_fitting, umap_path

    try:
        cfg = store().get_run(run_id).config
    except DfkdError:
        return False
    if cfg is None:
        return False
    key = projection_key(cfg.dataset, cfg.split_seed)
    return umap_fitting(key) or (key in _UMAP_PENDING and not umap_path(key).exists())


def hold_projection(state, key: str, run_id: str, epoch: int, method: str, ready):
    """(projection, its epoch, pending): the one asked for when `ready`, else the last one this
    session drew for the run and method, so the chart does not vanish at each new snapshot (runs.live)."""
    from ..runs import live

    return live.hold_projection(state, key, run_id, epoch, method, ready)

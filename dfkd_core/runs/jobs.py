"""Jobs: distillation runs executed outside the Streamlit script thread, one worker
process per run (`python -m dfkd_core worker RUN_ID`), queued FIFO up to DFKD_MAX_RUNS at once."""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from ..config import DistillConfig
from ..errors import ConfigError, DfkdError
from ..events import Event
from .runstore import RunStore, pid_alive

DEFAULT_MAX_RUNS = 2  # runs distilling at the same time, unless DFKD_MAX_RUNS says otherwise
QUEUE_POLL_S = 0.25  # how often a queued worker asks whether it may start
HEARTBEAT_S = 1.0  # how often a worker says it is alive
STOP_CHECK_S = 0.25  # the stop flag is read from the database at most this often
RECOVER_EVERY_S = 5.0  # a queued worker clears orphaned runs ahead of it this often
STOP_STALE_S = 15.0  # Stop terminates a worker of this host whose heartbeat is older than this (hung)

_children: dict[str, subprocess.Popen] = {}  # run id -> worker started by this process (reaped when done)


def max_runs() -> int:
    """DFKD_MAX_RUNS (an int ≥ 1), else 2."""
    text = os.environ.get("DFKD_MAX_RUNS", "").strip()
    if not text:
        return DEFAULT_MAX_RUNS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"The 'DFKD_MAX_RUNS' environment variable must be an int ≥ 1. Got {text!r} instead.")
    return value


def submit(cfg: DistillConfig, store: RunStore | None = None, title: str | None = None,
           tags: dict | None = None) -> str:
    """Validate `cfg`, store it as a queued run and start its worker process; return the run id.

    A ConfigError from cfg.validate() (or a DatasetError for a data file that differs from its
    published checksum) reaches the caller with its message. The worker runs in
    its own session (a Streamlit rerun or a closed browser tab does not stop it) and logs to
    runs/<id>/worker.log; it waits in 'queued' while DFKD_MAX_RUNS runs are running."""
    from ..data.catalog import verify_dataset

    cfg.validate()
    max_runs()
    if not (cfg.data_file or cfg.input_spec):  # the user's own files are checked when the run loads them
        verify_dataset(cfg.dataset)  # a data file that is not the published one is refused here, not in the worker
    store = store or RunStore()
    run_id = store.create_run(cfg, title=title, tags=tags if tags is not None else {"source": "dashboard"})
    env = dict(os.environ)
    env["DFKD_HOME"] = str(store.home)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    log_path = store.run_dir(run_id) / "worker.log"
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dfkd_core", "worker", run_id],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
    except OSError as exc:
        store.finish(run_id, "failed", error=f"The worker process could not be started: {exc}")
        raise DfkdError(f"The worker process for run {run_id!r} could not be started: {exc}") from None
    store.set_worker(run_id, proc.pid)
    _reap()
    _children[run_id] = proc
    return run_id


def stop(run_id: str, store: RunStore | None = None) -> None:
    """Stop a run: a queued run is cancelled at once; a running one stops within one epoch
    and ends 'cancelled' with everything logged so far. A run whose worker is gone ends
    'interrupted' at once; a worker of this host that has not beaten for STOP_STALE_S seconds
    (hung) is terminated and its run ends 'interrupted'."""
    store = store or RunStore()
    store.request_stop(run_id)
    if store.cancel_if_queued(run_id) or store.check_worker(run_id):
        return
    info = store.get_run(run_id)
    if not info.active or info.pid is None or info.host not in (None, socket.gethostname()):
        return
    silent = time.time() - (info.heartbeat or info.created_at)
    if silent > STOP_STALE_S and pid_alive(info.pid, info.pid_start):
        try:
            os.kill(info.pid, signal.SIGTERM)  # the worker's handler ends the run 'interrupted'
        except OSError:
            pass
        store.check_worker(run_id, stale_after=STOP_STALE_S)  # in case it cannot write any more


def watch(run_id: str, store: RunStore | None = None) -> bool:
    """For pages that poll a run: mark it 'interrupted' if its worker is gone (dead process
    of this host, or no heartbeat for runstore.STALE_AFTER_S); True when it was."""
    _reap()
    return (store or RunStore()).check_worker(run_id)


def recover(store: RunStore | None = None) -> list[str]:
    """Mark runs whose worker died (server restart, kill -9, crash) as 'interrupted'; return their ids.
    The app calls this once at start."""
    _reap()
    return (store or RunStore()).mark_interrupted()


def _reap() -> None:
    """Collect exit codes of finished workers this process started (no zombies left behind)."""
    for run_id, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[run_id]


class _Heartbeat(threading.Thread):
    """Beats and flushes buffered metrics in the background, so a long epoch (or a long
    wait in the queue) neither looks like a dead worker nor hides progress from the pages."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        super().__init__(name=f"dfkd-heartbeat-{run_id}", daemon=True)
        self.store, self.run_id = store, run_id
        self.halt = threading.Event()

    def run(self) -> None:
        last_beat = 0.0
        while not self.halt.wait(min(self.store.flush_interval, HEARTBEAT_S)):
            try:
                self.store.flush()
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    self.store.heartbeat(self.run_id)
                    last_beat = time.monotonic()
            except DfkdError as exc:  # a busy database: try again next beat
                print(f"heartbeat: {exc}", file=sys.stderr, flush=True)


def _stop_flag(store: RunStore, run_id: str) -> Callable[[], bool]:
    """should_stop for the engine: reads the database at most every STOP_CHECK_S seconds."""
    state = {"at": 0.0, "stop": False}

    def should_stop() -> bool:
        if not state["stop"] and time.monotonic() - state["at"] >= STOP_CHECK_S:
            state["stop"] = store.stop_requested(run_id)
            state["at"] = time.monotonic()
        return state["stop"]

    return should_stop


def _wait_for_slot(store: RunStore, run_id: str, limit: int) -> bool:
    """Block while the run is queued behind others; True when it was moved to 'running',
    False when it was cancelled (or otherwise left 'queued') meanwhile."""
    last_recover, said = 0.0, False
    while True:
        if store.claim(run_id, limit):
            return True
        if not said:
            print(f"Run {run_id} is queued: waiting for one of the {limit} run slot(s) (DFKD_MAX_RUNS).",
                  file=sys.stderr, flush=True)
            said = True
        info = store.get_run(run_id)
        if info.status != "queued":
            return False
        if info.stop_requested:
            store.cancel_if_queued(run_id)
            return False
        if time.monotonic() - last_recover >= RECOVER_EVERY_S:
            for other in store.mark_interrupted():  # a dead worker ahead must not block the queue forever
                print(f"Run {other}: {store.get_run(other).error}", file=sys.stderr, flush=True)
            last_recover = time.monotonic()
        time.sleep(QUEUE_POLL_S)


def work(run_id: str, store: RunStore | None = None) -> int:
    """The worker's body: wait for a slot, run the distillation, store every event, finish.
    Returns the process exit code (0 done or cancelled, 1 failed, 2 not a queued run, 130 terminated)."""
    from ..engine import run_distillation

    store = store or RunStore()
    info = store.get_run(run_id)
    if info.status != "queued":
        print(f"Run {run_id} is {info.status}; nothing to do.", file=sys.stderr, flush=True)
        return 0 if info.status == "cancelled" else 2
    if info.pid not in (None, os.getpid(), os.getppid()) and pid_alive(info.pid, info.pid_start):
        print(f"Run {run_id} already has a worker (pid {info.pid}); nothing to do.", file=sys.stderr, flush=True)
        return 2
    store.set_worker(run_id, os.getpid())
    if info.config is not None:  # a user's teacher file: box this process before anything loads it
        from ..models.user_models import box_run_worker

        try:
            boxed = box_run_worker(info.config, store.run_dir(run_id), store.db_path, lambda why: _fail(store, run_id, why))
        except DfkdError as exc:
            return _fail(store, run_id, str(exc))
        if boxed:
            print(f"Run {run_id}: {boxed}", file=sys.stderr, flush=True)
    beat = _Heartbeat(store, run_id)
    beat.start()
    try:
        if info.config is None:
            store.finish(run_id, "failed", error="The stored configuration cannot be read by this version of DFKD Lab.")
            return 1
        try:
            limit = max_runs()
        except ConfigError as exc:
            store.finish(run_id, "failed", error=str(exc))
            return 1
        try:
            started = _wait_for_slot(store, run_id, limit)
        except KeyboardInterrupt:
            store.finish(run_id, "interrupted", error="Interrupted: the worker process was asked to terminate while queued.")
            return 130
        if not started:
            print(f"Run {run_id} was {store.get_run(run_id).status} before it started.", file=sys.stderr, flush=True)
            return 0
        print(f"Run {run_id} started (pid {os.getpid()}).", file=sys.stderr, flush=True)

        def on_event(event: Event) -> None:
            store.record(run_id, event)

        try:
            result = run_distillation(info.config, on_event=on_event, should_stop=_stop_flag(store, run_id))
        except DfkdError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return _fail(store, run_id, str(exc))
        except OSError as exc:
            traceback.print_exc()
            return _fail(store, run_id, disk_error_message(exc))
        except KeyboardInterrupt:  # SIGINT / SIGTERM (see commands/worker.py)
            store.finish(run_id, "interrupted", error="Interrupted: the worker process was asked to terminate.")
            return 130
        except Exception as exc:
            traceback.print_exc()
            return _fail(store, run_id, f"{type(exc).__name__}: {exc} (traceback in worker.log)".replace("\n", " "))
        if not store.has_run(run_id):
            print(f"Run {run_id} was deleted while it ran.", file=sys.stderr, flush=True)
            return 0
        try:
            store.finish(run_id, result)  # writes the weights not stored yet
        except OSError as exc:
            traceback.print_exc()
            return _fail(store, run_id, disk_error_message(exc))
        print(f"Run {run_id} {'cancelled' if result.cancelled else 'done'} after {result.seconds:.1f} s.",
              file=sys.stderr, flush=True)
        return 0
    finally:
        beat.halt.set()
        beat.join(timeout=5)
        try:
            store.close()
        except DfkdError as exc:  # e.g. a full disk: what could not be written is lost, the run's state is not
            print(f"error: {exc}", file=sys.stderr, flush=True)


class InProcessRun:
    """A run executed in this process (the CLI's `distill`) but stored like a dashboard run: created
    'running' with `tags`, this process as its worker (beating, so the pages see it alive and a
    killed process ends 'interrupted'), every event recorded, and its end written by finish() or,
    on an error, by fail(). The Runs page's Stop is honoured through should_stop."""

    def __init__(self, cfg: DistillConfig, tags: dict, store: RunStore | None = None, title: str | None = None) -> None:
        self.store = store or RunStore()
        self.run_id = self.store.create_run(cfg, title=title, tags=tags)
        self.store.set_worker(self.run_id, os.getpid())
        self.store.set_status(self.run_id, "running")
        self._beat = _Heartbeat(self.store, self.run_id)
        self._beat.start()
        self.should_stop = _stop_flag(self.store, self.run_id)

    def record(self, event: Event) -> None:
        self.store.record(self.run_id, event)

    def finish(self, result) -> None:
        self._halt()
        self.store.finish(self.run_id, result)
        self.store.close()

    def fail(self, status: str, error: str) -> None:
        """End the run 'failed' or 'interrupted' with `error` (what could still be written is kept)."""
        self._halt()
        try:
            self.store.finish(self.run_id, status, error=error)
            self.store.close()
        except DfkdError as exc:
            print(f"error: the run {self.run_id} could not be marked {status} ({exc})", file=sys.stderr, flush=True)

    def _halt(self) -> None:
        self._beat.halt.set()
        self._beat.join(timeout=5)


def disk_error_message(exc: OSError) -> str:
    """The run's error for a failed write: says when the disk (or the quota) is full."""
    where = f" while writing {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk is full ({exc.strerror}){where}. Free some space, then start the run again."
    return f"{type(exc).__name__}: {exc.strerror or exc}{where} (traceback in worker.log)"


def _fail(store: RunStore, run_id: str, error: str) -> int:
    """Mark the run failed with `error`; if even that cannot be written (a full disk), say so in
    worker.log and exit: the run then ends 'interrupted' when a page or `runs` next looks at it."""
    try:
        store.finish(run_id, "failed", error=error)
    except DfkdError as exc:
        print(f"error: the run could not be marked failed ({exc}); it was: {error}", file=sys.stderr, flush=True)
    return 1

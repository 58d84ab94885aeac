"""Jobs: distillation runs executed outside the Streamlit script thread, one worker process per
run (`python -m dfkd_core worker RUN_ID`), at most DFKD_MAX_RUNS at once.

A queued run is a row of the run store, not a process: `dispatch` starts a worker for the oldest
queued run whenever a slot is free — at Start, when a worker ends, when a dead worker is found,
and every half second in a dashboard server (`keep_warm`). A server also keeps one *warm* worker
(`worker --warm`: torch and the engine imported, waiting on a pipe) that takes the next run and is
then replaced, so Start → first epoch costs no import. Workers run in their own session: a run
survives a page refresh or a server restart. Stop asks the worker (it checks between batches),
then sends SIGTERM, then SIGKILL, keeping everything logged; the run ends 'cancelled'."""
from __future__ import annotations

import errno
import json
import os
import select
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
QUEUE_POLL_S = 0.25  # how often a worker started by hand on a queued run asks whether it may start
HEARTBEAT_S = 1.0  # how often a worker says it is alive
STOP_CHECK_S = 0.25  # the stop flag is read from the database at most this often
RECOVER_EVERY_S = 5.0  # a server (and a hand-started queued worker) clears orphaned runs this often
SERVE_POLL_S = 0.5  # a server's dispatcher looks for queued runs and a missing warm worker this often
STOP_GRACE_S = 2.0  # Stop waits this long for the worker to stop at its next check, then sends SIGTERM
TERM_GRACE_S = 2.0  # ... and this long after SIGTERM, then sends SIGKILL
HANDOFF_GRACE_S = 1.0  # a finished worker waits this long before starting the next queued run itself
WARM_RETRY_S = 60.0  # a warm worker that died before it was ready is not replaced for this long
STOPPED_BY_SIGNAL = ("Stopped: the worker was ended (SIGTERM) before its next stop check; "
                     "everything logged until then is kept.")
STOPPED_BY_KILL = ("Stopped: the worker did not answer the stop request or SIGTERM within {s:.0f} s and was "
                   "killed (SIGKILL); everything logged until then is kept.")

_children: dict[str, subprocess.Popen] = {}  # run id -> worker started by this process (reaped when done)
_lock = threading.RLock()  # guards _warm and _children: Streamlit runs pages in threads


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
    """Validate `cfg`, store it as a queued run and start a worker for it if a slot is free (the
    warm worker when there is one); return the run id.

    A ConfigError from cfg.validate() (or a DatasetError for a data file that differs from its
    published checksum) reaches the caller with its message. The worker runs in its own session
    (a Streamlit rerun or a closed browser tab does not stop it) and logs to runs/<id>/worker.log;
    while DFKD_MAX_RUNS runs are running the run stays a queued row, with no process."""
    from ..data.catalog import verify_dataset

    from ..userrun import store_user_inputs, uses_user_inputs

    cfg.validate()
    max_runs()
    if not (cfg.data_file or cfg.input_spec):  # the user's own files are checked when the run loads them
        verify_dataset(cfg.dataset)  # a data file that is not the published one is refused here, not in the worker
    if uses_user_inputs(cfg):  # checked and kept now: the worker is boxed before it loads them and cannot store them
        cfg = store_user_inputs(cfg)
    store = store or RunStore()
    run_id = store.create_run(cfg, title=title, tags=tags if tags is not None else {"source": "dashboard"})
    failed = dispatch(store)
    if run_id in failed:
        raise DfkdError(f"The worker process for run {run_id!r} could not be started: {failed[run_id]}")
    return run_id


def dispatch(store: RunStore | None = None) -> dict[str, str]:
    """Start a worker for each queued run that a free slot allows (oldest first); returns
    {run id: why} for runs whose worker could not be started (those runs end 'failed')."""
    store = store or RunStore()
    limit = max_runs()
    failed: dict[str, str] = {}
    while (run_id := store.claim_next(limit, os.getpid())) is not None:
        try:
            _launch(run_id, store)
        except OSError as exc:
            failed[run_id] = str(exc)
            store.finish(run_id, "failed", error=f"The worker process could not be started: {exc}")
    return failed


def _worker_env(store: RunStore) -> dict[str, str]:
    env = dict(os.environ)
    env["DFKD_HOME"] = str(store.home)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def _base_env(env: dict[str, str]) -> dict[str, str]:
    """What a warm worker must share with the run's environment: everything but DFKD_* settings,
    which are read when used (never at import) and travel with the run."""
    return {k: v for k, v in env.items() if not k.startswith("DFKD_")}


def _launch(run_id: str, store: RunStore) -> None:
    """Start the worker of a run claimed by this process: hand it to the warm worker when its
    environment fits, else start a fresh (cold) worker process."""
    env = _worker_env(store)
    with _lock:
        _reap()
        warm = _take_warm(env)
        if warm is not None:
            message = json.dumps({"run": run_id, "env": {k: v for k, v in env.items() if k.startswith("DFKD_")}})
            try:
                warm.proc.stdin.write(message.encode() + b"\n")
                warm.proc.stdin.close()
            except OSError:  # it died meanwhile: start a cold one
                warm.discard()
            else:
                warm.close_pipes()
                store.set_worker(run_id, warm.proc.pid)
                _children[run_id] = warm.proc
                return
        log_path = store.run_dir(run_id) / "worker.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dfkd_core", "worker", run_id],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        store.set_worker(run_id, proc.pid)
        _children[run_id] = proc


# ---------------------------------------------------------------------- the warm worker
class _Warm:
    """The warm worker this process keeps: `worker --warm`, torch imported, reading one line
    (the run and its DFKD_* settings) from its stdin; it says 'ready' on its stdout once warm."""

    def __init__(self, env: dict[str, str]) -> None:
        self.base = _base_env(env)
        self.ready = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dfkd_core", "worker", "--warm"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_ready(self, timeout: float = 0.0) -> bool:
        if not self.ready and self.proc.stdout is not None and not self.proc.stdout.closed:
            readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if readable:
                self.ready = self.proc.stdout.readline().strip() == b"ready"
        return self.ready

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass

    def discard(self) -> None:
        """End it (it holds no run): closing its stdin alone would end it too, once warm."""
        self.close_pipes()
        if self.alive():
            self.proc.kill()
        self.proc.wait()


_warm: _Warm | None = None
_warm_failed_at = -float("inf")
_server: "_Dispatcher | None" = None


def _take_warm(env: dict[str, str]) -> _Warm | None:
    """The warm worker, taken (this process then has none until the next `_ensure_warm`), if it
    is alive and fits `env`; a warm worker that does not fit is ended."""
    global _warm
    warm, _warm = _warm, None
    if warm is None:
        return None
    if warm.alive() and warm.base == _base_env(env):
        return warm
    warm.discard()
    return None


def _ensure_warm(store: RunStore) -> _Warm | None:
    """Start a warm worker if this process keeps one and has none (not again for WARM_RETRY_S
    after one died before it was ready: a broken install must not fork in a loop)."""
    global _warm, _warm_failed_at
    with _lock:
        if _warm is not None and not _warm.alive():
            if not _warm.check_ready():
                _warm_failed_at = time.monotonic()
            _warm.discard()
            _warm = None
        if _warm is None and time.monotonic() - _warm_failed_at >= WARM_RETRY_S:
            _warm = _Warm(_worker_env(store))
        return _warm


class _Dispatcher(threading.Thread):
    """A server's background thread: keeps a warm worker, starts queued runs when a slot frees,
    and marks runs whose worker died 'interrupted' (which frees their slot)."""

    def __init__(self, home: Path) -> None:
        super().__init__(name="dfkd-dispatcher", daemon=True)
        self.home = home
        self.halt = threading.Event()

    def run(self) -> None:
        last_recover, said = -float("inf"), None
        while not self.halt.is_set():
            try:
                store = RunStore(self.home)
                if time.monotonic() - last_recover >= RECOVER_EVERY_S:
                    store.mark_interrupted()
                    last_recover = time.monotonic()
                _ensure_warm(store)
                dispatch(store)
                said = None
            except (DfkdError, OSError) as exc:  # a busy or full store: try again next time
                if str(exc) != said:
                    print(f"dfkd dispatcher: {exc}", file=sys.stderr, flush=True)
                    said = str(exc)
            self.halt.wait(SERVE_POLL_S)


def keep_warm(store: RunStore | None = None) -> bool:
    """For a server (the dashboard calls it once): keep one warm worker for the next Start, and
    dispatch queued runs of this store in the background. DFKD_WARM_WORKER=0 turns the warm
    worker off (queued runs are still dispatched). True when a dispatcher runs."""
    global _server, _warm_failed_at
    store = store or RunStore()
    with _lock:
        if os.environ.get("DFKD_WARM_WORKER", "1").strip() == "0":
            _warm_failed_at = float("inf")  # never
        if _server is None or not _server.is_alive():
            _server = _Dispatcher(store.home)
            _server.start()
    return True


def stop_keeping_warm() -> None:
    """End the dispatcher thread and the warm worker (tests, a server shutting down); the next
    keep_warm starts afresh (a warm worker that failed, or DFKD_WARM_WORKER=0, is forgotten)."""
    global _server, _warm, _warm_failed_at
    with _lock:
        server, _server = _server, None
        warm, _warm = _warm, None
        _warm_failed_at = -float("inf")
    if server is not None:
        server.halt.set()
        server.join(timeout=10)
    if warm is not None:
        warm.discard()


def warm_worker(wait: float = 0.0) -> int | None:
    """The pid of this process's warm worker once it is ready (waiting up to `wait` seconds), else None."""
    deadline = time.monotonic() + wait
    while True:
        with _lock:
            warm = _warm
            if warm is not None and warm.alive() and warm.check_ready(0.0):
                return warm.proc.pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


# ---------------------------------------------------------------------- stop, watch, recover
def stop(run_id: str, store: RunStore | None = None, wait: bool = False) -> None:
    """Stop a run: a queued run is cancelled at once; a running one is asked to stop (the engine
    checks between batches) and, if its worker has not ended STOP_GRACE_S later, is sent SIGTERM,
    then after TERM_GRACE_S more SIGKILL; it ends 'cancelled' with everything logged so far. A run
    whose worker is gone ends 'interrupted' at once. `wait`: return only when the worker has
    ended (the CLI); else the escalation runs in a background thread (a page's callback)."""
    store = store or RunStore()
    store.request_stop(run_id)
    if store.cancel_if_queued(run_id) or store.check_worker(run_id):
        _dispatch_quietly(store)
        return
    info = store.get_run(run_id)
    if not info.active or info.pid is None or info.host not in (None, socket.gethostname()):
        return
    if not _is_worker(info.pid, info.pid_start):
        return  # not a worker of ours (a stale pid, or a test's stand-in): the flag is all we can do
    if wait:
        _end_worker(store, run_id, info.pid, info.pid_start)
    else:
        threading.Thread(target=_end_worker, args=(store, run_id, info.pid, info.pid_start),
                         name=f"dfkd-stop-{run_id}", daemon=True).start()


def _is_worker(pid: int, start: str | None) -> bool:
    """Whether `pid` is a live `python -m dfkd_core worker` process (never this process)."""
    if pid == os.getpid() or not pid_alive(pid, start):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc here: trust the stored pid and its start time
    return b"dfkd_core" in argv and b"worker" in argv


def _signal(pid: int, sig: int) -> None:
    """`sig` to the worker and its process group (it leads its own session: its children too)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass


def _end_worker(store: RunStore, run_id: str, pid: int, start: str | None) -> None:
    """Stop's escalation: wait for the worker to stop by itself, then SIGTERM, then SIGKILL; a
    run still active when its worker is gone ends 'cancelled' here. Then the slot is reused."""

    def gone(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            _reap()
            if not pid_alive(pid, start):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    try:
        if not gone(STOP_GRACE_S):
            _signal(pid, signal.SIGTERM)
            if not gone(TERM_GRACE_S):
                _signal(pid, signal.SIGKILL)
                gone(5.0)
        if store.has_run(run_id) and store.get_run(run_id).active and not pid_alive(pid, start):
            store.finish(run_id, "cancelled", error=STOPPED_BY_KILL.format(s=STOP_GRACE_S + TERM_GRACE_S))
    except DfkdError as exc:
        print(f"stop {run_id}: {exc}", file=sys.stderr, flush=True)
    _dispatch_quietly(store)


def _dispatch_quietly(store: RunStore) -> None:
    try:
        dispatch(store)
    except (DfkdError, OSError) as exc:
        print(f"dispatch: {exc}", file=sys.stderr, flush=True)


def watch(run_id: str, store: RunStore | None = None) -> bool:
    """For pages that poll a run: mark it 'interrupted' if its worker is gone (dead process
    of this host, or no heartbeat for runstore.STALE_AFTER_S); True when it was (its slot then
    goes to the next queued run)."""
    _reap()
    store = store or RunStore()
    lost = store.check_worker(run_id)
    if lost:
        _dispatch_quietly(store)
    return lost


def recover(store: RunStore | None = None) -> list[str]:
    """Mark runs whose worker died (server restart, kill -9, crash) as 'interrupted', start the
    queued runs the freed slots allow; return the interrupted runs' ids. The app calls this once at start."""
    _reap()
    store = store or RunStore()
    lost = store.mark_interrupted()
    _dispatch_quietly(store)
    return lost


def _reap() -> None:
    """Collect exit codes of finished workers this process started (no zombies left behind)."""
    with _lock:
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
    """The worker's body: run a run `dispatch` claimed for this process (or wait for a slot, for
    a worker started by hand on a queued run), store every event, finish. Returns the process
    exit code (0 done or cancelled, 1 failed, 2 not a run for this worker, 130 terminated)."""
    from ..engine import run_distillation

    store = store or RunStore()
    info = store.get_run(run_id)
    claimed = info.status == "running" and info.pid in (os.getpid(), os.getppid())  # by dispatch, for this worker
    if info.status != "queued" and not claimed:
        print(f"Run {run_id} is {info.status}; nothing to do.", file=sys.stderr, flush=True)
        return 0 if info.status == "cancelled" else 2
    if not claimed and info.pid not in (None, os.getpid(), os.getppid()) and pid_alive(info.pid, info.pid_start):
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
            started = claimed or _wait_for_slot(store, run_id, limit)
        except KeyboardInterrupt:
            store.finish(run_id, "interrupted", error="Interrupted: the worker process was asked to terminate while queued.")
            return 130
        if not started:
            print(f"Run {run_id} was {store.get_run(run_id).status} before it started.", file=sys.stderr, flush=True)
            return 0
        print(f"Run {run_id} started (pid {os.getpid()}).", file=sys.stderr, flush=True)
        firsts = FirstEvents(run_id)

        def on_event(event: Event) -> None:
            store.record(run_id, event)
            firsts.seen(event)

        try:
            result = run_distillation(info.config, on_event=on_event, should_stop=_stop_flag(store, run_id),
                                      early_snapshot=True)  # a page waits for the first digits
        except DfkdError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return _fail(store, run_id, str(exc))
        except OSError as exc:
            traceback.print_exc()
            return _fail(store, run_id, disk_error_message(exc))
        except KeyboardInterrupt:  # SIGINT / SIGTERM (see commands/worker.py): Stop's second step, or a shutdown
            if store.has_run(run_id) and store.stop_requested(run_id):
                store.finish(run_id, "cancelled", error=STOPPED_BY_SIGNAL)
            else:
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


def after_run(store: RunStore | None = None) -> None:
    """A worker process's last act: its slot is free, so start the next queued run — after
    HANDOFF_GRACE_S, so that a server's dispatcher can give it to its warm worker first. A
    confined worker (no_new_privs: a sandbox its children would inherit) leaves it to others."""
    try:
        store = store or RunStore()
        if _no_new_privs() or store.list_runs(status="queued").empty:
            return
        time.sleep(HANDOFF_GRACE_S)
        dispatch(store)
    except Exception as exc:  # the run is over and stored; the next Start or poll dispatches
        print(f"dispatch after the run: {exc}", file=sys.stderr, flush=True)


def _no_new_privs() -> bool:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    return any(line.split(":")[0] == "NoNewPrivs" and line.split(":")[1].strip() == "1" for line in status.splitlines())


class FirstEvents:
    """Prints to the worker's log when a run's first events of each kind are stored, in seconds
    since the worker began it ('[timing] RunStarted 1.2 s, Snapshot (early) 4.0 s, ...'): what
    holds up a page's first curve point or first digits (the teacher's load, the students' build,
    the first batch) is read there, and `bench --dashboard` reports it."""

    def __init__(self, run_id: str) -> None:
        self.run_id, self.started, self.kinds = run_id, time.perf_counter(), set()

    def seen(self, event: Event) -> None:
        kind = type(event).__name__ + (" (early)" if getattr(event, "early", False) else "")
        if kind not in self.kinds and kind != "TeacherProgress":
            self.kinds.add(kind)
            print(f"[timing] run {self.run_id}: first {kind} stored {time.perf_counter() - self.started:.2f} s "
                  "after the worker began it", file=sys.stderr, flush=True)


def warm_main() -> int:
    """`worker --warm`: import what a run needs, say 'ready' on stdout, then wait on stdin for one
    line {"run": ID, "env": {DFKD_* settings}} from the server; take on the run's settings, log
    to its worker.log and run it. An empty line or end of file (the server is gone) ends it."""
    _prewarm()
    try:
        os.write(1, b"ready\n")
    except OSError:  # the server stopped listening: it may still hand over a run
        pass
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0
    try:
        message = json.loads(line)
        run_id, env = str(message["run"]), {str(k): str(v) for k, v in message["env"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        print(f"error: not a run for a warm worker: {line[:200]!r}", file=sys.stderr, flush=True)
        return 2
    for key in [k for k in os.environ if k.startswith("DFKD_")]:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("DFKD_")})
    from ..device import apply_thread_policy

    apply_thread_policy()  # DFKD_THREADS of the run
    store = RunStore()
    fd = os.open(store.run_dir(run_id) / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    print(f"Run {run_id}: taken by a warm worker (pid {os.getpid()}).", file=sys.stderr, flush=True)
    code = work(run_id, store)
    after_run(store)
    return code


def _prewarm() -> None:
    """What the first run would import: torch, the engine, the data and teacher modules, and the
    scikit-learn/scipy parts the built-in datasets use (≈ 3-5 s on a CPU, paid before Start); and
    torch._dynamo, which torch imports at the first optimizer made (a generic stack's RMSprop:
    ≈ 3-6 s that held up the first epoch, and the first digits, of every run)."""
    import torch  # noqa: F401
    import sklearn.datasets  # noqa: F401

    from .. import engine  # noqa: F401
    from ..data import catalog, protocol  # noqa: F401
    from ..models import teachers  # noqa: F401

    torch.ones(4, 4) @ torch.ones(4, 4)  # the thread pool and the CPU kernels' first use
    torch.optim.RMSprop([torch.zeros(1, requires_grad=True)])  # imports torch._dynamo now, not in the run


class InProcessRun:
    """A run executed in this process (the CLI's `distill`) but stored like a dashboard run: created
    'running' with `tags`, this process as its worker (beating, so the pages see it alive and a
    killed process ends 'interrupted'), every event recorded, and its end written by finish() or,
    on an error, by fail(). The Runs page's Stop is honoured through should_stop."""

    def __init__(self, cfg: DistillConfig, tags: dict, store: RunStore | None = None, title: str | None = None) -> None:
        self.store = store or RunStore()
        self.run_id = self.store.create_run(cfg, title=title, tags=tags, pid=os.getpid())  # owned: never dispatched
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

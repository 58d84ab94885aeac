"""The one runner of multi-run jobs (reproduce, sweep): tasks run on an executor, their results
come back to the driver, which alone writes the run store (workers never open the SQLite file).

    EXECUTORS       'local' (worker processes of this machine, the default; one: in this process)
                    and 'dask-local' (a Dask LocalCluster bound to 127.0.0.1); a scheduler address
                    (--scheduler tcp://HOST:PORT) runs the tasks on an existing Dask cluster
    Task            one unit of work: a key (unique in the job), a module-level function and its
                    arguments (picklable), a label for progress lines
    Runner          with Runner(executor, scheduler, workers) as r: r.run(tasks, on_result, on_failure)
                    calls on_result(task, value) in the driver as each task finishes, once per key
                    (a result that arrives twice is handled once); a task that raised, or whose
                    worker died, is retried once, then handed to on_failure(task, message);
                    r.per_worker counts the tasks each worker ran; stopping the driver (Ctrl-C)
                    cancels what is still queued or running
    distill_task    the task of one stored run: run_distillation on a worker, every event kept
                    (TeacherProgress aside) and returned with the result, the teacher's cache file
                    shipped along so that a worker on another machine uses the same teacher
    store_outcome   the driver's side: one stored run from a task's events and result

Faults with Dask: a task whose worker dies is rescheduled by the scheduler; with dask-local the
scheduler gives up after one such retry (distributed.scheduler.allowed-failures = 1); an existing
scheduler applies its own setting (Dask's default: 3).
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, DfkdError

EXECUTORS = ("local", "dask-local")
MAX_WORKERS = 64
ATTEMPTS = 2  # a task runs at most twice: once, and one retry
SCHEDULER_TIMEOUT_S = 20  # how long the driver waits for an existing scheduler (and for its first worker)
SCHEDULER_ENV = "DFKD_SCHEDULER"  # the dashboard's default scheduler address (the CLI's --scheduler)


@dataclass(frozen=True)
class Task:
    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    label: str = ""


def default_workers() -> int:
    """One worker process per CPU core."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def check_workers(workers: Any) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"The 'workers' parameter must be an int in [1, {MAX_WORKERS}]. Got {workers!r} instead.")
    return workers


def check_executor(executor: Any, scheduler: Any = None) -> tuple[str, str | None]:
    """(executor, scheduler address): 'local', 'dask-local', or 'dask' with a scheduler address
    tcp://HOST:PORT (tls:// too); ConfigError saying what was expected."""
    if scheduler not in (None, ""):
        text = str(scheduler).strip()
        scheme, _, rest = text.partition("://")
        host, _, port = rest.rpartition(":")
        if scheme not in ("tcp", "tls") or not host or not port.isdigit() or not 0 < int(port) < 65536 \
                or any(c.isspace() or c == "/" for c in host):
            raise ConfigError(f"The 'scheduler' parameter must be a Dask scheduler address such as "
                              f"tcp://127.0.0.1:8786. Got {scheduler!r} instead.")
        if executor not in (None, "", "dask"):
            raise ConfigError(f"The 'executor' parameter cannot be combined with a scheduler address (the cluster is the "
                              f"executor). Got {executor!r} instead.")
        return "dask", text
    executor = "local" if executor in (None, "") else executor
    if executor not in EXECUTORS:
        raise ConfigError(f"The 'executor' parameter must be one of {', '.join(EXECUTORS)}. Got {executor!r} instead.")
    return executor, None


def dashboard_executor() -> tuple[str, str | None]:
    """The executor of jobs the dashboard starts: the Dask cluster at DFKD_SCHEDULER when set, else local."""
    return check_executor(None, os.environ.get(SCHEDULER_ENV, "").strip() or None)


def start_detached(cmd: list[str], log_path, home) -> int:
    """Start a command of the dashboard's (`python -m dfkd_core reproduce|sweep …`) in its own session,
    so a page rerun or a closed tab does not stop it: this checkout's package on its PYTHONPATH, the
    run store at `home`, stdout and stderr appended to `log_path`. Returns its pid."""
    import subprocess
    from pathlib import Path

    env = dict(os.environ)
    env["DFKD_HOME"] = str(home)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root, env=env,
                                start_new_session=True)
    return proc.pid


def executor_label(executor: str, scheduler: str | None) -> str:
    """What runs a job, in words, for the pages."""
    if scheduler:
        return f"the Dask cluster of scheduler {scheduler} ({SCHEDULER_ENV})"
    return "a Dask LocalCluster on 127.0.0.1" if executor == "dask-local" else "local worker processes"


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _call(fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    """Runs on the worker: the task, and who ran it. Torch threads follow DFKD_THREADS (default 1)."""
    from ..device import apply_thread_policy

    apply_thread_policy()
    return fn(*args), _worker_name()


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


class Runner:
    """Runs tasks on one executor; see the module docstring. Use as a context manager."""

    def __init__(self, executor: str | None = "local", scheduler: str | None = None, workers: int | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.executor, self.scheduler = check_executor(executor, scheduler)
        self.workers = check_workers(workers)
        self.log = log or (lambda line: None)
        self.per_worker: Counter[str] = Counter()
        self.retried: list[str] = []
        self._pool = None
        self._client = None
        self._cluster = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Runner":
        if self.executor == "dask-local":
            import logging

            import dask
            from distributed import Client, LocalCluster

            with dask.config.set({"distributed.scheduler.allowed-failures": ATTEMPTS - 1}):
                self._cluster = LocalCluster(host="127.0.0.1", n_workers=self.workers, threads_per_worker=1,
                                             processes=True, dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
        elif self.executor == "dask":
            from distributed import Client

            try:
                self._client = Client(self.scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
                self._client.wait_for_workers(1, timeout=SCHEDULER_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                self.close()
                raise DfkdError(f"No Dask scheduler with workers answers at {self.scheduler} "
                                f"({type(exc).__name__}: {exc}).") from None
            self.workers = len(self._client.scheduler_info().get("workers", {})) or 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
        if self._cluster is not None:
            try:
                self._cluster.close()
            finally:
                self._cluster = None

    def describe(self) -> str:
        if self.executor == "local":
            return f"local: {self.workers} worker process(es)" if self.workers > 1 else "local: this process"
        if self.executor == "dask-local":
            return f"dask-local: LocalCluster on 127.0.0.1, {self.workers} worker(s)"
        return f"dask: scheduler {self.scheduler}, {self.workers} worker(s)"

    # ------------------------------------------------------------------ running
    def run(self, tasks: list[Task], on_result: Callable[[Task, Any], None],
            on_failure: Callable[[Task, str], None] | None = None) -> list[tuple[Task, str]]:
        """Run every task; on_result in the driver as each finishes (once per key), on_failure
        for a task that failed twice. Returns the failed (task, message) pairs."""
        failed: list[tuple[Task, str]] = []
        handled: set[str] = set()

        def done(task: Task, value: Any, worker: str) -> None:
            if task.key in handled:  # the same result twice (a retried task that had finished)
                return
            handled.add(task.key)
            self.per_worker[worker] += 1
            on_result(task, value)

        def fail(task: Task, message: str) -> None:
            if task.key in handled:
                return
            handled.add(task.key)
            failed.append((task, message))
            self.log(f"task failed twice, given up: {task.label or task.key}: {message}")
            if on_failure is not None:
                on_failure(task, message)

        if not tasks:
            return failed
        if self._client is not None:
            self._run_dask(tasks, done, fail)
        elif self.workers > 1 and len(tasks) > 1:
            self._run_pool(tasks, done, fail)
        else:
            self._run_here(tasks, done, fail)
        return failed

    def _retry(self, task: Task, attempts: Counter, message: str) -> bool:
        attempts[task.key] += 1
        if attempts[task.key] < ATTEMPTS:
            self.retried.append(task.key)
            self.log(f"task retried once: {task.label or task.key}: {message}")
            return True
        return False

    def _run_here(self, tasks, done, fail) -> None:
        attempts: Counter = Counter()
        for task in tasks:
            while True:
                try:
                    value, worker = _call(task.fn, *task.args)
                except Exception as exc:  # KeyboardInterrupt stops the driver
                    if self._retry(task, attempts, _describe(exc)):
                        continue
                    fail(task, _describe(exc))
                    break
                done(task, value, "this process")
                break

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    def _run_pool(self, tasks, done, fail) -> None:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        attempts: Counter = Counter()
        todo = list(tasks)
        while todo:
            if self._pool is None:
                self._pool = self._new_pool()
            futures = {self._pool.submit(_call, t.fn, *t.args): t for t in todo}
            todo, broken = [], False
            for future in as_completed(futures):
                task = futures[future]
                try:
                    value, worker = future.result()
                except Exception as exc:  # the task raised, or a worker process died (the pool breaks)
                    broken |= isinstance(exc, BrokenProcessPool)
                    message = "its worker process died" if isinstance(exc, BrokenProcessPool) else _describe(exc)
                    if self._retry(task, attempts, message):
                        todo.append(task)
                    else:
                        fail(task, message)
                    continue
                done(task, value, f"process {worker.rsplit(':', 1)[-1]}")
            if broken:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def _run_dask(self, tasks, done, fail) -> None:
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        futures = {}
        try:
            for t in tasks:
                future = self._client.submit(_call, t.fn, *t.args, key=f"dfkd-{t.key}-{token}", pure=False,
                                             retries=ATTEMPTS - 1)
                futures[future.key] = (future, t)
            lost_again: Counter = Counter()
            pending = as_completed([f for f, _ in futures.values()])
            for future in pending:
                _, task = futures.pop(future.key)
                if future.status == "finished":
                    value, worker = future.result()
                    done(task, value, worker)
                else:
                    try:
                        exc = future.exception()
                    except Exception as cancelled:  # cancelled by the scheduler (e.g. it lost the task's data)
                        exc = cancelled
                    name = type(exc).__name__
                    # a future that ends with no error of its own was lost with its worker: submitted once more
                    if (exc is None or "Cancelled" in name) and lost_again[task.key] < ATTEMPTS - 1:
                        lost_again[task.key] += 1
                        again = self._client.submit(_call, task.fn, *task.args, pure=False, retries=ATTEMPTS - 1,
                                                    key=f"dfkd-{task.key}-{token}-again{lost_again[task.key]}")
                        futures[again.key] = (again, task)
                        pending.add(again)
                        future.release()
                        continue
                    fail(task, "its worker died twice (Dask's KilledWorker)" if name == "KilledWorker"
                         else "its result was lost with its worker twice" if exc is None else _describe(exc))
                future.release()  # the driver keeps no finished result: memory stays flat
        except BaseException:
            self._client.cancel([f for f, _ in futures.values()])
            raise


# ---------------------------------------------------------------- the task of one stored run
def teacher_file(cfg) -> tuple[str, bytes] | None:
    """(file name, bytes) of the cached teacher `cfg` runs with, when the driver has it cached
    (a worker on another machine then uses the very same teacher); None otherwise."""
    from ..data import load_split
    from ..models.teachers import cache_path, default_teacher_arch

    if cfg.teacher_file or cfg.data_file or cfg.input_spec:  # the user's own teacher or data: not a cached teacher
        return None
    split = load_split(cfg.dataset, seed=cfg.split_seed)
    arch = default_teacher_arch(split) if cfg.teacher == "auto" else cfg.teacher
    path = cache_path(split, arch)
    return (path.name, path.read_bytes()) if path.exists() else None


def install_teacher_file(shipped: tuple[str, bytes] | None) -> None:
    """On a worker: write a teacher file shipped by the driver into this machine's teacher cache,
    unless it is there already (same name: same dataset, split, architecture and recipe)."""
    from ..paths import teacher_dir

    if not shipped:
        return
    name, data = shipped
    if not isinstance(name, str) or os.path.basename(name) != name or name.startswith(".") or not isinstance(data, bytes):
        raise DfkdError(f"The shipped teacher file name {name!r} is not a plain file name.")
    path = teacher_dir() / name
    if path.exists():
        return
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def distill_task(cfg, shipped_teacher: tuple[str, bytes] | None = None) -> dict[str, Any]:
    """Runs on a worker: the distillation of `cfg`, its events (TeacherProgress aside) and result.
    Opens no run store."""
    from ..engine import run_distillation
    from ..events import TeacherProgress

    install_teacher_file(shipped_teacher)
    t0 = time.perf_counter()
    events: list = []

    def keep(event) -> None:
        if not isinstance(event, TeacherProgress):
            events.append(event)

    result = run_distillation(cfg, on_event=keep)
    return {"events": events, "result": result, "seconds": time.perf_counter() - t0}


def store_outcome(store, cfg, outcome: dict[str, Any], title: str | None = None,
                  tags: dict[str, Any] | None = None) -> str:
    """In the driver: one stored run from a distill_task's outcome (every event, then the result)."""
    run_id = store.create_run(cfg, title=title, tags=tags, pid=os.getpid())  # owned: never dispatched
    store.set_worker(run_id, os.getpid())
    try:
        for event in outcome["events"]:
            store.record(run_id, event)
        store.finish(run_id, outcome["result"])
    except BaseException as exc:
        store.finish(run_id, "failed", error=f"The result could not be stored: {_describe(exc)}")
        raise
    return run_id


def store_failure(store, cfg, message: str, title: str | None = None, tags: dict[str, Any] | None = None) -> str:
    """In the driver: a task that failed twice, stored as a failed run saying why."""
    run_id = store.create_run(cfg, title=title, tags=tags, pid=os.getpid())
    store.finish(run_id, "failed", error=f"Failed twice on the executor: {message}")
    return run_id


def workers_line(per_worker: Counter) -> str:
    """'tasks per worker: tcp://127.0.0.1:40123 ran 3, tcp://127.0.0.1:40125 ran 2'"""
    return "tasks per worker: " + ", ".join(f"{w} ran {n}" for w, n in sorted(per_worker.items()))

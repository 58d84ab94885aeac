"""RunStore: the one source of truth for runs — an SQLite database (WAL) at home_dir()/runs.db
plus artifact files (snapshots, weights, worker log) under home_dir()/runs/<id>/."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import secrets
import shutil
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..config import DistillConfig
from ..errors import ConfigError, DfkdError
from ..events import DistillResult, EpochMetrics, Event, MemberResult, RunNote, RunStarted, Snapshot, TeacherProgress
from ..paths import home_dir, usable_dir

STATUSES = ("queued", "running", "done", "failed", "interrupted", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
SCHEMA_VERSION = 3  # 2: teacher_val_rmse, teacher_progress; 3: tags (reproduction runs found by data, not by title)
BUSY_TIMEOUT_S = 30.0  # how long a call waits for another process's write lock
FLUSH_INTERVAL_S = 0.5  # buffered epoch metrics reach the database at least this often while events arrive
TEACHER_PROGRESS_INTERVAL_S = 0.5  # a training teacher's progress is written at most this often
EARLY_SUFFIX = "-early"  # the file name of an early snapshot (Snapshot.early) ends so, before .npz
RESERVE_BYTES = 2**20  # kept free in DFKD_HOME (reserve.bin) so that a full disk can still end a run 'failed'
STALE_AFTER_S = 60.0  # a run whose heartbeat is older than this is considered orphaned

# column name -> SQL type; new columns are added to existing databases (never dropped)
_RUN_COLUMNS: dict[str, str] = {
    "id": "TEXT PRIMARY KEY",
    "created_at": "REAL NOT NULL",
    "updated_at": "REAL NOT NULL",
    "status": "TEXT NOT NULL",
    "config": "TEXT NOT NULL",
    "dataset": "TEXT",
    "title": "TEXT",
    "device": "TEXT",
    "engine": "TEXT",
    "teacher_kind": "TEXT",
    "pid": "INTEGER",
    "pid_start": "TEXT",  # the process's start time from /proc: guards against pid reuse
    "host": "TEXT",
    "heartbeat": "REAL",
    "started_at": "REAL",
    "finished_at": "REAL",
    "error": "TEXT",
    "teacher_test_rmse": "REAL",
    "teacher_test_mae": "REAL",
    "note": "TEXT",
    "stop_requested": "INTEGER NOT NULL DEFAULT 0",
    "teacher_val_rmse": "REAL",  # the validation charts' reference line
    "teacher_progress": "TEXT",  # JSON of the last TeacherProgress while the teacher trains; NULL once the run starts
    "tags": "TEXT",  # JSON object saying what the run is, e.g. {"reproduction": {"table": 4, "dataset": …, "seed": 3, "part": ""}}
}
REPRODUCTION_TAG = "reproduction"  # tags[REPRODUCTION_TAG]: the paper table, dataset, seed and part a run reproduces
# The titles reproduction runs were recognised by before schema 3; read once, by the migration to tags
_LEGACY_REPRODUCTION_TITLE = re.compile(
    r"^Table (?P<table>\d+) · (?P<dataset>[\w.-]+) · seed (?P<seed>\d+)(?: · (?P<part>\w+))?$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs ({run_columns});
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, member TEXT NOT NULL, epoch INTEGER NOT NULL,
    val_rmse REAL, val_mae REAL, loss_xg REAL, loss_xp REAL, alpha REAL, seconds REAL,
    PRIMARY KEY (run_id, member, epoch)
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id TEXT NOT NULL, member TEXT NOT NULL, epoch INTEGER NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (run_id, member, epoch)
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL, member TEXT NOT NULL, sampler TEXT, alpha TEXT, seed INTEGER,
    test_rmse REAL, test_mae REAL, best_epoch INTEGER, best_val_rmse REAL,
    other_selections TEXT, teacher_queries INTEGER, weights TEXT,
    PRIMARY KEY (run_id, member)
);
"""

_METRIC_COLUMNS = ("val_rmse", "val_mae", "loss_xg", "loss_xp", "alpha", "seconds")
_TIME_COLUMNS = ("created_at", "updated_at", "heartbeat", "started_at", "finished_at")


class StoreError(DfkdError):
    """The run store cannot be opened or does not hold what was asked for
    (an unknown run id, a corrupt runs.db, a missing snapshot)."""


@dataclass(frozen=True)
class RunInfo:
    """One row of the runs table, with its configuration parsed."""

    id: str
    created_at: float  # unix seconds
    updated_at: float
    status: str  # one of STATUSES
    config: DistillConfig | None  # None only if the stored config no longer parses
    config_dict: dict[str, Any]  # the stored config as saved
    dataset: str | None
    title: str | None
    device: str | None
    engine: str | None
    teacher_kind: str | None
    pid: int | None
    pid_start: str | None
    host: str | None
    heartbeat: float | None
    started_at: float | None
    finished_at: float | None
    error: str | None
    teacher_test_rmse: float | None
    teacher_test_mae: float | None
    note: str | None
    stop_requested: bool
    teacher_val_rmse: float | None = None
    teacher_progress: TeacherProgress | None = None  # while the teacher trains
    tags: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the run is (REPRODUCTION_TAG, ...)


    @property
    def active(self) -> bool:
        """Queued or running: a worker is (or should be) working on it."""
        return self.status in ACTIVE_STATUSES


def new_run_id() -> str:
    """Short and sortable by creation time (to the millisecond): '20260124-210312-042-a3f9'."""
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}-{secrets.token_hex(2)}"


def member_filename(member: str) -> str:
    """A file-system-safe, unique name for a member key: 'direct|constant:0.3|0' → 'direct_constant_0.3_0-1a2b3c'."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", member).strip("._") or "member"
    return f"{safe[:80]}-{hashlib.sha1(member.encode()).hexdigest()[:6]}"


class RunStore:
    """Runs, their metrics, snapshots, results and weights, under one home folder.

    Tables: runs (one row per run: status, config JSON, teacher numbers, worker pid and
    heartbeat, stop flag), metrics (run, member, epoch), snapshots (run, member, epoch →
    .npz with x, student_loss, teacher_pred), results (run, member → test numbers, .pt weights).
    Several processes use it at once (a worker writes while the Streamlit server reads):
    every call opens its own short-lived connection, and writes are short transactions.

    Safe to use from several threads and processes; create one per process (or per page run).
    Epoch metrics are buffered in memory and written in batches (at least every
    `flush_interval` seconds while events arrive, and at every snapshot, result, finish,
    `flush()` and `close()`), so per-epoch writes do not slow a fast run down.
    """

    def __init__(self, home: str | Path | None = None, *, flush_interval: float = FLUSH_INTERVAL_S) -> None:
        self.home = usable_dir(Path(home).expanduser(), "DFKD_HOME") if home is not None else home_dir()
        self.db_path = self.home / "runs.db"
        self.runs_dir = self.home / "runs"
        self.flush_interval = flush_interval
        self._lock = threading.Lock()  # guards the buffer
        self._flush_lock = threading.Lock()  # one flush at a time
        self._buffer: list[tuple[Any, ...]] = []
        self._last_flush = -math.inf  # the first epoch of a run is written at once
        self._last_teacher_write = -math.inf
        self._init_db()
        self._keep_reserve()

    def _disk_full(self) -> bool:
        try:
            return shutil.disk_usage(self.home).free < RESERVE_BYTES
        except OSError:
            return False

    def _keep_reserve(self) -> None:
        """A file of RESERVE_BYTES in DFKD_HOME, made when there is room: deleted when the disk is
        full, so that a run's final status (failed: disk full) can still be written."""
        path = self.home / "reserve.bin"
        try:
            if (not path.exists() or path.stat().st_size < RESERVE_BYTES) and \
                    shutil.disk_usage(self.home).free > 2 * RESERVE_BYTES:  # never the last free space
                with open(path, "wb") as fh:
                    fh.write(b"\0" * RESERVE_BYTES)
        except OSError:
            try:
                path.unlink()  # half a reserve is no reserve
            except OSError:
                pass

    def _release_reserve(self) -> bool:
        try:
            (self.home / "reserve.bin").unlink()
            return True
        except OSError:
            return False

    # ------------------------------------------------------------------ plumbing
    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection for one call; with write=True, one IMMEDIATE transaction."""
        try:
            conn = self._open()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            if write:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            if write:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if write and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            if write and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        if "disk is full" in str(exc) or ("disk I/O error" in str(exc) and self._disk_full()):
            return StoreError(f"The run store {self.db_path} cannot be written: the disk is full ({exc}). "
                              "Free some space, then start the run again.")
        if "not a database" in str(exc) or "malformed" in str(exc):
            return StoreError(
                f"The run store {self.db_path} is not a readable SQLite database ({exc}). "
                "Move the file aside (or set DFKD_HOME to another folder) to start a fresh store."
            )
        return StoreError(f"The run store {self.db_path} could not be used: {exc}.")

    def _init_db(self) -> None:
        """Create missing tables and columns; existing runs are never touched."""
        try:
            conn = self._open()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent; falls back quietly where WAL is impossible
            if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return  # already complete: opening the store takes no write lock
            conn.execute("BEGIN IMMEDIATE")  # one transaction: two processes opening a new store at once is fine
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                columns = ", ".join(f"{name} {kind}" for name, kind in _RUN_COLUMNS.items())
                for statement in _SCHEMA.format(run_columns=columns).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                have = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
                for name, kind in _RUN_COLUMNS.items():
                    if name not in have:  # a store written by an older version
                        kind = re.sub(r"PRIMARY KEY|NOT NULL", "", kind).strip()
                        conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                conn.execute("CREATE INDEX IF NOT EXISTS runs_status_created ON runs (status, created_at)")
                for row in conn.execute("SELECT id, title FROM runs WHERE tags IS NULL").fetchall():  # runs stored before tags
                    conn.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(legacy_title_tags(row["title"])), row["id"]))
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._error(exc) from None
        finally:
            conn.close()

    def run_dir(self, run_id: str) -> Path:
        """Folder of a run's artifact files (created on demand)."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", run_id or ""):
            raise StoreError(f"A run id must be letters, digits, '.', '_' or '-'. Got {run_id!r} instead.")
        path = self.runs_dir / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _require(self, conn: sqlite3.Connection, run_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"No run {run_id!r} in the run store {self.db_path}.")
        return row

    # ------------------------------------------------------------------ writing
    def create_run(self, cfg: DistillConfig, title: str | None = None, tags: dict[str, Any] | None = None,
                   pid: int | None = None) -> str:
        """Store a new run as 'queued' and return its id. `title` is display text; `tags` (a JSON
        object) says what the run is, for code that looks for runs (reproduce.py). `pid`: the process that
        will run it itself (the CLI, a reproduction driver): jobs.dispatch never starts a worker for it."""
        run_id = new_run_id()
        if title is None:
            title = _default_title(cfg)
        with self._connect(write=True) as conn:
            now = time.time()  # taken under the write lock: timestamps follow commit order
            while conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                run_id = new_run_id()
            conn.execute(
                "INSERT INTO runs (id, created_at, updated_at, status, config, dataset, title, tags, stop_requested,"
                " pid, pid_start, host, heartbeat) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (run_id, now, now, cfg.to_json(), cfg.dataset, title, json.dumps(tags or {}),
                 None if pid is None else int(pid), None if pid is None else _process_start(pid),
                 None if pid is None else socket.gethostname(), None if pid is None else now),
            )
        self.run_dir(run_id)
        return run_id

    def record(self, run_id: str, event: Event) -> None:
        """Persist one engine event (TeacherProgress, RunStarted, EpochMetrics, Snapshot or MemberResult)."""
        if isinstance(event, TeacherProgress):
            now = time.monotonic()
            if event.epoch > 1 and now - self._last_teacher_write < TEACHER_PROGRESS_INTERVAL_S:
                return  # a tabular teacher runs hundreds of epochs a second: the pages poll once a second
            self._last_teacher_write = now
            with self._connect(write=True) as conn:
                self._require(conn, run_id)
                conn.execute("UPDATE runs SET teacher_progress = ?, updated_at = ? WHERE id = ?",
                             (json.dumps(dataclasses.asdict(event)), time.time(), run_id))
        elif isinstance(event, EpochMetrics):
            row = (run_id, event.member, int(event.epoch)) + tuple(_num(getattr(event, c)) for c in _METRIC_COLUMNS)
            with self._lock:
                self._buffer.append(row)
                due = time.monotonic() - self._last_flush >= self.flush_interval
            if due:
                self.flush()
        elif isinstance(event, RunStarted):
            with self._connect(write=True) as conn:
                now = time.time()  # taken under the write lock: timestamps follow commit order
                self._require(conn, run_id)
                conn.execute(
                    "UPDATE runs SET device = ?, engine = ?, teacher_kind = ?, teacher_test_rmse = ?, teacher_test_mae = ?,"
                    " note = ?, teacher_val_rmse = ?, teacher_progress = NULL,"
                    " updated_at = ?, heartbeat = ?, started_at = COALESCE(started_at, ?),"
                    " status = CASE WHEN status IN ('queued', 'running') THEN 'running' ELSE status END WHERE id = ?",
                    (event.device, event.engine, event.teacher_kind, _num(event.teacher_test_rmse),
                     _num(event.teacher_test_mae), event.note, _num(event.teacher_val_rmse), now, now, now, run_id),
                )
        elif isinstance(event, Snapshot):
            self.flush()
            if not self.has_run(run_id):  # deleted while its worker was running
                return
            folder = self.run_dir(run_id) / "snapshots"
            folder.mkdir(exist_ok=True)
            # an early snapshot (the epoch's first batch) has its own file: the epoch's own
            # snapshot replaces its row, and the early file goes
            name = f"{member_filename(event.member)}-e{int(event.epoch):06d}{EARLY_SUFFIX if event.early else ''}.npz"
            _atomic_write(folder / name, lambda f: np.savez(
                f, x=np.asarray(event.x), student_loss=np.asarray(event.student_loss), teacher_pred=np.asarray(event.teacher_pred)))
            with self._connect(write=True) as conn:
                row = (run_id, event.member, int(event.epoch), f"snapshots/{name}")
                verb = "INSERT OR IGNORE" if event.early else "INSERT OR REPLACE"  # early: never over the epoch's own
                kept = conn.execute(f"{verb} INTO snapshots (run_id, member, epoch, path) VALUES (?, ?, ?, ?)", row).rowcount
            if event.early and not kept:
                (folder / name).unlink(missing_ok=True)
            elif not event.early:
                (folder / f"{name[:-len('.npz')]}{EARLY_SUFFIX}.npz").unlink(missing_ok=True)
        elif isinstance(event, MemberResult):
            self.flush()
            if self.has_run(run_id):
                self._write_result(run_id, event)
        elif isinstance(event, RunNote):
            with self._connect(write=True) as conn:
                conn.execute("UPDATE runs SET note = CASE WHEN COALESCE(note, '') = '' THEN ? ELSE note || '; ' || ? END,"
                             " updated_at = ? WHERE id = ?", (event.text, event.text, time.time(), run_id))
        else:
            raise TypeError(f"The 'event' parameter must be a TeacherProgress, RunStarted, EpochMetrics, Snapshot, RunNote "
                            f"or MemberResult. "
                            f"Got {type(event).__name__} instead.")

    def _write_result(self, run_id: str, event: MemberResult) -> None:
        weights = None
        if event.state_dict is not None:
            import torch

            state = {k: (v.detach().to("cpu") if isinstance(v, torch.Tensor) else v) for k, v in event.state_dict.items()}
            weights = f"{member_filename(event.member)}.pt"
            buffer = io.BytesIO()  # serialized first: a failed disk write then raises OSError (ENOSPC), not torch's RuntimeError
            torch.save(state, buffer)
            _atomic_write(self.run_dir(run_id) / weights, lambda f: f.write(buffer.getbuffer()))
        others = {name: [_num(v) for v in values] for name, values in (event.other_selections or {}).items()}
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO results (run_id, member, sampler, alpha, seed, test_rmse, test_mae, best_epoch,"
                " best_val_rmse, other_selections, teacher_queries, weights) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, event.member, event.sampler, event.alpha, int(event.seed), _num(event.test_rmse),
                 _num(event.test_mae), int(event.best_epoch), _num(event.best_val_rmse), json.dumps(others),
                 int(event.teacher_queries or 0), weights),
            )

    def flush(self) -> None:
        """Write buffered epoch metrics now (one transaction); also refreshes the heartbeat of their runs."""
        with self._flush_lock:  # a flush in another thread is committed before this one returns
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            rows, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        if not rows:
            return
        try:
            with self._connect(write=True) as conn:
                now = time.time()  # taken under the write lock: timestamps follow commit order
                conn.executemany(  # rows of a run deleted meanwhile are dropped
                    "INSERT OR REPLACE INTO metrics (run_id, member, epoch, val_rmse, val_mae, loss_xg, loss_xp, alpha,"
                    " seconds) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)",
                    [row + (row[0],) for row in rows])
                for run_id in {r[0] for r in rows}:
                    conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (now, run_id))
        except BaseException:
            with self._lock:  # keep them for the next try
                self._buffer = rows + self._buffer
            raise

    def close(self) -> None:
        """Flush buffered metrics. (Connections are per call; nothing else stays open.)"""
        self.flush()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def finish(self, run_id: str, result_or_status: DistillResult | str, error: str | None = None) -> None:
        """End a run: a DistillResult gives 'done' (or 'cancelled' if it was cancelled) and stores
        any member results not recorded yet; a status string sets that status (with `error`),
        even when buffered metrics can no longer be written (a full disk): those are dropped."""
        try:
            self.flush()
        except StoreError:
            if isinstance(result_or_status, DistillResult):
                raise
            with self._lock:
                self._buffer.clear()
        if isinstance(result_or_status, DistillResult):
            result = result_or_status
            status = "interrupted" if result.interrupted else "cancelled" if result.cancelled else "done"
            error = error or result.interrupted or None
            with self._connect() as conn:
                have = {r[0] for r in conn.execute("SELECT member FROM results WHERE run_id = ?", (run_id,))}
            for member in result.members:
                if member.member not in have:
                    self._write_result(run_id, member)
            extra = {"device": result.device, "engine": result.engine,
                     "teacher_test_rmse": _num(result.teacher_test_rmse), "teacher_test_mae": _num(result.teacher_test_mae)}
        else:
            status, extra = _check_status(result_or_status), {}
        for attempt in range(2):
            try:
                with self._connect(write=True) as conn:
                    now = time.time()  # taken under the write lock: timestamps follow commit order
                    self._require(conn, run_id)
                    sets = ", ".join(f"{k} = COALESCE({k}, ?)" for k in extra)
                    conn.execute(
                        f"UPDATE runs SET status = ?, error = ?, updated_at = ?, finished_at = ?, heartbeat = ?{', ' + sets if sets else ''}"
                        " WHERE id = ?", (status, error, now, now, now, *extra.values(), run_id))
                return
            except StoreError:  # the disk is full (SQLite says 'disk is full' or 'disk I/O error'):
                if attempt or not self._release_reserve():  # free the reserve so the run ends with its reason
                    raise

    def set_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Set a run's status (and error message; None clears it)."""
        status = _check_status(status)
        with self._connect(write=True) as conn:
            now = time.time()  # taken under the write lock: timestamps follow commit order
            self._require(conn, run_id)
            conn.execute(
                "UPDATE runs SET status = ?, error = ?, updated_at = ?,"
                " started_at = CASE WHEN ? = 'running' THEN COALESCE(started_at, ?) ELSE started_at END,"
                " finished_at = CASE WHEN ? IN ('queued', 'running') THEN finished_at ELSE ? END WHERE id = ?",
                (status, error, now, status, now, status, now, run_id))

    def set_worker(self, run_id: str, pid: int) -> None:
        """Remember which process works on a run (for mark_interrupted) and beat once."""
        with self._connect(write=True) as conn:
            now = time.time()  # taken under the write lock: timestamps follow commit order
            self._require(conn, run_id)
            conn.execute("UPDATE runs SET pid = ?, pid_start = ?, host = ?, heartbeat = ?, updated_at = ? WHERE id = ?",
                         (int(pid), _process_start(pid), socket.gethostname(), now, now, run_id))

    def heartbeat(self, run_id: str) -> None:
        """Say the run's worker is alive."""
        with self._connect(write=True) as conn:
            conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time(), run_id))

    def claim(self, run_id: str, max_runs: int) -> bool:
        """Atomically move a queued run to 'running' if fewer than `max_runs` runs are running
        and it is among the first queued runs (FIFO by created_at). True if it may start now."""
        with self._connect(write=True) as conn:
            now = time.time()  # taken under the write lock: timestamps follow commit order
            row = self._require(conn, run_id)
            if row["status"] != "queued" or row["stop_requested"]:
                return False
            running = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
            ahead = conn.execute(
                "SELECT COUNT(*) FROM runs WHERE status = 'queued' AND (created_at < ? OR (created_at = ? AND id < ?))",
                (row["created_at"], row["created_at"], run_id)).fetchone()[0]
            if running + ahead >= max_runs:
                return False
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, updated_at = ?, heartbeat = ? WHERE id = ?",
                         (now, now, now, run_id))
            return True

    def claim_next(self, max_runs: int, pid: int) -> str | None:
        """Atomically move the oldest queued run without a process (FIFO by created_at) to 'running' if fewer than
        `max_runs` runs are running, with `pid` (the process about to start its worker) as its
        worker for now; its id, or None when no slot is free or nothing waits. A read first: a
        poll that finds nothing to do takes no write lock."""
        sql_next = ("SELECT id FROM runs WHERE status = 'queued' AND stop_requested = 0 AND pid IS NULL"
                    " ORDER BY created_at, id LIMIT 1")  # a queued row with a pid belongs to that process (a driver)
        sql_running = "SELECT COUNT(*) FROM runs WHERE status = 'running'"
        with self._connect() as conn:
            if conn.execute(sql_next).fetchone() is None or conn.execute(sql_running).fetchone()[0] >= max_runs:
                return None
        with self._connect(write=True) as conn:
            now = time.time()  # taken under the write lock: timestamps follow commit order
            row = conn.execute(sql_next).fetchone()
            if row is None or conn.execute(sql_running).fetchone()[0] >= max_runs:
                return None
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, updated_at = ?, heartbeat = ?, pid = ?,"
                         " pid_start = ?, host = ? WHERE id = ?",
                         (now, now, now, int(pid), _process_start(pid), socket.gethostname(), row["id"]))
            return row["id"]

    def cancel_if_queued(self, run_id: str) -> bool:
        """Cancel a run that has not started yet; False if it is no longer queued."""
        with self._connect(write=True) as conn:
            now = time.time()  # taken under the write lock: timestamps follow commit order
            self._require(conn, run_id)
            cur = conn.execute("UPDATE runs SET status = 'cancelled', stop_requested = 1, updated_at = ?, finished_at = ?"
                               " WHERE id = ? AND status = 'queued'", (now, now, run_id))
            return cur.rowcount > 0

    def request_stop(self, run_id: str) -> None:
        """Ask the run's worker to stop; the engine stops within one epoch and the run ends 'cancelled'."""
        with self._connect(write=True) as conn:
            self._require(conn, run_id)
            conn.execute("UPDATE runs SET stop_requested = 1, updated_at = ? WHERE id = ?", (time.time(), run_id))

    def stop_requested(self, run_id: str) -> bool:
        """Whether the run's worker should stop: a stop was requested, or the run was deleted."""
        with self._connect() as conn:
            row = conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is None or bool(row[0])

    def has_run(self, run_id: str) -> bool:
        """Whether the store holds this run."""
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def mark_interrupted(self, stale_after: float = STALE_AFTER_S) -> list[str]:
        """Runs whose worker is gone become 'interrupted', keeping everything logged.

        A run counts as orphaned when it is 'running' or 'queued' with a worker pid, and that
        process no longer exists (on this host) or its heartbeat is older than `stale_after`
        seconds; or 'running' without a worker. A queued run without a worker waits for a slot.
        Reads only the active runs (an index on status), so it is cheap to call on every listing."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE status IN ('queued', 'running')").fetchall()
        return [row["id"] for row in rows if self._interrupt_if_orphaned(row, stale_after)]

    def check_worker(self, run_id: str, stale_after: float = STALE_AFTER_S) -> bool:
        """`mark_interrupted` for one run, for a page that polls it: True when the run was active
        and its worker is gone (it is now 'interrupted'). One primary-key read and a /proc check."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ? AND status IN ('queued', 'running')",
                               (run_id,)).fetchone()
        return row is not None and self._interrupt_if_orphaned(row, stale_after)

    def _interrupt_if_orphaned(self, row: sqlite3.Row, stale_after: float) -> bool:
        now = time.time()
        beat = row["heartbeat"] or row["created_at"]
        why = orphan_reason(row, now, stale_after)
        if why is None:
            return False
        with self._connect(write=True) as conn:  # only if nothing changed since it was read
            cur = conn.execute(
                "UPDATE runs SET status = 'interrupted', error = ?, updated_at = ?, finished_at = ?"
                " WHERE id = ? AND status IN ('queued', 'running') AND COALESCE(heartbeat, created_at) = ?",
                (f"Interrupted: {why}.", now, now, row["id"], beat))
            return cur.rowcount > 0

    def delete_run(self, run_id: str, *, force: bool = False) -> None:
        """Remove a run's rows and files. An active (queued/running) run needs force=True;
        its worker then stops at the next epoch and writes nothing more."""
        with self._connect(write=True) as conn:
            row = self._require(conn, run_id)
            if row["status"] in ACTIVE_STATUSES and not force:
                raise StoreError(f"Run {run_id!r} is {row['status']}; stop it before deleting it.")
            for table, key in (("metrics", "run_id"), ("snapshots", "run_id"), ("results", "run_id"), ("runs", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (run_id,))
        shutil.rmtree(self.runs_dir / run_id, ignore_errors=True)

    # ------------------------------------------------------------------ reading
    def get_run(self, run_id: str) -> RunInfo:
        """All columns of one run, with its DistillConfig parsed."""
        with self._connect() as conn:
            row = dict(self._require(conn, run_id))
        config_dict = json.loads(row.pop("config") or "{}")
        known = {f.name for f in dataclasses.fields(DistillConfig)}
        try:
            config = DistillConfig.from_dict({k: v for k, v in config_dict.items() if k in known})
        except ConfigError:
            config = None
        row["stop_requested"] = bool(row["stop_requested"])
        row["tags"] = _tags(row.get("tags"))
        progress = _safe_json(row.get("teacher_progress"))
        try:
            row["teacher_progress"] = TeacherProgress(**progress) if isinstance(progress, dict) else None
        except TypeError:  # written by another version
            row["teacher_progress"] = None
        fields = {f.name for f in dataclasses.fields(RunInfo)}
        return RunInfo(config=config, config_dict=config_dict, **{k: v for k, v in row.items() if k in fields})

    def referenced_files(self) -> set[str]:
        """Every file a stored run's configuration names (teacher, data, input spec): what the
        sweep of unused uploads keeps."""
        from ..config import FILE_FIELDS

        with self._connect() as conn:
            texts = [r[0] for r in conn.execute("SELECT config FROM runs")]
        out = set()
        for text in texts:
            cfg = _safe_json(text)
            out.update(v for k in FILE_FIELDS for v in [cfg.get(k) if isinstance(cfg, dict) else None] if isinstance(v, str) and v)
        return out

    def list_runs(self, status: str | None = None, dataset: str | None = None) -> pd.DataFrame:
        """One row per run, newest first: id, created_at, status, dataset, title, epochs, members,
        last_epoch (highest epoch logged), best_test_rmse, device, engine, teacher numbers, error, ..."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(_check_status(status))
        if dataset is not None:
            where.append("dataset = ?")
            params.append(dataset)
        sql = (
            "SELECT runs.*, (SELECT MAX(epoch) FROM metrics WHERE run_id = runs.id) AS last_epoch,"
            " (SELECT MIN(test_rmse) FROM results WHERE run_id = runs.id) AS best_test_rmse,"
            " (SELECT MIN(test_mae) FROM results WHERE run_id = runs.id) AS best_test_mae FROM runs"
            + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC"
        )
        with self._connect() as conn:
            rows = [dict(r) for r in conn.execute(sql, params)]
        for row in rows:
            cfg = _safe_json(row.pop("config"))
            row["epochs"] = cfg.get("epochs")
            row["members"] = len(cfg.get("samplers") or ()) * len(cfg.get("alphas") or ()) * len(cfg.get("seeds") or ())
            row["stop_requested"] = bool(row["stop_requested"])
            row["tags"] = _tags(row.get("tags"))
        order = ["id", "created_at", "status", "dataset", "title", "epochs", "members", "last_epoch", "best_test_rmse",
                 "best_test_mae", "device", "engine", "teacher_kind", "teacher_test_rmse", "teacher_test_mae", "error",
                 "note", "started_at", "finished_at", "updated_at", "heartbeat", "pid", "host", "stop_requested", "tags"]
        df = pd.DataFrame(rows, columns=order)
        for col in _TIME_COLUMNS:
            df[col] = pd.to_datetime(df[col].map(_local_time), errors="coerce")
        for col in ("last_epoch", "epochs", "members", "pid"):
            df[col] = df[col].astype("Int64")
        for col in ("best_test_rmse", "best_test_mae", "teacher_test_rmse", "teacher_test_mae"):
            df[col] = df[col].astype(float)
        return df

    def metrics(self, run_id: str, member: str | None = None, since_epoch: int | None = None) -> pd.DataFrame:
        """Epoch metrics (member, epoch, val_rmse, val_mae, loss_xg, loss_xp, alpha, seconds), by member and epoch.
        Shows what has been flushed: a worker flushes at least every `flush_interval` seconds.
        `since_epoch`: only epochs ≥ it (a polling page reads what is new, see runs.live)."""
        sql = "SELECT member, epoch, " + ", ".join(_METRIC_COLUMNS) + " FROM metrics WHERE run_id = ?"
        params: list[Any] = [run_id]
        if member is not None:
            sql += " AND member = ?"
            params.append(member)
        if since_epoch is not None:
            sql += " AND epoch >= ?"
            params.append(int(since_epoch))
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY member, epoch", params).fetchall()
        df = pd.DataFrame([tuple(r) for r in rows], columns=["member", "epoch", *_METRIC_COLUMNS])
        df["epoch"] = df["epoch"].astype(int)
        for col in _METRIC_COLUMNS:
            df[col] = df[col].astype(float)  # NULL (not validated this epoch) → NaN
        return df

    def snapshot_index(self, run_id: str, early: bool = False) -> pd.DataFrame:
        """Which snapshots exist: columns member, epoch (and, with `early`, whether the one stored
        is still the epoch's early snapshot, its first batch: Snapshot.early)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT member, epoch, path FROM snapshots WHERE run_id = ? ORDER BY member, epoch",
                                (run_id,)).fetchall()
        df = pd.DataFrame([tuple(r) for r in rows], columns=["member", "epoch", "path"])
        df["epoch"] = df["epoch"].astype(int)
        if early:
            df["early"] = df["path"].str.endswith(f"{EARLY_SUFFIX}.npz")
        return df.drop(columns="path")

    def load_snapshot(self, run_id: str, member: str, epoch: int) -> dict[str, np.ndarray]:
        """The snapshot's arrays: x (m, *input_shape), student_loss (m,), teacher_pred (m,)."""
        with self._connect() as conn:
            row = conn.execute("SELECT path FROM snapshots WHERE run_id = ? AND member = ? AND epoch = ?",
                               (run_id, member, int(epoch))).fetchone()
            if row is None:
                have = [r[0] for r in conn.execute(
                    "SELECT epoch FROM snapshots WHERE run_id = ? AND member = ? ORDER BY epoch", (run_id, member))]
                raise StoreError(f"Run {run_id!r} has no snapshot of member {member!r} at epoch {epoch} "
                                 f"(have epochs: {', '.join(map(str, have)) or 'none'}).")
        path = self.runs_dir / run_id / row[0]
        what = f"The snapshot of run {run_id!r}, member {member!r} at epoch {epoch} ({path})"
        if not path.is_file():
            raise StoreError(f"{what} is missing; the run's other records are intact, and it can be deleted.")
        try:  # allow_pickle=False: a planted pickle is refused, never executed
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except Exception as exc:  # BadZipFile, EOFError, ValueError, OSError … for a damaged file
            reason = "not an .npz of arrays" if isinstance(exc, ValueError) and "pickle" in str(exc) else f"{type(exc).__name__}: {exc}"
            raise StoreError(f"{what} is damaged ({reason}); the run's other records are intact, "
                             "and it can be deleted.") from None

    def results(self, run_id: str) -> pd.DataFrame:
        """Final numbers per member: member, sampler, alpha, seed, test_rmse, test_mae, best_epoch,
        best_val_rmse, other_selections (dict name -> [epoch, test_rmse, test_mae]), teacher_queries, weights."""
        cols = ["member", "sampler", "alpha", "seed", "test_rmse", "test_mae", "best_epoch", "best_val_rmse",
                "other_selections", "teacher_queries", "weights"]
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM results WHERE run_id = ? ORDER BY member",
                                (run_id,)).fetchall()
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        df["other_selections"] = df["other_selections"].map(_safe_json)
        for col in ("test_rmse", "test_mae", "best_val_rmse"):
            df[col] = df[col].astype(float)
        return df

    def load_weights(self, run_id: str, member: str) -> dict[str, Any]:
        """The selected student's state_dict (CPU tensors), loaded with torch.load(weights_only=True)."""
        import torch

        with self._connect() as conn:
            row = conn.execute("SELECT weights FROM results WHERE run_id = ? AND member = ?", (run_id, member)).fetchone()
            if row is None or row[0] is None:
                have = [r[0] for r in conn.execute(
                    "SELECT member FROM results WHERE run_id = ? AND weights IS NOT NULL ORDER BY member", (run_id,))]
                raise StoreError(f"Run {run_id!r} has no saved weights for member {member!r} "
                                 f"(have: {', '.join(have) or 'none'}).")
        path = self.runs_dir / run_id / row[0]
        what = f"The weights of run {run_id!r}, member {member!r} ({path})"
        if not path.is_file():
            raise StoreError(f"{what} are missing; the run's other records are intact, and it can be deleted.")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises a variety of types for bad files
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            raise StoreError(f"{what} are damaged ({reason}); the run's other records are intact, "
                             "and it can be deleted.") from None

    def integrity_check(self) -> str:
        """SQLite's PRAGMA integrity_check: 'ok' or the problems found."""
        with self._connect() as conn:
            return "\n".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))


# ---------------------------------------------------------------------- helpers
def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"The 'status' parameter must be one of {', '.join(map(repr, STATUSES))}. Got {status!r} instead.")
    return status


def _num(value: Any) -> float | None:
    """A plain float for SQLite; NaN/inf/None → None (SQL NULL)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _safe_json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}


def _tags(text: str | None) -> dict[str, Any]:
    tags = _safe_json(text)
    return tags if isinstance(tags, dict) else {}


def legacy_title_tags(title: str | None) -> dict[str, Any]:
    """The tags of a run stored before schema 3: a reproduction run's title 'Table 4 · cpusmall ·
    seed 3 · random' said what it was; any other title says nothing ({})."""
    match = _LEGACY_REPRODUCTION_TITLE.match(title or "")
    if not match:
        return {}
    return {REPRODUCTION_TAG: {"table": int(match["table"]), "dataset": match["dataset"], "seed": int(match["seed"]),
                               "part": match["part"] or ""}}


def _local_time(ts: float | None) -> datetime | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return None
    return datetime.fromtimestamp(ts)


def _default_title(cfg: DistillConfig) -> str:
    return f"{cfg.dataset}: {', '.join(cfg.samplers)} · α {', '.join(cfg.alphas)} · {cfg.epochs} epochs"


def _atomic_write(path: Path, write: Any) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:  # a full disk leaves no half-written temporary behind
        tmp.unlink(missing_ok=True)
        raise


def orphan_reason(row: Any, now: float, stale_after: float = STALE_AFTER_S) -> str | None:
    """Why an active run (a runs-table row) has no live worker, or None while it has one."""
    beat = row["heartbeat"] or row["created_at"]
    if row["pid"] is None:  # a queued run is a row waiting for a slot (jobs.dispatch), not a process
        return "no worker process ever started for it" if row["status"] == "running" else None
    if row["host"] in (None, socket.gethostname()) and not pid_alive(row["pid"], row["pid_start"]):
        return f"its worker process (pid {row['pid']}) ended without finishing the run"
    if now - beat > stale_after:
        return f"its worker sent no heartbeat for {now - beat:.0f} s"
    return None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _process_start(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[19] if stat and len(stat) > 19 else None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` exists, is not a zombie, and (if known) started at `start`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return not Path("/proc/self/stat").exists()  # no /proc here: trust os.kill
    if stat[0] in ("Z", "X"):  # killed but not reaped yet
        return False
    return start is None or len(stat) <= 19 or stat[19] == start

"""The box (dfkd_core/models/sandbox.py), tested directly on this kernel: a confined child
cannot read /etc/passwd, cannot write outside its folder, cannot connect to a loopback socket,
fails at its RLIMIT_AS, and keeps writing its SQLite (WAL) store; a real run on a user's
TorchScript teacher runs in a confined worker; a teacher that hangs, turns NaN after the
probe, or allocates past DFKD_MAX_MEMORY_GB ends its run 'failed' with the reason."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from conftest import REPO
from dfkd_core.models import sandbox
from user_helpers import RawReLUTeacher, csv, fast_config, write_torchscript  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(sandbox.landlock_abi() == 0, reason="this kernel has no Landlock")


def _child(code: str, *args: str) -> dict:
    """Run `code` in a fresh Python (this repo importable); its last stdout line is JSON."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """
    import json, os, socket, sys
    from dfkd_core.models import sandbox
    inside, outside, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    state = sandbox.enter(sandbox.Box(read=sandbox.system_reads(), write=[inside], memory_bytes=200_000_000))
    out = {"abi": state.landlock_abi, "seccomp": state.seccomp}

    def attempt(name, fn):
        try:
            fn()
            out[name] = "ok"
        except MemoryError:
            out[name] = "MemoryError"
        except OSError as exc:
            out[name] = f"errno {exc.errno}"

    attempt("read_passwd", lambda: open("/etc/passwd", "rb").read(4))
    attempt("write_outside", lambda: open(os.path.join(outside, "marker"), "w").write("x"))
    attempt("write_inside", lambda: open(os.path.join(inside, "ok"), "w").write("x"))
    attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close())
    attempt("allocate_3gb", lambda: bytearray(3 * 10**9))
    attempt("allocate_10mb", lambda: bytearray(10**7))
    status = open("/proc/self/status").read()
    out["no_new_privs"] = "NoNewPrivs:\\t1" in status
    out["seccomp_mode"] = [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")][0]
    print(json.dumps(out))
"""


def test_a_confined_child_reads_writes_and_connects_only_where_allowed(tmp_path):
    inside, outside = tmp_path / "run", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        out = _child(PROBE, str(inside), str(outside), str(server.getsockname()[1]))
    finally:
        server.close()
    assert out["abi"] >= 1
    assert out["read_passwd"] == "errno 13"
    assert out["write_outside"] == "errno 13" and not (outside / "marker").exists()
    assert out["write_inside"] == "ok" and (inside / "ok").read_text() == "x"
    assert out["connect"] == "errno 13"  # seccomp: no socket at all (and Landlock ABI ≥ 4: no TCP connect)
    assert out["allocate_3gb"] == "MemoryError" and out["allocate_10mb"] == "ok"
    assert out["no_new_privs"] is True and out["seccomp_mode"] == "2"


def test_sqlite_wal_keeps_working_in_the_box(tmp_path):
    """A worker's store: opened before the box, then fresh connections per call, as RunStore does."""
    db = tmp_path / "runs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (i INTEGER)")
    out = _child("""
        import json, sqlite3, sys
        from dfkd_core.models import sandbox
        db, folder = sys.argv[1], sys.argv[2]
        keeper = sqlite3.connect(db)
        keeper.execute("SELECT count(*) FROM t").fetchall()
        sandbox.enter(sandbox.Box(read=sandbox.system_reads(), write=[folder, db, db + "-wal", db + "-shm"]))
        for i in range(50):
            conn = sqlite3.connect(db, timeout=10, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            conn.execute("COMMIT")
            conn.close()
        try:
            sqlite3.connect(db + "-other").execute("CREATE TABLE x (i)")
            other = "ok"
        except sqlite3.OperationalError as exc:
            other = str(exc)
        print(json.dumps({"rows": sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone()[0], "other": other}))
    """, str(db), str(tmp_path / "run"))
    assert out["rows"] == 50
    assert out["other"] == "unable to open database file"  # a new database beside it: refused
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT sum(i) FROM t").fetchone()[0] == sum(range(50))


# ---------------------------------------------------------------- runs on a user's teacher, in workers
class HangingTeacher(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while bool(x.sum() > -1e30):
            x = x + 0.0
        return x.sum(1)


class NaNAfterProbe(nn.Module):
    """Finite for its first three calls (the 64-point probe, test and validation rows), NaN after."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.net = RawReLUTeacher()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.net(x)
        if self.calls > 3:
            out = out * float("nan")
        return out


class Greedy(nn.Module):
    """Allocates 3 GB on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.net = RawReLUTeacher()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = torch.ones(750_000_000)
        return self.net(x) + big[0] * 0.0


def test_user_teacher_runs_are_boxed_and_their_faults_end_them_failed(tmp_path, csv, monkeypatch):
    from dfkd_core.userrun import store_user_inputs
    from dfkd_core.runs import jobs
    from dfkd_core.runs.runstore import RunStore

    monkeypatch.setenv("DFKD_MAX_RUNS", "4")
    store = RunStore()
    runs = {}
    cases = {"honest": (RawReLUTeacher(), {}), "hang": (HangingTeacher(), {"DFKD_TEACHER_DEADLINE_S": "5"}),
             "nan_later": (NaNAfterProbe(), {}), "greedy": (Greedy(), {"DFKD_MAX_MEMORY_GB": "0.5"})}
    for name, (module, env) in cases.items():
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        path = write_torchscript(tmp_path / f"{name}.pt", module)
        cfg = store_user_inputs(fast_config(teacher_file=str(path), data_file=str(csv), target="y", samplers=("gaussian",)))
        runs[name] = jobs.submit(cfg, store)
        for key in env:
            monkeypatch.delenv(key)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and any(store.get_run(r).active for r in runs.values()):
        time.sleep(1)
    info = {name: store.get_run(r) for name, r in runs.items()}
    logs = {name: (store.run_dir(r) / "worker.log").read_text() for name, r in runs.items()}
    assert info["honest"].status == "done", logs["honest"]
    assert "confined: Landlock ABI" in logs["honest"] and "seccomp (no sockets)" in logs["honest"]
    assert len(store.results(runs["honest"])) == 1  # WAL writes from the box reached the store
    assert info["hang"].status == "failed" and "teacher call exceeded 5 s" in info["hang"].error, logs["hang"]
    assert info["nan_later"].status == "failed" and "NaN or inf" in info["nan_later"].error, logs["nan_later"]
    assert info["greedy"].status == "failed", logs["greedy"]
    assert "ran out of memory" in info["greedy"].error and "DFKD_MAX_MEMORY_GB" in info["greedy"].error
    assert store.integrity_check() == "ok"



def test_a_hanging_teacher_ends_the_cli_with_one_line_at_its_deadline(tmp_path, csv):
    path = write_torchscript(tmp_path / "hang.pt", HangingTeacher())
    env = dict(os.environ, PYTHONPATH=str(REPO), DFKD_TEACHER_DEADLINE_S="3")
    done = subprocess.run([sys.executable, "-m", "dfkd_core", "distill", "--teacher", str(path), "--data", str(csv),
                           "--target", "y", "--sampler", "gaussian", "--epochs", "1", "--quiet", "--json"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: The teacher call exceeded 3 s (DFKD_TEACHER_DEADLINE_S): its forward never returned in time, so the run was ended."]
    assert done.stdout == ""


def test_the_private_temp_folders_of_ended_boxed_clis_are_swept(tmp_path):
    """A boxed CLI cannot remove its own folder from /tmp (the box writes only inside it): the next
    boxed CLI removes those whose process has ended, and leaves a running one's alone."""
    from dfkd_core.models.user_models import BOX_TEMP_PREFIX, _sweep_box_temps

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead = tmp_path / f"{BOX_TEMP_PREFIX}{ended.pid}-abc"
    live = tmp_path / f"{BOX_TEMP_PREFIX}{os.getpid()}-def"
    old_empty, old_full = tmp_path / f"{BOX_TEMP_PREFIX}x1y2", tmp_path / f"{BOX_TEMP_PREFIX}z3w4"
    for folder in (dead, live, old_empty, old_full):
        folder.mkdir()
    (dead / "inductor").mkdir()
    (dead / "inductor" / "cache.bin").write_bytes(b"x")
    (live / "in-use").write_text("x")
    (old_full / "in-use").write_text("x")
    other = tmp_path / "not-ours"
    other.mkdir()
    _sweep_box_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, old_full.name, other.name])

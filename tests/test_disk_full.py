"""A full disk ends a run 'failed' with the reason, not 'interrupted': the run store keeps a
reserve file that it frees to write the run's last status. Checked on a real full disk: a
3 MB tmpfs mounted in a private mount namespace (skipped where that is not permitted)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = r"""
import errno, os, sys
sys.path.insert(0, {repo!r})
from dfkd_core.config import DistillConfig
from dfkd_core.runs.jobs import disk_error_message
from dfkd_core.runs.runstore import RunStore

home = sys.argv[1]
store = RunStore(home)
run_id = store.create_run(DistillConfig(epochs=1))
store.set_status(run_id, "running")
folder = store.run_dir(run_id)
fd = os.open(os.path.join(home, "filler"), os.O_WRONLY | os.O_CREAT)  # another program fills the disk
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError as exc:
    assert exc.errno == errno.ENOSPC, exc
os.close(fd)
try:  # the run's next snapshot
    fd = os.open(folder / "snapshot.npz", os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"y" * 65536)
    raise SystemExit("the disk was not full")
except OSError as exc:
    exc.filename = str(folder / "snapshot.npz")
    error = disk_error_message(exc)
try:  # the run's metrics cannot be written either: the store says why
    store.set_status(run_id, "running")
    raise SystemExit("the store could still write")
except Exception as exc:
    print(exc)
store.finish(run_id, "failed", error=error)
info = RunStore(home).get_run(run_id)
print(info.status)
print(info.error)
"""


def test_a_run_on_a_full_disk_ends_failed_with_the_reason(tmp_path):
    if not shutil.which("unshare") or sys.platform != "linux":
        pytest.skip("needs Linux's unshare to mount a small tmpfs")
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "full.py"
    script.write_text(SCRIPT.format(repo=str(REPO)))
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs -o size=3m tmpfs {home}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("mounting a tmpfs in a private namespace is not permitted here")
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           f"mount -t tmpfs -o size=3m tmpfs {home} && exec {sys.executable} {script} {home}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    said, status, error = done.stdout.strip().splitlines()[-3:]
    assert "cannot be written: the disk is full" in said
    assert status == "failed"
    assert error.startswith("The disk is full (No space left on device) while writing") and "start the run again" in error

"""Tasks for tests/test_runner.py: module-level (picklable, importable by worker processes and
Dask workers that have tests/ on their path), each leaving a trace in files so a test can count runs."""
from __future__ import annotations

import os
from pathlib import Path


def square(x: int) -> int:
    return x * x


def fail_once(marker: str, x: int) -> int:
    """Raises the first time (no marker file yet), then returns x + 1."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return x + 1


def always_fail(counter: str) -> None:
    """Raises every time, counting its attempts in `counter` (one line per attempt)."""
    with open(counter, "a") as fh:
        fh.write("attempt\n")
    raise ValueError("this task always fails")


def die_once(marker: str, x: int) -> int:
    """Kills its own worker process the first time (no marker file yet), then returns 10 * x."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os._exit(17)
    return 10 * x

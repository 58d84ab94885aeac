"""Which device the engine runs on: CUDA when present, else CPU, and how to say so."""
from __future__ import annotations

import os
import re

import torch


DEVICE_NAME = re.compile(r"cpu|cuda|cuda:[0-9]{1,2}")


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ('cpu', 'cuda', 'cuda:1'; None or 'auto': DFKD_DEVICE, else CUDA when
    available, else CPU); ConfigError for any other name or a GPU that is not here."""
    from .errors import ConfigError

    what = "The 'device' parameter"
    name = requested if requested not in (None, "", "auto") else None
    if name is None and os.environ.get("DFKD_DEVICE", "").strip() not in ("", "auto"):
        what, name = "The DFKD_DEVICE environment variable", os.environ["DFKD_DEVICE"].strip()
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:40] + "…"
        raise ConfigError(f"{what} must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'. Got {shown} instead.")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            have = f"{count} GPU{'s' if count != 1 else ''} here" if count else "no CUDA here"
            raise ConfigError(f"{what} must be 'cpu' or an available GPU. Got {name!r} instead ({have}).")
    return device


def describe_device(device: torch.device | None = None) -> str:
    """'CPU (2 threads)' or 'GPU: NVIDIA H100 80GB HBM3 (cuda:0)'."""
    device = device or pick_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"GPU: {torch.cuda.get_device_name(index)} (cuda:{index})"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"


MAX_THREADS = 1024


def run_threads() -> int:
    """The torch threads each run uses: DFKD_THREADS, default 1 (ConfigError when it is no int in range)."""
    raw = os.environ.get("DFKD_THREADS", "1").strip() or "1"
    if not (raw.isdigit() and raw.isascii() and 1 <= int(raw[:6]) <= MAX_THREADS and len(raw) <= 6):
        from .errors import ConfigError

        shown = repr(raw) if len(raw) <= 40 else repr(raw[:30]) + "…"
        raise ConfigError(f"The DFKD_THREADS environment variable must be an int in [1, {MAX_THREADS}]. Got {shown} instead.")
    return int(raw)


def describe_run_device() -> str:
    """What a run started now gets: 'CPU (1 thread per run)' — DFKD_THREADS, not this process's
    torch count (the dashboard's server process is not where runs train) — or the GPU."""
    device = pick_device()
    if device.type == "cuda":
        return describe_device(device)
    n = run_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'} per run, DFKD_THREADS)"


def apply_thread_policy() -> int:
    """torch threads for CLI runs and workers: DFKD_THREADS, default 1. The paper's networks
    are tiny, so one thread per run is fastest and lets runs share a small machine."""
    threads = run_threads()
    torch.set_num_threads(threads)
    return threads

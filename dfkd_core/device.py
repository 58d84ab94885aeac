"""Which device the engine runs on: CUDA when present, else CPU, and how to say so."""
from __future__ import annotations

import os

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ('cpu', 'cuda', 'cuda:1') or DFKD_DEVICE, else CUDA when available, else CPU."""
    name = requested or os.environ.get("DFKD_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from .errors import ConfigError

        raise ConfigError(f"The 'device' parameter must be 'cpu' or an available GPU. Got {name!r} instead (no CUDA here).")
    return device


def describe_device(device: torch.device | None = None) -> str:
    """'CPU (2 threads)' or 'GPU: NVIDIA H100 80GB HBM3 (cuda:0)'."""
    device = device or pick_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"GPU: {torch.cuda.get_device_name(index)} (cuda:{index})"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"


def apply_thread_policy() -> int:
    """torch threads for CLI runs and workers: DFKD_THREADS, default 1. The paper's networks
    are tiny, so one thread per run is fastest and lets runs share a small machine."""
    raw = os.environ.get("DFKD_THREADS", "1")
    try:
        threads = max(1, int(raw))
    except ValueError:
        from .errors import ConfigError

        raise ConfigError(f"DFKD_THREADS must be a positive integer. Got {raw!r} instead.") from None
    torch.set_num_threads(threads)
    return threads

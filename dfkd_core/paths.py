"""Where things live on disk: the data directory (DFKD_DATA_DIR) and the home folder
(DFKD_HOME) holding the run store, cached teachers (DFKD_TEACHER_DIR overrides) and UMAP fits."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """DFKD_DATA_DIR if set, else a per-user cache folder (created on demand)."""
    env = os.environ.get("DFKD_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dfkd-lab" / "data"


def home_dir() -> Path:
    """DFKD_HOME if set, else a per-user data folder; created if missing."""
    env = os.environ.get("DFKD_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "dfkd-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def teacher_dir() -> Path:
    """DFKD_TEACHER_DIR if set (tests share one across a session), else DFKD_HOME/teachers."""
    env = os.environ.get("DFKD_TEACHER_DIR")
    path = Path(env).expanduser() if env else home_dir() / "teachers"
    path.mkdir(parents=True, exist_ok=True)
    return path

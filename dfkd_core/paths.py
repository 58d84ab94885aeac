"""Where things live on disk: the data directory (DFKD_DATA_DIR) and the home folder
(DFKD_HOME) holding the run store, cached teachers (DFKD_TEACHER_DIR overrides) and UMAP fits."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


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
    return usable_dir(path, "DFKD_HOME")


def teacher_dir() -> Path:
    """DFKD_TEACHER_DIR if set (tests share one across a session), else DFKD_HOME/teachers."""
    env = os.environ.get("DFKD_TEACHER_DIR")
    path = Path(env).expanduser() if env else home_dir() / "teachers"
    return usable_dir(path, "DFKD_TEACHER_DIR" if env else "DFKD_HOME")


def usable_dir(path: Path, setting: str) -> Path:
    """`path`, created if missing; a ConfigError naming `setting` when it is a file, cannot be
    created, or cannot be written to (a read-only folder)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"The {setting} folder must be a directory. Got {str(path)!r}, which is a file; "
                          f"set {setting} to a folder.") from None
    except OSError as exc:
        raise ConfigError(f"The {setting} folder {str(path)!r} cannot be created ({exc.strerror or exc}); "
                          f"set {setting} to a writable folder.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"The {setting} folder {str(path)!r} is read-only; set {setting} to a writable folder.")
    return path

"""Teachers shipped inside the package (dfkd_core/shipped_teachers/): weight files a first visit
loads instead of training, each listed in MANIFEST.json with its checksum and the command that made it."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_teachers"
MANIFEST = SHIPPED_DIR / "MANIFEST.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest() -> dict[str, dict]:
    """File name → {dataset, split_seed, arch, sha256, bytes, command, test_rmse, test_mae, val_rmse, ...}."""
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def shipped_path(name: str) -> Path | None:
    """The shipped weight file `name` (a teacher cache file name: teachers.shipped_file), or None
    when it is not listed, missing, or its checksum does not match the manifest."""
    entry = manifest().get(name)
    path = SHIPPED_DIR / name
    if entry is None or not path.exists() or sha256(path) != entry["sha256"]:
        return None
    return path


def record(source: Path, entry: dict) -> dict:
    """Copy the weight file `source` into SHIPPED_DIR and list it in the manifest with its
    checksum, size and `entry` (command, metrics, ...)."""
    SHIPPED_DIR.mkdir(exist_ok=True)
    target = SHIPPED_DIR / source.name
    target.write_bytes(source.read_bytes())
    entry = {**entry, "sha256": sha256(target), "bytes": target.stat().st_size}
    entries = manifest()
    entries[target.name] = entry
    tmp = MANIFEST.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
    tmp.replace(MANIFEST)
    return entry

"""Teachers shipped inside the package (dfkd_core/shipped_teachers/): weight files a first visit
loads instead of training, each listed in MANIFEST.json with its checksum and the command that made it."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_teachers"
MANIFEST = SHIPPED_DIR / "MANIFEST.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest() -> dict[str, dict]:
    """File name → {dataset, split_seed, arch, sha256, bytes, command, test_rmse, test_mae, val_rmse, ...}."""
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def shipped_file(split, arch: str) -> Path | None:
    """The shipped weight file of this split and architecture, or None. Its name is the teacher
    cache's (teachers._cache_path): dataset, split seed, architecture, training-set size, note and
    (for images) the training recipe, so a changed split or recipe never loads a stale teacher."""
    from .teachers import _cache_path

    name = _cache_path(split, arch).name
    entry = manifest().get(name)
    path = SHIPPED_DIR / name
    if entry is None or not path.exists() or sha256(path) != entry["sha256"]:
        return None
    return path


def load_shipped_teacher(split, arch: str, device: torch.device):
    """(TorchTeacher, TeacherInfo) from a shipped file whose checksum matches the manifest, loaded
    with weights_only=True; None when nothing is shipped for this split and architecture."""
    from .teachers import TeacherInfo, TorchTeacher, _split_arch, build_model

    path = shipped_file(split, arch)
    if path is None:
        return None
    start = time.perf_counter()
    blob = torch.load(path, map_location="cpu", weights_only=True)
    module = build_model(arch, split)
    module.load_state_dict(blob["state_dict"])
    info = TeacherInfo(arch, blob["test_rmse"], blob["test_mae"], blob["val_rmse"], True,
                       time.perf_counter() - start, str(path), extra={"shipped": True})
    return TorchTeacher(module.to(device).eval(), _split_arch(arch)[0]), info


def ship_teacher(split, arch: str, command: str, device: torch.device | str = "cpu") -> dict:
    """Train the teacher of `split` afresh (get_teacher with retrain, the cache's recipe), copy its
    file into SHIPPED_DIR and record it in the manifest with its checksum and `command`."""
    from .teachers import _cache_path, default_teacher_arch, get_teacher

    arch = default_teacher_arch(split) if arch == "auto" else arch
    if arch == "svr":
        from .errors import ConfigError

        raise ConfigError("The 'arch' parameter of a shipped teacher must be a torch model (mlp<h> or cnn<f>). Got 'svr' instead.")
    start = time.perf_counter()
    _, info = get_teacher(split, arch, device, retrain=True)
    source = _cache_path(split, arch)
    SHIPPED_DIR.mkdir(exist_ok=True)
    target = SHIPPED_DIR / source.name
    target.write_bytes(source.read_bytes())
    entry = {"dataset": split.name, "split_seed": split.seed, "arch": arch, "sha256": sha256(target),
             "bytes": target.stat().st_size, "command": command, "test_rmse": info.test_rmse,
             "test_mae": info.test_mae, "val_rmse": info.val_rmse, "train_seconds": round(time.perf_counter() - start, 1),
             "torch": torch.__version__, "made": time.strftime("%Y-%m-%d")}
    entries = manifest()
    entries[target.name] = entry
    tmp = MANIFEST.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
    tmp.replace(MANIFEST)
    return entry

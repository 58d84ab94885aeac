"""Teachers shipped with the package: every file matches its manifest checksum, loads with
weights_only=True and still scores its recorded test metrics; get_teacher uses them before training."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from dfkd_core import shipped, teachers
from dfkd_core.data import load_split
from dfkd_core.teachers import cache_path, build_model, evaluate, get_teacher

ENTRIES = shipped.manifest()
FIRST_VISIT = {("diabetes", "mlp500"), ("toy2d", "mlp500"), ("friedman1", "mlp500"), ("digits", "cnn10")}


def test_the_built_in_datasets_teachers_are_shipped():
    assert {(e["dataset"], e["arch"]) for e in ENTRIES.values() if e["split_seed"] == 0} >= FIRST_VISIT


@pytest.mark.parametrize("name", sorted(ENTRIES), ids=sorted(e["dataset"] for e in ENTRIES.values()))
def test_shipped_file_matches_its_checksum_size_and_command(name):
    entry, path = ENTRIES[name], shipped.SHIPPED_DIR / name
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert entry["command"].startswith(f"python -m dfkd_core teach --dataset {entry['dataset']} ") and "--ship" in entry["command"]


@pytest.mark.parametrize("name", sorted(ENTRIES), ids=sorted(e["dataset"] for e in ENTRIES.values()))
def test_shipped_teacher_loads_weights_only_and_scores_its_recorded_test_metrics(name):
    entry = ENTRIES[name]
    split = load_split(entry["dataset"], seed=entry["split_seed"])
    assert cache_path(split, entry["arch"]).name == name  # the split and recipe it was trained for
    blob = torch.load(shipped.SHIPPED_DIR / name, map_location="cpu", weights_only=True)
    module = build_model(entry["arch"], split)
    module.load_state_dict(blob["state_dict"])
    rmse, mae = evaluate(module.eval(), split.x_test, split.y_test)
    assert rmse == pytest.approx(entry["test_rmse"], rel=1e-4) and mae == pytest.approx(entry["test_mae"], rel=1e-4)


def test_get_teacher_on_a_fresh_cache_loads_the_shipped_teacher_instead_of_training(tmp_path, monkeypatch):
    monkeypatch.setenv("DFKD_TEACHER_DIR", str(tmp_path / "fresh"))
    split = load_split("diabetes", seed=0)
    teacher, info = get_teacher(split)
    assert info.extra == {"shipped": True} and info.cached and info.path.startswith(str(shipped.SHIPPED_DIR))
    assert not (tmp_path / "fresh" / cache_path(split, "mlp500").name).exists()
    rmse, _ = evaluate(teacher.predict, split.x_test, split.y_test)
    assert rmse == pytest.approx(info.test_rmse, rel=1e-5)


def test_retrain_ignores_the_shipped_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("DFKD_TEACHER_DIR", str(tmp_path / "fresh"))
    _, info = get_teacher(load_split("diabetes", seed=0), retrain=True)
    assert not info.cached and "shipped" not in info.extra


def test_a_shipped_file_whose_checksum_differs_is_not_loaded(tmp_path, monkeypatch):
    split = load_split("diabetes", seed=0)
    name = cache_path(split, "mlp500").name
    folder = tmp_path / "shipped"
    shutil.copytree(shipped.SHIPPED_DIR, folder)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    monkeypatch.setattr(shipped, "MANIFEST", folder / "MANIFEST.json")
    assert teachers.shipped_file(split, "mlp500") == folder / name
    blob = torch.load(folder / name, weights_only=True)
    blob["state_dict"]["fc2.bias"] += 1.0
    torch.save(blob, folder / name)
    assert teachers.shipped_file(split, "mlp500") is None
    assert teachers.load_shipped_teacher(split, "mlp500", torch.device("cpu")) is None


def test_teach_ship_writes_the_file_and_its_manifest_entry(tmp_path, monkeypatch, capsys):
    from dfkd_core.cli import main

    folder = tmp_path / "shipped"
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    monkeypatch.setattr(shipped, "MANIFEST", folder / "MANIFEST.json")
    assert main(["teach", "--dataset", "diabetes", "--ship", "--json", "--device", "cpu"]) == 0
    entry = json.loads(capsys.readouterr().out)
    name = cache_path(load_split("diabetes", seed=0), "mlp500").name
    assert json.loads((folder / "MANIFEST.json").read_text()) == {name: entry}
    assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
    assert entry["command"] == "python -m dfkd_core teach --dataset diabetes --split-seed 0 --arch auto --ship"


def test_batched_teacher_training_skips_shipped_teachers(tmp_path, monkeypatch):
    from dfkd_core.teacher_batch import missing_teachers

    monkeypatch.setenv("DFKD_TEACHER_DIR", str(tmp_path / "fresh"))
    splits = [load_split("diabetes", seed=s) for s in (0, 1)]
    assert [s.seed for s in missing_teachers(splits)] == [1]

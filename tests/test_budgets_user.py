"""Budgets reach the user's world: the memory / work estimate covers a user's table, input spec
and teacher file (counted from headers and metadata, nothing decoded); tables are capped in
rows and cells before they are decoded; duplicate column names, deeply nested specs and
oversized uploads are one clear message; unused uploads are swept."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from user_helpers import fast_config, write_csv, write_spec

from dfkd_core.cli import main
from dfkd_core.data import user
from dfkd_core.data.user import read_input_spec, read_table, store_upload_bytes, sweep_uploads, table_header, table_shape
from dfkd_core.errors import ConfigError, DatasetError
from dfkd_core.limits import estimate

THOUSAND_SEEDS = ",".join(map(str, range(1000)))


def test_a_thousand_ten_thousand_unit_students_on_a_user_csv_are_refused_by_the_budget_on_the_cli(tmp_path, capsys):
    csv = write_csv(tmp_path / "plant.csv")
    code = main(["distill", "--data", str(csv), "--target", "y", "--student-hidden", "10000", "--seed", THOUSAND_SEEDS,
                 "--sampler", "gaussian", "--epochs", "5", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "above the budget of 4 GB (DFKD_MAX_MEMORY_GB)" in err[0] and "1000 students" in err[0]
    assert "internal error" not in err[0]


def test_the_budget_applies_to_an_input_spec_too(tmp_path, monkeypatch):
    spec = write_spec(tmp_path / "spec.json")
    teacher = tmp_path / "T.pt"
    torch.jit.save(torch.jit.script(nn.Linear(4, 1)), str(teacher))
    cfg = fast_config(input_spec=str(spec), teacher_file=str(teacher), selection="synthetic", student_hidden=10_000,
                      seeds=tuple(range(1000)), samplers=("gaussian",), batch_size=50)
    with pytest.raises(ConfigError, match=r"DFKD_MAX_MEMORY_GB\): batch_size=50 × 1000 students"):
        cfg.validate()


def test_a_user_teachers_parameters_enter_the_estimate_counted_from_its_archive(tmp_path, monkeypatch):
    csv = write_csv(tmp_path / "plant.csv")
    big = tmp_path / "big.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(4, 20_000), nn.Tanh(), nn.Linear(20_000, 1))), str(big))
    cfg = fast_config(teacher_file=str(big), data_file=str(csv), target="y", samplers=("gaussian",))
    est = estimate(cfg)
    part = next(k for k in est.memory if k.startswith("teacher_file"))
    assert est.memory[part] == pytest.approx(4 * (4 * 20_000 + 20_000 + 20_000 + 1), rel=0.01)  # float32 weights, not trained
    monkeypatch.setenv("DFKD_MAX_MEMORY_GB", "0.0003")
    with pytest.raises(ConfigError, match=r"above the budget of 0\.0003 GB \(DFKD_MAX_MEMORY_GB\)"):
        cfg.validate()
    small = tmp_path / "small.pt"
    torch.jit.save(torch.jit.script(nn.Linear(4, 1)), str(small))
    cfg.replace(teacher_file=str(small)).validate()  # the same run with a small teacher fits


def test_a_parquet_file_over_the_caps_is_refused_from_its_metadata_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.parquet"
    pd.DataFrame(np.zeros((20_000, 3)), columns=["a", "b", "y"]).to_parquet(path)  # compresses to a few KB
    assert path.stat().st_size < 50_000
    monkeypatch.setattr(user, "MAX_CELLS", 10_000)
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("decoded before the caps were checked"))
    with pytest.raises(DatasetError, match=r"must have at most 2000000 rows, 10000 features and 10,000 cells\. Got 20000 rows"):
        read_table(path, "y")


def test_a_parquet_file_whose_metadata_lies_is_still_stopped_at_the_caps_while_decoding(tmp_path, monkeypatch):
    path = tmp_path / "lying.parquet"
    pd.DataFrame(np.zeros((200_000, 3)), columns=["a", "b", "y"]).to_parquet(path, row_group_size=50_000)
    monkeypatch.setattr(user, "table_shape", lambda p: (10, ["a", "b", "y"]))  # as if the metadata said 10 rows
    monkeypatch.setattr(user, "MAX_CELLS", 100_000)
    with pytest.raises(DatasetError, match=r"at most 2000000 rows and 100,000 cells\. Got more than 0 rows of 3 columns"):
        read_table(path, "y")


def test_a_parquet_text_column_is_refused_from_its_schema(tmp_path):
    path = tmp_path / "text.parquet"
    pd.DataFrame({"a": ["x" * 10] * 20, "y": np.arange(20.0)}).to_parquet(path)
    with pytest.raises(DatasetError, match=r"Every column of 'text.parquet' must be numeric\. Got text in column 'a' \(Parquet type"):
        read_table(path, "y")


def test_a_csv_over_the_row_cap_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    csv = write_csv(tmp_path / "plant.csv", n=120)
    monkeypatch.setattr(user, "MAX_ROWS", 100)
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("decoded before the caps were checked"))
    with pytest.raises(DatasetError, match=r"at most 100 rows, .* Got about 120 rows and 4 features"):
        read_table(csv, "y")


def test_a_csv_read_stops_at_the_cell_cap_even_when_the_count_was_fooled(tmp_path, monkeypatch):
    csv = write_csv(tmp_path / "plant.csv", n=500)
    monkeypatch.setattr(user, "table_shape", lambda path: (10, ["load", "speed", "temp", "ratio", "y"]))  # a lying count
    monkeypatch.setattr(user, "MAX_CELLS", 1000)
    with pytest.raises(DatasetError, match=r"at most 2000000 rows and 1,000 cells\. Got more than 0 rows of 5 columns"):
        read_table(csv, "y")


@pytest.mark.parametrize("header, repeated", [("a,b,a,y", "'a'"), ("x,x,y,y", "'x', 'y'")], ids=["one", "two"])
def test_duplicate_column_names_are_refused_naming_them(tmp_path, header, repeated):
    path = tmp_path / "dup.csv"
    path.write_text(header + "\n" + "\n".join(",".join(str(i + j) for j in range(4)) for i in range(20)) + "\n")
    message = f"The data file 'dup.csv' must name each column once. Got duplicate column names: {repeated}."
    with pytest.raises(DatasetError, match=message.replace(".", r"\.").replace("(", r"\(")):
        read_table(path, "y")
    with pytest.raises(DatasetError, match="duplicate column names"):
        table_header("dup.csv", path.read_bytes())  # the page's target picker says it too


def test_a_spec_nested_200000_deep_is_a_clear_error_on_the_cli(tmp_path, capsys):
    spec = tmp_path / "deep.json"
    spec.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DatasetError, match="nested too deeply"):
        read_input_spec(spec)
    teacher = tmp_path / "T.pt"
    torch.jit.save(torch.jit.script(nn.Linear(4, 1)), str(teacher))
    code = main(["distill", "--teacher", str(teacher), "--input-spec", str(spec), "--sampler", "gaussian", "--epochs", "2",
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nested too deeply" in err[0] and "internal error" not in err[0], err


# ---------------------------------------------------------------- uploads: quota and sweep
def test_an_upload_over_the_quota_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("DFKD_MAX_UPLOAD_GB", "0.000002")  # 2 kB
    store_upload_bytes("a.csv", b"x" * 1500, "data", referenced=set())
    with pytest.raises(DatasetError, match=r"would pass the quota on uploads of 2e-06 GB \(DFKD_MAX_UPLOAD_GB"):
        store_upload_bytes("b.csv", b"y" * 1500, "data", referenced=set())
    assert len(user._uploads()) == 1


def _age(path: str, seconds: float) -> None:
    meta = path + ".json"
    data = json.loads(open(meta, encoding="utf-8").read())
    data["stored_at"] = time.time() - seconds
    open(meta, "w", encoding="utf-8").write(json.dumps(data))


def test_old_uploads_no_run_names_are_swept_and_named_or_fresh_ones_are_kept(tmp_path):
    old = store_upload_bytes("old.csv", b"1,2\n", "data")
    named = store_upload_bytes("named.csv", b"3,4\n", "data")
    fresh = store_upload_bytes("fresh.csv", b"5,6\n", "data")
    cli = user.store_user_file(write_csv(tmp_path / "cli.csv"), "data")  # given on the command line
    for path in (old, named, cli):
        _age(path, 10 * user.UPLOAD_KEEP_S)
    assert sweep_uploads({named}) == [old]
    assert not os.path.exists(old) and not os.path.exists(old + ".json")
    assert all(os.path.exists(p) for p in (named, fresh, cli))


def test_a_quota_full_of_unused_old_uploads_makes_room_for_a_new_one(monkeypatch):
    monkeypatch.setenv("DFKD_MAX_UPLOAD_GB", "0.000002")
    old = store_upload_bytes("old.csv", b"x" * 1500, "data", referenced=set())
    _age(old, 10 * user.UPLOAD_KEEP_S)
    new = store_upload_bytes("new.csv", b"y" * 1500, "data", referenced=set())
    assert not os.path.exists(old) and os.path.exists(new)


def test_the_servers_start_sweeps_old_uploads_that_no_stored_run_names():
    from dfkd_core import dashboard
    from dfkd_core.config import DistillConfig
    from dfkd_core.runs.runstore import RunStore

    kept = store_upload_bytes("kept.csv", b"1,2\n", "data")
    gone = store_upload_bytes("gone.csv", b"3,4\n", "data")
    RunStore().create_run(DistillConfig(dataset="user", data_file=kept, target="y"))
    for path in (kept, gone):
        _age(path, 10 * user.UPLOAD_KEEP_S)
    dashboard.recover()  # what the app does once per server
    assert os.path.exists(kept) and not os.path.exists(gone)

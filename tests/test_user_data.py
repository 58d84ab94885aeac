"""The user's data or none: CSV checks and the paper's split, strictly data-free input specs,
files stored with the run, and bad inputs that each give one line and leave the store intact."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from user_helpers import (NaNTeacher, RawReLUTeacher, csv, fast_config, ts_teacher,  # noqa: F401 (fixtures)
                          write_spec, write_torchscript)

from dfkd_core.cli import main
from dfkd_core.data.protocol import split_sizes, train_size
from dfkd_core.data.user import list_user_files, read_input_spec, read_table, table_split
from dfkd_core.engine import run_distillation
from dfkd_core.errors import DatasetError
from dfkd_core.runs.runstore import RunStore


def test_a_csv_is_split_as_the_paper_splits_tabular_data(csv):
    table = read_table(csv, "y")
    split = table_split(table, seed=3)
    n_train, n_val, n_test = split_sizes(400, train_size(400, None))
    assert (len(split.x_train), len(split.x_val), len(split.x_test)) == (n_train, n_val, n_test) == (240, 16, 144)
    X = pd.read_csv(csv).drop(columns="y").to_numpy()
    assert np.allclose(split.extra["x_mean"], X.mean(0)) and np.allclose(split.extra["x_std"], X.std(0))
    assert split.prior.kind == "gaussian" and split.extra["real_data"]


def test_rows_with_missing_values_are_dropped_when_asked_and_constant_columns_flagged(tmp_path, csv):
    df = pd.read_csv(csv)
    df.loc[[3, 9], "speed"] = np.nan
    df["const"] = 7.0
    df.to_csv(tmp_path / "holes.csv", index=False)
    table = read_table(tmp_path / "holes.csv", "y", nan_policy="drop")
    assert table.dropped_rows == 2 and len(table.y) == 398 and table.constant_columns == ("const",)
    assert "constant columns (no information): const" in table_split(table).note


def test_a_parquet_file_reads_like_the_csv(tmp_path, csv):
    pd.read_csv(csv).to_parquet(tmp_path / "plant.parquet")
    a, b = read_table(csv, "y"), read_table(tmp_path / "plant.parquet", "y")
    assert np.array_equal(a.X, b.X) and a.features == b.features


def test_a_min_max_spec_feature_is_uniform_on_its_range(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"features": [{"name": "a", "min": 2, "max": 8}], "constraint": "clip"}))
    spec = read_input_spec(path)
    assert spec.mean[0] == 5 and spec.std[0] == pytest.approx(6 / np.sqrt(12)) and (spec.lower[0], spec.upper[0]) == (2, 8)


def test_the_same_teacher_with_only_an_input_spec_runs_with_no_real_data(tmp_path, ts_teacher):
    spec = write_spec(tmp_path / "spec.json")
    result = run_distillation(fast_config(teacher_file=str(ts_teacher), input_spec=str(spec), selection="synthetic",
                                          samplers=("direct", "gaussian")))
    assert all(np.isfinite(m.test_rmse) for m in result.members)
    assert result.teacher_test_rmse == pytest.approx(0.0, abs=1e-5)  # 'test' = the teacher's own answers


def test_a_simplex_spec_keeps_synthetic_rows_on_the_simplex(tmp_path):
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(3, 1))), str(tmp_path / "lin.pt"))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"features": [{"name": n, "mean": 0.33, "std": 0.1} for n in "abc"], "constraint": "simplex"}))
    from dfkd_core.engine.context import prepare_run

    run = prepare_run(fast_config(teacher_file=str(tmp_path / "lin.pt"), input_spec=str(spec), selection="last"))
    assert torch.allclose(run.split.x_test.sum(1), torch.ones(len(run.split.x_test)), atol=1e-5)


def test_the_users_files_are_stored_with_the_run_and_found_after_the_originals_are_gone(tmp_path, csv, ts_teacher):
    result = run_distillation(fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y", samplers=("gaussian",)))
    stored = result.config["data_file"]
    assert stored != str(csv) and "user_files" in stored and "user_files" in result.config["teacher_file"]
    csv.unlink()
    ts_teacher.unlink()
    from dfkd_core.config import DistillConfig

    again = run_distillation(DistillConfig.from_dict(result.config))
    assert again.members[0].test_rmse == pytest.approx(result.members[0].test_rmse, rel=1e-6)
    assert {r["original"] for r in list_user_files()} == {"plant.csv", "T.pt"}


# ---------------------------------------------------------------- bad inputs through the CLI
def _bad_inputs(tmp_path, csv, ts_teacher):
    """name -> (CLI arguments, a phrase the one-line message must hold)."""
    p = tmp_path
    (p / "pickle.pt").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    (p / "truncated.pt").write_bytes(ts_teacher.read_bytes()[:3000])
    write_torchscript(p / "dim3.pt", RawReLUTeacher(d=3))
    write_torchscript(p / "two_out.pt", RawReLUTeacher(outputs=2))
    write_torchscript(p / "nan.pt", NaNTeacher())
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)).state_dict(), p / "sd.pt")
    torch.save(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1)).state_dict(), p / "sd5.pt")
    torch.save(nn.Conv2d(1, 2, 3).state_dict(), p / "conv.pt")
    df = pd.read_csv(csv)
    df.assign(city="Paris").to_csv(p / "text.csv", index=False)
    (p / "empty.csv").write_text("")
    (p / "header_only.csv").write_text("load,speed,temp,ratio,y\n")
    df.head(5).to_csv(p / "tiny.csv", index=False)
    df.assign(y=1.0).to_csv(p / "flat.csv", index=False)
    holes = df.copy()
    holes.loc[4, "temp"] = np.nan
    holes.to_csv(p / "holes.csv", index=False)
    (p / "minmax.json").write_text(json.dumps({"features": [{"name": "a", "min": 3, "max": 1}]}))
    (p / "broken.json").write_text("{features: [")
    (p / "nostd.json").write_text(json.dumps({"features": [{"name": "a", "mean": 1}]}))
    spec = write_spec(p / "spec.json")
    data = ["--data", str(csv), "--target", "y"]
    ts = ["--teacher", str(ts_teacher)]
    return {
        "pickle_disguised_as_pt": (["--teacher", str(p / "pickle.pt"), *data], "pickled objects are refused"),
        "truncated_torchscript": (["--teacher", str(p / "truncated.pt"), *data], "is not"),
        "wrong_input_dimension": (["--teacher", str(p / "dim3.pt"), *data], "expects 3 inputs, but the data has 4 features"),
        "two_outputs": (["--teacher", str(p / "two_out.pt"), *data], r"shape \(\d+,\) or \(\d+, 1\). Got shape \(\d+, 2\)"),
        "nan_output": (["--teacher", str(p / "nan.pt"), *data], "must return finite numbers. Got NaN or inf for 64 of 64"),
        "state_dict_without_activation": (["--teacher", str(p / "sd.pt"), *data], "--teacher-activation .*one of tanh, relu"),
        "state_dict_wrong_dimension": (["--teacher", str(p / "sd5.pt"), "--teacher-activation", "relu", *data],
                                       "expects 5 inputs .* the data has 4 features"),
        "state_dict_of_a_convolution": (["--teacher", str(p / "conv.pt"), *data], "must be a feed-forward network of Linear layers"),
        "missing_teacher_file": (["--teacher", str(p / "nowhere.pt"), *data], "does not exist"),
        "text_column": ([*ts, "--data", str(p / "text.csv"), "--target", "y"], "Got text in column 'city' \\('Paris' in data row 1\\)"),
        "empty_csv": ([*ts, "--data", str(p / "empty.csv"), "--target", "y"], "is empty"),
        "header_only_csv": ([*ts, "--data", str(p / "header_only.csv"), "--target", "y"], "has no rows"),
        "too_few_rows": ([*ts, "--data", str(p / "tiny.csv"), "--target", "y"], "at least 10 complete rows. Got 5"),
        "constant_target": ([*ts, "--data", str(p / "flat.csv"), "--target", "y"], "must vary"),
        "missing_values_refused": ([*ts, "--data", str(p / "holes.csv"), "--target", "y"], r"1 rows with missing values .*\(--nan drop\)"),
        "missing_target": ([*ts, "--data", str(csv), "--target", "price"], "must be a column of 'plant.csv' .* Got 'price'"),
        "no_target_given": ([*ts, "--data", str(csv)], "'target' parameter must name the target column"),
        "spec_with_min_above_max": ([*ts, "--input-spec", str(p / "minmax.json")], "must have min < max. Got min 3, max 1"),
        "spec_not_json": ([*ts, "--input-spec", str(p / "broken.json")], "must be JSON"),
        "spec_feature_without_std": ([*ts, "--input-spec", str(p / "nostd.json")], "must give 'mean' and 'std', or 'min' and 'max'"),
        "spec_without_teacher": (["--input-spec", str(spec)], "'teacher_file' parameter is needed with an input spec"),
        "spec_with_validation_selection": ([*ts, "--input-spec", str(spec), "--selection", "validation"], "no real data to validate on"),
        "data_and_spec_together": ([*ts, *data, "--input-spec", str(spec)], "either the 'data_file' parameter or the 'input_spec'"),
        "bad_nan_policy_in_set": ([*ts, *data, "--set", "nan_policy=fill"], "'nan_policy' parameter must be one of"),
    }


CASES = ["pickle_disguised_as_pt", "truncated_torchscript", "wrong_input_dimension", "two_outputs", "nan_output",
         "state_dict_without_activation", "state_dict_wrong_dimension", "state_dict_of_a_convolution", "missing_teacher_file",
         "text_column", "empty_csv", "header_only_csv", "too_few_rows", "constant_target", "missing_values_refused",
         "missing_target", "no_target_given", "spec_with_min_above_max", "spec_not_json", "spec_feature_without_std",
         "spec_without_teacher", "spec_with_validation_selection", "data_and_spec_together", "bad_nan_policy_in_set"]


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_a_bad_input_gives_one_line_and_leaves_the_store_intact(tmp_path, csv, ts_teacher, capsys, case):
    store = RunStore()
    kept = store.create_run(fast_config(dataset="friedman1"), title="kept")
    args, phrase = _bad_inputs(tmp_path, csv, ts_teacher)[case]
    code = main(["distill", "--epochs", "1", "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert __import__("re").search(phrase, err), err
    assert store.has_run(kept) and store.integrity_check() == "ok"


def test_a_data_error_is_a_dataset_error(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError, match="at least 10 complete rows"):
        read_table(tmp_path / "a.csv", "y")


def test_the_dashboard_turns_uploads_into_a_validated_user_run(csv, ts_teacher):
    from dfkd_core.config import DistillConfig
    from dfkd_core.models.user_models import table_columns
    from dfkd_core.userrun import store_upload, user_run_config

    data = store_upload("plant.csv", csv.read_bytes(), "data")
    assert table_columns(data) == ["load", "speed", "temp", "ratio", "y"]
    cfg = user_run_config(DistillConfig(epochs=3), teacher_file=store_upload("T.pt", ts_teacher.read_bytes(), "teacher"),
                          data_file=data, target="y")
    assert cfg.dataset == "user" and cfg.epochs == 3 and {r["original"] for r in list_user_files()} == {"plant.csv", "T.pt"}
    spec_cfg = user_run_config(DistillConfig(), teacher_file=cfg.teacher_file,
                               input_spec=store_upload("spec.json", json.dumps({"features": [{"name": "a", "min": 0, "max": 1}]}).encode(), "spec"))
    assert spec_cfg.selection == "synthetic"


def test_without_a_teacher_file_the_products_own_teacher_is_trained_on_the_users_table(csv):
    result = run_distillation(fast_config(data_file=str(csv), target="y", teacher="mlp20", samplers=("gaussian",)))
    from dfkd_core.models.teachers import get_teacher

    split = table_split(read_table(csv, "y"), 0, name=f"user-{Path(result.config['data_file']).stem}")
    _, info = get_teacher(split, "mlp20")  # the cache entry the run trained, keyed by the stored file's hash
    assert info.cached and info.test_rmse == pytest.approx(result.teacher_test_rmse, rel=1e-6)
    assert result.teacher_test_rmse < float(split.y_test.std())  # better than predicting the mean


# ---------------------------------------------------------------- the dashboard's input-spec table
def test_a_filled_spec_table_becomes_the_spec_that_parse_input_spec_reads():
    from dfkd_core.data.user import parse_input_spec, spec_from_rows

    rows = [{"name": "load", "mean": 0.0, "std": 1.0, "min": None, "max": None},
            {"name": " speed ", "mean": float("nan"), "std": float("nan"), "min": 80.0, "max": 120.0},
            {"name": "temp", "mean": 1.0, "std": 0.1, "min": 0.5, "max": 1.5},
            {"name": None, "mean": None, "std": None, "min": None, "max": None}]  # an added row left blank
    spec = spec_from_rows(rows, "clip")
    assert spec == {"features": [{"name": "load", "mean": 0.0, "std": 1.0}, {"name": "speed", "min": 80.0, "max": 120.0},
                                 {"name": "temp", "mean": 1.0, "std": 0.1, "min": 0.5, "max": 1.5}], "constraint": "clip"}
    parsed = parse_input_spec(json.loads(json.dumps(spec)))
    assert parsed.features == ("load", "speed", "temp")
    np.testing.assert_allclose(parsed.lower, [-3.0, 80.0, 0.5])
    np.testing.assert_allclose(parsed.std[1], 40.0 / np.sqrt(12))


BAD_TABLES = [
    ([{"name": "", "mean": 0.0, "std": 1.0}], r"Row 1 of the input table must have a name"),
    ([{"name": "a", "mean": 0.0, "std": 1.0}, {"name": "b", "min": 2.0, "max": 1.0}], r"Row 2 \('b'\) .* min < max\. Got min 2, max 1"),
    ([{"name": "a", "mean": 0.0, "std": 0.0}], r"'std' of row 1 \('a'\) .* must be > 0\. Got 0 instead"),
    ([{"name": "a", "mean": 0.0, "std": -2.0}], r"'std' of row 1 \('a'\) .* must be > 0\. Got -2 instead"),
    ([{"name": "a", "mean": None, "std": None, "min": None, "max": None, "x": 1}, {"name": "b"}],
     r"Row 1 \('a'\) .* must give 'mean' and 'std', or 'min' and 'max'\. Got neither"),
    ([{"name": "a", "mean": 3.0}], r"Row 1 \('a'\) of the input table gives 'mean' without 'std'"),
    ([{"name": "a", "max": 3.0}], r"Row 1 \('a'\) of the input table gives 'max' without 'min'"),
    ([{"name": "a", "mean": "lots", "std": 1.0}], r"'mean' of row 1 \('a'\) .* must be a finite number\. Got 'lots' instead"),
    ([{"name": "a", "mean": float("inf"), "std": 1.0}], r"must be a finite number\. Got inf instead"),
    ([{"name": "a", "mean": 0.0, "std": 1.0}, {"name": "a", "min": 0.0, "max": 1.0}], r"feature names of 'the input table' must be unique"),
    ([{"name": None, "mean": None}], r"at least one filled row"),
    ([], r"at least one filled row"),
]


@pytest.mark.parametrize("rows, message", BAD_TABLES, ids=[
    "empty-name", "min-over-max", "zero-std", "negative-std", "no-moments-no-box", "mean-without-std", "max-without-min",
    "text-number", "infinite-mean", "duplicate-names", "only-blank-rows", "no-rows"])
def test_a_bad_spec_table_row_gives_one_clear_message(rows, message):
    from dfkd_core.data.user import spec_from_rows

    with pytest.raises(DatasetError, match=message) as info:
        spec_from_rows(rows)
    assert "\n" not in str(info.value)


def test_a_spec_table_with_an_unknown_constraint_is_refused():
    from dfkd_core.data.user import spec_from_rows

    with pytest.raises(DatasetError, match=r"'constraint' of 'the input table' must be one of 'none', 'clip', 'simplex'\. Got 'box'"):
        spec_from_rows([{"name": "a", "min": 0.0, "max": 1.0}], "box")

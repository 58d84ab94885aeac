"""A user's run as a new user meets it (issue 20): a teacher trained on standardized data gets its
units right and says so, every CLI run is stored, and the rough edges say what to do."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import needs_shared_data
from dfkd_core.cli import main
from user_helpers import csv, fast_config, ts_teacher, write_torchscript  # noqa: F401 - fixtures

TINY = ["--epochs", "2", "--set", "batches_per_epoch=2", "--set", "batch_size=20", "--set", "snapshot_epochs=",
        "--student-hidden", "8"]


def standardized_teacher(X: np.ndarray, y: np.ndarray, hidden: int = 500) -> dict:
    """A 12→500→1 tanh network on standardized X and y (as most published tabular teachers are),
    as a state_dict: random tanh features, the output layer fitted by ridge regression (seconds,
    where gradient training takes minutes on a shared CPU)."""
    xs = (X - X.mean(0)) / X.std(0)
    ys = (y - y.mean()) / y.std()
    rng = np.random.default_rng(0)
    W = rng.normal(size=(X.shape[1], hidden)) * 1.5 / np.sqrt(X.shape[1])
    b = rng.normal(size=hidden)
    A = np.c_[np.tanh(xs @ W + b), np.ones(len(xs))]
    beta = np.linalg.solve(A.T @ A + 1e-3 * np.eye(hidden + 1), A.T @ ys)
    net = nn.Sequential(nn.Linear(X.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W.T))
        net[0].bias.copy_(torch.tensor(b))
        net[2].weight.copy_(torch.tensor(beta[:hidden][None, :]))
        net[2].bias.copy_(torch.tensor(beta[hidden:]))
    return net.state_dict()


@pytest.fixture(scope="module")
def cpusmall_files(tmp_path_factory):
    """cpusmall from ../shared/data as a user's CSV (target 'y') and a standardized-data teacher."""
    from conftest import SHARED_DATA, shared_data_available
    from dfkd_core.data.parsers import parse_libsvm

    if not shared_data_available():
        pytest.skip("../shared/data is not beside the repo")
    X, y = parse_libsvm(SHARED_DATA / "libsvm" / "cpusmall", 12)
    folder = tmp_path_factory.mktemp("cpusmall")
    df = pd.DataFrame(X, columns=[f"f{i + 1}" for i in range(X.shape[1])])
    df["y"] = y
    df.to_csv(folder / "cpusmall.csv", index=False)
    torch.save(standardized_teacher(X, y), folder / "T.pt")
    return folder / "cpusmall.csv", folder / "T.pt"


@needs_shared_data
def test_a_standardized_data_teacher_is_scored_in_its_own_units_and_the_cli_says_which(cpusmall_files, capsys):
    data, teacher = cpusmall_files
    code = main(["distill", "--teacher", str(teacher), "--teacher-activation", "tanh", "--data", str(data),
                 "--target", "y", "--json", "--sampler", "gaussian", *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    row = json.loads(out.strip().splitlines()[-1])
    assert row["teacher_test_rmse"] < 0.2
    assert row["teacher_units"] == "standardized" and row["teacher_units_requested"] == "auto"
    assert row["teacher_units_validation_rmse"]["raw"] > 1.0  # raw inputs into this teacher: worse than the mean
    assert "teacher units: standardized (chosen by auto" in err
    # asked for raw, the same teacher is as wrong as before, and a warning names the likely causes
    code = main(["distill", "--teacher", str(teacher), "--teacher-activation", "tanh", "--data", str(data),
                 "--target", "y", "--json", "--sampler", "gaussian", "--teacher-units", "raw", "--no-store", *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["teacher_test_rmse"] > 1.0
    assert "warning: the teacher 'T.pt' does no better than predicting the mean" in err
    assert "--teacher-units" in err and "--teacher-activation" in err and "column order" in err


def test_auto_keeps_raw_for_a_raw_teacher_and_the_card_and_store_say_it(tmp_path, csv, ts_teacher, capsys):
    out_dir = tmp_path / "export"
    code = main(["distill", "--teacher", str(ts_teacher), "--data", str(csv), "--target", "y", "--json",
                 "--sampler", "gaussian", "--export", str(out_dir), *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    row = json.loads(out.strip().splitlines()[-1])
    assert row["teacher_units"] == "raw"
    card = json.loads((out_dir / "model.json").read_text())
    assert card["teacher"]["units"]["units"] == "raw" and card["teacher"]["units"]["requested"] == "auto"
    # the data-trained reference: the same student on the real labels, in the JSON, the card and the note
    assert np.isfinite(row["reference_test_rmse"]) and row["reference_test_rmse"] != row["test_rmse"]
    assert card["reference_student"]["test_rmse"] == pytest.approx(row["reference_test_rmse"])
    assert card["reference_student"]["epochs"] == 2 and "real labels" in card["reference_student"]["note"]
    # the run is stored like a dashboard run, and `runs --json` lists it with what it is
    assert main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    runs = listed if isinstance(listed, list) else listed.get("runs", [])
    assert [r["id"] for r in runs] == [row["run_id"]]
    from dfkd_core.runs.runstore import RunStore

    info = RunStore().get_run(row["run_id"])
    assert info.status == "done" and info.tags == {"source": "cli"}
    assert "teacher units: raw" in (info.note or "") and "data-trained reference student: test RMSE" in info.note
    assert len(RunStore().results(row["run_id"])) == 1


def test_no_store_leaves_the_run_store_empty(csv, ts_teacher, capsys):
    assert main(["distill", "--teacher", str(ts_teacher), "--data", str(csv), "--target", "y", "--no-store",
                 "--sampler", "gaussian", *TINY]) == 0
    capsys.readouterr()
    from dfkd_core.runs.runstore import RunStore

    assert RunStore().list_runs().empty


def test_an_input_spec_alone_takes_raw_units_unless_told(tmp_path, ts_teacher):
    from user_helpers import write_spec

    from dfkd_core.engine.context import prepare_run
    from dfkd_core.models.user_models import TeacherBoundary

    spec = write_spec(tmp_path / "spec.json")
    run = prepare_run(fast_config(teacher_file=str(ts_teacher), input_spec=str(spec), selection="synthetic"))
    assert run.teacher_info.extra["units"] == "raw"
    told = prepare_run(fast_config(teacher_file=str(ts_teacher), input_spec=str(spec), selection="synthetic",
                                   teacher_units="standardized"))
    assert told.teacher_info.extra["units"] == "standardized"
    boundary = told.teacher.module
    assert isinstance(boundary, TeacherBoundary) and float(boundary.x_std.max()) == 1.0 == float(boundary.x_std.min())


# ---------------------------------------------------------------- rough edges
def test_a_state_dict_without_its_activation_names_the_flag(tmp_path, csv, capsys):
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    code = main(["distill", "--teacher", str(tmp_path / "sd.pt"), "--data", str(csv), "--target", "y", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--teacher-activation" in err and "'sd.pt'" in err
    assert "teacher_activation" not in err and "Got ''" not in err


def test_a_pickled_module_is_refused_with_how_to_convert_it(tmp_path, csv, capsys):
    torch.save(nn.Sequential(nn.Linear(4, 1)), tmp_path / "whole.pt")
    code = main(["distill", "--teacher", str(tmp_path / "whole.pt"), "--data", str(csv), "--target", "y", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "state_dict()" in err and "torch.jit.save" in err and "'whole.pt'" in err
    from dfkd_core.data.user import list_user_files

    assert list_user_files() == []  # refused before it was kept


def test_a_torchscript_teacher_with_another_input_count_says_both_counts(tmp_path, csv, capsys):
    class Three(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    teacher = write_torchscript(tmp_path / "three.pt", Three())
    code = main(["distill", "--teacher", str(teacher), "--data", str(csv), "--target", "y", "--no-store", *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert "expects 3 inputs" in err and "4 features" in err and "TorchScript interpreter" not in err


def test_a_headerless_csv_is_refused_with_a_hint(tmp_path, capsys):
    from dfkd_core.data.user import read_table
    from dfkd_core.errors import DatasetError

    rng = np.random.default_rng(0)
    np.savetxt(tmp_path / "bare.csv", rng.normal(size=(50, 4)), delimiter=",")
    with pytest.raises(DatasetError, match="no header row.*Add a first line naming the columns"):
        read_table(tmp_path / "bare.csv", "y")
    code = main(["distill", "--data", str(tmp_path / "bare.csv"), "--target", "y", *TINY])
    assert code == 2 and "no header row" in capsys.readouterr().err


def test_target_not_found_lists_every_column_or_says_how_many_more(tmp_path):
    from dfkd_core.data.user import COLUMNS_SHOWN, read_table
    from dfkd_core.errors import DatasetError

    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(20, 15)), columns=[f"c{i}" for i in range(15)]).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(DatasetError) as info:
        read_table(tmp_path / "w.csv", "y")
    assert "'c14'" in str(info.value) and "more" not in str(info.value)
    wide = COLUMNS_SHOWN + 7
    pd.DataFrame(rng.normal(size=(20, wide)), columns=[f"c{i}" for i in range(wide)]).to_csv(tmp_path / "v.csv", index=False)
    with pytest.raises(DatasetError, match="and 7 more"):
        read_table(tmp_path / "v.csv", "y")


def test_export_rows_are_the_csv_rows_the_card_names_the_activation_and_a_used_folder_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame({"holiday": rng.integers(0, 2, n), "temp": np.round(rng.normal(15, 8, n), 4),
                       "hum": np.round(rng.uniform(0, 1, n), 6)})
    df["cnt"] = (df["temp"] * 10 + df["holiday"] * 30 + rng.integers(0, 50, n)).astype(int)
    data = tmp_path / "bikes.csv"
    df.to_csv(data, index=False)
    out_dir = tmp_path / "export"
    code = main(["distill", "--data", str(data), "--target", "cnt", "--sampler", "gaussian,lhs", "--export", str(out_dir),
                 "--no-store", *TINY])
    assert code == 0, capsys.readouterr().err
    lines = data.read_text().splitlines()
    exported = (out_dir / "test_rows.csv").read_text().splitlines()
    assert exported[0] == lines[0]  # the file's own header and column order
    assert len(exported) > 1 and set(exported[1:]) <= set(lines[1:])  # each row exactly as the CSV wrote it
    assert sorted(p.name for p in out_dir.rglob("test_rows.csv")) == ["test_rows.csv"]  # written once
    card = json.loads((out_dir / "model.json").read_text())
    assert card["student"]["architecture"] == "MLPRegressor: Linear(3→8), tanh, Linear(8→1)"
    # a second export into the same folder is refused before training, saying so
    code = main(["distill", "--data", str(data), "--target", "cnt", "--export", str(out_dir), "--no-store", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "is not empty" in err


def test_progress_lines_reach_a_log(csv, ts_teacher, capsys, monkeypatch):
    import dfkd_core.commands.distill as distill

    monkeypatch.setattr(distill, "PROGRESS_EVERY_S", 0.0)
    assert main(["distill", "--teacher", str(ts_teacher), "--data", str(csv), "--target", "y", "--no-store",
                 "--sampler", "gaussian", *TINY]) == 0
    err = capsys.readouterr().err  # pytest's capture is no terminal
    assert "progress: " in err and "epoch 2/2" in err


def test_skops_errors_name_the_users_file(tmp_path):
    from dfkd_core.models.user_models import load_user_model
    from dfkd_core.data.user import store_user_file
    from dfkd_core.errors import ModelError

    bad = tmp_path / "my_model.skops"
    import zipfile

    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("schema.json", "{not json")
    stored = store_user_file(bad, "teacher")
    with pytest.raises(ModelError) as info:
        load_user_model(stored)
    assert "'my_model.skops'" in str(info.value) and stored not in str(info.value)


def test_an_http_budget_is_announced_and_a_run_out_of_it_ends_interrupted_with_its_students(csv, capsys):
    from user_helpers import ServedTeacher, truth

    from dfkd_core.runs.runstore import RunStore
    from dfkd_core.userrun import http_query_plan

    sent = []

    def counted(x):
        sent.append(len(x))
        return truth(x)

    args = ["distill", "--data", str(csv), "--target", "y", "--json", "--sampler", "gaussian", *TINY]
    with ServedTeacher(counted) as server:
        assert main([*args, "--teacher", server.url, "--no-store"]) == 0
        out, err = capsys.readouterr()
        from dfkd_core.config import DistillConfig

        cfg = DistillConfig(dataset="user", teacher_file=server.url, data_file=str(csv), target="y", samplers=("gaussian",),
                            epochs=2, batches_per_epoch=2, batch_size=20, student_hidden=8, snapshot_epochs=())
        plan = http_query_plan(cfg)
        assert sum(sent) == plan["total"]  # the plan said before the start is what the run spent
        assert f"the HTTP teacher will be sent {plan['total']:,} points".replace(",", " ") in err
        # a budget that runs out in the second epoch: the run ends interrupted, its student kept
        budget = plan["before_training"] + plan["per_epoch"] + plan["per_epoch"] // 2
        code = main([*args, "--teacher", server.url, "--query-budget", str(budget)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "runs out after about 1 epochs" in err and "interrupted: " in err
    row = json.loads(out.strip().splitlines()[-1])
    assert "query budget" in row["interrupted"] and np.isfinite(row["test_rmse"])
    info = RunStore().get_run(row["run_id"])
    assert info.status == "interrupted" and "query budget" in info.error
    assert RunStore().load_weights(row["run_id"], RunStore().results(row["run_id"])["member"].iloc[0])


def test_the_sidebar_says_the_threads_a_run_uses(monkeypatch):
    from dfkd_core.device import describe_run_device

    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("DFKD_THREADS", "3")
        assert describe_run_device() == "CPU (3 threads per run, DFKD_THREADS)"
        monkeypatch.delenv("DFKD_THREADS")
        assert describe_run_device() == "CPU (1 thread per run, DFKD_THREADS)"
    finally:
        torch.set_num_threads(1)


def test_stored_runs_say_where_they_came_from(monkeypatch):
    from dfkd_core.config import DistillConfig
    from dfkd_core.errors import DfkdError
    from dfkd_core.experiments import reproduce
    from dfkd_core.runs import jobs
    from dfkd_core.runs.runstore import RunStore

    assert all(c.tags["source"] == "reproduce" for c in reproduce.plan(3, seeds=1, datasets=["toy2d"], epochs=5))

    def no_process(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(jobs.subprocess, "Popen", no_process)  # the run is stored, its worker cannot start
    with pytest.raises(DfkdError):
        jobs.submit(DistillConfig(epochs=1))
    (row,) = RunStore().list_runs().to_dict("records")
    assert row["tags"] == {"source": "dashboard"} and row["status"] == "failed"


def test_a_data_free_cli_run_calls_the_teacher_the_reference_not_an_error_of_zero(tmp_path, ts_teacher, capsys):
    from user_helpers import write_spec

    spec = write_spec(tmp_path / "spec.json")
    code = main(["distill", "--teacher", str(ts_teacher), "--input-spec", str(spec), "--sampler", "gaussian",
                 "--epochs", "2", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "teacher test RMSE 0.0000" not in err and "teacher RMSE 0.0000" not in out
    assert "the teacher is the reference" in err and "against the teacher itself" in out


def test_the_data_trained_reference_trains_after_the_students_so_the_first_epoch_is_not_held_back(csv, ts_teacher):
    from dfkd_core.engine import run_distillation
    from dfkd_core.events import EpochMetrics, MemberResult, RunNote, RunStarted

    cfg = fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y", samplers=("gaussian",))
    events: list = []
    result = run_distillation(cfg, on_event=events.append)
    kinds = [type(e) for e in events if type(e) in (RunStarted, EpochMetrics, MemberResult, RunNote)]
    assert kinds == [RunStarted, EpochMetrics, EpochMetrics, MemberResult, RunNote]  # the reference comes last
    note = events[-1].text
    assert note.startswith("data-trained reference student: test RMSE") and not result.cancelled
    assert "data-trained reference" not in events[0].note  # not announced before it exists

    stopped: list = []  # Stop pressed once the students are trained, while the reference trains
    late = run_distillation(cfg, on_event=stopped.append,
                            should_stop=lambda: any(isinstance(e, MemberResult) for e in stopped))
    assert not late.cancelled and len(late.members) == 1
    assert not [e for e in stopped if isinstance(e, RunNote)]  # a stopped reference says nothing

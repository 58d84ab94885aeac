"""The exported student: TorchScript and ONNX files on the teacher's raw inputs, loaded in a
fresh process that never imports dfkd_core, predict what the product predicts; the card and CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from user_helpers import csv, fast_config, ts_teacher, write_spec  # noqa: F401 (csv, ts_teacher: fixtures)

from dfkd_core.cli import main
from dfkd_core.config import DistillConfig
from dfkd_core.engine import run_distillation
from dfkd_core.engine.context import prepare_run
from dfkd_core.runs.export import export_run, export_stored_run, member_dicts, raw_student

PLAIN_LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np, onnxruntime, pandas as pd, torch
    out = sys.argv[1]
    card = json.load(open(out + "/model.json"))
    rows = pd.read_csv(out + "/test_rows.csv")
    x = rows[card["inputs"]["names"]].to_numpy(dtype=np.float32)
    ts = torch.jit.load(out + "/student.pt")(torch.from_numpy(x)).detach().numpy()
    onnx = onnxruntime.InferenceSession(out + "/student.onnx").run(None, {"x": x})[0]
    print(json.dumps({"dfkd_core_imported": "dfkd_core" in sys.modules, "torchscript": ts.tolist(), "onnx": onnx.tolist(),
                      "y": rows[card["output"]["name"]].tolist()}))
""")


def _plain_process(folder) -> dict:
    done = subprocess.run([sys.executable, "-c", PLAIN_LOADER, str(folder)], capture_output=True, text=True, timeout=300,
                          cwd=str(folder))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_exported_torchscript_and_onnx_students_predict_what_the_product_predicts_in_a_fresh_process(tmp_path, csv, ts_teacher):
    cfg = fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y", samplers=("direct",))
    run = prepare_run(cfg)
    result = run_distillation(run.cfg, run=run)
    export_run(run.cfg, member_dicts(result), tmp_path / "OUT", run=run)
    got = _plain_process(tmp_path / "OUT")
    assert got["dfkd_core_imported"] is False
    # the product's prediction: the engine's student on standardized inputs, brought back to the target's units
    student = raw_student(run.cfg, run.split, result.members[0].state_dict).student
    with torch.no_grad():
        product = (student(run.split.x_test) * run.split.y_std + run.split.y_mean).double().numpy()
    assert np.allclose(got["torchscript"], product, atol=1e-4)
    assert np.allclose(got["onnx"], product, atol=1e-4)
    card = json.loads((tmp_path / "OUT" / "model.json").read_text())
    rmse = float(np.sqrt(np.mean((np.array(got["torchscript"]) - np.array(got["y"])) ** 2)))
    assert rmse == pytest.approx(card["student"]["test_rmse_raw"], rel=1e-4)
    assert rmse == pytest.approx(result.members[0].test_rmse * run.split.y_std, rel=1e-4)  # the reported RMSE, in y's units


def test_the_card_says_what_the_distillation_bought(tmp_path, csv, ts_teacher):
    cfg = fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y", samplers=("gaussian",), student_hidden=5)
    run = prepare_run(cfg)
    result = run_distillation(run.cfg, run=run)
    card = export_run(run.cfg, member_dicts(result), tmp_path / "OUT", run=run)["students"][result.members[0].member]
    assert card["student"]["parameters"] == 4 * 5 + 5 + 5 + 1
    assert card["teacher"]["parameters"] == sum(p.numel() for p in torch.jit.load(str(ts_teacher)).parameters())
    assert card["teacher"]["file_bytes"] == ts_teacher.stat().st_size
    assert card["teacher"]["test_rmse_raw"] == pytest.approx(result.teacher_test_rmse * run.split.y_std)
    for who in ("student", "teacher"):
        assert set(card[who]["latency_seconds"]) == {"batch_1", "batch_1000"}
        assert all(v > 0 for v in card[who]["latency_seconds"].values())
    assert card["real_data"] is True and card["inputs"]["names"] == ["load", "speed", "temp", "ratio"]
    assert card["selection"]["rule"] == "validation" and card["configuration"]["data_file"] == "plant.csv"  # its name, not the server's path
    assert {"student.pt", "student.onnx", "state_dict.pt", "model.json"} <= set(card["files"])
    assert "test_rows.csv" in card["test_rows"] and (tmp_path / "OUT" / "test_rows.csv").exists()


def test_a_data_free_export_says_no_real_data_was_used(tmp_path, ts_teacher):
    spec = write_spec(tmp_path / "spec.json")
    cfg = fast_config(teacher_file=str(ts_teacher), input_spec=str(spec), selection="synthetic", samplers=("gaussian",))
    result = run_distillation(cfg)
    export_run(DistillConfig.from_dict(result.config), member_dicts(result), tmp_path / "OUT")
    card = json.loads((tmp_path / "OUT" / "model.json").read_text())
    assert card["real_data"] is False and "strictly data-free" in card["metrics_note"]
    assert not (tmp_path / "OUT" / "test_rows.csv").exists()


def test_cli_distills_the_users_teacher_on_a_csv_and_exports_with_json(tmp_path, csv, ts_teacher, capsys):
    out = tmp_path / "OUT"
    code = main(["distill", "--teacher", str(ts_teacher), "--data", str(csv), "--target", "y", "--sampler", "direct,gaussian",
                 "--epochs", "2", "--set", "batches_per_epoch=2", "--export", str(out), "--json", "--quiet"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["sampler"] for r in rows] == ["direct", "gaussian"]
    assert all(r["dataset"] == "plant.csv" and r["real_data"] for r in rows)
    top = json.loads((out / "model.json").read_text())
    best = next(r for r in rows if r["export"]["top_level"])
    assert top["student"]["test_rmse_raw"] == pytest.approx(best["test_rmse_raw"], rel=1e-4)
    assert (out / "student.pt").exists() and (out / "direct-decreasing-seed0" / "student.onnx").exists()


def test_a_stored_run_downloads_as_a_zip_with_the_student(tmp_path, csv, ts_teacher):
    from dfkd_core.runs.runstore import RunStore

    store = RunStore()
    cfg = fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y", samplers=("gaussian",))
    run = prepare_run(cfg)
    run_id = store.create_run(run.cfg)
    result = run_distillation(run.cfg, run=run, on_event=lambda e: store.record(run_id, e))
    store.finish(run_id, result)
    data = export_stored_run(run_id, result.members[0].member, store)
    (tmp_path / "s.zip").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        assert {"student/student.pt", "student/student.onnx", "student/model.json"} <= set(zf.namelist())
        zf.extractall(tmp_path / "unzipped")
    card_text = (tmp_path / "unzipped" / "student" / "model.json").read_text()
    assert str(tmp_path) not in card_text and '"/' not in card_text  # no server paths in the card (issue 23)
    card = json.loads(card_text)
    assert card["configuration"]["data_file"] == "plant.csv" and card["configuration"]["teacher_file"] == "T.pt"
    rows = pd.read_csv(tmp_path / "unzipped" / "student" / "test_rows.csv")
    student = torch.jit.load(str(tmp_path / "unzipped" / "student" / "student.pt"))
    pred = student(torch.tensor(rows[["load", "speed", "temp", "ratio"]].to_numpy(), dtype=torch.float32)).detach().numpy()
    assert np.sqrt(np.mean((pred - rows["y"].to_numpy()) ** 2)) == pytest.approx(result.members[0].test_rmse * run.split.y_std, rel=1e-4)


def test_a_run_on_the_users_files_is_submitted_to_a_worker_like_any_other(csv, ts_teacher):
    import time

    from dfkd_core import dashboard
    from dfkd_core.runs.runstore import RunStore

    cfg = fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y", samplers=("gaussian",))
    run_id = dashboard.submit(cfg)
    store = RunStore()
    deadline = time.monotonic() + 300
    while store.get_run(run_id).active and time.monotonic() < deadline:
        time.sleep(0.5)
    info = store.get_run(run_id)
    assert info.status == "done", info.error
    assert "user_files" in info.config.data_file and len(store.results(run_id)) == 1

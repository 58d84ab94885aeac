"""`sweep` (experiments/sweep.py, commands/sweep.py): a grid × seeds stored as one sweep, listed by
`runs`, resumable, shown on the Runs page; bad grids give one error line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from dfkd_core.config import DistillConfig
from dfkd_core.errors import ConfigError
from dfkd_core.experiments import sweep as S
from dfkd_core.dashboard.sweep_figures import sweep_figure
from dfkd_core.runs.runstore import RunStore


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "dfkd_core", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


def test_the_acceptance_sweep_stores_one_sweep_of_four_runs_listed_by_runs_and_resumes_without_training():
    args = ["sweep", "--dataset", "friedman1", "--sampler", "gaussian", "--grid", "student_hidden=10,25",
            "--seed", "0,1", "--epochs", "20", "--workers", "1", "--json"]
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rep["fields"] == ["student_hidden"] and len(rep["runs"]) == 4
    assert [(r["student_hidden"], r["n"]) for r in rep["summary"]] == [("10", 2), ("25", 2)]
    listed = json.loads(_cli("runs", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(rep["runs"])
    assert {r["title"] for r in listed} == {f"Sweep {rep['sweep']} · student_hidden={h} · seed {s}"
                                            for h in (10, 25) for s in (0, 1)}
    assert {r["tags"]["sweep"]["id"] for r in listed} == {rep["sweep"]}
    # the same command with --resume finds every cell stored: nothing is trained, nothing added
    again = _cli(*args, "--resume")
    assert again.returncode == 0, again.stderr
    resumed = json.loads(again.stdout.strip().splitlines()[-1])
    assert resumed["reused_runs"] == 4 and resumed["runs"] == rep["runs"] and resumed["summary"] == rep["summary"]
    assert "4 already stored, 0 to run" in again.stderr
    assert len(RunStore().list_runs()) == 4

    # the Runs page shows the sweep: its table and the metric against the swept field
    from test_app_pages import figures_of, start_app

    at = start_app("pages/runs.py")
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "student_hidden" in d.value.columns)
    assert list(table["student_hidden"]) == ["10", "25"] and list(table["n"]) == [2, 2]
    fig = next(f for f in figures_of(at) if f["layout"]["xaxis"].get("title", {}).get("text") == "student_hidden")
    assert fig["data"][0]["name"] == "gaussian · α decreasing"


@pytest.mark.parametrize("args, message", [
    (["--grid", "nosuch=1,2"], "The 'grid' parameter must name a configuration field"),
    (["--grid", "student_hidden"], "The 'grid' parameter takes FIELD=V1,V2,..."),
    (["--grid", "seeds=1,2"], "seeds have --seed"),
    (["--grid", "student_hidden=10,many"], "grid point student_hidden=many: The 'student_hidden' parameter"),
    (["--grid", "student_hidden=10", "--scheduler", "localhost"], "must be a Dask scheduler address"),
    (["--grid", "student_hidden=10", "--executor", "spark"], "must be one of local, dask-local"),
    ([], "The 'grid' parameter needs at least one FIELD=V1,V2,..."),
], ids=["unknown-field", "no-values", "seeds", "bad-value", "bad-scheduler", "bad-executor", "no-grid"])
def test_bad_sweeps_give_one_error_line_exit_2_and_store_nothing(args, message, capsys):
    from dfkd_core.cli import main

    assert main(["sweep", "--epochs", "2", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and "Traceback" not in err
    assert RunStore().list_runs().empty


def test_a_sweep_id_is_its_configs_and_a_field_whose_values_hold_commas_splits_on_semicolons():
    grid = S.parse_grid(["objective=eq5;neg_logcosh_discrepancy:1,l1_input:1e-4", "student_hidden=10,25"])
    assert grid["objective"] == ["eq5", "neg_logcosh_discrepancy:1,l1_input:1e-4"]
    sweep_id, cells = S.plan_sweep({"dataset": "friedman1", "epochs": "2"}, grid, [0, 1])
    assert len(cells) == 8 and len({c.title for c in cells}) == 8
    assert S.plan_sweep({"dataset": "friedman1", "epochs": "2"}, grid, [0, 1])[0] == sweep_id
    assert S.plan_sweep({"dataset": "friedman1", "epochs": "3"}, grid, [0, 1])[0] != sweep_id
    assert cells[0].cfg.seeds == (0,) and cells[1].cfg.seeds == (1,)
    with pytest.raises(ConfigError, match="names 'epochs' twice"):
        S.parse_grid(["epochs=1", "epochs=2"])


def test_the_sweep_figure_has_one_panel_per_field_with_the_spread_over_seeds():
    import pandas as pd

    rows = [{"student_hidden": h, "direct_lr": lr, "seed": s, "method": "direct · α 1", "sampler": "direct",
             "test_rmse": float(h) / 100 + s * 0.01}
            for h in ("10", "1000") for lr in ("0.05", "0.1") for s in (0, 1)]
    fig = sweep_figure(["student_hidden", "direct_lr"], pd.DataFrame(rows))
    assert [a.text for a in fig.layout.annotations] == ["student_hidden", "direct_lr"]
    means = fig.data[0]
    assert list(means.x) == [10.0, 1000.0] and list(means.y) == pytest.approx([0.105, 10.005])
    assert list(means.error_y.array) == pytest.approx([0.005773502, 0.005773502])  # sd of 4 runs: 2 seeds × 2 lrs
    assert fig.layout.xaxis.type == "log"  # values spanning 100×
    assert fig.layout.xaxis2.type is None  # 0.05 to 0.1: linear


# ---------------------------------------------------------------- a sweep started from the Distill page
def test_the_distill_page_starts_a_sweep_of_its_settings_that_the_runs_page_lists(tmp_path):
    from conftest import wait_for_run
    from test_app_pages import errors, shown, start_app

    at = start_app()
    at.number_input(key="cfg_epochs").set_value(3)
    at.multiselect(key="cfg_samplers").set_value(["gaussian"])
    at.text_input(key="cfg_seeds").set_value("0,1")
    at.text_area(key="sweep_grid").set_value("student_hidden=5,8\n").run()
    at.button(key="sweep_start").click().run()
    assert not at.exception and errors(at) == []
    said = " ".join(shown(s.value) for s in at.success)
    assert "4 run(s) started" in said, said
    sweep_id = said.split("Sweep ", 1)[1].split(":", 1)[0]
    def finished(store):
        sweeps = S.list_sweeps(store)
        return not sweeps.empty and int(sweeps["done"].iloc[0]) == 4 and list(sweeps["sweep"])

    assert wait_for_run(finished, what="the sweep's four runs") == [sweep_id]
    hidden = {RunStore().get_run(i).config.student_hidden for i in RunStore().list_runs()["id"]}
    assert hidden == {5, 8}
    page = start_app("pages/runs.py")
    assert sweep_id in " ".join(str(o) for o in page.selectbox(key="runs_sweep").options)


def test_a_bad_grid_or_your_own_files_start_no_sweep_and_say_why(tmp_path):
    from test_app_pages import errors, start_app

    at = start_app()
    at.text_area(key="sweep_grid").set_value("no_such_field=1,2").run()
    at.button(key="sweep_start").click().run()
    assert not at.exception and "must name a configuration field" in " ".join(errors(at))
    assert not at.success and RunStore().list_runs().empty
    with pytest.raises(ConfigError, match="registered datasets only"):
        S.start_sweep(DistillConfig(dataset="user", teacher_file=str(tmp_path / "t.pt"), data_file=str(tmp_path / "d.csv"),
                                    target="y"), ["student_hidden=5,8"])
    assert not (RunStore().home / "sweeps").exists() or not list((RunStore().home / "sweeps").glob("*.log"))


def test_a_sweep_is_refused_while_the_form_uses_a_your_model_runs_files():
    from dfkd_core.dashboard.sweep_figures import start_sweep

    with pytest.raises(ConfigError, match="registered datasets only"):
        start_sweep(DistillConfig(epochs=3), "student_hidden=5,8", inputs_of="20261202-000000-000-abcd")
    assert not (RunStore().home / "sweeps").exists()

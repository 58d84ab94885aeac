"""Every page under streamlit.testing.v1.AppTest: widgets present, bad input shown with
st.error (never an exception), and tiny real runs through the run store and worker jobs
whose data the pages then draw (figures and tables)."""
from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dfkd_core import dashboard
from dfkd_core.config import DistillConfig
from dfkd_core.runs.runstore import RunStore

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/distill.py", "pages/runs.py", "pages/mnist.py", "pages/blackbox.py", "pages/datasets.py"]
RUN_TIMEOUT_S = 1500  # a first run trains the session's teacher; on a busy 2-core box that takes minutes


def start_app(page: str | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str, key: str | None = None):
    if key:
        return at.button(key=key)
    return next(b for b in at.button if b.label == label)


def shown(markdown: str) -> str:
    """The text a markdown body made by dashboard.plain shows (references decoded, word joiners and hard breaks gone)."""
    return html.unescape(markdown).replace(dashboard.WORD_JOINER, "").replace("  \n", "\n")


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def figures_of(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def live_charts(at: AppTest) -> dict[str, tuple[dict, "pd.DataFrame"]]:
    """The live curves (Vega-Lite, dashboard.live_curves) by title: (spec, rows as sent)."""
    import pyarrow as pa

    charts = {}
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        charts[spec.get("title", "")] = (spec, pa.ipc.open_stream(chart.proto.data.data).read_pandas())
    return charts


def legend_groups(spec: dict) -> list[str]:
    """The groups a live chart's colour scale names, in the legend's order."""
    return spec["layer"][1]["encoding"]["color"]["scale"]["domain"]


def values(array) -> list:
    """A plotly JSON array as a list (plotly encodes numpy arrays as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def trace_names(fig: dict) -> list[str]:
    return [t.get("name") for t in fig["data"]]


def wait_until_finished(run_id: str, timeout: float = RUN_TIMEOUT_S) -> str:
    store = RunStore()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = store.get_run(run_id)
        if info.status not in ("queued", "running"):
            return info.status
        time.sleep(0.5)
    pytest.fail(f"run {run_id} still {store.get_run(run_id).status} after {timeout} s")


# ------------------------------------------------------------------ every page renders
@pytest.mark.parametrize("page", PAGES, ids=[Path(p).stem for p in PAGES])
def test_every_page_renders_without_exception_or_error(page):
    at = start_app(page)
    assert errors(at) == []
    assert at.title[0].value


def test_sidebar_shows_device_data_directory_and_available_datasets():
    at = start_app()
    text = " ".join(m.value for m in at.sidebar.markdown)
    assert "Device:" in text and ("CPU" in text or "GPU" in text)
    assert "Data directory:" in text
    assert "friedman1" in text


def test_datasets_page_lists_the_catalogue_with_availability():
    at = start_app("pages/datasets.py")
    table = at.dataframe[0].value
    assert {"name", "rows", "features", "target", "source", "available"} <= set(table.columns)
    assert table.set_index("name").loc["friedman1", "available"]
    assert {"friedman1", "diabetes", "digits", "toy2d", "mnist", "protein"} <= set(table["name"])


# ------------------------------------------------------------------ the distill form
# set by the "Your model" section's uploads (issue 13), not by the form's widgets
NO_FORM_WIDGET = ("preset", "teacher_file", "teacher_activation", "teacher_units", "teacher_timeout", "teacher_query_budget", "data_file",
                  "target", "nan_policy", "input_spec")
OWN_EDITOR = {"objective": "objective_terms"}  # fields drawn by an editor of several widgets: its first widget's key


def test_distill_form_has_a_widget_for_every_hyperparameter():
    at = start_app()
    keys = {w.key for kind in ("selectbox", "number_input", "text_input", "multiselect") for w in at.get(kind)}
    missing = [f for f in dashboard.widget_values(DistillConfig())
               if OWN_EDITOR.get(f, f"cfg_{f}") not in keys and f not in NO_FORM_WIDGET]
    assert missing == []
    assert at.selectbox(key="cfg_dataset").value == "friedman1"
    assert at.multiselect(key="cfg_samplers").options == dashboard.sampler_names()
    assert at.number_input(key="cfg_lr").value == pytest.approx(1e-3)
    assert at.number_input(key="cfg_epochs").value == 2000


def test_alpha_schedule_preview_draws_the_selected_schedules():
    at = start_app()
    at.multiselect(key="cfg_alphas").set_value(["decreasing", "cosine"]).run()
    preview = next(f for f in figures_of(at) if trace_names(f) == ["decreasing", "cosine"])
    assert values(preview["data"][0]["y"])[0] == pytest.approx(1 - 1 / 2000)


def test_settings_come_from_the_url():
    at = start_app(query={"epochs": "300", "samplers": "gaussian,direct", "alphas": "0,constant:0.3", "lr": "0.002"})
    assert errors(at) == []
    assert at.number_input(key="cfg_epochs").value == 300
    assert at.multiselect(key="cfg_samplers").value == ["gaussian", "direct"]
    assert at.multiselect(key="cfg_alphas").value == ["0", "constant:0.3"]
    assert at.number_input(key="cfg_lr").value == pytest.approx(0.002)


def test_a_preset_sets_every_field_to_its_values():
    at = start_app()
    at.selectbox(key="preset_choice").set_value("paper-mnist").run()
    assert at.selectbox(key="cfg_student_loss").value == "logcosh"
    assert at.number_input(key="cfg_direct_steps").value == 20
    assert at.multiselect(key="objective_terms").value == ["neg_logcosh_discrepancy", "l1_input", "teacher_to_random"]
    assert at.number_input(key="objective_weight_l1_input").value == pytest.approx(1e-6)


def test_the_objective_editor_lists_every_registered_term_with_its_formula():
    from dfkd_core.synth.objectives import TERMS, term_summary

    at = start_app()
    assert at.multiselect(key="objective_terms").options == TERMS.names()
    listing = " ".join(c.value for c in at.caption)
    assert all(f"**{name}**: {term_summary(name)}" in listing for name in TERMS.names())
    assert [w.value for w in at.number_input if w.key.startswith("objective_weight_")] == [1.0, 1e-5, 1e-5]


def test_an_objective_in_the_url_fills_the_editor_and_is_written_back():
    text = "neg_logcosh_discrepancy:0.5,l1_input:0.001"
    at = start_app(query={"objective": text})
    assert errors(at) == []
    assert at.multiselect(key="objective_terms").value == ["neg_logcosh_discrepancy", "l1_input"]
    assert at.number_input(key="objective_weight_l1_input").value == pytest.approx(1e-3)
    assert at.query_params["objective"] == text
    at.number_input(key="objective_weight_l1_input").set_value(0.004).run()
    assert at.query_params["objective"] == "neg_logcosh_discrepancy:0.5,l1_input:0.004"


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_the_objective_editor_changes_the_started_runs_objective():
    at = start_app()
    at.number_input(key="cfg_epochs").set_value(1)
    at.multiselect(key="cfg_samplers").set_value(["direct"])
    at.multiselect(key="objective_terms").set_value(["neg_logcosh_discrepancy", "l1_input", "student_sq"]).run()
    assert at.number_input(key="objective_weight_student_sq").value == pytest.approx(1e-5)  # eq. 5's γ when added
    at.number_input(key="objective_weight_neg_logcosh_discrepancy").set_value(0.5)
    at.number_input(key="objective_weight_l1_input").set_value(0.002).run()
    button(at, "Start").click().run()
    assert not at.exception and errors(at) == []
    run_id = at.session_state["run_id"]
    wait_until_finished(run_id)
    assert RunStore().get_run(run_id).config.objective == (
        ("neg_logcosh_discrepancy", 0.5), ("l1_input", 0.002), ("student_sq", 1e-5))


@pytest.mark.parametrize("query, message", [
    ({"epochs": "abc"}, "The 'epochs' parameter must be an integer (digits only). Got 'abc' instead."),
    ({"bogus": "1", "lr": "x"}, "The 'lr' parameter must be a number. Got 'x' instead."),
    ({"student_loss": "huber"}, "'student_loss' parameter must be one of"),
    ({"samplers": "gaussian,nope"}, "No sampler 'nope' registered"),
    ({"epochs": "-5"}, "The 'epochs' parameter must be an int in [1, 1000000]. Got -5 instead."),
], ids=["int-not-a-number", "float-not-a-number", "unknown-choice", "unknown-sampler", "negative-epochs"])
def test_bad_values_in_the_url_show_an_error_not_an_exception(query, message):
    at = start_app(query=query)
    assert any(message in e for e in errors(at)), errors(at)


@pytest.mark.parametrize("key, value, message", [
    ("cfg_lr", 1e9, "The 'lr' parameter must be a float in (0, 10]. Got 1000000000.0 instead."),
    ("cfg_epochs", -3, "The 'epochs' parameter must be an int in [1, 1000000]. Got -3 instead."),
    ("cfg_batch_size", 0, "The 'batch_size' parameter must be an int in [1, 10000]. Got 0 instead."),
    ("cfg_de_recombination", 7.0, "The 'de_recombination' parameter must be a float in [0, 1]. Got 7.0 instead."),
    ("cfg_seeds", "zero", "The 'seeds' parameter must be an integer (digits only). Got 'zero' instead."),
    ("cfg_samplers", [], "The 'samplers' parameter must be a non-empty list. Got an empty selection instead."),
], ids=["huge-lr", "negative-epochs", "zero-batch", "recombination-above-1", "seeds-not-ints", "no-sampler"])
def test_absurd_settings_show_the_config_error_and_start_nothing(key, value, message):
    store = RunStore()
    kept = store.create_run(DistillConfig(epochs=1))
    store.finish(kept, "failed", error="stored before the test")
    at = start_app()
    widget = at.multiselect(key=key) if key == "cfg_samplers" else (
        at.text_input(key=key) if key == "cfg_seeds" else at.number_input(key=key))
    widget.set_value(value).run()
    button(at, "Start").click().run()
    assert not at.exception
    assert message in errors(at)
    assert list(store.list_runs()["id"]) == [kept]
    assert "run_id" not in at.session_state


def test_an_unknown_run_in_the_url_is_a_warning():
    at = start_app(query={"run": "20990101-000000-abcdef"})
    assert any("No run '20990101-000000-abcdef'" in shown(w.value) for w in at.warning)
    assert not at.exception


# ------------------------------------------------------------------ runs page without workers
def stored_run(status: str = "done", dataset: str = "friedman1") -> str:
    store = RunStore()
    run_id = store.create_run(DistillConfig(dataset=dataset, epochs=3))
    store.finish(run_id, "failed" if status == "failed" else "cancelled", error=None if status != "failed" else "boom")
    return run_id


def test_runs_page_filters_by_status_and_dataset():
    failed, cancelled = stored_run("failed"), stored_run("cancelled", dataset="diabetes")
    at = start_app("pages/runs.py")
    assert set(at.dataframe[0].value["id"]) == {failed, cancelled}
    at.selectbox(key="runs_status").set_value("failed").run()
    assert list(at.dataframe[0].value["id"]) == [failed]
    at.selectbox(key="runs_status").set_value("all").run()
    at.selectbox(key="runs_dataset").set_value("diabetes").run()
    assert list(at.dataframe[0].value["id"]) == [cancelled]


def test_runs_page_deletes_only_after_confirmation():
    keep, drop = stored_run(), stored_run()
    at = start_app("pages/runs.py")
    at.multiselect(key="runs_selected").set_value([drop]).run()
    assert at.button(key="runs_delete").disabled
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception
    assert list(RunStore().list_runs()["id"]) == [keep]
    assert any(drop in shown(s.value) for s in at.success)


# ------------------------------------------------------------------ real tiny runs
@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_a_tiny_friedman1_run_is_drawn_live_and_summarized_from_the_store():
    at = start_app()
    at.number_input(key="cfg_epochs").set_value(5)
    at.multiselect(key="cfg_samplers").set_value(["gaussian", "direct"])
    at.text_input(key="cfg_snapshot_epochs").set_value("0,2")
    at.run()
    button(at, "Start").click().run()
    assert not at.exception and errors(at) == []
    run_id = at.session_state["run_id"]
    assert wait_until_finished(run_id) == "done"
    at.run()
    assert not at.exception and errors(at) == []
    assert any(f"epoch 5 / 5 · done" in p.proto.text for p in at.get("progress"))
    figs = {f["layout"]["title"]["text"].split(" (")[0].split(" —")[0]: f for f in figures_of(at) if f["layout"].get("title")}
    live = live_charts(at)
    spec, rows = live["Validation RMSE"]
    assert legend_groups(spec) == ["direct", "gaussian", "teacher (validation RMSE)"]
    direct = rows[(rows["layer"] == "curve") & (rows["group"] == "direct")]
    assert direct["point"].max() == 5 and list(direct["epoch"]) == [p - 1.0 for p in direct["point"]]
    stored = RunStore().get_run(run_id)
    teacher, teacher_val = stored.teacher_test_rmse, stored.teacher_val_rmse
    teacher_rows = rows[rows["layer"] == "teacher"]
    assert list(teacher_rows["y"]) == [pytest.approx(teacher_val)] * 2  # the reference is the validation figure
    assert at.toggle(key="rmse_zoom").value  # zoomed to the students: the epoch-0 spike does not set the scale
    stored_rmse = RunStore().metrics(run_id)["val_rmse"]
    assert rows.loc[rows["layer"] == "curve", "y"].max() <= stored_rmse.max()
    assert legend_groups(live["Student loss on x_g"][0]) == ["direct", "gaussian"]
    boxes = figs["Student loss of synthetic batches"]
    assert trace_names(boxes) == ["gaussian", "direct"] and set(values(boxes["data"][0]["x"])) == {"0", "2", "4"}
    proj = next(f for t, f in figs.items() if "of real vs synthetic points" in t)
    assert trace_names(proj)[0] == "real (train)" and set(trace_names(proj)[1:]) == {"direct", "gaussian"}
    assert at.select_slider(key="proj_epoch-4").value == 4  # followed the snapshots to the last one
    assert proj["layout"]["title"]["text"].endswith("epoch 4")
    assert dashboard.CAPTIONS["val_rmse"] in [c.value for c in at.caption]
    summary = next(d.value for d in at.dataframe if dashboard.PLAIN_COLUMNS["nn_dist_median"] in d.value.columns)
    assert "nn_dist_median" not in summary.columns
    table = at.dataframe[-1].value
    assert list(table["sampler"]) == ["direct", "gaussian"]
    assert any("validation-selected" in c for c in table.columns) and any("data-free" in c for c in table.columns)
    assert at.metric[0].value == f"{teacher:.4f}"
    # the run can be reopened from its link in a fresh session
    again = start_app(query={"run": run_id, "epochs": "5", "samplers": "gaussian,direct"})
    assert again.number_input(key="cfg_epochs").value == 5
    assert any("epoch 5 / 5 · done" in p.proto.text for p in again.get("progress"))

    # the runs page compares it and exports its metrics, figure and weights
    runs = start_app("pages/runs.py")
    runs.multiselect(key="runs_selected").set_value([run_id]).run()
    assert not runs.exception
    curves = next(f for f in figures_of(runs) if f["layout"]["title"]["text"] == "Validation RMSE")
    assert "direct" in trace_names(curves)
    assert list(runs.dataframe[-1].value["sampler"]) == ["direct", "gaussian"]
    labels = [d.label for d in runs.get("download_button")]
    assert labels == ["Metrics (CSV)", "RMSE figure (HTML)", "Student weights (.pt)"]
    assert dashboard.metrics_csv([run_id]).decode().startswith("run,member,epoch,val_rmse")
    assert len(dashboard.weights_bytes(run_id, "direct|decreasing|0")) > 1000


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_a_tiny_digits_run_shows_synthetic_digits_histograms_and_mae():
    at = start_app("pages/mnist.py")
    assert at.radio(key="mnist_dataset").options[0] == "digits"
    at.number_input(key="mnist_epochs").set_value(2).run()
    at.button(key="mnist_start").click().run()
    assert not at.exception and errors(at) == []
    run_id = at.session_state["mnist_run"]
    cfg = RunStore().get_run(run_id).config
    assert (cfg.preset, cfg.samplers, cfg.epochs) == ("paper-mnist", ("gaussian", "generator", "direct"), 2)
    assert wait_until_finished(run_id) == "done", RunStore().get_run(run_id).error
    at.run()
    assert not at.exception and errors(at) == []
    figs = figures_of(at)
    grid = next(f for f in figs if f["data"] and f["data"][0]["type"] == "heatmap")
    assert len(grid["data"]) == 3 * 8
    assert any(a["text"].startswith("direct @ 1: T(x)=") for a in grid["layout"]["annotations"])
    assert at.multiselect(key="mnist_epochs_shown-1").value == [1] and at.select_slider(key="mnist_hist_epoch-1").value == 1
    assert any("What is this?" == e.label for e in at.expander)
    hist = next(f for f in figs if f["layout"].get("title", {}).get("text") == "Teacher predictions on synthetic batches")
    assert [t["type"] for t in hist["data"]] == ["histogram"] * 3
    mae = at.dataframe[-1].value
    assert set(mae["sampler"]) == {"gaussian", "generator", "direct"}
    assert any("test_mae" in c for c in mae.columns)


def test_mnist_page_says_the_offline_split_note(shared_data):
    at = start_app("pages/mnist.py")
    if "mnist" not in at.radio(key="mnist_dataset").options:
        pytest.skip("MNIST files are not in the shared data directory")
    at.radio(key="mnist_dataset").set_value("mnist").run()
    assert any("Offline" in shown(i.value) and "8000" in shown(i.value) for i in at.info)


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_a_tiny_blackbox_protein_run_keeps_the_simplex_and_counts_teacher_queries(shared_data):
    at = start_app("pages/blackbox.py")
    assert at.selectbox(key="bb_dataset").value == "protein"
    assert at.multiselect(key="bb_samplers").value == ["evolution", "gaussian"]
    at.number_input(key="bb_epochs").set_value(2).run()
    at.button(key="bb_start").click().run()
    assert not at.exception and errors(at) == []
    run_id = at.session_state["bb_run"]
    assert RunStore().get_run(run_id).config.teacher == "svr"
    assert wait_until_finished(run_id) == "done", RunStore().get_run(run_id).error
    at.run()
    assert not at.exception and errors(at) == []
    words = dashboard.PLAIN_COLUMNS
    simplex = next(d.value for d in at.dataframe if words["on_simplex"] in d.value.columns)
    assert simplex[words["on_simplex"]].all()
    assert simplex[words["row_sum_min"]].min() == pytest.approx(1.0, abs=1e-4)
    assert at.select_slider(key="bb_epoch-1").value == 1  # the last snapshot
    queries = at.dataframe[-1].value.set_index("sampler")[words["teacher_queries"]]
    assert queries["evolution"] > queries["gaussian"] > 0
    assert list(at.dataframe[-2].value["sampler"]) == ["evolution", "gaussian"]
    spec, rows = live_charts(at)["Validation RMSE"]
    assert legend_groups(spec) == ["evolution", "gaussian", "teacher (validation RMSE)"]
    assert rows.loc[rows["layer"] == "curve", "point"].max() == 2


# ------------------------------------------------------------------ helpers behind the pages
def test_result_summary_is_mean_and_sd_over_seeds_for_both_selections():
    import pandas as pd

    rmse = {"direct": [0.20, 0.22, 0.24], "gaussian": [0.30, 0.31, 0.35]}
    rows = [dict(member=f"{s}|decreasing|{seed}", sampler=s, alpha="decreasing", seed=seed, test_rmse=v, test_mae=v / 2,
                 best_epoch=seed, best_val_rmse=v, other_selections={"last": [9, v + 0.1, v], "synthetic": ["3", str(v + 0.2), "0"]},
                 teacher_queries=0, weights=None)
            for s, vs in rmse.items() for seed, v in enumerate(vs)]
    table, numbers = dashboard.result_summary(pd.DataFrame(rows))
    assert list(table["sampler"]) == ["direct", "gaussian"]
    m, sd = np.mean(rmse["direct"]), np.std(rmse["direct"], ddof=1)
    assert table.loc[0, "test_rmse (validation-selected, paper)"] == f"{m:.4f} ± {sd:.4f}"
    assert table.loc[0, "test_rmse (last-selected, data-free)"] == f"{m + 0.1:.4f} ± {sd:.4f}"
    assert table.loc[0, "test_rmse (synthetic-selected, data-free)"] == f"{m + 0.2:.4f} ± {sd:.4f}"
    assert numbers.loc[1, "test_rmse_mean"] == pytest.approx(np.mean(rmse["gaussian"]))
    assert "teacher queries" not in table


def test_a_config_round_trips_through_the_url():
    cfg = DistillConfig(samplers=("gaussian", "direct"), alphas=("custom:0:1,100:0", "0"), seeds=(0, 1), lr=2e-3, epochs=300)
    back, error = dashboard.config_from_query(dashboard.query_for(cfg, run_id="abc"))
    assert error is None and back == cfg


def test_digit_images_are_shown_in_the_unit_range():
    img = dashboard.as_image(np.arange(64, dtype=float).reshape(1, 8, 8) - 10)
    assert img.shape == (8, 8) and img.min() == 0 and img.max() == 1
    assert dashboard.as_image(np.full((1, 28, 28), 0.5)).shape == (28, 28)

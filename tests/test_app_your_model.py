"""The Distill page's "Your model" section under AppTest: an input spec filled in as a table
and a teacher given as the URL of an HTTP endpoint turn into an ordinary stored run."""
from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from test_app_pages import errors, start_app
from user_helpers import FEATURES, MEANS, SCALES, ServedTeacher

from dfkd_core import dashboard
from dfkd_core.data.user import spec_from_rows
from dfkd_core.runs.runstore import RunStore

TINY = {"epochs": "2", "batches_per_epoch": "2", "batch_size": "20", "samplers": "gaussian", "alphas": "constant:0.5",
        "seeds": "0", "snapshot_epochs": "", "de_generations": "2"}


def spec_table() -> pd.DataFrame:
    return pd.DataFrame({"name": list(FEATURES), "mean": MEANS, "std": SCALES, "min": [None] * 4, "max": [None] * 4})


def fill_your_model(at, url: str, table: pd.DataFrame, **widgets):
    at.text_input(key="own_url").input(url)
    at.radio(key="own_spec_mode").set_value("fill in a table").run()
    at.session_state["own_spec_table"] = table
    for key, value in widgets.items():
        at.number_input(key=key).set_value(value)
    at.run()
    assert not at.exception, at.exception
    at.button(key="own_start").click().run()
    assert not at.exception, at.exception
    return at


def test_the_spec_table_prefills_two_rows_without_a_teacher_file():
    at = start_app("pages/distill.py")
    at.radio(key="own_spec_mode").set_value("fill in a table").run()
    table = at.session_state["own_spec_table"]
    assert list(table.columns) == ["name", "mean", "std", "min", "max"] and len(table) == 2
    assert at.selectbox(key="own_constraint").options == ["none", "clip", "simplex"]


def test_an_http_teacher_and_a_filled_spec_table_start_a_run_whose_stored_spec_matches_the_table():
    with ServedTeacher() as served:
        at = start_app("pages/distill.py", query=TINY)
        at = fill_your_model(at, served.url, spec_table(), own_timeout=5.0, own_budget=100_000)
        assert not errors(at), errors(at)
        run_id = at.session_state["run_id"]
        store = RunStore()
        cfg = store.get_run(run_id).config
        assert cfg.teacher_file == served.url and cfg.dataset == "user" and cfg.selection != "validation"
        assert cfg.teacher_timeout == 5.0 and cfg.teacher_query_budget == 100_000
        stored = json.loads(open(cfg.input_spec, encoding="utf-8").read())
        assert stored == spec_from_rows(spec_table().to_dict("records"))
        deadline = time.monotonic() + 300
        while store.get_run(run_id).active and time.monotonic() < deadline:
            time.sleep(0.5)
        info = store.get_run(run_id)
        assert info.status == "done", info.error
        assert served.handler.calls > 0 and len(store.results(run_id)) == 1


@pytest.mark.parametrize("url, table, query, message", [
    ("http://127.0.0.1:9/predict", spec_table().assign(std=[1.0, 0.0, 1.0, 1.0]), TINY,
     "The 'std' of row 2 ('speed') of the input table must be > 0. Got 0 instead."),
    ("ftp://example.org/model", spec_table(), TINY,
     "The endpoint URL must start with http:// or https:// and name a host. Got 'ftp://example.org/model' instead."),
    ("http://127.0.0.1:9/predict", spec_table(), {**TINY, "samplers": "direct,gaussian"},
     "cannot give them: it is a black box (no gradients reach its inputs)"),
], ids=["zero-std-row", "not-http", "direct-on-a-black-box"])
def test_a_bad_table_or_endpoint_is_one_message_and_no_run(url, table, query, message):
    at = fill_your_model(start_app("pages/distill.py", query=query), url, table)
    assert any(message in e for e in errors(at)), errors(at)
    assert "run_id" not in at.session_state and RunStore().list_runs().empty


def test_state_dict_and_torchscript_teachers_state_their_input_dimension(tmp_path):
    import torch
    from torch import nn
    from user_helpers import RawReLUTeacher, write_torchscript

    from dfkd_core.models.user_models import teacher_input_dim

    torch.save(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).state_dict(), tmp_path / "sd.pt")
    assert teacher_input_dim(tmp_path / "sd.pt") == 3
    assert teacher_input_dim(write_torchscript(tmp_path / "ts.pt", RawReLUTeacher(d=5))) == 5
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    assert teacher_input_dim(tmp_path / "junk.pt") is None


def test_the_spec_table_starts_with_one_row_per_input_of_an_uploaded_torchscript_teacher(tmp_path):
    """Issue 23: a 5-input TorchScript teacher gave a 2-row table, and the run failed with an interpreter message."""
    from user_helpers import RawReLUTeacher, write_torchscript

    path = write_torchscript(tmp_path / "five.pt", RawReLUTeacher(d=5))
    table = dashboard.spec_table_rows(("five.pt", path.read_bytes()))
    assert list(table["name"]) == ["x1", "x2", "x3", "x4", "x5"]
    assert len(dashboard.spec_table_rows(None)) == 2


@pytest.mark.parametrize("url", ["", "localhost:8000/predict", "http://", "file:///etc/passwd"], ids=["empty", "no-scheme", "no-host", "file"])
def test_an_endpoint_url_must_be_http_or_https_with_a_host(url):
    from dfkd_core.errors import ModelError
    from dfkd_core.models.user_models import teacher_endpoint

    with pytest.raises(ModelError, match=r"The endpoint URL must start with http:// or https:// and name a host\. Got"):
        teacher_endpoint(url)
    assert teacher_endpoint(" https://models.example.org:8443/predict ") == "https://models.example.org:8443/predict"


def test_the_page_offers_teacher_units_and_says_the_http_queries_before_the_start():
    from dfkd_core.config import DistillConfig
    from dfkd_core.data.user import SPEC_SPLIT
    from dfkd_core.userrun import query_plan, query_plan_line

    at = start_app("pages/distill.py", query=TINY)
    assert at.selectbox(key="own_units").options == ["auto", "raw", "standardized"]
    at.text_input(key="own_url").input("http://127.0.0.1:9/predict")
    at.radio(key="own_spec_mode").set_value("fill in a table").run()
    assert not at.exception, at.exception
    cfg = DistillConfig(dataset="user", teacher_file="http://127.0.0.1:9/predict", input_spec="spec", epochs=2,
                        batches_per_epoch=2, batch_size=20, samplers=("gaussian",), alphas=("constant:0.5",),
                        selection="synthetic")
    expected = query_plan_line(query_plan(cfg, SPEC_SPLIT[1], SPEC_SPLIT[2]))
    from dfkd_core import dashboard

    assert dashboard.plain(expected) in [c.value for c in at.caption]
    assert "RunStore" not in expected and RunStore().list_runs().empty  # said before any run exists

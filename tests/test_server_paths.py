"""No link or form names a file on the server: `/?teacher_file=<path>` (or data_file, input_spec)
then Start loads and copies nothing and says nothing about the path; only files uploaded for
the run can be its teacher or data. A damaged run shows one message and can still be deleted."""
from __future__ import annotations

import os
import shutil

import pytest
import torch
from test_app_pages import errors, start_app
from torch import nn
from user_helpers import write_csv

from dfkd_core import dashboard
from dfkd_core.config import DistillConfig
from dfkd_core.data.user import user_files_dir
from dfkd_core.errors import DfkdError
from dfkd_core.runs.runstore import RunStore

TINY = {"epochs": "1", "batches_per_epoch": "1", "batch_size": "10", "samplers": "gaussian", "alphas": "0", "seeds": "0",
        "snapshot_epochs": ""}
LINK_MESSAGE = "A link cannot name a file"


@pytest.fixture
def server_files(tmp_path):
    """A TorchScript file and a text file on the server, which no visitor uploaded."""
    ts = tmp_path / "server" / "model.pt"
    ts.parent.mkdir()
    torch.jit.save(torch.jit.script(nn.Linear(10, 1)), str(ts))
    text = tmp_path / "server" / "secrets.txt"
    text.write_text("root:x:0:0\n")
    return {"torchscript": ts, "text": text, "missing": tmp_path / "server" / "nothing-here.pt"}


def _stop_all() -> None:
    for run_id in RunStore().list_runs()["id"]:
        dashboard.stop(run_id)


@pytest.mark.parametrize("field", ["teacher_file", "data_file", "input_spec"])
@pytest.mark.parametrize("which", ["torchscript", "text", "missing"])
def test_a_link_naming_a_server_file_then_start_loads_and_copies_nothing(field, which, server_files):
    path = str(server_files[which])
    at = start_app(query={**TINY, field: path})
    shown = errors(at)
    assert any(LINK_MESSAGE in e for e in shown), shown
    assert not any(path in e or "does not exist" in e for e in shown)  # nothing said about the path
    at.button(key="distill_start").click().run()
    assert not at.exception, at.exception
    try:
        assert not any(path in e for e in errors(at))
        assert not list(user_files_dir().iterdir())  # nothing copied
        for run_id in RunStore().list_runs()["id"]:  # a run the form's other settings started names no file
            cfg = RunStore().get_run(run_id).config
            assert (cfg.teacher_file, cfg.data_file, cfg.input_spec) == ("", "", "")
        assert field not in at.query_params  # the URL the page writes back names no file either
    finally:
        _stop_all()


def test_the_url_the_page_writes_never_carries_a_file_path():
    cfg = DistillConfig(teacher_file="/srv/model.pt", data_file="/srv/data.csv", input_spec="/srv/spec.json", epochs=7)
    assert dashboard.query_for(cfg) == {"epochs": "7"}
    assert DistillConfig.from_query({"teacher_file": "/srv/model.pt", "epochs": "7"}) == DistillConfig(epochs=7)


@pytest.mark.parametrize("which", ["torchscript", "missing"])
def test_submit_refuses_a_file_not_uploaded_for_the_run_with_the_same_words_whether_it_exists_or_not(which, server_files):
    cfg = DistillConfig(teacher_file=str(server_files[which]), epochs=1)
    with pytest.raises(DfkdError) as refused:
        dashboard.submit(cfg)
    assert str(refused.value) == ("A teacher, data or input-spec file can only come from an upload in this browser session "
                                  "(the Your model section), never from a link or a typed path. Got 'teacher_file' naming a "
                                  "file that was not uploaded here.")
    assert RunStore().list_runs().empty and not list(user_files_dir().iterdir())


def test_a_stored_run_naming_a_server_file_opened_on_the_page_starts_nothing_from_it(server_files):
    run_id = RunStore().create_run(DistillConfig(teacher_file=str(server_files["torchscript"]), epochs=1, samplers=("gaussian",)))
    at = start_app(query={"run": run_id})
    at.button(key="distill_start").click().run()
    assert not at.exception, at.exception
    try:
        for other in RunStore().list_runs()["id"]:
            if other != run_id:
                assert RunStore().get_run(other).config.teacher_file == ""
        assert not list(user_files_dir().iterdir())
    finally:
        _stop_all()


def test_a_failed_start_with_your_model_keeps_no_upload(tmp_path):
    csv = write_csv(tmp_path / "plant.csv")
    uploads = [dashboard.store_upload("plant.csv", csv.read_bytes(), "data")]
    cfg = DistillConfig(dataset="user", data_file=uploads[0], target="y", epochs=0, samplers=("gaussian",))
    with pytest.raises(DfkdError):
        dashboard.submit(cfg, uploads=uploads)
    dashboard.discard_uploads(uploads)  # what the page's Start does when submit refuses
    assert not os.path.exists(uploads[0]) and RunStore().list_runs().empty


# ---------------------------------------------------------------- errors in, Delete reachable
def _finished_run_with_results() -> str:
    """A tiny real run through the worker, so the store holds metrics, snapshots and weights."""
    import time

    run_id = dashboard.submit(DistillConfig(epochs=2, batches_per_epoch=1, batch_size=10, samplers=("gaussian",),
                                            alphas=("0",), snapshot_epochs=(0,)))
    store = RunStore()
    deadline = time.monotonic() + 600
    while store.get_run(run_id).active and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.get_run(run_id).status == "done", store.get_run(run_id).error
    return run_id


def test_damaged_weights_and_a_missing_snapshot_are_one_message_each_and_the_run_can_be_deleted():
    run_id = _finished_run_with_results()
    store = RunStore()
    folder = store.runs_dir / run_id
    for path in folder.rglob("*"):
        if path.suffix == ".pt":
            path.write_bytes(b"damaged")
        elif path.suffix == ".npz":
            path.unlink()
    at = start_app("pages/runs.py")
    at.multiselect(key="runs_selected").set_value([run_id]).run()
    assert not at.exception, at.exception
    assert any("are damaged" in e and "can be deleted" in e for e in errors(at)), errors(at)
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception, at.exception
    assert not store.has_run(run_id)

    run_id = _finished_run_with_results()
    for path in (store.runs_dir / run_id).rglob("*.npz"):
        path.unlink()
    at = start_app(query={"run": run_id})
    assert not at.exception, at.exception
    assert any("is missing" in e for e in errors(at)), errors(at)
    shutil.rmtree(store.runs_dir / run_id, ignore_errors=True)

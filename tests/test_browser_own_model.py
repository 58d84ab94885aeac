"""Issue 13 in a real browser: upload a TorchScript teacher and a CSV on the Distill page, pick
the target, Start, watch the curves, then download the student from the Runs page and load it."""
from __future__ import annotations

import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import new_page, newest_run, wait_for_run
from test_browser import RMSE_POINTS_JS
from user_helpers import fitted_teacher, write_csv, write_torchscript

from dfkd_core.runs.runstore import RunStore

pytestmark = pytest.mark.browser
EPOCHS = 40


def test_upload_teacher_and_csv_start_watch_and_download_the_student(server, browser, tmp_path):
    from playwright.sync_api import expect

    csv = write_csv(tmp_path / "plant.csv")
    teacher = write_torchscript(tmp_path / "teacher.pt", fitted_teacher(csv, steps=100))
    page = new_page(browser, accept_downloads=True)
    try:
        page.goto(server)
        expect(page.get_by_text("Device:")).to_be_visible()
        epochs = page.get_by_label("Epochs", exact=True)
        epochs.fill(str(EPOCHS))
        epochs.press("Enter")
        expect(page).to_have_url(re.compile(rf"epochs={EPOCHS}"))
        page.get_by_text("Your model: your teacher, your data").click()
        page.locator(".st-key-own_teacher input[type=file]").set_input_files(str(teacher))
        page.locator(".st-key-own_data input[type=file]").set_input_files(str(csv))
        expect(page.get_by_text("Target column")).to_be_visible()
        page.locator(".st-key-own_start button").click()
        wait_for_run(lambda store: (run := newest_run(store)) and run.status == "done", timeout=1_800,
                     what="the your-model run to finish")
        expect(page.get_by_text(re.compile(rf"epoch {EPOCHS} / {EPOCHS} · done")).first).to_be_visible()
        # the header can say done a moment before the finished run's figure is drawn
        page.wait_for_function(f"() => ({RMSE_POINTS_JS})() > 1")
        page.screenshot(path=str(tmp_path / "own-model-finished.png"), full_page=True)

        run_id = RunStore().list_runs()["id"].iloc[0]
        page.goto(f"{server}/runs")
        expect(page.locator(".st-key-runs_selected")).to_be_visible()
        page.locator(".st-key-runs_selected").click()
        page.keyboard.type(run_id)
        page.keyboard.press("Enter")
        download_section = page.get_by_text("Download the student (TorchScript, ONNX, model card)")
        expect(download_section).to_be_visible()
        download_section.click()
        page.locator(".st-key-export_prepare button").click()
        with page.expect_download() as download:
            page.locator(".st-key-export_download button").click()
        download.value.save_as(str(tmp_path / "student.zip"))
    finally:
        page.close()

    runs = RunStore().list_runs()
    assert list(runs["status"]) == ["done"] and list(runs["dataset"]) == ["user"]
    with zipfile.ZipFile(tmp_path / "student.zip") as zf:
        zf.extractall(tmp_path / "unzipped")
    rows = pd.read_csv(tmp_path / "unzipped" / "student" / "test_rows.csv")
    student = torch.jit.load(str(tmp_path / "unzipped" / "student" / "student.pt"))
    pred = student(torch.tensor(rows[["load", "speed", "temp", "ratio"]].to_numpy(), dtype=torch.float32)).detach().numpy()
    assert np.isfinite(pred).all() and pred.shape == (len(rows),)

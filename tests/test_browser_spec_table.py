"""Issue 13 in a real browser, strictly data-free: upload a state_dict teacher, fill the input
spec as a table (prefilled with one row per teacher input), Start, and the run finishes on it."""
from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import newest_run, wait_for_run
from torch import nn

from dfkd_core.runs.runstore import RunStore

pytestmark = pytest.mark.browser


def test_a_state_dict_teacher_prefills_the_spec_table_and_starts_a_data_free_run(server, page, tmp_path):
    from playwright.sync_api import expect

    torch.save(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).state_dict(), tmp_path / "teacher.pt")
    page.goto(f"{server}/?epochs=3&samplers=gaussian&alphas=constant:0.5&seeds=0")
    expect(page.get_by_text("Device:")).to_be_visible()
    page.get_by_text("Your model: your teacher, your data").click()
    page.locator(".st-key-own_teacher input[type=file]").set_input_files(str(tmp_path / "teacher.pt"))
    page.locator(".st-key-own_activation").click()
    page.get_by_role("option", name="tanh", exact=True).click()
    page.get_by_text("fill in a table").click()
    expect(page.get_by_text("Constraint")).to_be_visible()
    page.locator(".st-key-own_start button").click()
    wait_for_run(lambda store: (run := newest_run(store)) and run.status == "done", what="the data-free run to finish")
    expect(page.get_by_text(re.compile(r"epoch 3 / 3 · done")).first).to_be_visible()
    store = RunStore()
    cfg = store.get_run(store.list_runs()["id"].iloc[0]).config
    stored = json.loads(open(cfg.input_spec, encoding="utf-8").read())
    assert stored == {"features": [{"name": f"x{i}", "mean": 0.0, "std": 1.0} for i in (1, 2, 3)], "constraint": "none"}

"""Shared test fixtures: seeded RNGs, one torch thread, a fresh DFKD_HOME per test,
DFKD_DATA_DIR pointed at ../shared/data when it is there; and the one way the browser tests
start a Streamlit server and Debian's Chromium (patient: they wait on what the run store says
and on what the page shows, never on a fixed sleep)."""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()


def shared_data_available() -> bool:
    return (SHARED_DATA / "README.md").exists()


needs_shared_data = pytest.mark.skipif(not shared_data_available(), reason="../shared/data is not beside the repo")


@pytest.fixture(scope="session")
def session_teacher_dir(tmp_path_factory) -> Path:
    """Teachers are keyed by dataset, split seed and architecture: one cache serves the session."""
    return tmp_path_factory.mktemp("teachers")


@pytest.fixture(autouse=True)
def clean_state(tmp_path, monkeypatch, session_teacher_dir):
    """Every test: seeded RNGs, one thread, its own DFKD_HOME; DFKD_DATA_DIR = ../shared/data if present."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    monkeypatch.setenv("DFKD_HOME", str(tmp_path / "dfkd-home"))
    monkeypatch.setenv("DFKD_TEACHER_DIR", str(session_teacher_dir))
    monkeypatch.delenv("DFKD_DEVICE", raising=False)
    monkeypatch.delenv("DFKD_TEACHER_HOSTS", raising=False)  # the HTTP teacher's default allow-list: loopback
    monkeypatch.setenv("DFKD_SERVER_EXPOSED", "")  # the app sets it when a test says the server is exposed
    if shared_data_available():
        monkeypatch.setenv("DFKD_DATA_DIR", str(SHARED_DATA))
    else:
        monkeypatch.setenv("DFKD_DATA_DIR", str(tmp_path / "empty-data"))
    yield
    jobs = sys.modules.get("dfkd_core.runs.jobs")
    if jobs is not None:  # a page under AppTest keeps a warm worker and a dispatcher, in this test's env:
        jobs.stop_keeping_warm()  # the next test gets neither (a stale warm worker does not fit its env)


@pytest.fixture
def shared_data() -> Path:
    if not shared_data_available():
        pytest.skip("../shared/data is not beside the repo")
    return SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/*.json from this run instead of comparing with them")


@pytest.fixture
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden"))


# ---------------------------------------------------------------- browser tests
# The tests' only launch of a browser is the `browser` fixture below: Debian's chromium (apt-get
# install chromium, with the same arguments as `bench --dashboard`'s experiments.browser), never one
# downloaded by playwright; the server is started the way `bench --dashboard` starts it. Waits are
# long because CI may share the machine with other work; a wait ends as soon as its condition
# holds, so a quiet machine pays nothing for the patience.
from dfkd_core.experiments.browser import CHROMIUM, CHROMIUM_ARGS, PATIENT_MS, new_page, streamlit_server  # noqa: E402,F401


@pytest.fixture
def server(tmp_path) -> str:
    """A streamlit server (listening on 127.0.0.1) over this test's DFKD_HOME; its URL."""
    with streamlit_server(Path(os.environ["DFKD_HOME"]), "--server.address", "127.0.0.1") as running:
        yield running.url


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module; every wait patient (PATIENT_MS)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PATIENT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A fresh patient page for one test."""
    opened = new_page(browser)
    try:
        yield opened
    finally:
        opened.close()


def wait_for_run(condition, timeout: float = PATIENT_MS / 1000, what: str = "the run", home: Path | None = None):
    """Poll the run store until condition(store) is truthy; returns its value. The tests wait on
    what the store says (status, epochs logged), not on how long something usually takes."""
    from dfkd_core.runs.runstore import RunStore

    deadline = time.monotonic() + timeout
    while True:
        store = RunStore(home) if home else RunStore()
        value = condition(store)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def newest_run(store):
    """The newest stored run's info, or None on an empty store."""
    runs = store.list_runs()
    return store.get_run(runs["id"].iloc[0]) if len(runs) else None

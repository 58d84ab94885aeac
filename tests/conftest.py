"""Shared test fixtures: seeded RNGs, one torch thread, a fresh DFKD_HOME per test,
DFKD_DATA_DIR pointed at ../shared/data when it is there; and the one way the browser tests
start a Streamlit server and Debian's Chromium (patient: they wait on what the run store says
and on what the page shows, never on a fixed sleep)."""
from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
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
# The only place that launches a browser: Debian's chromium (apt-get install chromium), never one
# downloaded by playwright. Waits are long because CI may share the machine with other work; a
# wait ends as soon as its condition holds, so a quiet machine pays nothing for the patience.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
PATIENT_MS = 300_000  # the default for every page wait and expect(): five minutes on a loaded box
SERVER_START_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, proc: subprocess.Popen, log: Path, timeout: float = SERVER_START_S) -> None:
    """Until streamlit answers /_stcore/health with ok; fails with the server's log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer /_stcore/health within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass(frozen=True)
class StreamlitServer:
    url: str
    port: int
    home: Path


@contextlib.contextmanager
def streamlit_server(home: Path, *args: str, env: dict | None = None):
    """`streamlit run app.py` on a free port with DFKD_HOME=home; every run it started is asked to
    stop and the server is ended (SIGTERM, then SIGKILL) on the way out."""
    from dfkd_core.runs.runstore import RunStore

    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "streamlit.log"
    full_env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "DFKD_HOME": str(home), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), *args],
                                cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", proc, log)
        yield StreamlitServer(f"http://127.0.0.1:{port}", port, home)
    finally:
        with contextlib.suppress(Exception):
            store = RunStore(home)
            for run_id in store.list_runs()["id"]:  # no worker outlives the test
                if store.get_run(run_id).active:
                    store.request_stop(run_id)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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


def new_page(browser, **options):
    """A page (in its own context) whose waits default to PATIENT_MS; closing it closes the context."""
    context = browser.new_context(viewport=options.pop("viewport", {"width": 1400, "height": 1600}), **options)
    context.set_default_timeout(PATIENT_MS)
    page = context.new_page()
    page.on("close", lambda _: context.close())
    return page


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

"""One real browser session: `streamlit run app.py` as a subprocess, Debian's Chromium
driven by Playwright: set epochs, Start, watch the live curve grow, Stop, see 'cancelled'."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dfkd_core.runs.runstore import RunStore

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
EPOCHS = 100_000  # far longer than the test watches: the batched engine ran 1000 friedman1 epochs before Stop (CI stop 10)
TEACHER_TIMEOUT_MS = 1_500_000  # the session's first run trains the friedman1 teacher (minutes on a busy CPU)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer /_stcore/health within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path):
    """A streamlit server on a free port with DFKD_HOME in tmp_path (set by conftest); stopped in teardown."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_health(url, proc, log)
        yield url
    finally:
        store = RunStore()
        for run_id in store.list_runs()["id"]:  # no worker outlives the test
            if store.get_run(run_id).active:
                store.request_stop(run_id)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def epoch_shown(page) -> int:
    text = page.get_by_text(re.compile(rf"epoch \d+ / {EPOCHS}")).first.inner_text()
    return int(re.search(rf"epoch (\d+) / {EPOCHS}", text).group(1))


# Points of the longest curve in the validation-RMSE chart, from plotly's own data (arrays
# arrive as base64 typed arrays: {dtype, bdata}); Streamlit wraps chart titles in <b>.
RMSE_POINTS_JS = """() => {
    const size = {f8: 8, f4: 4, i4: 4, u4: 4, i2: 2, u2: 2, i1: 1, u1: 1};
    const count = x => !x ? 0 : (x.length !== undefined ? x.length : (x.bdata ? atob(x.bdata).length / size[x.dtype] : 0));
    for (const el of document.querySelectorAll('.js-plotly-plot')) {
        const title = el.layout && el.layout.title && el.layout.title.text;
        if (title && title.includes('Validation RMSE') && el.data)
            return Math.max(0, ...el.data.filter(t => t.name !== 'teacher (validation RMSE)').map(t => count(t.x)));
    }
    return 0;
}"""


def rmse_points(page) -> int:
    return page.evaluate(RMSE_POINTS_JS)


def test_start_shows_the_curve_growing_and_stop_cancels_the_run(server, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            # a deep link as a fresh server's first request still gets the app's frame and page list
            page.goto(f"{server}/datasets")
            expect(page.get_by_text("Device:")).to_be_visible(timeout=60_000)
            expect(page.get_by_test_id("stSidebarNav").get_by_text("Distill")).to_be_visible()
            page.goto(server)
            epochs = page.get_by_label("Epochs", exact=True)
            epochs.fill(str(EPOCHS))
            epochs.press("Enter")
            expect(page).to_have_url(re.compile(rf"epochs={EPOCHS}"), timeout=30_000)
            page.locator(".st-key-distill_start button").click()

            progress = page.get_by_text(re.compile(rf"epoch [1-9]\d* / {EPOCHS} · running"))
            expect(progress.first).to_be_visible(timeout=TEACHER_TIMEOUT_MS)
            first = epoch_shown(page)
            expect(page).to_have_url(re.compile(r"run=\d{8}-\d{6}-[0-9a-f]+"))
            page.wait_for_function(f"n => ({RMSE_POINTS_JS})() > n", arg=first, timeout=120_000)
            assert rmse_points(page) > first
            assert epoch_shown(page) >= first

            page.locator(".st-key-distill_stop button").click()
            expect(page.get_by_text(re.compile(rf"epoch \d+ / {EPOCHS} · cancelled")).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(tmp_path / "distill-cancelled.png"), full_page=True)
        finally:
            browser.close()

    runs = RunStore().list_runs()
    assert list(runs["status"]) == ["cancelled"]
    assert 0 < runs.iloc[0]["last_epoch"] < EPOCHS - 1
    assert (tmp_path / "distill-cancelled.png").stat().st_size > 10_000

"""One real browser session: `streamlit run app.py` as a subprocess, Debian's Chromium
driven by Playwright (conftest's server, browser and page fixtures): set epochs, Start, watch
the live curve grow, Stop, see 'cancelled'."""
from __future__ import annotations

import re

import pytest
from conftest import newest_run, wait_for_run

from dfkd_core.experiments.browser import RMSE_POINTS_JS  # the curve's points, counted as `bench --dashboard` does
from dfkd_core.runs.runstore import RunStore

pytestmark = pytest.mark.browser

EPOCHS = 100_000  # far longer than the test watches: the batched engine ran 1000 friedman1 epochs before Stop (CI stop 10)


def epoch_shown(page) -> int:
    text = page.get_by_text(re.compile(rf"epoch \d+ / {EPOCHS}")).first.inner_text()
    return int(re.search(rf"epoch (\d+) / {EPOCHS}", text).group(1))




def test_start_shows_the_curve_growing_and_stop_cancels_the_run(server, page, tmp_path):
    from playwright.sync_api import expect

    # a deep link as a fresh server's first request still gets the app's frame and page list
    page.goto(f"{server}/datasets")
    expect(page.get_by_text("Device:")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav").get_by_text("Distill")).to_be_visible()
    page.goto(server)
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill(str(EPOCHS))
    epochs.press("Enter")
    expect(page).to_have_url(re.compile(rf"epochs={EPOCHS}"))
    page.locator(".st-key-distill_start button").click()

    # the session's first run trains the friedman1 teacher (minutes on a busy CPU): wait on the store
    wait_for_run(lambda store: (run := newest_run(store)) and len(store.metrics(run.id)) >= 2, timeout=1_800,
                 what="the run's first epochs in the store")
    progress = page.get_by_text(re.compile(rf"epoch [1-9]\d* / {EPOCHS} · running"))
    expect(progress.first).to_be_visible()
    first = epoch_shown(page)
    expect(page).to_have_url(re.compile(r"run=\d{8}-\d{6}-[0-9a-f]+"))
    # the count the wait saw, not a second read: under load a fragment rerun can redraw the chart
    # between two reads (CI beside two CPU burners read 0 right after the wait saw more than 1)
    grown = page.wait_for_function(f"n => {{ const c = ({RMSE_POINTS_JS})(); return c > n ? c : false; }}", arg=first)
    assert grown.json_value() > first
    assert epoch_shown(page) >= first

    page.locator(".st-key-distill_stop button").click()
    wait_for_run(lambda store: newest_run(store).status == "cancelled", what="the run to be cancelled in the store")
    expect(page.get_by_text(re.compile(rf"epoch \d+ / {EPOCHS} · cancelled")).first).to_be_visible()
    page.screenshot(path=str(tmp_path / "distill-cancelled.png"), full_page=True)

    runs = RunStore().list_runs()
    assert list(runs["status"]) == ["cancelled"]
    assert 0 < runs.iloc[0]["last_epoch"] < EPOCHS - 1
    assert (tmp_path / "distill-cancelled.png").stat().st_size > 10_000

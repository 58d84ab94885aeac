"""The MNIST page in a real browser on a fresh DFKD_HOME (the issue's acceptance): Start →
synthetic digits labelled with the teacher's predictions appear; at the end of the run every
epoch widget shows the last snapshot. Also the Distill defaults' first curve point. The
seconds measured are printed (run with -s), not asserted: the box is shared."""
from __future__ import annotations

import re
import time

import pytest

from dfkd_core.data import load_split
from dfkd_core.models.teachers import shipped_file
from dfkd_core.runs.runstore import RunStore
from conftest import new_page, newest_run, wait_for_run
from test_browser import RMSE_POINTS_JS

pytestmark = pytest.mark.browser
EPOCHS = 3  # snapshots at 0 and at the last epoch (2)
DIGITS_JS = """() => {
    for (const el of document.querySelectorAll('.js-plotly-plot'))
        if (el.layout && (el.layout.annotations || []).some(a => /: T\\(x\\)=/.test(a.text))) return true;
    return false;
}"""


def shipped(dataset: str) -> bool:
    try:
        return shipped_file(load_split(dataset, seed=0), "cnn10") is not None
    except Exception:  # the dataset's files are not here
        return False


@pytest.mark.parametrize("dataset", ["digits", "mnist"])
def test_the_mnist_page_shows_labelled_digits_soon_after_start_and_ends_on_the_last_snapshot(server, browser, dataset, tmp_path):
    if not shipped(dataset):
        pytest.skip(f"no shipped {dataset} teacher here (python -m dfkd_core teach --dataset {dataset} --ship)")
    from playwright.sync_api import expect

    page = new_page(browser, viewport={"width": 1400, "height": 2400})
    try:
        page.goto(f"{server}/mnist")
        expect(page.get_by_text("MNIST digits").first).to_be_visible()
        page.locator(".st-key-mnist_dataset").get_by_text(dataset, exact=True).click()
        epochs = page.get_by_label("Epochs", exact=True)
        epochs.fill(str(EPOCHS))
        epochs.press("Enter")
        expect(epochs).to_have_value(str(EPOCHS))
        started = time.monotonic()
        page.locator(".st-key-mnist_start button").click()
        # every rerun carries the frontend's widget values, so the run takes the epochs typed above
        wait_for_run(lambda store: newest_run(store), what="the MNIST run to be stored")
        assert newest_run(RunStore()).config.epochs == EPOCHS
        page.wait_for_function(DIGITS_JS)
        print(f"\n[measure] {dataset}: first synthetic digits {time.monotonic() - started:.1f} s after Start")
        wait_for_run(lambda store: newest_run(store).status == "done", timeout=1_800, what="the MNIST run to finish")
        expect(page.get_by_text(re.compile(rf"epoch {EPOCHS} / {EPOCHS} · done")).first).to_be_visible()
        last = str(EPOCHS - 1)
        # one slider, on the last epoch: the previous newest epoch's slider can linger for a rerun or two
        page.wait_for_function(f"""() => {{
            const thumbs = [...document.querySelectorAll("[class*='st-key-mnist_hist_epoch'] [data-testid='stSliderThumbValue']")];
            return thumbs.length === 1 && thumbs[0].textContent.trim() === '{last}';
        }}""")
        # "Digits at epochs" holds only the last snapshot: every labelled digit is from it
        page.wait_for_function(f"""() => {{
            const titles = [...document.querySelectorAll('.js-plotly-plot')].flatMap(el =>
                (el.layout.annotations || []).map(a => a.text)).filter(t => t.includes('T(x)='));
            return titles.length > 0 && titles.every(t => t.includes('@ {last}: T(x)='));
        }}""")
        page.screenshot(path=str(tmp_path / f"mnist-{dataset}.png"), full_page=True)
    finally:
        page.close()


def test_the_distill_defaults_stream_a_growing_curve_after_start(server, page):
    """Start on the defaults: the curve gets its first point and keeps growing while the run
    streams (the seconds are printed with -s, not asserted: `bench` measures speed)."""
    page.goto(server)
    page.locator(".st-key-distill_start button").wait_for()
    started = time.monotonic()
    page.locator(".st-key-distill_start button").click()
    page.wait_for_function(f"() => ({RMSE_POINTS_JS})() > 0")
    print(f"\n[measure] distill defaults: first curve point {time.monotonic() - started:.1f} s after Start")
    first = page.evaluate(RMSE_POINTS_JS)
    page.wait_for_function(f"n => ({RMSE_POINTS_JS})() > n + 2", arg=first)
    run = newest_run(RunStore())
    assert run.status == "running" and len(RunStore().metrics(run.id)) >= first
    page.locator(".st-key-distill_stop button").click()
    wait_for_run(lambda store: not newest_run(store).active, what="the run to stop")
    assert newest_run(RunStore()).status == "cancelled"

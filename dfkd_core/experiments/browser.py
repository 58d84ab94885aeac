"""The dashboard in a real browser: the one way to start a Streamlit server on app.py (tests/conftest.py's
fixtures and `bench --dashboard` both use it), Debian's Chromium and its arguments (the bench's launch
is here, the tests' is conftest's `browser` fixture; playwright's own browsers are never downloaded),
and `bench --dashboard`'s measurements of
issue 23's targets on a scratch DFKD_HOME: Start → first validation-RMSE point, the longest pause
while a run streams (between animation frames; and while the store held epochs the curve did not
show), the curve's lag behind the store, the playground's frames per second and how often its
charts are on screen (flicker), and Start → first synthetic digits on the MNIST page.

The measuring is split from the arithmetic: the page records times (performance.now) and
counts, Python samples the run store, and the pure functions below (longest_gap, longest_stall,
lags, lag_seconds, frames_per_second, visible_fraction) turn the samples into the figures."""
from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DfkdError

REPO = Path(__file__).resolve().parents[2]  # where app.py and pages/ live
CHROMIUM = Path("/usr/bin/chromium")  # Debian's (apt-get install chromium)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SERVER_START_S = 300.0  # patient: a loaded machine may take minutes to import streamlit and torch
PATIENT_MS = 300_000  # page waits in the bench: five minutes on a loaded box

# The validation-RMSE chart's number of points: the longest student curve's (the teacher's line left
# out), read from the points Vega drew (live_curves: its SVG marks carry their data items, each with
# the point's place on its curve, so points the zoom leaves out still count). 'curve' is
# live_curves.CURVE_MARK (not imported: the dashboard imports experiments; a test ties the two).
# An older checkout drew the curve with Plotly: counted from its traces (bench --dashboard --against).
RMSE_POINTS_JS = """() => {
    for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
        const title = chart.querySelector('g.role-title text');
        if (!title || !title.textContent.includes('Validation RMSE')) continue;
        let n = 0;
        for (const path of chart.querySelectorAll('g.curve_marks path, g.dot_marks path')) {
            const item = path.__data__;
            for (const i of (item && item.mark && item.mark.items) || (item ? [item] : []))
                if (i.datum && i.datum.point > n) n = i.datum.point;
        }
        return n;
    }
    const size = {f8: 8, f4: 4, i4: 4, u4: 4, i2: 2, u2: 2, i1: 1, u1: 1};  // an older checkout's Plotly figure (--against)
    const count = x => !x ? 0 : (x.length !== undefined ? x.length : (x.bdata ? atob(x.bdata).length / size[x.dtype] : 0));
    for (const el of document.querySelectorAll('.js-plotly-plot')) {
        const title = el.layout && el.layout.title && el.layout.title.text;
        if (title && title.includes('Validation RMSE') && el.data)  // plotly's theme wraps it in <b>
            return Math.max(0, ...el.data.filter(t => !(t.meta && t.meta.role === 'teacher')).map(t => count(t.x)));
    }
    return 0;
}"""
# The MNIST page's digit grid is drawn: a subplot title 'sampler @ epoch: T(x)=…'.
DIGITS_JS = """() => {
    for (const el of document.querySelectorAll('.js-plotly-plot'))
        if (el.layout && (el.layout.annotations || []).some(a => /: T\\(x\\)=/.test(a.text))) return true;
    return false;
}"""
# In the page: every animation frame's time (the longest gap between two is the longest pause
# of the page's main thread) and, every 50 ms, the curve's point count when it changed.
STREAM_RECORDER_JS = """() => {
    const points = %s;
    const r = window.__dfkdStream = {frames: [], changes: [], last: -1, samples: 0, blank: 0};
    const tick = t => { r.frames.push(t); if (!r.stopped) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    r.timer = setInterval(() => {
        const n = points();
        r.samples += 1; if (n === 0) r.blank += 1;  // no curve drawn: the chart was being redrawn (flicker)
        if (n !== r.last) { r.changes.push([performance.now(), n]); r.last = n; }
    }, 50);
}""" % RMSE_POINTS_JS
# In the page, every 50 ms: the playground's first canvas title ('direct — epoch 12') and whether
# the canvases and the curves chart are all on screen with a drawn canvas or svg of some size.
PLAY_RECORDER_JS = """() => {
    const r = window.__dfkdPlay = {samples: []};
    r.timer = setInterval(() => {
        const titles = Array.from(document.querySelectorAll('p strong')).map(e => e.textContent)
            .filter(t => / — epoch \\d+/.test(t));
        const charts = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'));
        const drawn = charts.filter(c => { const d = c.querySelector('canvas, svg');
            if (!d) return false; const b = d.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
        r.samples.push([performance.now(), titles.join(' | '), charts.length >= 3 && drawn.length === charts.length]);
    }, 50);
}"""


class BrowserUnavailable(DfkdError):
    """Chromium or Playwright is missing here (the CLI prints it as one line)."""


# ---------------------------------------------------------------------- server and browser
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, proc: subprocess.Popen, log: Path, timeout: float = SERVER_START_S) -> None:
    """Until streamlit answers /_stcore/health with ok; RuntimeError with the server's log if it
    exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer /_stcore/health within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass(frozen=True)
class StreamlitServer:
    url: str
    port: int
    home: Path


@contextlib.contextmanager
def streamlit_server(home: Path, *args: str, env: dict | None = None, app_dir: Path = REPO):
    """`streamlit run app.py` (in `app_dir`) on a free port with DFKD_HOME=home; every run it
    started is asked to stop and the server is ended (SIGTERM, then SIGKILL) on the way out."""
    from ..runs.runstore import RunStore

    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "streamlit.log"
    full_env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "DFKD_HOME": str(home), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), *args],
                                cwd=app_dir, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", proc, log)
        yield StreamlitServer(f"http://127.0.0.1:{port}", port, home)
    finally:
        with contextlib.suppress(Exception):
            store = RunStore(home)
            for run_id in store.list_runs()["id"]:  # no worker outlives the server
                if store.get_run(run_id).active:
                    store.request_stop(run_id)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def launch_chromium(playwright):
    """THE launch of Debian's Chromium (never a browser playwright downloads)."""
    if not CHROMIUM.exists():
        raise BrowserUnavailable(f"{CHROMIUM} is absent (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def new_page(browser, timeout_ms: int = PATIENT_MS, **options):
    """A page (in its own context) whose waits default to `timeout_ms`; closing it closes the context."""
    context = browser.new_context(viewport=options.pop("viewport", {"width": 1400, "height": 1600}), **options)
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    page.on("close", lambda _: context.close())
    return page


# ---------------------------------------------------------------------- the arithmetic
def longest_gap(times: Sequence[float]) -> float:
    """The longest interval between consecutive times (0 for fewer than two)."""
    ordered = sorted(times)
    return max((b - a for a, b in zip(ordered, ordered[1:])), default=0.0)


def shown_at(changes: Sequence[tuple[float, int]], t: float) -> int:
    """The page's point count at time t: the last change at or before t (0 before the first)."""
    count = 0
    for when, n in changes:
        if when > t:
            break
        count = n
    return count


def longest_stall(changes: Sequence[tuple[float, int]], store: Sequence[tuple[float, int]], end: float) -> float:
    """The longest time the page's curve stood still while the store held points it did not show:
    between two changes of the curve (the last one and `end`), from the first store sample ahead
    of what the page showed until the next change. A curve that moves every second while it
    trails by a few epochs stalls ≤ 1 s (its trailing is `lags`).
    `changes`: (time, points shown) when the curve changed; `store`: (time, points stored)."""
    ordered = [(float("-inf"), 0), *sorted(changes)]
    samples = sorted(store)
    longest = 0.0
    for i, (when, shown) in enumerate(ordered):
        until = ordered[i + 1][0] if i + 1 < len(ordered) else end
        ahead = next((t for t, stored in samples if when <= t < until and stored > shown), None)
        if ahead is not None:
            longest = max(longest, until - ahead)
    return longest


def lags(changes: Sequence[tuple[float, int]], store: Sequence[tuple[float, int]]) -> list[int]:
    """Points stored minus points shown, at each store sample (never below 0: a sample taken just
    before a flush can trail the page)."""
    ordered = sorted(changes)
    return [max(0, stored - shown_at(ordered, t)) for t, stored in store]


def lag_seconds(changes: Sequence[tuple[float, int]], store: Sequence[tuple[float, int]], end: float) -> list[float]:
    """At each store sample (time, points stored): how long until the page showed that many points
    (0 when it already did at the sample; until `end` when it never did). The store is sampled every
    0.2 s, so a figure can read up to 0.2 s short of when the store first held the points."""
    ordered = sorted(changes)
    out = []
    for t, stored in store:
        if shown_at(ordered, t) >= stored:
            out.append(0.0)
            continue
        caught = next((when for when, shown in ordered if when >= t and shown >= stored), end)
        out.append(max(0.0, caught - t))
    return out


def frames_per_second(samples: Sequence[tuple[float, str, bool]]) -> float:
    """Distinct frames per second: how often the frame label (the canvases' titles) changed
    between the first change and the last, in samples (time in ms, label, visible)."""
    changes = [t for (t, label, _), (_, before, _) in zip(samples[1:], samples) if label != before and label]
    if len(changes) < 2:
        return 0.0
    return (len(changes) - 1) / ((changes[-1] - changes[0]) / 1000.0)


def visible_fraction(samples: Sequence[tuple[float, str, bool]]) -> float:
    """The fraction of samples in which every chart was on screen (1.0: no flicker seen)."""
    return sum(1 for _, _, visible in samples if visible) / len(samples) if samples else 0.0


# (figure, its key in a result, unit, issue 23's target), in the order the tables print them
FIGURES = [
    ("Start → first curve point (median)", "first_point_median_s", "s", "≤ 2 s"),
    ("longest pause between animation frames", "stream_longest_frame_gap_s", "s", "≤ 1 s"),
    ("longest the curve stood still behind the store", "stream_longest_stall_s", "s", "≤ 1 s"),
    ("curve's lag behind the store (median / max)", "stream_lag_s", "s", "≤ 1 s"),
    ("  the same in points (epochs)", "stream_lag_points", "points", "≤ 1 s of epochs"),
    ("  seconds the run streamed while measured", "stream_active_s", "s", "the window or the run"),
    ("validation-RMSE chart on screen while streaming", "stream_chart_visible_fraction", "of samples", "1.0 (no flicker)"),
    ("playground frames per second", "playground_fps", "/s", "≥ 4"),
    ("playground charts on screen", "playground_visible_fraction", "of samples", "1.0 (no flicker)"),
    ("Start → first synthetic digits (digits)", "first_digits_digits_s", "s", "≤ 10 s"),
    ("Start → first synthetic digits (mnist)", "first_digits_mnist_s", "s", "≤ 10 s"),
]


def _shown(value) -> str:
    if value is None:
        return "—"
    return (f"{value[0]} / {value[1]}" if isinstance(value, (list, tuple))
            else f"{value:.2f}" if isinstance(value, float) else str(value))


def table(result: dict) -> str:
    """The bench's figures as lines of text, each with its issue 23 target."""
    return "\n".join(f"{name:<48} {_shown(result[key]):>12} {unit:<10} (target {target})"
                     for name, key, unit, target in FIGURES if result.get(key) is not None)


def compare_table(before: dict, after: dict, before_name: str, after_name: str) -> str:
    """Two checkouts' figures side by side (bench --dashboard --against), measured in one run."""
    lines = [f"{'':<48} {'against':>14} {'this':>14}", f"{'':<48} {'(' + Path(before_name).name + ')':>14} "
             f"{'(' + Path(after_name).name + ')':>14}"]
    for name, key, unit, target in FIGURES:
        if before.get(key) is None and after.get(key) is None:
            continue
        lines.append(f"{name:<48} {_shown(before.get(key)):>14} {_shown(after.get(key)):>14} {unit:<10} (target {target})")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the measurements
def _newest_run_id(store, after: set) -> str | None:
    ids = [i for i in store.list_runs()["id"] if i not in after]
    return ids[0] if ids else None


def _stored_points(store, run_id: str) -> int:
    """The validation-RMSE points the store holds for the run's longest curve."""
    metrics = store.metrics(run_id)
    if metrics.empty:
        return 0
    return int(metrics.dropna(subset=["val_rmse"]).groupby("member").size().max() or 0)


def _stop(page, store, run_id: str, button: str, timeout: float = 120.0) -> None:
    """Stop the run through the page's Stop button, wait until the store says it ended, and
    delete it: the next Start is measured on a page that shows no earlier run's curve or digits."""
    from ..runs import jobs

    with contextlib.suppress(Exception):
        page.locator(f".st-key-{button} button").click(timeout=10_000)
    deadline = time.monotonic() + timeout
    while store.get_run(run_id).active and time.monotonic() < deadline:
        time.sleep(0.2)
    if store.get_run(run_id).active:  # the page did not get the click through: stop it directly
        jobs.stop(run_id, store, wait=True)
    with contextlib.suppress(Exception):
        store.delete_run(run_id, force=True)


def distill_stream(page, url: str, store, repeats: int, stream_s: float, say: Callable[[str], None],
                   ready: Callable[[], bool] = lambda: True) -> dict:
    """On the Distill page with its defaults, `repeats` times: Start, the seconds until the curve's
    first point, Stop. The first run also streams `stream_s` seconds while the page records its
    animation frames and curve changes and Python samples the store (see the module docstring)."""
    firsts: list[float] = []
    out: dict = {}
    for attempt in range(repeats):
        page.goto(url)
        start = page.locator(".st-key-distill_start button")
        start.wait_for()
        page.wait_for_function("() => !document.querySelector('.st-key-distill_start button').disabled")
        ready()
        seen = set(store.list_runs()["id"])
        began = time.perf_counter()
        start.click()
        page.wait_for_function(f"() => ({RMSE_POINTS_JS})() > 0", polling=50)
        firsts.append(time.perf_counter() - began)
        say(f"dashboard: Start → first curve point, try {attempt + 1}: {firsts[-1]:.2f} s")
        run_id = _newest_run_id(store, seen)  # stored before the page could draw its point
        if run_id is None:
            raise RuntimeError("the page drew a curve, but the store holds no new run")
        for line in worker_timings(store, run_id):
            say(f"dashboard:   worker: {line}")
        if attempt == 0:
            out.update(_record_stream(page, store, run_id, stream_s))
            say(f"dashboard: while streaming {stream_s:.0f} s: longest frame gap {out['stream_longest_frame_gap_s']:.2f} s, "
                f"longest stall behind the store {out['stream_longest_stall_s']:.2f} s, lag median/max "
                f"{out['stream_lag_s'][0]:.2f}/{out['stream_lag_s'][1]:.2f} s = {out['stream_lag_points'][0]}/"
                f"{out['stream_lag_points'][1]} points ({out['stream_epochs_per_s']:.1f} epochs per second over the "
                f"{out['stream_active_s']:.1f} s the run streamed)")
        _stop(page, store, run_id, "distill_stop")
    out.update(first_point_s=firsts, first_point_median_s=statistics.median(firsts))
    return out


def _record_stream(page, store, run_id: str, seconds: float) -> dict:
    page.evaluate(STREAM_RECORDER_JS)
    # the page's clock (performance.now, ms) and Python's, matched at the start
    offset = page.evaluate("performance.now()") / 1000.0 - time.perf_counter()
    samples: list[tuple[float, int]] = []  # while the run streams: a finished run's curve is not "behind"
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        when, active = time.perf_counter() + offset, store.get_run(run_id).active
        samples.append((when, _stored_points(store, run_id)))
        if not active:
            break
        time.sleep(0.2)
    recorded = page.evaluate("() => { const r = window.__dfkdStream; r.stopped = true; clearInterval(r.timer); "
                             "return {frames: r.frames, changes: r.changes, samples: r.samples, blank: r.blank}; }")
    frames = [t / 1000.0 for t in recorded["frames"]]
    changes = [(t / 1000.0, int(n)) for t, n in recorded["changes"]]
    finish = time.perf_counter() + offset
    behind = lags(changes, samples)
    waited = lag_seconds(changes, samples, finish)
    active_s = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    rate = (samples[-1][1] - samples[0][1]) / active_s if active_s > 0 else 0.0
    return {"stream_seconds": seconds, "stream_active_s": round(active_s, 2),
            "stream_chart_visible_fraction": round(1.0 - recorded["blank"] / max(recorded["samples"], 1), 3),
            "stream_longest_frame_gap_s": longest_gap(frames),
            "stream_longest_stall_s": longest_stall(changes, samples, finish),
            "stream_lag_points": [int(statistics.median(behind)) if behind else 0, max(behind, default=0)],
            "stream_epochs_per_s": rate,
            "stream_lag_s": [round(statistics.median(waited), 2) if waited else 0.0, round(max(waited, default=0.0), 2)]}


def playground_play(page, url: str, seconds: float, say: Callable[[str], None]) -> dict:
    """On the Playground with its defaults: Play for `seconds` while the page samples the canvases'
    titles and whether every chart is on screen; then Pause."""
    page.goto(f"{url}/playground")
    page.get_by_role("button", name="Play").wait_for()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stVegaLiteChart]').length >= 3")
    page.get_by_role("button", name="Play").click()
    page.get_by_role("button", name="Pause").wait_for()
    page.evaluate(PLAY_RECORDER_JS)
    time.sleep(seconds)
    samples = page.evaluate("() => { const r = window.__dfkdPlay; clearInterval(r.timer); return r.samples; }")
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Pause").click(timeout=10_000)
    samples = [(float(t), str(label), bool(visible)) for t, label, visible in samples]
    out = {"playground_seconds": seconds, "playground_fps": frames_per_second(samples),
           "playground_visible_fraction": visible_fraction(samples)}
    say(f"dashboard: playground Play {seconds:.0f} s: {out['playground_fps']:.1f} frames per second, charts on screen "
        f"in {out['playground_visible_fraction']:.0%} of samples")
    return out


def worker_timings(store, run_id: str) -> list[str]:
    """The '[timing]' lines of the run's worker log (runs.jobs.FirstEvents): where the seconds went."""
    try:
        text = (store.run_dir(run_id) / "worker.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.split("] ", 1)[1] for line in text.splitlines() if line.startswith("[timing]")]


def mnist_first_digits(page, url: str, store, dataset: str, say: Callable[[str], None],
                       ready: Callable[[], bool] = lambda: True) -> tuple[float, list[str]]:
    """On the MNIST page: Start a run on `dataset`, the seconds until the first labelled digits,
    Stop; and the worker's timing lines of that run."""
    page.goto(f"{url}/mnist")
    page.locator(".st-key-mnist_dataset").get_by_text(dataset, exact=True).click()
    start = page.locator(".st-key-mnist_start button")
    start.wait_for()
    ready()
    seen = set(store.list_runs()["id"])
    began = time.perf_counter()
    start.click()
    page.wait_for_function(DIGITS_JS, polling=100)
    seconds = time.perf_counter() - began
    say(f"dashboard: Start → first synthetic digits on {dataset}: {seconds:.2f} s")
    run_id = _newest_run_id(store, seen)
    if run_id is None:
        return seconds, []
    timings = worker_timings(store, run_id)
    for line in timings:
        say(f"dashboard:   worker: {line}")
    _stop(page, store, run_id, "mnist_stop")
    return seconds, timings


def dashboard_bench(repeats: int = 3, stream_s: float = 20.0, play_s: float = 10.0, digits: Sequence[str] = ("digits",),
                    say: Callable[[str], None] | None = None, app_dir: Path = REPO) -> dict:
    """`bench --dashboard`: a Streamlit server and Chromium on a scratch DFKD_HOME (the user's
    runs are not touched), the measurements above in turn; returns every figure (see `table`)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable("playwright is not installed (pip install playwright; the browser is "
                                 "Debian's chromium, never `playwright install`)") from exc
    from ..data import dataset_catalog
    from ..runs.runstore import RunStore

    say = say or (lambda text: None)
    if not CHROMIUM.exists():
        raise BrowserUnavailable(f"{CHROMIUM} is absent (apt-get install chromium)")
    result: dict = {"repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="dfkd-dashboard-bench-") as scratch:
        home = Path(scratch) / "home"
        with streamlit_server(home, "--server.address", "127.0.0.1", app_dir=app_dir) as server, sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                store = RunStore(home)
                context = browser.new_context(viewport={"width": 1400, "height": 2000})
                context.set_default_timeout(PATIENT_MS)
                page = context.new_page()
                ready = lambda: wait_warm(home)  # noqa: E731 (before each Start)
                result.update(distill_stream(page, server.url, store, repeats, stream_s, say, ready))
                result.update(playground_play(page, server.url, play_s, say))
                have = {row["name"] for row in dataset_catalog() if row["available"]} if digits else set()
                for dataset in digits:
                    if dataset in have:
                        seconds, timings = mnist_first_digits(page, server.url, store, dataset, say, ready)
                        result[f"first_digits_{dataset}_s"], result[f"first_digits_{dataset}_worker"] = seconds, timings
                context.close()
            finally:
                browser.close()
    return result


def _warm_workers(home: Path) -> list[int]:
    """Pids of `worker --warm` processes serving the store at `home` (read from /proc)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"--warm" not in (proc / "cmdline").read_bytes() or b"dfkd_core" not in (proc / "cmdline").read_bytes():
                continue
            env = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
            if b"DFKD_HOME" in env and Path(os.fsdecode(env[b"DFKD_HOME"])).resolve() == home.resolve():
                pids.append(int(proc.name))
        except OSError:  # gone, or not ours
            continue
    return pids


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_warm(home: Path, timeout: float = 120.0, quiet_s: float = 1.0) -> bool:
    """Until the server's warm worker has finished importing (its CPU time stands still for
    `quiet_s`: it waits on its pipe for the next Start), so that every Start measured meets a warm
    worker as a user's does (`bench --start-latency` measures a cold one); False after `timeout`
    or at once where there is no /proc to tell."""
    if not Path("/proc/self/stat").exists():
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for pid in _warm_workers(home):
                before = _cpu_ticks(pid)
                time.sleep(quiet_s)
                if _cpu_ticks(pid) == before:
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False

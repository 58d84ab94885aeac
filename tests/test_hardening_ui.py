"""The dashboard's share of the hardening battery (issue 12): safe server defaults, user text
never rendered as markup, and the browser defects (offline figure export, nothing fetched from
the internet, Stop after a reload, deleted runs, opened runs, every bad value of a link, every
chosen sampler visible); the AppTest cases first, then one real server and Chromium."""
from __future__ import annotations

import base64
import html
import os
import re
import socket
import tomllib
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, new_page, shared_data_available, streamlit_server
from test_app_pages import errors, shown, start_app

from dfkd_core import dashboard
from dfkd_core.dashboard import figures
from dfkd_core.config import DistillConfig
from dfkd_core.runs.runstore import RunStore

REPO = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
# Where GFM (remark-gfm's autolink literal) turns bare text into a link, after decoding references.
AUTOLINK = re.compile(r"(https?://|www(?=\.))|[-.\w+]+@[-\w]+(\.[-\w]+)+", re.IGNORECASE)
PAYLOADS = {  # what a link can carry, and the parameter that carries it
    "image": ("dataset", "![x](http://example.org/x.png)"),
    "link": ("samplers", "[log in here](http://example.org/login)"),
    "html": ("student_loss", "<img src=x onerror=alert(1)>"),
    "directive-and-formula": ("device", ":red[danger] :material/home: $x^2$"),
    "emphasis": ("epochs", "**12**"),
    "bare-url": ("selection", "www.example.org/x"),
    "e-mail": ("seeds", "admin@example.org"),
    "run-id": ("run", "[x](https://example.org)"),
}


def assert_inert(markdown: str) -> None:
    """No markdown can form: outside numeric character references no ASCII punctuation is left,
    and the decoded text holds nothing GFM would make a link of."""
    bare = re.sub(r"&#\d+;", "", markdown.replace("  \n", "\n"))
    assert not re.search(r"[!-/:-@\[-`{-~]", bare), markdown
    assert not AUTOLINK.search(html.unescape(markdown)), markdown


def messages(at) -> list[str]:
    return [m.value for kind in ("error", "warning", "info", "success") for m in getattr(at, kind)]


# ------------------------------------------------------------------ safe defaults
def test_config_binds_loopback_hides_error_details_and_keeps_xsrf():
    from streamlit.config import ShowErrorDetailsConfigOptions

    server, client = CONFIG["server"], CONFIG["client"]
    assert server["address"] == "127.0.0.1"
    assert set(server["allowedHosts"]) == {"localhost", "127.0.0.1"}
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert client["showErrorDetails"] == ShowErrorDetailsConfigOptions.NONE.value
    assert client["toolbarMode"] == "minimal"
    assert CONFIG["browser"]["gatherUsageStats"] is False


def test_upload_limit_is_set_below_streamlits_default():
    assert 0 < CONFIG["server"]["maxUploadSize"] <= 100  # MB; Streamlit's default is 200


# ------------------------------------------------------------------ user text is never markup
@pytest.mark.parametrize("text", [
    "![x](http://example.org/x.png)", "<script>alert(1)</script> &lt;", ":red[a] $b$ *c* _d_ `e` # f",
    "http://a.org www.b.org c@d.org HTTPS://E.ORG", "plain words, 'quoted' and \"double\" — ünïcode",
], ids=["image", "html-and-entity", "directives", "autolinks", "ordinary"])
def test_plain_shows_exactly_the_text_and_nothing_forms(text):
    markdown = dashboard.plain(text)
    assert_inert(markdown)
    assert shown(markdown) == text


def test_plain_keeps_each_line_of_a_message_as_a_line():
    markdown = dashboard.plain("The 'epochs' parameter must be an int.\n    The 'lr' parameter must be a float.")
    assert markdown.count("  \n") == 1
    assert shown(markdown).splitlines() == ["The 'epochs' parameter must be an int.", "The 'lr' parameter must be a float."]


@pytest.mark.parametrize("param, payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_a_link_value_is_shown_as_text_never_as_markup(param, payload):
    at = start_app(query={param: payload})
    quoting = [m for m in messages(at) if payload in shown(m)]
    assert quoting, messages(at)  # the value is reported, as the user typed it ...
    for markdown in quoting:
        assert_inert(markdown)  # ... and nothing in it renders


def test_a_run_title_is_shown_as_text_in_the_status_line():
    store = RunStore()
    run_id = store.create_run(DistillConfig(epochs=3), title="[click](http://example.org) **now**")
    store.finish(run_id, "cancelled")
    at = start_app(query={"run": run_id})
    line = next(m.value for m in at.markdown if "status" in m.value and "cancelled" in m.value)
    assert "click" in line and "](" not in line and "**now**" not in line
    assert not AUTOLINK.search(html.unescape(line))


# ------------------------------------------------------------------ browser defects, in AppTest
def test_the_html_figure_export_carries_plotly_js_and_fetches_nothing():
    page = dashboard.figure_html(figures.alpha_preview({"decreasing": np.linspace(1, 0, 10)})).decode()
    assert not re.search(r"<script[^>]+src=", page)  # "cdn" mode loads plotly.min.js from cdn.plot.ly
    assert len(page) > 1_000_000 and "Plotly.newPlot" in page  # the library itself is inline


def active_run(cfg: DistillConfig) -> str:
    """A stored 'running' run whose worker is this (live) process, as a reload finds it."""
    store = RunStore()
    run_id = store.create_run(cfg)
    store.set_worker(run_id, os.getpid())
    store.set_status(run_id, "running")
    return run_id


@pytest.mark.parametrize("page, prefix, cfg", [
    ("pages/mnist.py", "mnist", dashboard.mnist_config("digits", epochs=5)),
    ("pages/blackbox.py", "bb", dashboard.blackbox_config("protein", epochs=5)),
], ids=["mnist", "blackbox"])
def test_stop_stops_the_run_in_view_after_a_reload(page, prefix, cfg):
    run_id = active_run(cfg)
    at = start_app(page)  # a fresh session: this page never started the run
    assert at.selectbox(key=f"{prefix}_view").value == run_id
    stop = at.button(key=f"{prefix}_stop")
    assert not stop.disabled
    stop.click().run()
    assert not at.exception and errors(at) == []
    assert RunStore().get_run(run_id).stop_requested


def test_stop_is_greyed_out_when_the_run_in_view_has_ended():
    store = RunStore()
    run_id = store.create_run(dashboard.mnist_config("digits", epochs=5))
    store.finish(run_id, "cancelled")
    assert start_app("pages/mnist.py").button(key="mnist_stop").disabled


def test_a_deleted_run_gives_way_to_the_newest_in_the_case_study_picker():
    store = RunStore()
    older, newer = (store.create_run(dashboard.mnist_config("digits", epochs=e)) for e in (3, 4))
    for run_id in (older, newer):
        store.finish(run_id, "cancelled")
    at = start_app("pages/mnist.py")
    at.selectbox(key="mnist_view").set_value(older).run()
    store.delete_run(older)
    at.run()
    assert not at.exception
    assert at.selectbox(key="mnist_view").value == newer


def test_deleting_on_the_runs_page_leaves_the_deleted_run_unselected():
    store = RunStore()
    keep, drop = (store.create_run(DistillConfig(epochs=e)) for e in (3, 4))
    for run_id in (keep, drop):
        store.finish(run_id, "cancelled")
    at = start_app("pages/runs.py")
    at.multiselect(key="runs_selected").set_value([drop]).run()
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception
    assert at.multiselect(key="runs_selected").value == []
    assert list(store.list_runs()["id"]) == [keep]


def test_opening_a_run_fills_the_form_with_its_settings_so_start_repeats_it():
    cfg = DistillConfig(epochs=7, samplers=("gaussian", "lhs"), alphas=("0",), seeds=(3, 4), lr=5e-3, student_hidden=12)
    store = RunStore()
    run_id = store.create_run(cfg)
    store.finish(run_id, "cancelled")
    at = start_app()
    at.number_input(key="cfg_epochs").set_value(99).run()  # the form held something else
    at.query_params.clear()
    at.query_params["run"] = run_id  # what "Open … on the Distill page" links to
    at.run()
    assert not at.exception and errors(at) == []
    form = {name: at.session_state[f"cfg_{name}"] for name in dashboard.widget_values(cfg)}
    assert dashboard.config_from_widgets(form) == cfg
    assert at.session_state["run_id"] == run_id


def test_a_link_with_several_bad_values_reports_each_of_them():
    at = start_app(query={"epochs": "abc", "lr": "x", "student_loss": "huber"})
    shown_errors = "\n".join(errors(at))
    for name in ("epochs", "lr", "student_loss"):
        assert f"'{name}' parameter" in shown_errors, shown_errors


def test_every_line_of_a_links_errors_is_shown(monkeypatch):
    lines = ["The 'epochs' parameter must be of type int. Got 'abc' instead.",
             "The 'lr' parameter must be of type float. Got 'x' instead."]
    monkeypatch.setattr(dashboard, "config_from_query", lambda params: (DistillConfig(), "\n".join(lines)))
    at = start_app(query={"epochs": "abc", "lr": "x"})
    assert any(shown(e).splitlines() == lines for e in (m.value for m in at.error)), errors(at)


# ------------------------------------------------------------------ one real server and Chromium
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` with only the project's config (no --server.address), its own DFKD_HOME."""
    home = tmp_path_factory.mktemp("hardening-home")
    env = {"DFKD_TEACHER_DIR": str(home / "teachers")}
    if shared_data_available():
        env["DFKD_DATA_DIR"] = str(SHARED_DATA)
    with streamlit_server(home, env=env) as running:
        yield running.port, home


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (/proc/net/tcp and tcp6, state 0A)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_server_listens_on_loopback_only(server):
    port, _ = server
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::


def websocket_answer(port: int, host: str, origin: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: streamlit\r\n"
                   f"Origin: {origin}\r\n\r\n").encode())
        return s.recv(200).decode(errors="replace").split("\r\n")[0]


@pytest.mark.parametrize("host, origin, status", [
    ("127.0.0.1", "http://127.0.0.1", "101"),
    ("rebound.example", "http://127.0.0.1", "403"),
    ("127.0.0.1", "http://rebound.example", "403"),
], ids=["loopback", "dns-rebinding-host", "foreign-origin"])
def test_only_local_pages_open_a_session(server, host, origin, status):
    port, _ = server
    assert websocket_answer(port, f"{host}:{port}", f"{origin}:{port}").split()[1] == status


def test_an_upload_without_the_xsrf_token_is_refused(server):
    import urllib.error
    import urllib.request

    port, _ = server
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_stcore/upload_file/session/file", data=b"x" * 10,
                                     method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def open_page(browser, port: int, path: str):
    """A new page at `path`, loaded (the sidebar drawn) and settled; `page.outside` lists every
    request it made to a host other than this server."""
    page = new_page(browser)
    page.outside = []
    page.on("request", lambda r: page.outside.append(r.url)
            if urllib.parse.urlparse(r.url).hostname not in ("127.0.0.1", "localhost", None) else None)
    page.goto(f"http://127.0.0.1:{port}{path}")
    page.get_by_text("Device:").wait_for()
    page.wait_for_load_state("networkidle")
    return page


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/runs", "/mnist", "/blackbox", "/paper", "/datasets"])
def test_no_page_fetches_anything_from_the_internet(server, browser, path):
    page = open_page(browser, server[0], path)
    try:
        assert page.outside == []
        assert "data:" in page.evaluate("() => document.querySelector('link[rel*=icon]').href")  # the emoji favicon
    finally:
        page.close()


@pytest.mark.browser
def test_markup_in_a_link_renders_as_text_in_chromium(server, browser):
    image, link = PAYLOADS["image"][1], PAYLOADS["link"][1]
    page = open_page(browser, server[0], "/?" + urllib.parse.urlencode({"dataset": image, "samplers": link}))
    try:
        text = " ".join(page.locator('[data-testid="stAlertContentError"]').all_inner_texts()).replace(dashboard.WORD_JOINER, "")
        assert image in text and link in text
        assert page.evaluate("() => document.querySelectorAll('[data-testid=stMain] a[href*=example], img[src*=example]').length") == 0
        assert page.outside == []
    finally:
        page.close()


@pytest.mark.browser
def test_every_chosen_sampler_shows_in_the_form(server, browser):
    names = dashboard.sampler_names()
    page = open_page(browser, server[0], "/?samplers=" + ",".join(names))
    try:
        widget = page.locator(".st-key-cfg_samplers")
        box = widget.bounding_box()
        for name in names:
            chip = widget.get_by_text(name, exact=True).bounding_box()
            assert chip and box["x"] <= chip["x"] and chip["x"] + chip["width"] <= box["x"] + box["width"] + 1, name
    finally:
        page.close()


@pytest.mark.browser
def test_streamlits_script_stop_is_hidden_so_only_our_stop_stops_runs(server, browser):
    page = open_page(browser, server[0], "/")
    try:
        page.wait_for_function("""() => {  // the rule arrives with the app's first script run, after the frame
            const widget = document.createElement('div');
            widget.setAttribute('data-testid', 'stStatusWidget');
            const stop = widget.appendChild(document.createElement('button'));
            document.body.appendChild(widget);
            const display = getComputedStyle(stop).display;
            widget.remove();
            return display === 'none';
        }""", timeout=60_000)
    finally:
        page.close()


@pytest.mark.browser
def test_a_deleted_run_leaves_the_runs_pages_selection_in_chromium(server, browser, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setenv("DFKD_HOME", str(server[1]))
    store = RunStore()
    keep, drop = (store.create_run(DistillConfig(epochs=e), title=f"hardening {e}") for e in (3, 4))
    for run_id in (keep, drop):
        store.finish(run_id, "cancelled")
    page = open_page(browser, server[0], "/runs")
    try:
        selection = page.locator(".st-key-runs_selected")
        selection.locator("input").fill(drop[-4:])
        # click the run's own option (Enter picks whichever option is highlighted: under load the list
        # had not filtered yet, and both runs were selected and deleted)
        page.get_by_role("option", name=re.compile(drop)).click()
        page.keyboard.press("Escape")
        expect(selection).to_contain_text(drop)
        expect(selection).not_to_contain_text(keep)
        confirm, delete = page.locator(".st-key-runs_confirm_delete"), page.locator(".st-key-runs_delete button")
        confirm.wait_for()
        box = confirm.locator("input")
        for _ in range(5):  # a click that lands while a rerun redraws the form can be lost: tick until it holds
            if box.is_checked():
                break
            confirm.locator("label").click()
            try:
                expect(box).to_be_checked(timeout=15_000)
            except AssertionError:
                continue
        expect(delete).to_be_enabled()
        delete.click()
        expect(page.get_by_text(re.compile("Deleted 1 run"))).to_be_visible()
        assert not store.has_run(drop) and store.has_run(keep)
        expect(selection).not_to_contain_text(drop)  # the chip went with the run (it stayed when the key was dropped)
    finally:
        page.close()

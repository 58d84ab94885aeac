"""DFKD Lab's Streamlit entry point: the page router and the frame around every page
(sidebar with the device, the data directory and the datasets available here).

Run with `streamlit run app.py`; `run()` is what a test starts."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import figures
from dfkd_core.dashboard import plain
from dfkd_core.device import describe_device
from dfkd_core.errors import DfkdError
from dfkd_core.paths import data_dir, home_dir

PAGE_DIR = Path(__file__).resolve().parent / "pages"  # absolute: a page script run on its own routes too
PAGES = [
    st.Page(PAGE_DIR / "distill.py", title="Distill", icon=":material/science:", default=True),
    st.Page(PAGE_DIR / "runs.py", title="Runs", icon=":material/history:"),
    st.Page(PAGE_DIR / "mnist.py", title="MNIST digits", icon=":material/image:"),
    st.Page(PAGE_DIR / "playground.py", title="Sampler playground", icon=":material/scatter_plot:"),
    st.Page(PAGE_DIR / "blackbox.py", title="Black-box teacher", icon=":material/deployed_code:"),
    st.Page(PAGE_DIR / "paper.py", title="Paper tables", icon=":material/table_chart:"),
    st.Page(PAGE_DIR / "datasets.py", title="Datasets", icon=":material/table_view:"),
]


@st.cache_resource(show_spinner=False)
def recover_once() -> list[str]:
    """Once per server: runs whose worker died (restart, crash) become 'interrupted'; a warm
    worker and the queue's dispatcher start."""
    try:
        recovered = dashboard.recover()
        dashboard.keep_warm()  # a worker with torch imported waits for the next Start
        return recovered
    except DfkdError as exc:
        return [f"error: {exc}"]


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    return describe_device()


def sidebar() -> None:
    with st.sidebar:
        st.markdown("### DFKD Lab")
        st.caption("Data-free knowledge distillation of regression networks (Zhou & Chiam, 2023)")
        st.markdown(f"**Device:** {plain(device_label())}")
        st.markdown(f"**Data directory:** {plain(data_dir())}")
        st.markdown(f"**Run store:** {plain(home_dir())}")
        try:
            available = dashboard.available_datasets()
        except DfkdError as exc:
            st.error(plain(exc))
            available = []
        st.markdown("**Datasets available:** " + plain(", ".join(available) or "none"))


def hide_script_stop() -> None:
    """Hide the Stop in Streamlit's status widget (top right, while a script runs): it ends the
    page's script, not a training worker, so it looked like it stopped a run and did not. The
    pages' own Stop buttons stop runs; client.toolbarMode = "minimal" hides the developer menu."""
    st.html('<style>[data-testid="stStatusWidget"] button {display: none;}</style>')


def ensure_routed() -> None:
    """Pages call this first. Streamlit runs a page script on its own (its legacy `pages/`
    folder mode) when a fresh server's first visitor opens a deep link such as /runs, until
    some run calls st.navigation; route such a run through run() so the frame and the page
    list are ours, and stop the bare run."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        run()
        st.stop()


def start_stop_controls(prefix: str, make_config, view_id: str | None) -> None:
    """Start/Stop buttons of a case-study page (keys `<prefix>_start`, `<prefix>_stop`): Start
    submits make_config() and shows the new run (`<prefix>_run`, `<prefix>_view`); Stop stops
    the run in view (`view_id`, the picker's choice) and is enabled while that run is active,
    also in a fresh session after a reload. Errors appear as st.error, never as a traceback."""
    run_key, view_key, error_key = f"{prefix}_run", f"{prefix}_view", f"{prefix}_error"

    def start() -> None:
        try:
            st.session_state[run_key] = dashboard.submit(make_config())
            st.session_state[view_key] = st.session_state[run_key]
        except DfkdError as exc:
            st.session_state[error_key] = str(exc)

    def stop() -> None:
        try:
            dashboard.stop(view_id)
        except DfkdError as exc:
            st.session_state[error_key] = str(exc)

    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Start", type="primary", icon=":material/play_arrow:", key=f"{prefix}_start", width="stretch", on_click=start)
    b2.button("Stop", icon=":material/stop:", key=f"{prefix}_stop", width="stretch", on_click=stop,
              disabled=not dashboard.run_active(view_id))
    if error_key in st.session_state:
        st.error(plain(st.session_state.pop(error_key)))


def run_picker(runs, key: str, empty: str) -> str | None:
    """Select one of `runs` (the store's DataFrame; shown as 'id · title'); None, with `empty`
    as a hint, when there is none. A choice that is no longer stored (deleted) gives way to
    the newest run."""
    if runs.empty:
        st.session_state.pop(key, None)
        st.info(empty)
        return None
    ids = list(runs["id"])
    if key in st.session_state and st.session_state[key] not in ids:
        st.session_state[key] = ids[0]  # set, not dropped: the browser's select box shows the change too
    titles = dict(zip(runs["id"], runs["title"].fillna("")))
    return st.selectbox("Run", ids, key=key, format_func=lambda i: f"{i} · {titles.get(i, '')}")


def run_header(view) -> None:
    """Status line, progress bar and error of the run in view (a dashboard.RunView)."""
    st.markdown(dashboard.run_status_line(view))
    teacher = dashboard.teacher_bar(view)
    if teacher is not None:
        st.progress(teacher[0], text=teacher[1])
    st.progress(view.progress, text=view.caption)
    if view.run.error:
        st.error(plain(view.run.error))


def results_section(view, teacher_label: str, key: str) -> bool:
    """Test RMSE per sampler (mean ± sd over seeds) beside the teacher's; False while there are no results."""
    if view.results.empty:
        return False
    st.subheader("Test RMSE per sampler")
    table, numbers = dashboard.result_summary(view.results)
    c1, c2 = st.columns([1, 3])
    c1.metric(teacher_label, dashboard.teacher_row(view))
    c2.plotly_chart(figures.result_bars(numbers, view.teacher_rmse), key=key)
    c2.caption(dashboard.CAPTIONS["results"])
    st.dataframe(table, hide_index=True)
    return True


def run() -> None:
    # an emoji favicon is drawn in the browser; a :material/…: one is fetched from fonts.gstatic.com
    st.set_page_config(page_title="DFKD Lab", page_icon="🧪", layout="wide")
    hide_script_stop()
    recovered = recover_once()
    if recovered and recovered[0].startswith("error: "):
        st.error(plain(recovered[0][len("error: "):]))
    page = st.navigation(PAGES)
    sidebar()
    page.run()


if __name__ == "__main__":
    run()

"""DFKD Lab's Streamlit entry point: the page router and the frame around every page
(sidebar with the device, the data directory and the datasets available here). The pages'
shared widgets live in dfkd_core/dashboard/ui.py: no page imports this file.

Run with `streamlit run app.py`; `run()` is what a test starts."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import plain
from dfkd_core.device import describe_run_device
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
    try:
        return describe_run_device()  # the threads a run uses (DFKD_THREADS), not this server's torch count
    except DfkdError as exc:
        return str(exc)


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


def run() -> None:
    # an emoji favicon is drawn in the browser; a :material/…: one is fetched from fonts.gstatic.com
    st.set_page_config(page_title="DFKD Lab", page_icon="🧪", layout="wide")
    hide_script_stop()
    dashboard.note_server_address(st.get_option("server.address"))  # exposed beyond loopback: no HTTP teacher host by default
    recovered = recover_once()
    if recovered and recovered[0].startswith("error: "):
        st.error(plain(recovered[0][len("error: "):]))
    page = st.navigation(PAGES)
    sidebar()
    page.run()


if __name__ == "__main__":
    run()

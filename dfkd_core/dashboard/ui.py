"""The Streamlit widgets several pages share — routing a bare page run through the app, the
case-study pages' Start/Stop buttons and run picker, a run's header and its results section —
so that no page imports the entry point. The one module of dfkd_core that imports Streamlit."""
from __future__ import annotations

import runpy

import streamlit as st

from . import figures
from .. import dashboard


def ensure_routed() -> None:
    """Pages call this first. Streamlit runs a page script on its own (its legacy `pages/`
    folder mode) when a fresh server's first visitor opens a deep link such as /runs, until
    some run calls st.navigation; route such a run through the app's entry script (the
    server's main script: app.py, whose run() draws the frame and the page list), and stop
    the bare run."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    if PagesManager.uses_pages_directory:
        ctx = get_script_run_ctx()
        if ctx is not None:
            runpy.run_path(ctx.main_script_path, run_name="__main__")
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
        except dashboard.DfkdError as exc:
            st.session_state[error_key] = str(exc)

    def stop() -> None:
        try:
            dashboard.stop(view_id)
        except dashboard.DfkdError as exc:
            st.session_state[error_key] = str(exc)

    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Start", type="primary", icon=":material/play_arrow:", key=f"{prefix}_start", width="stretch", on_click=start)
    b2.button("Stop", icon=":material/stop:", key=f"{prefix}_stop", width="stretch", on_click=stop,
              disabled=not dashboard.run_active(view_id))
    if error_key in st.session_state:
        st.error(dashboard.plain(st.session_state.pop(error_key)))


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
    if view.run.error:  # a stopped or interrupted run kept what it logged: a warning, not an error
        (st.warning if view.status in ("cancelled", "interrupted") else st.error)(dashboard.plain(view.run.error))
    elif view.status == "cancelled":
        st.warning("Run cancelled: everything logged up to the stop is kept.")


def results_section(view, teacher_label: str, key: str) -> bool:
    """Test RMSE per sampler (mean ± sd over seeds, under the run's own selection) beside the
    teacher's; on a data-free run, against the teacher itself. False while there are no results."""
    if view.results.empty:
        return False
    st.subheader("Test RMSE per sampler")
    summary, numbers = dashboard.view_summary(view)
    c1, c2 = st.columns([1, 3])
    if view.data_free:
        c1.metric("Teacher", dashboard.teacher_row(view), help=dashboard.CAPTIONS["teacher_data_free"])
    else:
        c1.metric(teacher_label, dashboard.teacher_row(view))
    c2.plotly_chart(figures.result_bars(numbers, view.teacher_rmse), key=key)
    c2.caption(dashboard.CAPTIONS["results_data_free" if view.data_free else "results"])
    table(summary, hide_index=True)
    st.caption(dashboard.CAPTIONS["selections_data_free" if view.data_free else "selections"])
    return True


CHAR_PX, PAD_PX = 7, 22  # a table cell's width: about this many pixels per character, plus padding
MAX_COLUMN_PX = 300  # a longer value is cut with an ellipsis (hover the cell to read it whole)
FIT_PX = 1000  # wider tables than this scroll sideways on a 1500 px window: the caption says so


def column_widths(frame) -> dict[str, int]:
    """Each column's width in pixels, from its header and its longest value (capped)."""
    widths = {}
    for name in frame.columns:
        longest = max([len(str(name))] + [len(str(v)) for v in frame[name].head(200)])
        widths[str(name)] = min(MAX_COLUMN_PX, CHAR_PX * longest + PAD_PX)
    return widths


def table(frame, *, column_config: dict | None = None, **kwargs) -> None:
    """st.dataframe as wide as the page, each column as wide as its content needs (long text cut,
    whole on hover), the first column pinned; a table wider than the page says that it scrolls
    sideways (the browser's scrollbar only shows on hover)."""
    widths = column_widths(frame)
    config = {name: st.column_config.Column(width=px, pinned=True if i == 0 else None)
              for i, (name, px) in enumerate(widths.items())}
    config.update(column_config or {})
    st.dataframe(frame, width="stretch", column_config=config, **kwargs)
    if sum(widths.values()) > FIT_PX:
        st.caption(f"{len(widths)} columns: scroll the table sideways (Shift + wheel) for the rest.")

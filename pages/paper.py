"""Paper page: the paper's Tables 3-6 as published, our reproduction beside them from the run
store, and starting a reproduction (the `reproduce` command, detached) to watch its runs arrive."""
from __future__ import annotations

import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import ui

ui.ensure_routed()


def tables_section(table: int) -> None:
    st.markdown("**The paper's numbers** (mean ± sd over its runs)")
    ui.table(dashboard.paper_table(table))
    groups = dashboard.stored_reproductions(table)
    if groups.empty:
        st.info(f"No stored runs of Table {table} yet: our reproduction appears beside the paper's numbers once "
                "you start one below.")
        return
    labels = {int(r.epochs): f"{r.epochs} epochs — {r.done}/{r.runs} runs done, {r.seeds} seed(s): {r.datasets}"
              for r in groups.itertuples(index=False)}
    epochs = st.selectbox("Stored reproduction", list(labels), format_func=labels.get, key=f"epochs-{table}")
    cells = dashboard.reproduction_cells(table, epochs)
    if cells.empty:
        st.info("No finished runs in this reproduction yet.")
        return
    st.markdown("**Ours beside the paper's**")
    st.caption(dashboard.VERDICT_HELP)
    paper_tab, free_tab = st.tabs(["Paper's selection (best on validation data)",
                                   "Strictly data-free selection (synthetic points)"])
    for tab, protocol in ((paper_tab, "validation"), (free_tab, "synthetic")):
        with tab:
            ui.table(dashboard.reproduction_table(cells, table, protocol))
            for line in dashboard.paper_claims(cells, table, protocol):
                st.markdown(line)
            st.caption(dashboard.PAIRED_HELP)
            ui.table(dashboard.reproduction_paired(table, epochs, protocol), hide_index=True)


def start_section(table: int) -> None:
    with st.form(f"start-{table}"):
        st.markdown(f"**Start a reproduction of Table {table}**")
        st.caption(dashboard.executor_line())
        quick = st.checkbox("Quick harness check (20 epochs, one seed, two small datasets)", value=False)
        seeds = st.number_input("Seeds", min_value=1, max_value=100, value=dashboard.table_defaults(table)["seeds"], step=1)
        epochs = st.number_input("Epochs (0 = the paper's)", min_value=0, max_value=100_000, value=0, step=100)
        datasets = st.text_input("Datasets (comma-separated; empty = the table's datasets that are present)")
        resume = st.checkbox("Reuse finished runs of the same settings (continue a stopped reproduction)", value=True,
                             help="Runs are seeded: training a stored comparison again would give the same numbers.")
        if st.form_submit_button("Start reproduction", type="primary"):
            names = [d.strip() for d in datasets.split(",") if d.strip()] or None
            pid, log = dashboard.start_reproduction(table, seeds=None if quick else int(seeds), datasets=names,
                                                    epochs=int(epochs) or None, quick=quick, resume=resume)
            st.success(dashboard.plain(f"Started (process {pid}); its log: {log.name}"))


@st.fragment(run_every=2)
def progress_section(table: int) -> None:
    try:
        active, tail = dashboard.active_reproduction(table)
    except dashboard.DfkdError as exc:
        st.error(dashboard.plain(exc))
        return
    if not active.empty:
        st.markdown(f"**Running:** {len(active)} run(s) of Table {table}")
        ui.table(active, hide_index=True)
    if tail:
        st.code(tail, language=None)


def render() -> None:
    st.title("Reproduce the paper")
    table = st.radio("Table", dashboard.PAPER_TABLES, horizontal=True, format_func=lambda n: f"Table {n}")
    try:
        st.caption(dashboard.table_caption(table))
        tables_section(table)
        start_section(table)
    except dashboard.DfkdError as exc:
        st.error(dashboard.plain(exc))
        return
    progress_section(table)


render()

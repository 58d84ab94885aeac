"""Paper page: the paper's Tables 3-6 beside our reproduction, assembled from the run store;
start a reproduction (the `reproduce` command, detached) and watch its runs arrive."""
from __future__ import annotations

import streamlit as st

import app
from dfkd_core.experiments import reproduce
from dfkd_core.experiments.runner import dashboard_executor, executor_label
from dfkd_core.dashboard import plain
from dfkd_core.errors import DfkdError
from dfkd_core.runs.runstore import RunStore

VERDICT_HELP = ("Each cell: ours mean ± sd (paper mean ± sd) and a verdict — 'within' the paper's mean ± 2 sd, "
                "'better' below that band, 'worse' above it.")

PAIRED_HELP = ("Paired over seeds (each seed shares its split and teacher across methods): per dataset the mean of "
               "the per-seed difference a − b with its 95 % t interval and the Wilcoxon signed-rank p; 'a ≤ b' holds "
               "when the whole interval lies below 0, does not hold when it lies above 0, else undecided.")

app.ensure_routed()


def tables_section(store: RunStore, table: int) -> None:
    groups = reproduce.stored_reproductions(store, table)
    if groups.empty:
        st.info(f"No stored runs of Table {table} yet. Start a reproduction below.")
        return
    labels = {int(r.epochs): f"{r.epochs} epochs — {r.done}/{r.runs} runs done, {r.seeds} seed(s): {r.datasets}"
              for r in groups.itertuples(index=False)}
    epochs = st.selectbox("Stored reproduction", list(labels), format_func=labels.get, key=f"epochs-{table}")
    long = reproduce.collect(store, table, epochs=epochs)
    cells = reproduce.summarize(long, table)
    if cells.empty:
        st.info("No finished runs in this reproduction yet.")
        return
    st.caption(VERDICT_HELP)
    paper_tab, free_tab = st.tabs(["Paper's selection (best on validation data)",
                                   "Strictly data-free selection (synthetic points)"])
    for tab, protocol in ((paper_tab, "validation"), (free_tab, "synthetic")):
        with tab:
            st.dataframe(reproduce.display_table(cells, table, protocol), use_container_width=True)
            for claim in reproduce.claims(cells, table, protocol):
                mark = {True: "✅", False: "❌", None: "⏳ not decided yet (cells missing):"}[claim["holds"]]
                st.markdown(f"{mark} **{claim['claim']}** — paper: {claim['paper']}; ours: {claim['ours']}")
            st.caption(PAIRED_HELP)
            st.dataframe(reproduce.paired_verdicts(long, table, protocol), hide_index=True, use_container_width=True)


def start_section(table: int) -> None:
    spec = reproduce.get_table(table)
    with st.form(f"start-{table}"):
        st.markdown(f"**Start a reproduction of Table {table}**")
        st.caption(f"Runs on {executor_label(*dashboard_executor())}.")
        quick = st.checkbox("Quick harness check (20 epochs, one seed, two small datasets)", value=False)
        seeds = st.number_input("Seeds", min_value=1, max_value=100, value=spec.default_seeds, step=1)
        epochs = st.number_input("Epochs (0 = the paper's)", min_value=0, max_value=100_000, value=0, step=100)
        datasets = st.text_input("Datasets (comma-separated; empty = the table's datasets that are present)")
        resume = st.checkbox("Reuse finished runs of the same settings (continue a stopped reproduction)", value=True,
                             help="Runs are seeded: training a stored comparison again would give the same numbers.")
        if st.form_submit_button("Start reproduction", type="primary"):
            names = [d.strip() for d in datasets.split(",") if d.strip()] or None
            pid, log = reproduce.start_reproduction(table, seeds=None if quick else int(seeds), datasets=names,
                                                    epochs=int(epochs) or None, quick=quick, resume=resume)
            st.success(plain(f"Started (process {pid}); its log: {log}"))


@st.fragment(run_every=2)
def progress_section(table: int) -> None:
    try:
        store = RunStore()
        active = reproduce.active_runs(store, table)
        _, tail = reproduce.latest_log()
    except DfkdError as exc:
        st.error(plain(exc))
        return
    if not active.empty:
        st.markdown(f"**Running:** {len(active)} run(s) of Table {table}")
        st.dataframe(active, hide_index=True, use_container_width=True)
    if tail:
        st.code(tail, language=None)


def render() -> None:
    st.title("Reproduce the paper")
    table = st.radio("Table", sorted(reproduce.TABLES), horizontal=True, format_func=lambda n: f"Table {n}")
    try:
        st.caption(reproduce.table_caption(table))
        store = RunStore()
        tables_section(store, table)
        start_section(table)
    except DfkdError as exc:
        st.error(plain(exc))
        return
    progress_section(table)


render()

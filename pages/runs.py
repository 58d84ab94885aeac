"""Runs page: the stored runs with filters; compare several (validation RMSE curves and
final metrics), export metrics, figures and student weights, delete runs."""
import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import figures, sweep_figures, ui

ui.ensure_routed()
st.title("Runs")
if "runs_flash" in st.session_state:
    st.success(dashboard.plain(st.session_state.pop("runs_flash")))

f1, f2 = st.columns(2)
status = f1.selectbox("Status", ["all", *dashboard.STATUSES], key="runs_status")
dataset = f2.selectbox("Dataset", ["all", *dashboard.dataset_choices()[0]], key="runs_dataset")
try:
    table = dashboard.runs_table(None if status == "all" else status, None if dataset == "all" else dataset)
except dashboard.DfkdError as exc:
    st.error(dashboard.plain(exc))
    st.stop()
ui.table(table, hide_index=True)
if table.empty:
    st.info("No stored runs match. Start one on the Distill page.")
    st.stop()

# ---- sweeps (issue 21): a sweep's runs as one table and the metric against each swept field
sweeps = sweep_figures.stored_sweeps()
if not sweeps.empty:
    with st.expander(f"Sweeps ({len(sweeps)})", expanded=True):
        sweep_labels = {r.sweep: f"{r.sweep} · {r.fields} · {r.done}/{r.runs} runs done · {r.dataset}"
                        for r in sweeps.itertuples(index=False)}
        sweep_id = st.selectbox("Sweep", list(sweep_labels), format_func=sweep_labels.get, key="runs_sweep")
        sweep_metric = st.radio("Metric", list(sweep_figures.METRICS), format_func=sweep_figures.METRICS.get,
                                horizontal=True, key="runs_sweep_metric")
        sweep_table, sweep_paired, sweep_fig = sweep_figures.sweep_view(sweep_id, sweep_metric)
        ui.table(sweep_table, hide_index=True)
        st.plotly_chart(sweep_fig, key="runs_sweep_fig")
        if not sweep_paired.empty:
            st.caption("Paired over seeds: the first method against each other one per grid point — mean difference "
                       "with its 95 % t interval and the Wilcoxon signed-rank p.")
            ui.table(sweep_paired, hide_index=True)

titles = dict(zip(table["id"], table["title"].fillna("")))
if any(i not in titles for i in st.session_state.get("runs_selected", [])):  # deleted, or filtered out
    st.session_state["runs_selected"] = [i for i in st.session_state["runs_selected"] if i in titles]
selected = st.multiselect("Runs to compare, export or delete", list(table["id"]), key="runs_selected", wrap=True,
                          format_func=lambda run_id: f"{run_id} · {titles.get(run_id, '')}")
if not selected:
    st.caption("Select one or more runs above.")
    st.stop()

for run_id in selected:
    st.page_link("pages/distill.py", label=f"Open {dashboard.plain(run_id)} on the Distill page", query_params={"run": run_id},
                 icon=":material/open_in_new:")

metrics, teachers = dashboard.compare_metrics(selected)
teacher = next(iter(teachers.values())) if len(set(teachers.values())) == 1 else None
smoothing = st.toggle("Savitzky–Golay smoothing (window 15)", key="runs_smooth")
rmse_fig = figures.validation_rmse(metrics, teacher, smoothing)
st.plotly_chart(rmse_fig, key="runs_rmse")
st.subheader("Final metrics")
final = dashboard.compare_results(selected)
if final.empty:
    st.caption("No finished results among the selected runs yet.")
else:
    ui.table(final, hide_index=True)

st.subheader("Export")
e1, e2, e3 = st.columns(3)
e1.download_button("Metrics (CSV)", dashboard.metrics_csv(selected), file_name="dfkd-metrics.csv", mime="text/csv")
e2.download_button("RMSE figure (HTML)", dashboard.figure_html(rmse_fig), file_name="dfkd-validation-rmse.html",
                   mime="text/html")
with e3:
    weights_run = st.selectbox("Student weights of run", selected, key="weights_run")
    members = dashboard.members_with_weights(weights_run)
    if members:
        member = st.selectbox("Student", members, key="weights_member")
        st.download_button("Student weights (.pt)", dashboard.weights_bytes(weights_run, member),
                           file_name=f"{weights_run}-{member.replace('|', '_')}.pt", mime="application/octet-stream")
    else:
        st.caption("This run has no saved student weights (yet).")

# ---- the student to take away (issue 13): TorchScript + ONNX on raw inputs, state_dict, model.json
with st.expander("Download the student (TorchScript, ONNX, model card)"):
    export_run = st.selectbox("Run", selected, key="export_run")
    export_members = dashboard.members_with_weights(export_run)
    if export_members:
        export_member = st.selectbox("Student", export_members, key="export_member")
        if st.button("Prepare the student", key="export_prepare"):
            try:
                st.session_state["export_zip"] = (export_run, export_member, dashboard.export_zip(export_run, export_member))
            except dashboard.DfkdError as exc:
                st.error(str(exc))
        ready = st.session_state.get("export_zip")
        if ready and ready[:2] == (export_run, export_member):
            st.download_button("Student (.zip)", ready[2], file_name=f"{export_run}-student.zip", mime="application/zip",
                               key="export_download")
        st.code("import torch\nstudent = torch.jit.load(\"student/student.pt\")\n"
                "y = student(torch.tensor(x_raw, dtype=torch.float32))  # x_raw in the teacher's units", language="python")
    else:
        st.caption("This run has no saved student weights (yet).")

st.subheader("Delete")


def delete_selected() -> None:
    """A callback, so the multiselect's new value reaches the browser too (a key dropped in the
    script left the deleted run's chip on screen while the page had nothing selected)."""
    chosen = st.session_state["runs_selected"]
    deleted, errors = dashboard.delete_runs(chosen)
    st.session_state["runs_delete_errors"] = errors
    if deleted:
        st.session_state["runs_selected"] = [i for i in chosen if i not in deleted]
        st.session_state["runs_confirm_delete"] = False
        st.session_state["runs_flash"] = f"Deleted {len(deleted)} run(s): {', '.join(deleted)}."


confirm = st.checkbox(f"Yes, delete the {len(selected)} selected run(s) with their metrics, snapshots and weights",
                      key="runs_confirm_delete")
st.button("Delete selected runs", type="primary", disabled=not confirm, key="runs_delete", on_click=delete_selected)
for message in st.session_state.pop("runs_delete_errors", []):
    st.error(dashboard.plain(message))

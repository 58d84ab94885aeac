"""Black-box teacher page (paper section 4.4, protein solubility): an SVR teacher that can
only be queried, distilled with differential evolution ('evolution') vs random samples
('gaussian'); shows the simplex constraint of the synthetic amino-acid compositions, how
many points were sent to the teacher, and test RMSE per sampler (Table 6)."""
import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import live_curves, ui

ui.ensure_routed()
st.title("Black-box teacher")
st.caption("SVR teacher (RBF kernel), RBF-network student (100 Gaussian units), eq. 9 with ε 0.05, "
           "differential evolution (best2bin, 25 generations) — the 'paper-protein' preset.")

names, labels = dashboard.dataset_choices()
default = names.index("protein") if "protein" in names else 0
c1, c2, c3 = st.columns([2, 1, 2])
dataset = c1.selectbox("Dataset", names, index=default, key="bb_dataset", format_func=lambda n: labels.get(n, n),
                       help="protein: amino-acid compositions (on the simplex). Any dataset works with an SVR teacher.")
epochs = c2.number_input("Epochs", value=100, step=50, key="bb_epochs")
samplers = c3.multiselect("Samplers", dashboard.sampler_names(), default=list(dashboard.BLACKBOX_SAMPLERS), key="bb_samplers", wrap=True,
                          help="Gradient samplers (direct, generator) cannot query a black box.")
if dataset not in dashboard.available_datasets():
    st.warning(dashboard.plain(f"{dataset} is not in the data directory: python -m dfkd_core datasets --download {dataset} "
                               "fetches it."))

controls = st.container()  # drawn once the run in view is known: Stop stops that run
runs = dashboard.case_study_runs(names, preset="paper-protein")
run_id = ui.run_picker(runs, "bb_view", "No black-box runs yet: press **Start**.")
with controls:
    ui.start_stop_controls("bb", lambda: dashboard.blackbox_config(
        st.session_state["bb_dataset"], st.session_state["bb_epochs"], st.session_state["bb_samplers"]), run_id)
if run_id is None:
    st.stop()
polling = dashboard.load_view(run_id).active


@st.fragment(run_every=1.0 if polling else None)
def live() -> None:
    view = dashboard.load_view(run_id)
    ui.run_header(view)
    zoom = st.toggle("Zoom to the students", value=True, key="bb_zoom",
                     help="Clip the RMSE axis to the students' curves after their first epochs (the paper's Figure 6).")
    st.vega_lite_chart(*live_curves.chart(view.metrics, "val_rmse", teacher_rmse=view.teacher_val_rmse, zoom=zoom),
                       key="bb_rmse", width="stretch")
    st.caption(dashboard.CAPTIONS["val_rmse"])
    if view.snapshot_epochs:
        epoch = st.select_slider("Synthetic batch at epoch", view.snapshot_epochs,
                                 help="Follows the newest snapshot until you move it.",
                                 **dashboard.epoch_widget(st.session_state, "bb_epoch", view.snapshot_epochs))
        st.markdown("**Constraint of the synthetic batch** (amino-acid fractions: each row sums to 1, every fraction ≥ 0)")
        ui.table(dashboard.plain_columns(dashboard.constraint_table(view, epoch)), hide_index=True)
        st.caption(dashboard.CAPTIONS["constraint"])
    if polling and not view.active:
        st.rerun()


live()

view = dashboard.load_view(run_id)
if ui.results_section(view, "Teacher (SVR) test RMSE", "bb_bars"):
    st.markdown("**Teacher queries** (points sent to the black box, per student)")
    ui.table(dashboard.plain_columns(dashboard.teacher_queries(view)), hide_index=True)

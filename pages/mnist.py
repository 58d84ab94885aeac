"""MNIST page (paper section 4.3): synthetic digits per sampler labelled with the teacher's
prediction (Fig. 8), histograms of the teacher's predictions on a synthetic batch (Fig. 9)
and test MAE per sampler (Table 5); runs the 'paper-mnist' preset on digits or MNIST."""
import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import figures, live_curves, ui

ui.ensure_routed()
st.title("MNIST digits")
with st.expander("What is this?"):
    st.markdown(dashboard.WHAT_IS_DFKD + "\n\n" + dashboard.PAGE_INTRO["mnist"])
st.caption("CNN teacher (f=10) → CNN student (f=5), log-cosh loss, eq. 8 (β 1e-6, γ 1, ε 1e-6) with random "
           "target digits; the paper trains 1000 epochs — fewer here by default.")

available = dashboard.available_datasets()
choices = [d for d in ("digits", "mnist") if d in available] or ["digits"]
c1, c2, c3 = st.columns([1, 1, 2])
dataset = c1.radio("Dataset", choices, horizontal=True, key="mnist_dataset",
                   help="digits: scikit-learn's 8×8 digits (built in); mnist: 28×28 MNIST from the data directory.")
epochs = c2.number_input("Epochs", value=50, step=10, key="mnist_epochs", help="The paper: 1000.")
samplers = c3.multiselect("Samplers", dashboard.sampler_names(), default=list(dashboard.MNIST_SAMPLERS), key="mnist_samplers",
                          wrap=True)
note = dashboard.dataset_note(dataset)
if note:
    st.info(dashboard.plain(note))
if "mnist" not in available:
    st.caption("MNIST is not in the data directory: `python -m dfkd_core datasets --download mnist` fetches it.")

controls = st.container()  # drawn once the run in view is known: Stop stops that run
runs = dashboard.case_study_runs(["digits", "mnist"])
run_id = ui.run_picker(runs, "mnist_view", "No digit runs yet: press **Start**.")
with controls:
    ui.start_stop_controls("mnist", lambda: dashboard.mnist_config(
        st.session_state["mnist_dataset"], st.session_state["mnist_epochs"], st.session_state["mnist_samplers"]), run_id)
if run_id is None:
    st.stop()
polling = dashboard.load_view(run_id).active


@st.fragment(run_every=1.0 if polling else None)
def live() -> None:
    view = dashboard.load_view(run_id)
    ui.run_header(view)
    if view.run.note and view.run.note != note:  # the dataset's note is shown above once
        st.info(dashboard.plain(view.run.note))
    st.vega_lite_chart(*live_curves.chart(view.metrics, "val_mae", title="Validation MAE", y_title="MAE"),
                       key="mnist_mae_curve", width="stretch")
    st.caption(dashboard.CAPTIONS["val_mae"])
    epochs_have = view.snapshot_epochs
    if not epochs_have:
        st.caption("Synthetic digits appear once epoch 0's first batch is trained (labelled \"batch 1\" until the epoch ends).")
    else:
        shown = st.multiselect("Digits at epochs", epochs_have, help="Follows the newest snapshot until you change it.",
                               wrap=True, **dashboard.epoch_widget(st.session_state, "mnist_epochs_shown", epochs_have, many=True))
        st.plotly_chart(dashboard.digit_figure(view, shown), key="mnist_grid")
        st.caption(dashboard.CAPTIONS["digits"])
        hist_epoch = st.select_slider("Teacher predictions at epoch", epochs_have,
                                      help="Follows the newest snapshot until you move it.",
                                      **dashboard.epoch_widget(st.session_state, "mnist_hist_epoch", epochs_have))
        preds = dashboard.snapshot_frame(view, [hist_epoch])
        st.plotly_chart(figures.prediction_histograms(preds, x_range=(-1.0, 10.0)), key="mnist_hist")
        st.caption(dashboard.CAPTIONS["histograms"])
    if polling and not view.active:
        st.rerun()


live()

view = dashboard.load_view(run_id)
if not view.results.empty:
    st.subheader("Test MAE per sampler")
    table, numbers = dashboard.view_summary(view, metric="test_mae")
    c1, c2 = st.columns([1, 3])
    c1.metric("Teacher test MAE", dashboard.teacher_row(view, "test_mae"))
    c2.plotly_chart(figures.result_bars(numbers, view.run.teacher_test_mae, metric="test_mae"), key="mnist_bars")
    c2.caption(dashboard.CAPTIONS["results"])
    ui.table(table, hide_index=True)

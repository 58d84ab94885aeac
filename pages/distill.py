"""Distill page: choose a dataset, samplers, α schedules and hyperparameters, start a run
and watch it live (validation RMSE, loss on x_g, student-loss boxplots, real vs synthetic
points), then compare test RMSE per sampler with the teacher's."""
import time

import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import figures, live_curves, sweep_figures, ui

ui.ensure_routed()
st.title("Distill")
with st.expander("What is this?"):
    st.markdown(dashboard.WHAT_IS_DFKD + "\n\n" + dashboard.PAGE_INTRO["distill"])

# ------------------------------------------------------------------ settings (URL ⇄ widgets)
url_cfg, url_error = dashboard.config_from_query(st.query_params.to_dict())
if url_error:  # one line per bad value of the link
    st.error(dashboard.plain(url_error))
# A link naming only a run ("Open … on the Distill page") opens that run with its own settings, so
# Start repeats it; this page always writes the form's settings into the URL beside the run.
opened_run = dashboard.run_config(st.query_params["run"]) if set(st.query_params) == {"run"} else None
if "cfg_dataset" not in st.session_state or opened_run is not None:  # first visit in the session, or a run opened
    start = opened_run or (url_cfg if any(k != "run" for k in st.query_params)
                           else st.session_state.get("distill_last_cfg", url_cfg))
    for name, value in dashboard.widget_values(dashboard.form_config(start)).items():
        st.session_state[f"cfg_{name}"] = value
    st.session_state["objective_loaded"] = None  # the objective editor takes cfg_objective below
    # a run on the user's own teacher and data: Start reuses its stored files, named by the run's id
    inputs_of = st.query_params["run"] if opened_run is not None else st.query_params.get("inputs_of")
    st.session_state["inputs_of"] = inputs_of if dashboard.user_inputs(inputs_of) else None
if "run" in st.query_params and st.query_params["run"] not in (st.session_state.get("run_id"), st.session_state.get("url_run")):
    st.session_state["run_id"] = st.query_params["run"]  # a link to another run (not the URL this page wrote last)

names, labels = dashboard.dataset_choices()
if st.session_state["cfg_dataset"] not in names:
    st.error(dashboard.plain(f"The dataset {st.session_state['cfg_dataset']!r} from the link is not registered; "
                             "using friedman1."))
    st.session_state["cfg_dataset"] = "friedman1"
samplers = dashboard.sampler_names()
unknown = [s for s in st.session_state["cfg_samplers"] if s not in samplers]
if unknown:
    st.error(dashboard.plain(f"No sampler {', '.join(map(repr, unknown))} registered (have: {', '.join(samplers)}); "
                             "left out."))
    st.session_state["cfg_samplers"] = [s for s in st.session_state["cfg_samplers"] if s in samplers]
alpha_options = list(dict.fromkeys([*dashboard.ALPHA_CHOICES, *st.session_state["cfg_alphas"]]))


def form_values() -> dict:
    values = {name[4:]: value for name, value in st.session_state.items() if name.startswith("cfg_")}
    if "objective_terms" in st.session_state:  # the objective editor's widgets hold the objective
        values["objective"] = dashboard.objective_from_widgets(
            st.session_state["objective_terms"],
            {t: st.session_state.get(f"objective_weight_{t}") for t in st.session_state["objective_terms"]})
    return values


def load_objective() -> None:
    """The objective editor's widgets take cfg_objective (a link's, a preset's, a stored run's)."""
    terms, weights, unknown = dashboard.objective_widgets(st.session_state["cfg_objective"])
    st.session_state["objective_terms"] = terms
    for term, weight in weights.items():
        st.session_state[f"objective_weight_{term}"] = weight
    st.session_state["objective_loaded"] = st.session_state["cfg_objective"]
    if unknown:
        st.error(dashboard.plain(f"No objective term {', '.join(map(repr, unknown))} registered "
                                 f"(have: {', '.join(dashboard.term_names())}); left out."))


def objective_editor(spec) -> None:
    """The objective L_G as (term, weight) pairs: the registered terms to add up, a weight each."""
    if st.session_state.get("objective_loaded") != st.session_state["cfg_objective"] or "objective_terms" not in st.session_state:
        load_objective()
    st.multiselect("Objective terms (L_G = Σ weight · term)", spec.choices, key="objective_terms",
                   max_selections=dashboard.MAX_OBJECTIVE_TERMS, help=spec.help)
    st.caption(dashboard.term_help())
    terms = st.session_state["objective_terms"]
    columns = st.columns(4)
    for i, term in enumerate(terms):
        st.session_state.setdefault(f"objective_weight_{term}", dashboard.default_weight(term))
        with columns[i % 4]:
            st.number_input(f"weight of {term}", key=f"objective_weight_{term}", format="%g", step=None,
                            help=dashboard.term_summary(term))
    # cfg_objective follows the editor: only a preset, a link or an opened run (which clear objective_loaded) reload it
    st.session_state["cfg_objective"] = st.session_state["objective_loaded"] = form_values()["objective"]


def start_run() -> None:
    try:
        if st.session_state.get("inputs_of"):  # the teacher and data of a stored your-model run
            cfg = dashboard.config_from_widgets(form_values(), validate=False)
            st.session_state["run_id"] = dashboard.submit_with_inputs_of(cfg, st.session_state["inputs_of"])
            return
        st.session_state["run_id"] = dashboard.submit(dashboard.config_from_widgets(form_values()))
    except dashboard.DfkdError as exc:
        st.session_state["distill_error"] = str(exc)


def start_sweep() -> None:
    try:
        st.session_state["sweep_message"] = sweep_figures.start_sweep(
            dashboard.config_from_widgets(form_values()), st.session_state.get("sweep_grid", ""),
            st.session_state.get("inputs_of"))
    except dashboard.DfkdError as exc:
        st.session_state["distill_error"] = str(exc)


def stop_run() -> None:
    try:
        dashboard.stop(st.session_state["run_id"])
    except dashboard.DfkdError as exc:
        st.session_state["distill_error"] = str(exc)


def apply_preset() -> None:
    for name, value in dashboard.preset_values(st.session_state["preset_choice"]).items():
        st.session_state[f"cfg_{name}"] = value
    st.session_state["objective_loaded"] = None  # the objective editor takes the preset's objective


def add_alpha() -> None:
    spec = st.session_state["alpha_custom"].strip()
    if spec and spec not in st.session_state["cfg_alphas"]:
        st.session_state["cfg_alphas"] = [*st.session_state["cfg_alphas"], spec]
    st.session_state["alpha_custom"] = ""


with st.container(border=True):
    left, middle, right = st.columns([1, 1, 1.2])
    with left:
        st.selectbox("Dataset", names, key="cfg_dataset", format_func=lambda n: labels.get(n, n),
                     disabled=bool(st.session_state.get("inputs_of")))
        st.number_input("Student hidden units", key="cfg_student_hidden", step=1, help=dashboard.field_spec("student_hidden").help)
        st.number_input("Epochs", key="cfg_epochs", step=50, help=dashboard.field_spec("epochs").help)
    with middle:
        st.multiselect("Samplers (trained side by side)", samplers, key="cfg_samplers", help=dashboard.sampler_help(),
                       wrap=True)  # every chosen sampler shows (in a column the chips would scroll)
        st.text_input("Seeds", key="cfg_seeds", help="Comma-separated student seeds, e.g. 0,1,2: several seeds give a mean curve with a band.")
    with right:
        st.multiselect("α schedules", alpha_options, key="cfg_alphas", help=dashboard.field_spec("alphas").help, wrap=True)
        st.text_input("Add an α schedule", key="alpha_custom", on_change=add_alpha,
                      placeholder="constant:0.3 or custom:0:1,1000:0.5,2000:0")
        curves, alpha_errors = dashboard.alpha_curves(st.session_state["cfg_alphas"], st.session_state["cfg_epochs"])
        for message in alpha_errors:
            st.error(dashboard.plain(message))
        if curves:
            st.plotly_chart(figures.alpha_preview(curves), key="alpha_preview", config={"displayModeBar": False})

    with st.expander("Advanced: every hyperparameter (paper defaults)"):
        st.selectbox("Start from a preset", ["defaults", *dashboard.preset_names()], key="preset_choice", on_change=apply_preset,
                     help="Sets every field below to the preset's values (the paper's experiments).")
        for title, specs in dashboard.advanced_sections():
            st.markdown(f"**{title}**")
            for spec in specs:
                if spec.kind == "objective":
                    objective_editor(spec)
            columns = st.columns(4)
            for i, spec in enumerate(s for s in specs if s.kind != "objective"):
                with columns[i % 4]:
                    if spec.kind == "choice":
                        if st.session_state[spec.key] not in spec.choices:
                            st.error(dashboard.plain(f"The {spec.name!r} parameter must be one of {', '.join(spec.choices)}. "
                                                     f"Got {st.session_state[spec.key]!r} instead; reset to the default."))
                            st.session_state[spec.key] = getattr(dashboard.DEFAULT, spec.name)
                        st.selectbox(spec.label, spec.choices, key=spec.key, help=spec.help)
                    elif spec.kind == "text":
                        st.text_input(spec.label, key=spec.key, help=spec.help)
                    elif spec.kind == "int":
                        st.number_input(spec.label, key=spec.key, step=1, help=spec.help)
                    else:
                        st.number_input(spec.label, key=spec.key, format="%g", step=None, help=spec.help)

    if st.session_state.get("inputs_of"):
        i1, i2 = st.columns([4, 1])
        i1.info(dashboard.plain(f"Start uses {dashboard.user_inputs_note(st.session_state['inputs_of'])}, "
                                "with the settings above."))
        i2.button("Use a dataset instead", key="inputs_of_clear", on_click=lambda: st.session_state.update(inputs_of=None))
    start_col, stop_col, _ = st.columns([1, 1, 4])
    start_col.button("Start", type="primary", icon=":material/play_arrow:", width="stretch", key="distill_start",
                     on_click=start_run)
    stop_col.button("Stop", icon=":material/stop:", width="stretch", key="distill_stop", on_click=stop_run,
                    disabled=not dashboard.run_active(st.session_state.get("run_id")))
    if "distill_error" in st.session_state:
        st.error(dashboard.plain(st.session_state.pop("distill_error")))
    with st.expander("Sweep: these settings over a grid of any setting, one run per grid point and seed"):
        st.text_area("Grid (one FIELD=V1,V2 per line)", key="sweep_grid", placeholder="student_hidden=10,25,50\ndirect_lr=0.05,0.1",
                     help="Any field of the form (its name as in Advanced, e.g. student_hidden, direct_lr, batch_size); "
                          "';' separates values that hold commas. Every sampler and α schedule above trains in each run.")
        st.button("Start sweep", icon=":material/grid_view:", key="sweep_start", on_click=start_sweep)
        if "sweep_message" in st.session_state:
            st.success(dashboard.plain(st.session_state.pop("sweep_message")))

# ------------------------------------------------------------------ your own model (issue 13)
def upload(key: str):
    """An uploaded file of the section as (name, bytes), or None."""
    file = st.session_state.get(key)
    return None if file is None else (file.name, file.getvalue())


def start_user_run(spec_rows: list[dict] | None) -> None:
    """The uploads (or the endpoint URL, or the spec table), stored under DFKD_HOME, become an
    ordinary run with the form's settings."""
    try:
        url = (st.session_state.get("own_url") or "").strip()
        teacher = upload("own_teacher")
        st.session_state["run_id"] = dashboard.submit_uploads(  # the uploads are kept only if the run starts
            dashboard.config_from_widgets(form_values(), validate=False), title=f"your model: {url if url else teacher[0]}",
            teacher=teacher, url=url,
            activation=st.session_state.get("own_activation") or "", units=st.session_state.get("own_units") or "auto",
            data=upload("own_data"),
            target=st.session_state.get("own_target") or "", nan_policy=st.session_state.get("own_nan", "refuse"),
            spec=upload("own_spec"), spec_rows=spec_rows, constraint=st.session_state.get("own_constraint", "none"),
            timeout=float(st.session_state.get("own_timeout", 10.0)), budget=int(st.session_state.get("own_budget", 0)))
    except dashboard.DfkdError as exc:
        st.session_state["distill_error"] = str(exc)


def your_model_section() -> None:
    with st.expander("Your model: your teacher, your data (or only an input spec)", expanded=False):
        st.caption("TorchScript (`torch.jit.save`), a `state_dict` of Linear layers, a skops file: nothing is unpickled. "
                   "Samplers, epochs and every setting come from the form above.")
        c1, c2 = st.columns(2)
        teacher = c1.file_uploader("Teacher file", type=["pt", "pth", "skops"], key="own_teacher")
        c1.selectbox("Activation (state_dict teachers only)", ["", *dashboard.activation_names()], key="own_activation")
        c1.selectbox("Teacher units", dashboard.teacher_unit_names(), key="own_units",
                     help="raw: your teacher takes the data's own units; standardized: it takes (x − mean)/std and "
                          "answers (y − mean)/std, as most tabular teachers are trained; auto: both are scored on the "
                          "validation rows and the clearly right one is taken (the run says which).")
        url = c1.text_input("…or the URL of your model's endpoint", key="own_url", placeholder="http://my-server:8000/predict",
                            help='POST {"inputs": [[...], ...]} as JSON, answered with {"predictions": [...]}.')
        if url.strip():
            t1, t2 = c1.columns(2)
            t1.number_input("Timeout per request (s)", min_value=0.1, max_value=600.0, value=10.0, step=1.0, key="own_timeout")
            t2.number_input("Query budget (points, 0 = no limit)", min_value=0, value=0, step=1000, key="own_budget")
            c1.info(dashboard.plain(f"An endpoint teacher cannot use the 'direct' and 'generator' samplers: "
                                    f"{dashboard.gradient_free_reason()}. Use 'evolution' or a random sampler."))
        data = c2.file_uploader("Data (CSV or Parquet with a header)", type=["csv", "parquet"], key="own_data")
        spec_rows = None
        if data is not None:
            try:
                columns = dashboard.table_columns(data.name, data.getvalue())
                c2.selectbox("Target column", columns, index=len(columns) - 1, key="own_target")
                c2.radio("Rows with missing values", ["refuse", "drop"], horizontal=True, key="own_nan")
            except dashboard.DfkdError as exc:
                c2.error(dashboard.plain(exc))
        elif c2.radio("…or an input spec (strictly data-free)", ["upload spec.json", "fill in a table"],
                      horizontal=True, key="own_spec_mode") == "upload spec.json":
            c2.file_uploader("Input spec (JSON: features with mean/std or min/max)", type=["json"], key="own_spec")
        else:
            if st.session_state.get("own_spec_table_for") != getattr(teacher, "file_id", None) or "own_spec_table" not in st.session_state:
                st.session_state["own_spec_table"] = dashboard.spec_table_rows(
                    upload("own_teacher"), st.session_state.get("own_activation") or "")
                st.session_state["own_spec_table_for"] = getattr(teacher, "file_id", None)
            st.caption("One row per input of your teacher, in its own units: mean and std, or min and max (or both).")
            edited = st.data_editor(st.session_state["own_spec_table"], num_rows="dynamic", key="own_spec_editor",
                                    hide_index=True, width="stretch")
            st.selectbox("Constraint", dashboard.spec_constraints(), key="own_constraint",
                         help="clip: points stay in the min/max box; simplex: each row's inputs are fractions summing to 1.")
            spec_rows = edited.to_dict("records")
        if url.strip():  # said before the start: what the run will spend of the endpoint's queries
            line = dashboard.query_plan_caption(
                dashboard.config_from_widgets(form_values(), validate=False), url, upload("own_data"),
                st.session_state.get("own_target") or "", st.session_state.get("own_units") or "auto",
                int(st.session_state.get("own_budget", 0)))
            if line:
                st.caption(dashboard.plain(line))
        if st.button("Start with your model", icon=":material/play_arrow:", key="own_start"):
            start_user_run(spec_rows)


your_model_section()
if "distill_error" in st.session_state:
    st.error(dashboard.plain(st.session_state.pop("distill_error")))

values = form_values()
try:  # the URL always describes what the form holds (and the run in view): share it to reproduce
    shown = dashboard.config_from_widgets(values, validate=False)
    st.query_params.from_dict(dashboard.query_for(shown, st.session_state.get("run_id"), st.session_state.get("inputs_of")))
    st.session_state["url_run"] = st.session_state.get("run_id")
    st.session_state["distill_last_cfg"] = shown
except dashboard.DfkdError:
    pass

# ------------------------------------------------------------------ the run in view, live
run_id = st.session_state.get("run_id")
if not run_id:
    st.info("Choose settings and press **Start**; the run's curves appear here as it trains.")
    st.stop()
if not dashboard.run_exists(run_id):
    st.warning(dashboard.plain(f"No run {run_id!r} in the run store (deleted, or the link is from another machine)."))
    st.session_state.pop("run_id", None)
    del st.query_params["run"]
    st.stop()
try:
    polling = dashboard.load_view(run_id).active
except (dashboard.DfkdError, OSError) as exc:  # the store cannot be read: one message, never a traceback
    st.error(dashboard.plain(dashboard.error_line(exc)))
    st.stop()


@st.fragment(run_every=0.5 if polling else None)
def live() -> None:
    try:
        view = dashboard.load_view(run_id)
    except dashboard.DfkdError as exc:
        st.error(dashboard.plain(exc))
        return
    ui.run_header(view)
    if view.run.note:
        note, warning = dashboard.note_parts(view.run.note)  # the teacher's units, and a warning when it is no better than the mean
        st.info(dashboard.plain(note))
        if warning:
            st.warning(dashboard.plain(warning))
    t1, t2 = st.columns(2)
    smoothing = t1.toggle("Savitzky–Golay smoothing (window 15)", key="smooth")
    zoom = t2.toggle("Zoom to the students", value=True, key="rmse_zoom",
                     help="Clip the RMSE axis to the students' curves after their first epochs (as the paper's "
                          "Figure 6): the epoch-0 spike no longer hides gaps of 0.01 between samplers.")
    a, b = st.columns(2)
    # Vega-Lite: its spec stays the same while the run streams, so each poll replaces the rows in place
    a.vega_lite_chart(*live_curves.chart(view.metrics, "val_rmse", teacher_rmse=view.teacher_val_rmse,
                                         smoothing=smoothing, zoom=zoom), key="rmse_chart", width="stretch")
    a.caption(dashboard.CAPTIONS["val_rmse_data_free" if view.data_free else "val_rmse"])
    b.vega_lite_chart(*live_curves.chart(view.metrics, "loss_xg", smoothing=smoothing, title="Student loss on x_g",
                                         y_title="student loss L_S(x_g)", log_y=True), key="xg_chart", width="stretch")
    b.caption(dashboard.CAPTIONS["loss_xg"])
    if polling and not view.active:
        st.rerun()  # finished: stop polling, show the results


live()


@st.fragment(run_every=2.0 if polling else None)
def boxplots() -> None:  # its own, slower fragment: snapshots arrive far less often than epochs
    try:
        view = dashboard.load_view(run_id)
    except dashboard.DfkdError as exc:
        st.error(dashboard.plain(exc))
        return
    try:
        st.plotly_chart(figures.student_loss_boxplots(dashboard.snapshot_frame(view), view.samplers), key="box_chart")
        st.caption(dashboard.CAPTIONS["boxplots"])
    except (dashboard.DfkdError, OSError) as exc:  # a missing or damaged snapshot
        st.error(dashboard.plain(dashboard.error_line(exc)))


boxplots()


proj_polling = polling or dashboard.umap_warming(run_id)


@st.fragment(run_every=2.0 if proj_polling else None)
def synthetic_points() -> None:
    try:
        view = dashboard.load_view(run_id)
    except (dashboard.DfkdError, OSError) as exc:
        st.error(dashboard.plain(dashboard.error_line(exc)))
        return
    st.subheader("Real vs synthetic points")
    unavailable = dashboard.projection_unavailable(view)
    if unavailable:  # the user's own data or spec: a notice, and no controls that would do nothing
        st.info(unavailable)
        return
    if not view.snapshot_epochs:
        st.caption("The first snapshot (epoch 0) appears once training starts.")
        return
    c1, c2 = st.columns([3, 1])
    epoch = c1.select_slider("Snapshot epoch", view.snapshot_epochs,
                             help="Follows the newest snapshot until you move it; move it to the end to follow again.",
                             **dashboard.epoch_widget(st.session_state, "proj_epoch", view.snapshot_epochs))
    plane = dashboard.is_plane(view.run.config.dataset)
    method = "plane" if plane else c2.radio("Projection", ["auto", "UMAP", "PCA"], horizontal=True, key="proj_method",
                                            help="auto: PCA until UMAP (fitted once per dataset on ≤ 2000 real rows) is ready.")
    try:  # a short wait: this fragment polls again, and the previous projection stays up meanwhile
        ready = dashboard.projection_later(view, epoch, method.lower(), wait=0.1)
    except (dashboard.DfkdError, OSError) as exc:  # a missing or damaged snapshot, a full disk
        st.error(dashboard.plain(dashboard.error_line(exc)))
        return
    proj, shown, pending = dashboard.hold_projection(st.session_state, "proj_held", run_id, epoch, method, ready)
    if pending:
        st.caption(f"fitting the {method} projection of epoch {epoch} in the background… the curves above keep updating"
                   + (f"; showing epoch {shown} meanwhile." if proj is not None else "."))
        if not proj_polling:
            time.sleep(0.5)
            st.rerun()  # the run is over (no polling): poll until the projection is ready
    if proj is None:
        return
    if proj.note:
        st.caption(dashboard.plain(proj.note))
    st.plotly_chart(figures.projection_scatter(proj.points, proj.method, shown), key="proj_chart")
    st.caption(dashboard.CAPTIONS["projection"] + ("" if plane else " UMAP's transform pulls far-away points toward "
               "the real ones: the distance to the nearest real training point (input space) is in the hover and here."))
    ui.table(dashboard.plain_columns(proj.summary), hide_index=True)
    if not proj_polling and dashboard.umap_warming(run_id):
        st.rerun()  # UMAP started warming up just now: rerun so this section polls until it is ready

synthetic_points()

try:
    view = dashboard.load_view(run_id)
    ui.results_section(view, "Teacher test RMSE", "result_bars")
except (dashboard.DfkdError, OSError) as exc:
    st.error(dashboard.plain(dashboard.error_line(exc)))

"""Sampler playground: pick a function of two inputs and two samplers, then Step or Play and watch
each sampler's points move and the student's error |T − S| shrink where they land."""
import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import playground, ui
from dfkd_core.dashboard import playground_views as views

ui.ensure_routed()
st.title("Sampler playground")

with st.expander("What is this?"):
    st.markdown(
        "A **teacher** network was trained on real data; **data-free distillation** trains a smaller "
        "**student** to copy it without that data, on synthetic inputs whose targets the teacher supplies "
        "(the paper's Figure 1). How those inputs are found is the whole game: drawn at random, emitted by a "
        "**generator** trained against the student (Figure 2), or found by **direct** optimization of random "
        "points toward where student and teacher disagree (Figure 3). Here the teacher knows a function of two "
        "inputs, learned only inside the dashed region, and each canvas shows, in grey, how far the student "
        "still is from it, |T − S|, with the sampler's last batch on top. Direct points start at a random draw "
        "and move along their arrows; the generator's points tend to gather in a few clusters, as the paper's "
        "Figures 4 and 5 report for real data. Press Step or Play: the grey shrinks where the points land."
    )

SAMPLERS = playground.SAMPLERS.names()
ETAS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
WEIGHTS = [0.0, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0]
defaults = playground.PlaygroundConfig()

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Function", playground.FUNCTIONS.names(), key="pg_function",
                 format_func=lambda n: playground.FUNCTIONS.get(n).label)
    c2.selectbox("Left sampler", SAMPLERS, index=SAMPLERS.index(defaults.samplers[0]), key="pg_left")
    c3.selectbox("Right sampler", SAMPLERS, index=SAMPLERS.index(defaults.samplers[1]), key="pg_right")
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    c1.slider("m (batch size)", 5, 200, defaults.batch_size, step=5, key="pg_m",
              help="Synthetic points per batch; α = 1 or 0 doubles it (eq. 7's fair comparison).")
    c2.slider("τ (direct steps)", 0, 20, defaults.direct_steps, key="pg_tau",
              help="Optimizer steps the direct sampler takes per batch (paper: 2).")
    c3.select_slider("η (step size)", ETAS, value=defaults.direct_lr, key="pg_eta",
                     help="The direct sampler's RMSprop step size (paper: 0.1): each step moves a coordinate by at most 10·η.")
    c4.select_slider("β (‖x‖² weight)", WEIGHTS, value=defaults.beta, key="pg_beta", format_func=lambda v: f"{v:g}",
                     help="Pulls synthetic points toward 0, where the data lived (eqs. 3 and 5; paper 1e-5).")
    c5.select_slider("γ (S(x)² weight)", WEIGHTS, value=defaults.gamma, key="pg_gamma", format_func=lambda v: f"{v:g}",
                     help="Penalizes large student outputs (eqs. 3 and 5; paper 1e-5).")
    c6.slider("α (weight of x_g)", 0.0, 1.0, defaults.alpha, step=0.05, key="pg_alpha",
              help="Eq. 7: the student learns α·L_S(x_g) + (1 − α)·L_S(x_p), x_p random points.")


def current_config() -> playground.PlaygroundConfig:
    s = st.session_state
    return playground.PlaygroundConfig(
        function=s["pg_function"], samplers=tuple(dict.fromkeys([s["pg_left"], s["pg_right"]])),
        batch_size=s["pg_m"], direct_steps=s["pg_tau"], direct_lr=s["pg_eta"], beta=s["pg_beta"],
        gamma=s["pg_gamma"], alpha=s["pg_alpha"])


def reset() -> None:
    st.session_state.pop("pg_state", None)


def step() -> None:
    st.session_state["pg_follow"] = True
    if "pg_state" in st.session_state:
        st.session_state["pg_state"].step(st.session_state.get("pg_speed", 1))


def toggle_play() -> None:
    st.session_state["pg_playing"] = not st.session_state.get("pg_playing", False)
    st.session_state["pg_follow"] = True


def slider_moved() -> None:  # the slider follows the newest epoch until the user moves it back
    state = st.session_state.get("pg_state")
    st.session_state["pg_follow"] = state is not None and st.session_state["pg_epoch"] >= state.epochs_run


cfg = current_config()
if st.session_state.get("pg_state") is not None and st.session_state["pg_state"].cfg != cfg:
    reset()  # any control changed: start over with the new settings
if "pg_state" not in st.session_state:
    try:
        with st.spinner("Training the teacher of this function (about a second, once)…"):
            st.session_state["pg_state"] = playground.Playground.create(cfg)
    except dashboard.DfkdError as exc:
        st.error(str(exc))
        st.stop()
state: playground.Playground = st.session_state["pg_state"]
playing = st.session_state.get("pg_playing", False)

b1, b2, b3, b4, info = st.columns([1, 1, 1, 1.4, 4])
b1.button("Step", icon=":material/skip_next:", key="pg_step", width="stretch", on_click=step, disabled=playing)
b2.button("Pause" if playing else "Play", icon=":material/pause:" if playing else ":material/play_arrow:",
          type="primary", key="pg_play", width="stretch", on_click=toggle_play)
b3.button("Reset", icon=":material/restart_alt:", key="pg_reset", width="stretch", on_click=reset)
b4.select_slider("Epochs per step", [1, 2, 5, 10, 20], value=1, key="pg_speed", label_visibility="collapsed",
                 format_func=lambda n: f"{n} epoch{'s' if n > 1 else ''} per step",
                 help="How many epochs Step (and each frame of Play) runs; every epoch is kept for the slider.")
teacher = state.teacher
info.caption(
    f"Teacher: tanh MLP 2 → {playground.TEACHER_HIDDEN} → 1 of ${playground.FUNCTIONS.get(cfg.function).formula}$, "
    f"fitted on {playground.TEACHER_POINTS} points of the dashed region (RMSE there {teacher.region_rmse:.3f}; "
    f"{'loaded from the cache' if teacher.source == 'cache' else f'trained in {teacher.seconds:.1f} s'}). "
    f"Student: tanh MLP 2 → {cfg.student_hidden} → 1, the same start for every sampler. Changing a control starts over."
)


@st.fragment(run_every=0.1 if playing else None)  # as fast as the step and the browser allow (≥ 4 frames per second)
def canvases() -> None:
    if st.session_state.get("pg_playing", False):
        state.step(st.session_state.get("pg_speed", 1))
    epochs = state.epochs_run
    if st.session_state.get("pg_follow", True) or st.session_state.get("pg_epoch", 0) > epochs:
        st.session_state["pg_epoch"] = epochs
    if epochs >= 1:
        st.slider("Epoch shown", 0, epochs, key="pg_epoch", on_change=slider_moved,
                  help="Go back over the epochs already run; moving it to the end follows the newest again.")
    shown = st.session_state.get("pg_epoch", 0) if epochs >= 1 else 0
    frames = state.frames_at(shown)
    region = state.function.region.outline()
    zmax = state.error_scale()
    columns = st.columns(len(frames))
    for index, (column, (name, frame)) in enumerate(zip(columns, frames.items())):
        with column:  # Vega-Lite with a spec fixed per sampler: each frame replaces the data in place (no flicker)
            st.markdown(f"**{name} — epoch {frame.epoch}**")
            st.vega_lite_chart(views.canvas_data(frame, state.axes(), region, zmax),
                               views.canvas_spec(name, playground.PLANE, zmax), key=f"pg_canvas_{index}",
                               width="content")
            st.caption("Grey: the student's error |T − S| (white: it matches the teacher); dashed: where the real "
                       "data lived; dots: the last batch" + (", arrows from where each point started." if frame.starts is not None else "."))
            guarantees_panel(name, frame)
    st.vega_lite_chart(views.curves_data({n: state.history(n) for n in state.lanes}, shown),
                       views.curves_spec(list(state.lanes)), key="pg_curves", width="stretch")
    st.caption("How far each student is from the teacher inside the real-data region, epoch by epoch; "
               "the dotted line marks the epoch shown.")


def guarantees_panel(name: str, frame) -> None:
    story = playground.sampler_story(name)
    with st.container(border=True):
        st.markdown(f"**{name}** — {story.words}")
        st.latex(story.equation)
        st.caption(f"The paper's {story.source}.")
        if frame.epoch == 0:
            st.caption("Step once to measure the paper's two guarantees on a batch.")
            return
        if not frame.baseline:
            st.caption(f"{frame.bound_note}: the guarantees concern synthetic points, so there is nothing to measure.")
            return
        a, b = st.columns(2)
        a.metric(f"(a) student loss, {frame.baseline.split()[0]} → x_g", f"{frame.loss_after:.3g}",
                 delta=f"{frame.loss_after - frame.loss_before:+.3g} from {frame.loss_before:.3g}",
                 help="Guarantee (a): the searched points should have a higher student loss (T − S)² than "
                      "where they started (or than a random batch), measured with the same student.")
        if frame.bound > 0:
            holds = frame.displacement <= frame.bound * (1 + 1e-6)
            b.metric("(b) largest move" if frame.starts is not None else "(b) largest ‖x_g‖", f"{frame.displacement:.4g}",
                     delta=f"≤ {frame.bound:.4g}: holds" if holds else f"> {frame.bound:.4g}: exceeded",
                     delta_color="normal" if holds else "inverse", delta_arrow="off", help=frame.bound_note)
            st.caption(f"Bound: {frame.bound_note}.")
        else:
            b.metric("(b) largest move", f"{frame.displacement:.3g}", help=frame.bound_note)
            st.caption(frame.bound_note + ".")


canvases()

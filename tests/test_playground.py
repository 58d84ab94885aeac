"""The sampler playground: its plane helpers (grid, functions, regions), the displacement bounds of
guarantee (b) against torch's own optimizers, the cached teacher, stepping the product's samplers,
and the page under AppTest (controls, a few steps, figures built)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from dfkd_core.experiments import playground
from dfkd_core.errors import ConfigError, RegistryError
from dfkd_core.experiments.playground import (FUNCTIONS, PLANE, Playground, PlaygroundConfig, direct_displacement_bound,
                                  generator_norm_bound, get_plane_teacher, plane_grid, plane_prior)
from dfkd_core.synth.samplers import SAMPLERS

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def nearest_cells(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the grid cell nearest to each point (rows follow x₂, columns x₁)."""
    step = 2 * PLANE / (size - 1)
    col = np.clip(np.round((points[:, 0] + PLANE) / step).astype(int), 0, size - 1)
    row = np.clip(np.round((points[:, 1] + PLANE) / step).astype(int), 0, size - 1)
    return row, col


# ------------------------------------------------------------------ the plane
def test_grid_rows_follow_x2_and_columns_follow_x1_like_numpy_meshgrid():
    x1, x2, points = plane_grid(11, extent=2.0)
    assert points.shape == (121, 2)
    ref1, ref2 = np.meshgrid(np.linspace(-2, 2, 11), np.linspace(-2, 2, 11))
    values = points[:, 0] + 10 * points[:, 1]  # any function of the point
    np.testing.assert_allclose(values.numpy().reshape(11, 11), ref1 + 10 * ref2, atol=1e-6)
    np.testing.assert_allclose(x1, ref1[0]), np.testing.assert_allclose(x2, ref2[:, 0])


@pytest.mark.parametrize("name, point, value", [
    ("sines", (math.pi / 4, 0.0), 1.0), ("sines", (math.pi / 4, math.pi / 4), 2.0),
    ("ring", (1.2, 0.0), 2.0), ("ring", (0.0, -1.2), 2.0),
    ("saddle", (1.0, 0.0), 0.5), ("saddle", (1.0, 1.0), 0.0),
], ids=["sines-one", "sines-two", "ring-on-x1", "ring-on-x2", "saddle-up", "saddle-level"])
def test_registered_functions_take_their_known_values(name, point, value):
    assert float(FUNCTIONS.get(name).fn(torch.tensor([point]))[0]) == pytest.approx(value, abs=1e-6)


def test_the_three_functions_are_registered_once_and_unknown_ones_are_refused():
    assert FUNCTIONS.names() == ["sines", "ring", "saddle"]
    with pytest.raises(RegistryError, match="No plane function 'cone' registered"):
        FUNCTIONS.get("cone")


@pytest.mark.parametrize("name", ["sines", "ring"])
def test_region_samples_lie_inside_it_and_its_outline_is_closed(name):
    region = FUNCTIONS.get(name).region
    x = region.sample(2000, torch.Generator().manual_seed(0))
    assert bool(region.contains(x).all())
    assert not bool(region.contains(torch.tensor([[region.size * 1.01, region.size * 1.01]])).any())
    ox, oy = region.outline()
    assert (ox[0], oy[0]) == pytest.approx((ox[-1], oy[-1]))


# ------------------------------------------------------------------ guarantee (b)
def _largest_move(optimizer: str, lr: float, steps: int, dim: int, grads) -> float:
    """Run torch's own optimizer on x from 0 with the given gradients; the distance moved."""
    x = torch.zeros(dim, dtype=torch.float64, requires_grad=True)
    opt = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[optimizer]([x], lr=lr)
    for g in grads:
        x.grad = g.clone()
        opt.step()
    return float(x.detach().norm())


def test_rmsprop_bound_is_ten_eta_tau_root_d():
    assert direct_displacement_bound("rmsprop", 0.1, 2, 2) == pytest.approx(10 * 0.1 * 2 * math.sqrt(2))


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_the_bound_holds_for_torch_optimizers_under_any_gradients(optimizer):
    gen = torch.Generator().manual_seed(0)
    bound = direct_displacement_bound(optimizer, 0.1, 5, 3)
    for trial in range(200):
        scale = 10.0 ** torch.randint(-6, 6, (5, 1), generator=gen).double()
        grads = scale * torch.randn(5, 3, generator=gen, dtype=torch.float64)
        assert _largest_move(optimizer, 0.1, 5, 3, grads) <= bound


def test_the_rmsprop_bound_is_nearly_reached_by_fast_growing_gradients():
    grads = [torch.full((2,), 1e4 ** t, dtype=torch.float64) for t in range(4)]  # same sign, each far larger
    move = _largest_move("rmsprop", 0.1, 4, 2, grads)
    assert move > 0.95 * direct_displacement_bound("rmsprop", 0.1, 4, 2)


def test_the_adam_bound_is_above_its_constant_gradient_move_but_not_tight():
    move = _largest_move("adam", 0.1, 4, 2, [torch.ones(2, dtype=torch.float64)] * 4)  # η per step and coordinate
    assert move == pytest.approx(0.1 * 4 * math.sqrt(2), rel=1e-6)
    assert move < direct_displacement_bound("adam", 0.1, 4, 2) < 2.5 * move


def test_sgd_bound_is_the_papers_eta_t_root_d_k_and_needs_k():
    assert direct_displacement_bound("sgd", 0.1, 3, 4, lipschitz=2.0) == pytest.approx(0.1 * 3 * 2 * 2.0)
    with pytest.raises(ConfigError, match="needs the loss's Lipschitz constant K"):
        direct_displacement_bound("sgd", 0.1, 3, 4)


def test_generator_norm_bound_is_root_d_k_over_two_beta_and_infinite_without_beta():
    assert generator_norm_bound(3.0, 1e-2, 4) == pytest.approx(2 * 3.0 / 2e-2)
    assert generator_norm_bound(3.0, 0.0, 4) == math.inf


# ------------------------------------------------------------------ the teacher
def test_teacher_is_trained_once_then_loaded_from_its_weights_only_file(monkeypatch):
    monkeypatch.setattr(playground, "_TEACHERS", {})
    first = get_plane_teacher("saddle", retrain=True)
    assert first.source == "trained" and first.region_rmse < 0.05
    state = torch.load(first.path, map_location="cpu", weights_only=True)
    assert set(state) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    monkeypatch.setattr(playground, "_TEACHERS", {})  # a new process: only the file is left
    second = get_plane_teacher("saddle")
    assert second.source == "cache"
    for a, b in zip(first.module.parameters(), second.module.parameters()):
        assert torch.equal(a, b)


def test_a_damaged_teacher_file_is_retrained(monkeypatch):
    monkeypatch.setattr(playground, "_TEACHERS", {})
    path = playground.teacher_path("ring")
    path.write_bytes(b"not a torch file")
    assert get_plane_teacher("ring").source == "trained"


# ------------------------------------------------------------------ stepping the product's samplers
@pytest.fixture(scope="module")
def stepped() -> Playground:
    """direct, generator and evolution beside the Gaussian sampler, 12 epochs on the sum of sines."""
    state = Playground.create(PlaygroundConfig(samplers=("direct", "generator", "evolution", "gaussian"),
                                               de_generations=5))
    state.step(12)
    return state


def test_every_lane_starts_from_the_same_student(stepped):
    errors = [lane.frames[0].error for lane in stepped.lanes.values()]
    for error in errors[1:]:
        np.testing.assert_array_equal(error, errors[0])


def test_one_frame_per_epoch_and_the_slider_goes_back_over_them(stepped):
    assert stepped.epochs_run == 12
    for name, lane in stepped.lanes.items():
        assert [f.epoch for f in lane.frames] == list(range(13))
    assert {f.epoch for f in stepped.frames_at(5).values()} == {5}
    first = stepped.frames_at(0)["direct"]
    assert len(first.points) == 0 and first.starts is None


def test_alpha_one_doubles_the_batch_and_sends_no_random_points(stepped):
    frame = stepped.frames_at(12)["direct"]
    assert frame.points.shape == (100, 2) and frame.random.shape == (0, 2) and frame.starts.shape == (100, 2)


def test_direct_moves_stay_within_the_rmsprop_bound_and_raise_the_student_loss(stepped):
    frames = stepped.lanes["direct"].frames[1:]
    bound = 10 * 0.1 * 2 * math.sqrt(2)
    assert all(f.bound == pytest.approx(bound) and 0 < f.displacement <= bound for f in frames)
    moved = np.linalg.norm(frames[-1].points - frames[-1].starts, axis=1).max()
    assert moved == pytest.approx(frames[-1].displacement, rel=1e-5)
    assert all(f.loss_after > f.loss_before and f.baseline == "start" for f in frames)  # guarantee (a)


def test_evolution_starts_in_the_prior_box_and_stays_in_it(stepped):
    prior = plane_prior()
    for frame in stepped.lanes["evolution"].frames[1:]:
        for pts in (frame.starts, frame.points):
            assert (pts >= prior.lower.numpy() - 1e-6).all() and (pts <= prior.upper.numpy() + 1e-6).all()
        assert frame.displacement <= frame.bound == pytest.approx(6 * math.sqrt(2))


def test_generator_has_no_start_points_and_is_compared_with_a_random_batch(stepped):
    frame = stepped.frames_at(12)["generator"]
    assert frame.starts is None and frame.baseline == "random batch"
    assert frame.displacement == pytest.approx(np.linalg.norm(frame.points, axis=1).max(), rel=1e-5)
    assert frame.displacement <= frame.bound  # √d·K/(2β) with β = 1e-5 is loose


def test_random_samplers_do_not_move_points(stepped):
    frame = stepped.frames_at(12)["gaussian"]
    assert frame.starts is None and frame.displacement == 0.0 and "do not move" in frame.bound_note


def test_direct_sampler_remembers_its_prior_draw_as_last_start():
    state = Playground.create(PlaygroundConfig(samplers=("direct",)))
    lane = state.lanes["direct"]
    seed = lane.generator.initial_seed()
    x = lane.sampler.sample(lane.stack.views[0], 7)[0]  # the lane's one member, as the engine's step calls it
    expected = plane_prior().sample(7, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(lane.sampler.last_start[0], expected)
    assert not torch.equal(x, expected)


def _engine_run(state: Playground, epochs: int):
    """The RunContext of state's config for an engine run of `epochs` epochs that keeps its last students."""
    _, _, grid = plane_grid(state.cfg.grid_size)
    run = playground.plane_run(state.cfg, state.teacher, grid[state.function.region.contains(grid)])
    return dataclasses.replace(run, cfg=run.cfg.replace(epochs=epochs, selection="last"))


@pytest.mark.parametrize("alpha", [1.0, 0.5], ids=["alpha-1", "alpha-half"])
def test_a_lane_trains_its_student_with_the_engines_own_epoch_loop(monkeypatch, alpha):
    """The lane IS the engine's step: N lane steps give the student engine.loop trains in N epochs of
    the same one-member config (and the lane's measurements, a hook, change nothing)."""
    from dfkd_core.engine.loop import train_members
    from dfkd_core.engine.stacked import ModuleStack

    monkeypatch.setenv("DFKD_COMPILE", "off")
    state = Playground.create(PlaygroundConfig(samplers=("direct", "generator", "gaussian"), alpha=alpha,
                                               batches_per_step=2))
    state.step(4)
    for name, lane in state.lanes.items():
        member = lane.stack.members[0]
        results, cancelled, _ = train_members(_engine_run(state, 4), [member], lambda event: None, None, 0.0,
                                              stacks=[(ModuleStack, [0])])
        assert not cancelled and results[0].best_epoch == 3
        lane_student = lane.stack.state_dict(0, lane.stack.params)
        assert set(lane_student) == set(results[0].state_dict)
        for key, value in results[0].state_dict.items():
            assert torch.equal(lane_student[key], value), (name, key)
        assert not torch.equal(lane_student["fc1.weight"], lane.stack.base.fc1.weight)  # it trained (base: the init)


def test_the_batch_hook_sees_each_batchs_points_between_sampling_and_the_update():
    from dfkd_core.engine.stacked import ModuleStack

    state = Playground.create(PlaygroundConfig(samplers=("direct",), alpha=0.5, batches_per_step=2))
    _, _, grid = plane_grid(state.cfg.grid_size)
    run = playground.plane_run(state.cfg, state.teacher, grid[state.function.region.contains(grid)])
    stack = ModuleStack(run, run.cfg.members(), compile="off")
    events, seen, labelled = [], [], []
    sample, update, predict = stack.samplers[0].sample, stack.opt.step, run.teacher.predict

    def on_batch(view):
        events.append("hook")
        before = {n: p.detach().clone() for n, p in stack.params.items()}
        seen.append((view.epoch, view.batch, view.x_g(0).clone(), view.x_p(0).clone(), view.starts(0),
                     view.student(0)(view.x_g(0)).detach(), before))

    def labels(x):
        labelled.append(x.clone())
        return predict(x)

    stack.samplers[0].sample = lambda *a: (events.append("sample"), sample(*a))[1]
    stack.opt.step = lambda *a: (events.append("update"), update(*a))[1]
    run.teacher.predict = labels
    stack.on_batch = on_batch
    for epoch in range(2):
        stack.run_epoch(epoch, validate=False)
    assert events == ["sample", "hook", "update"] * 4
    assert [(e, b) for e, b, *_ in seen] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    batches = [x for x in labelled if x.shape[0] == 100]  # the student's labels: [x_g | x_p] (the search's are 50)
    assert len(batches) == 4
    for (_, _, x_g, x_p, starts, predicted, before), batch in zip(seen, batches):
        assert x_g.shape == x_p.shape == (50, 2) and starts.shape == (50, 2) and not torch.equal(starts, x_g)
        assert torch.equal(batch, torch.cat([x_g, x_p]))  # the points the update learns from
        student = {n: p[0] for n, p in before.items()}  # the one member's weights at the hook
        assert torch.allclose(predicted, torch.func.functional_call(stack.base, student, (x_g,)))
    assert not torch.equal(seen[1][-1]["fc1.weight"], seen[0][-1]["fc1.weight"])  # an update came between
    assert not torch.equal(stack.params["fc1.weight"], seen[3][-1]["fc1.weight"])  # ... and after the last hook


def test_the_batch_hook_names_members_in_the_callers_order_in_a_stack_of_several():
    """The stack groups its members by sampler (internal order); a hook's view answers per member as the caller listed them."""
    from dfkd_core.engine.stacked import ModuleStack

    state = Playground.create(PlaygroundConfig(samplers=("gaussian", "direct")))
    _, _, grid = plane_grid(state.cfg.grid_size)
    run = playground.plane_run(state.cfg, state.teacher, grid[state.function.region.contains(grid)])
    run = dataclasses.replace(run, cfg=run.cfg.replace(alphas=("0.5", "1.0", "0.0")))
    members = run.cfg.members()  # gaussian 0.5, 1, 0; direct 0.5, 1, 0
    stack = ModuleStack(run, members, compile="off")
    assert stack.layout.order != list(range(6))  # the α = 0 members share one group: the order differs
    views, labelled, predict = [], [], run.teacher.predict
    run.teacher.predict = lambda x: (labelled.append(x.clone()), predict(x))[1]
    stack.on_batch = views.append
    stack.run_epoch(0, validate=False)
    (view,) = views
    batch = labelled[-1].reshape(6, 100, 2)  # the student's labels, in the stack's internal order
    for i, member in enumerate(members):
        m_g = {"0.5": 50, "1.0": 100, "0.0": 0}[member.alpha]
        assert view.x_g(i).shape == (m_g, 2) and view.x_p(i).shape == (100 - m_g, 2)
        assert torch.equal(torch.cat([view.x_g(i), view.x_p(i)]), batch[stack.layout.position[i]])
        searched = member.sampler == "direct" and m_g > 0
        assert (view.starts(i) is not None) == searched
        if searched:
            assert view.starts(i).shape == (m_g, 2) and not torch.equal(view.starts(i), view.x_g(i))


def test_a_few_steps_lower_the_error_where_the_points_land():
    state = Playground.create(PlaygroundConfig(samplers=("direct",)))
    lane = state.lanes["direct"]
    size = state.cfg.grid_size
    where, everywhere = [], []
    for _ in range(10):
        before = lane.frames[-1].error
        frame = lane.step()
        row, col = nearest_cells(frame.points, size)
        where.append(float((before[row, col] - frame.error[row, col]).mean()))
        everywhere.append(float((before - frame.error).mean()))
    assert np.mean(where) > 0.05
    assert np.mean(where) > np.mean(everywhere)


@pytest.mark.parametrize("changes, message", [
    (dict(function="cone"), "No plane function 'cone' registered"),
    (dict(samplers=("direct", "direct")), "must not repeat a sampler"),
    (dict(samplers=("teleport",)), "No sampler 'teleport' registered"),
    (dict(samplers=()), "must list 1 to 4 samplers"),
    (dict(alpha=1.5), r"The 'alpha' parameter must be a float in \[0, 1\]. Got 1.5 instead."),
    (dict(samplers=("evolution",), batch_size=4, alpha=0.5), "needs a batch of at least 5 points. Got 4 instead."),
    (dict(direct_lr=0.0), r"The 'direct_lr' parameter must be a float in \(0, 10\]"),
    (dict(grid_size=5), r"The 'grid_size' parameter must be an int in \[11, 201\]. Got 5 instead."),
], ids=["function", "repeat", "sampler", "none", "alpha", "evolution-batch", "eta", "grid"])
def test_bad_settings_are_refused_with_what_was_expected(changes, message):
    with pytest.raises((ConfigError, RegistryError), match=message):
        Playground.create(PlaygroundConfig(**changes))


def test_every_registered_sampler_runs_in_the_playground():
    state = Playground.create(PlaygroundConfig(samplers=tuple(SAMPLERS.names())[:4]))
    state.step(2)
    state = Playground.create(PlaygroundConfig(samplers=tuple(SAMPLERS.names())[4:], de_generations=3))
    frames = state.step(2)
    assert all(f.epoch == 2 and len(f.points) == 100 for f in frames.values())


def test_bench_playground_prints_ms_per_step_for_every_sampler(capsys):
    from dfkd_core.cli import main

    assert main(["bench", "--playground", "--epochs", "2", "--warmup", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["playground"]
    assert set(result) == set(SAMPLERS.names())
    assert all(r["step_ms_median"] > 0 and r["figure_ms_median"] > 0 for r in result.values())


def test_bench_playground_prints_ms_per_frame_of_the_page(capsys):
    from dfkd_core.cli import main

    assert main(["bench", "--playground", "--epochs", "2", "--warmup", "1", "--json"]) == 0
    frame = json.loads(capsys.readouterr().out)["playground_frame"]
    assert frame["frame_ms_max"] >= frame["frame_ms_median"] > 0
    assert frame["frames_per_second"] == pytest.approx(1000 / frame["frame_ms_median"])


def test_canvas_rows_put_each_cell_on_its_grid_point_and_arrows_along_each_move():
    import base64
    import io

    from PIL import Image

    from dfkd_core.dashboard import playground_views as views

    state = Playground.create(PlaygroundConfig(samplers=("direct",), grid_size=11))
    frame = state.step(1)["direct"]
    frame = dataclasses.replace(frame, starts=np.array([[0.0, 0.0], [1.0, 1.0]], np.float32),
                                points=np.array([[1.0, 0.0], [1.0, 0.0]], np.float32))
    zmax = float(frame.error.max())
    data = views.canvas_data(frame, state.axes(), state.function.region.outline(), zmax)
    x1, x2 = state.axes()
    assert all(np.array_equal(a, b) for a, b in zip((x1, x2), plane_grid(11)[:2]))  # the grid's own axes
    (heat,) = data[data["layer"] == "heat"].itertuples()
    half = (x1[1] - x1[0]) / 2  # the image covers every cell: from the first's edge to the last's
    assert (heat.x, heat.x2, heat.y, heat.y2) == pytest.approx((x1[0] - half, x1[-1] + half, x2[0] - half, x2[-1] + half))
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(heat.url.split(",", 1)[1]))), float)
    px = views.CELL_PX
    assert image.shape == (11 * px, 11 * px)
    cells = image[px // 2::px, px // 2::px][::-1]  # one pixel per cell, rows back to x₂ upward
    assert np.allclose(cells, np.round(255 * (1 - np.clip(frame.error / zmax, 0, 1))), atol=0.5)  # white 0, black zmax
    assert sorted(data.loc[data["layer"] == "scale", "z"]) == [0.0, zmax]  # the legend's two ends
    assert data.loc[data["layer"] == "arrow", "angle"].round(6).tolist() == [90.0, 180.0]  # east, south
    assert (data["layer"] == "move").sum() == 2


# ------------------------------------------------------------------ the page
def start_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("pages/playground.py").run()
    assert not at.exception, at.exception
    return at


def canvases(at: AppTest) -> list[dict]:
    """Each Vega-Lite chart of the page: its spec and its rows (one table; a `layer` column says
    which layer draws a row)."""
    import pyarrow as pa

    return [{"spec": json.loads(chart.proto.spec), "data": pa.ipc.open_stream(chart.proto.data.data).read_pandas()}
            for chart in at.get("vega_lite_chart")]


def layers(chart: dict) -> set[str]:
    return set(chart["data"]["layer"])


def heat(chart: dict) -> list[float]:
    """The canvas's |T − S| greys, one per grid cell, read back from its heat map image."""
    import base64
    import io

    from PIL import Image

    from dfkd_core.dashboard.playground_views import CELL_PX

    url = chart["data"].loc[chart["data"]["layer"] == "heat", "url"].iloc[0]
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), float)
    return image[CELL_PX // 2::CELL_PX, CELL_PX // 2::CELL_PX].ravel().tolist()


def titles(at: AppTest) -> list[str]:
    return [m.value.strip("*") for m in at.markdown if " — epoch " in m.value]


def test_page_shows_controls_two_canvases_and_what_is_this():
    at = start_page()
    assert [e.value for e in at.error] == []
    assert {"pg_function", "pg_left", "pg_right"} <= {s.key for s in at.selectbox}
    assert {"pg_m", "pg_tau", "pg_alpha"} <= {s.key for s in at.slider}
    assert {"pg_eta", "pg_beta", "pg_gamma"} <= {s.key for s in at.select_slider}
    assert [b.label for b in at.button] == ["Step", "Play", "Reset"]
    assert "Figure 1" in at.expander[0].markdown[0].value
    figs = canvases(at)
    assert len(figs) == 3  # two canvases and the learning curves
    assert [layer["transform"][0]["filter"]["equal"] for layer in figs[0]["spec"]["layer"]][:3] == ["heat", "scale", "region"]
    assert len(heat(figs[0])) == PlaygroundConfig().grid_size ** 2 and {"heat", "region"} <= layers(figs[0])


def test_steps_move_the_slider_draw_arrows_and_measure_the_guarantees():
    at = start_page()
    for _ in range(3):
        at.button(key="pg_step").click().run()
    assert not at.exception, at.exception
    assert at.slider(key="pg_epoch").value == 3
    direct, generator = canvases(at)[:2]
    assert {"start", "move", "arrow"} <= layers(direct)  # x_g as arrow heads from where each point started
    assert "dot" in layers(generator) and "arrow" not in layers(generator)
    assert titles(at)[0] == "direct — epoch 3"
    labels = [m.label for m in at.metric]
    assert "(a) student loss, start → x_g" in labels and "(b) largest move" in labels
    assert "(a) student loss, random → x_g" in labels and "(b) largest ‖x_g‖" in labels
    assert all("holds" in str(m.proto.delta) for m in at.metric if m.label.startswith("(b)"))


def test_slider_goes_back_then_step_follows_the_newest_again():
    at = start_page()
    for _ in range(3):
        at.button(key="pg_step").click().run()
    heat_3 = heat(canvases(at)[0])
    spec_3 = canvases(at)[0]["spec"]
    at.slider(key="pg_epoch").set_value(1).run()
    assert titles(at)[0] == "direct — epoch 1"
    assert heat(canvases(at)[0]) != heat_3
    assert canvases(at)[0]["spec"] == spec_3  # only the data change: the browser updates the chart in place
    at.button(key="pg_step").click().run()
    assert at.slider(key="pg_epoch").value == 4


def test_epochs_per_step_runs_several_epochs_per_click():
    at = start_page()
    at.select_slider(key="pg_speed").set_value(5).run()
    at.button(key="pg_step").click().run()
    assert at.slider(key="pg_epoch").value == 5


def test_play_steps_while_playing_and_pause_stops():
    at = start_page()
    at.button(key="pg_play").click().run()
    assert at.button(key="pg_play").label == "Pause"
    assert at.slider(key="pg_epoch").value >= 1
    at.button(key="pg_play").click().run()
    assert at.button(key="pg_play").label == "Play"
    epoch = at.slider(key="pg_epoch").value
    at.run()
    assert at.slider(key="pg_epoch").value == epoch


def test_reset_and_changing_a_control_start_over():
    at = start_page()
    at.button(key="pg_step").click().run()
    at.button(key="pg_reset").click().run()
    assert not [s for s in at.slider if s.key == "pg_epoch"]
    at.button(key="pg_step").click().run()
    at.selectbox(key="pg_right").set_value("evolution").run()
    assert not at.exception, at.exception
    assert not [s for s in at.slider if s.key == "pg_epoch"]
    assert titles(at)[1] == "evolution — epoch 0"


def test_alpha_zero_shows_random_points_and_says_there_is_nothing_to_measure():
    at = start_page()
    at.slider(key="pg_alpha").set_value(0.0).run()
    at.button(key="pg_step").click().run()
    assert not at.exception and [m for m in at.metric] == []
    assert any("nothing to measure" in c.value for c in at.caption)
    data = canvases(at)[0]["data"]
    assert "random" in set(data["layer"]) and not {"arrow", "dot"} & set(data["layer"])
    assert (data["layer"] == "random").sum() == 100  # α = 0: 2m random points


def test_the_same_sampler_on_both_sides_shows_one_canvas():
    at = start_page()
    at.selectbox(key="pg_right").set_value("direct").run()
    assert not at.exception and [e.value for e in at.error] == []
    assert len(canvases(at)) == 2  # one canvas and the learning curves

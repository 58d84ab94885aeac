"""The user's own teachers: TorchScript, a state_dict of an nn.Sequential, a skops regressor,
an HTTP endpoint — checked against the user's model itself on raw inputs; never unpickled."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from user_helpers import FEATURES, RawReLUTeacher, ServedTeacher, fast_config, fitted_teacher, truth, write_csv, write_spec, write_torchscript

from dfkd_core.data.user import read_table, table_split
from dfkd_core.engine import run_distillation
from dfkd_core.engine.context import prepare_run
from dfkd_core.errors import DfkdError, ModelError
from dfkd_core.models.user_models import HttpModel, load_user_model, load_user_teacher, teacher_source_kind


@pytest.fixture
def csv(tmp_path):
    return write_csv(tmp_path / "plant.csv")


@pytest.fixture
def ts_teacher(tmp_path, csv):
    return write_torchscript(tmp_path / "T.pt", fitted_teacher(csv))


def _raw_rmse_over_std(model, split) -> float:
    """The reference: the user's model on the raw test rows, error divided by the target's std."""
    x = split.x_test.double().numpy() * np.array(split.extra["x_std"]) + np.array(split.extra["x_mean"])
    y = split.y_test.double().numpy() * split.y_std + split.y_mean
    with torch.no_grad():
        pred = model(torch.tensor(x, dtype=torch.float32)).reshape(-1).double().numpy()
    return float(np.sqrt(np.mean((pred - y) ** 2)) / split.y_std)


def test_torchscript_teacher_with_two_relu_layers_distills_with_every_gradient_and_random_sampler(csv, ts_teacher):
    cfg = fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y",
                      samplers=("direct", "generator", "gaussian", "sobol"))
    result = run_distillation(cfg)
    assert result.engine == "fused MLP"  # the students choose the form: the teacher is one callable (autograd here)
    assert [m.sampler for m in result.members] == ["direct", "generator", "gaussian", "sobol"]
    assert all(np.isfinite(m.test_rmse) for m in result.members)
    split = table_split(read_table(csv, "y"), 0)
    assert result.teacher_test_rmse == pytest.approx(_raw_rmse_over_std(torch.jit.load(str(ts_teacher)), split), rel=1e-4)


def test_teacher_returning_n_by_1_is_measured_like_one_returning_n(tmp_path, csv):
    module = fitted_teacher(csv, steps=50)
    flat = torch.jit.script(nn.Sequential(module, nn.Flatten(0)))
    write_torchscript(tmp_path / "col.pt", module)
    torch.jit.save(flat, str(tmp_path / "flat.pt"))
    split = table_split(read_table(csv, "y"), 0)
    (_, col, _, _), (_, flat_info, _, _) = (load_user_teacher(tmp_path / n, split) for n in ("col.pt", "flat.pt"))
    assert col.test_rmse == pytest.approx(flat_info.test_rmse, rel=1e-6)
    assert col.test_rmse == pytest.approx(_raw_rmse_over_std(module, split), rel=1e-4)


def test_the_teacher_sees_inputs_in_its_own_units(csv, ts_teacher):
    run = prepare_run(fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y"))
    z = run.split.x_test[:7]
    raw = z.double().numpy() * np.array(run.split.extra["x_std"]) + np.array(run.split.extra["x_mean"])
    with torch.no_grad():
        direct = torch.jit.load(str(ts_teacher))(torch.tensor(raw, dtype=torch.float32)).reshape(-1)
    expected = (direct - run.split.y_mean) / run.split.y_std
    assert torch.allclose(run.teacher.predict(z), expected, atol=1e-5)


def test_gradients_flow_through_a_torchscript_teacher_to_its_inputs(csv, ts_teacher):
    run = prepare_run(fast_config(teacher_file=str(ts_teacher), data_file=str(csv), target="y"))
    x = run.split.x_val[:5].clone().requires_grad_(True)
    run.teacher.predict(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("names", [None, ("encoder.first.w", "encoder.first.b", "mid.W", "mid.bias", "head.kernel", "head.b")],
                         ids=["sequential_keys", "any_key_names"])
def test_state_dict_of_a_sequential_is_rebuilt_from_its_tensors_in_order(tmp_path, names):
    torch.manual_seed(1)
    seq = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 1))
    state = seq.state_dict()
    if names:
        state = dict(zip(names, state.values()))
    torch.save(state, tmp_path / "sd.pt")
    kind, model = load_user_model(tmp_path / "sd.pt", activation="tanh")
    x = torch.randn(9, 4)
    assert kind == "state_dict"
    assert torch.allclose(model(x), seq(x), atol=1e-6)


def test_state_dict_teacher_distills_on_the_users_csv(tmp_path, csv):
    seq = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    torch.save(seq.state_dict(), tmp_path / "sd.pt")
    result = run_distillation(fast_config(teacher_file=str(tmp_path / "sd.pt"), teacher_activation="relu",
                                          data_file=str(csv), target="y", samplers=("direct",)))
    assert np.isfinite(result.members[0].test_rmse)


def _skops_model(tmp_path, csv):
    import skops.io as sio
    from sklearn.ensemble import RandomForestRegressor

    df = pd.read_csv(csv)
    model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(df[list(FEATURES)], df["y"].to_numpy())
    path = tmp_path / "forest.skops"
    sio.dump(model, path)
    return path, model


def test_skops_regressor_is_a_black_box_distilled_with_evolution(tmp_path, csv):
    path, model = _skops_model(tmp_path, csv)
    assert teacher_source_kind(path) == "skops"
    result = run_distillation(fast_config(teacher_file=str(path), data_file=str(csv), target="y", samplers=("evolution", "lhs")))
    assert result.members[0].teacher_queries > 0
    split = table_split(read_table(csv, "y"), 0)
    x = split.x_test.double().numpy() * np.array(split.extra["x_std"]) + np.array(split.extra["x_mean"])
    y = split.y_test.double().numpy() * split.y_std + split.y_mean
    expected = np.sqrt(np.mean((model.predict(pd.DataFrame(x, columns=list(FEATURES)).to_numpy()) - y) ** 2)) / split.y_std
    assert result.teacher_test_rmse == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("sampler", ["direct", "generator"])
def test_gradient_samplers_are_refused_for_a_skops_teacher_with_the_reason(tmp_path, csv, sampler):
    path, _ = _skops_model(tmp_path, csv)
    with pytest.raises(DfkdError, match=f"'{sampler}' sampler.*need the teacher's gradients.*black box.*evolution"):
        fast_config(teacher_file=str(path), data_file=str(csv), target="y", samplers=(sampler,)).validate()


def test_skops_file_holding_a_type_outside_the_allow_list_is_refused(tmp_path):
    import skops.io as sio

    path = tmp_path / "odd.skops"
    sio.dump({"model": pd.Timestamp("2020-01-01")}, path)
    with pytest.raises(ModelError, match=r"holds types that are never loaded .*pandas\.Timestamp"):
        load_user_model(path)


def test_http_teacher_on_localhost_is_queried_in_batches_and_counted(csv):
    with ServedTeacher() as served:
        result = run_distillation(fast_config(teacher_file=served.url, data_file=str(csv), target="y", samplers=("gaussian",)))
        assert served.handler.calls > 0
    split = table_split(read_table(csv, "y"), 0)
    x = split.x_test.double().numpy() * np.array(split.extra["x_std"]) + np.array(split.extra["x_mean"])
    y = split.y_test.double().numpy() * split.y_std + split.y_mean
    assert result.teacher_test_rmse == pytest.approx(np.sqrt(np.mean((truth(x) - y) ** 2)) / split.y_std, abs=1e-5)
    assert result.members[0].teacher_queries == 2 * 2 * 40  # epochs × batches × 2m points (α decreasing: m + m)


def test_http_teacher_that_times_out_fails_after_its_retries_with_a_clear_message():
    with ServedTeacher(delay=1.5) as served:
        model = HttpModel(served.url, timeout=0.2, retries=1)
        with pytest.raises(ModelError, match=r"failed after 2 tries \(timeout 0.2 s\): no answer within the timeout"):
            model(np.zeros((3, 4)))


def test_http_teacher_stops_at_its_query_budget():
    with ServedTeacher() as served:
        model = HttpModel(served.url, query_budget=10)
        model(np.zeros((8, 4)))
        with pytest.raises(ModelError, match="query budget of 10 points is spent"):
            model(np.zeros((3, 4)))


class WritesAFile:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('owned')",))


@pytest.mark.parametrize("writer", ["pickle", "torch_save"])
def test_a_pickle_disguised_as_pt_is_refused_and_its_code_never_runs(tmp_path, writer):
    marker = tmp_path / "written-by-the-pickle.txt"
    path = tmp_path / "teacher.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(WritesAFile(marker)))
    else:
        torch.save({"w": WritesAFile(marker)}, path)
    with pytest.raises(ModelError, match="pickled objects are refused, never loaded"):
        load_user_model(path)
    assert not marker.exists()


def test_a_teacher_taking_another_input_dimension_is_refused_before_training(tmp_path, csv):
    path = write_torchscript(tmp_path / "T3.pt", RawReLUTeacher(d=3))
    with pytest.raises(ModelError, match=r"expects 3 inputs, but the data has 4 features"):  # not the interpreter's text
        prepare_run(fast_config(teacher_file=str(path), data_file=str(csv), target="y"))


def test_an_input_spec_is_enough_to_check_a_teacher(tmp_path, ts_teacher):
    spec = write_spec(tmp_path / "spec.json")
    run = prepare_run(fast_config(teacher_file=str(ts_teacher), input_spec=str(spec), selection="synthetic"))
    assert run.split.extra["real_data"] is False and run.teacher.differentiable

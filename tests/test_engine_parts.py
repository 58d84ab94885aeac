"""α schedules, objective terms and presets, models, configs and teachers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error

from dfkd_core.config import PAPER_OBJECTIVES, PRESETS, DistillConfig, preset_config
from dfkd_core.errors import ConfigError, ModelError, RegistryError
from dfkd_core.models import DigitCNN, Generator, MLPRegressor, RBFNetwork, count_parameters
from dfkd_core.objectives import build_objective, log_cosh
from dfkd_core.schedules import parse_alpha
from dfkd_core.teachers import BlackBoxTeacher, evaluate, get_teacher
from dfkd_core.user_models import load_product_teacher_file as load_teacher_file

from engine_helpers import simplex_prior, tabular_split


@pytest.mark.parametrize("spec,epoch,expected", [
    ("decreasing", 0, 1 - 1 / 2000), ("decreasing", 999, 0.5), ("decreasing", 1999, 0.0),
    ("increasing", 0, 1 / 2000), ("increasing", 1999, 1.0),
    ("cosine", 0, 1.0), ("cosine", 1000, 0.5),
    ("0", 7, 0.0), ("1", 7, 1.0), ("constant:0.3", 1500, 0.3),
    ("custom:0:1,1000:0.5,2000:0", 500, 0.75), ("custom:0:1,1000:0.5,2000:0", 1500, 0.25),
], ids=lambda v: str(v))
def test_alpha_schedule_values_at_known_epochs(spec, epoch, expected):
    assert parse_alpha(spec)(epoch, 2000) == pytest.approx(expected)


@pytest.mark.parametrize("spec,match", [
    ("1.5", "must be a number in \\[0, 1\\]"), ("sideways", "No α schedule 'sideways' registered"),
    ("custom:0:1,x", "knots"), ("custom:0:2", "must lie in \\[0, 1\\]"),
], ids=["out-of-range", "unknown", "bad-knots", "knot-out-of-range"])
def test_bad_alpha_specs_are_rejected_with_a_message(spec, match):
    with pytest.raises((ConfigError, RegistryError), match=match):
        parse_alpha(spec)


def test_log_cosh_equals_the_naive_formula_where_that_is_finite():
    d = torch.linspace(-20, 20, 101, dtype=torch.float64)
    assert torch.allclose(log_cosh(d), torch.log(torch.cosh(d)))
    assert torch.isfinite(log_cosh(torch.tensor([1e4]))).all()


def test_eq5_objective_is_minus_disagreement_plus_norm_and_output_penalties():
    objective = build_objective(DistillConfig(objective=PAPER_OBJECTIVES["eq5"]))
    x = torch.tensor([[1.0, 2.0]])
    value = objective(x, torch.tensor([3.0]), torch.tensor([1.0]))
    assert value.item() == pytest.approx(-(3 - 1) ** 2 + 1e-5 * 5 + 1e-5 * 1)


def test_eq8_objective_uses_log_cosh_l1_and_distance_of_teacher_to_random_digit():
    objective = build_objective(DistillConfig(objective=PAPER_OBJECTIVES["eq8"], y_rand="digits"))
    x = torch.tensor([[0.5, -0.5]])
    value = objective(x, torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([7.0]))
    assert value.item() == pytest.approx(-1e-6 * math.log(math.cosh(2.0)) + 1e-6 * 1.0 + 1.0 * 16.0)
    draws = objective.draw_y_rand(1000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert set(draws.tolist()) == set(float(i) for i in range(10))


def test_eq9_objective_weights_disagreement_by_epsilon_and_target_distance_by_one_minus_epsilon():
    objective = build_objective(DistillConfig(objective=PAPER_OBJECTIVES["eq9"], y_rand="unit"))
    value = objective(torch.zeros(1, 3), torch.tensor([0.8]), torch.tensor([0.5]), torch.tensor([0.2]))
    assert value.item() == pytest.approx(-0.05 * 0.09 + 0.95 * 0.36)


def test_paper_tabular_preset_equals_the_papers_settings():
    cfg = preset_config("paper-tabular")
    assert (cfg.epochs, cfg.batch_size, cfg.batches_per_epoch) == (2000, 50, 10)
    assert (cfg.lr, cfg.weight_decay) == (1e-3, 1e-5)
    assert cfg.objective == (("neg_squared_discrepancy", 1.0), ("l2sq_input", 1e-5), ("student_sq", 1e-5))
    assert (cfg.direct_optimizer, cfg.direct_lr, cfg.direct_steps) == ("rmsprop", 0.1, 2)
    assert (cfg.generator_z_dim, cfg.generator_hidden) == (50, 500)


def test_paper_mnist_preset_equals_the_papers_settings():
    cfg = preset_config("paper-mnist")
    assert (cfg.epochs, cfg.student_loss) == (1000, "logcosh")
    assert cfg.objective == (("neg_logcosh_discrepancy", 1e-6), ("l1_input", 1e-6), ("teacher_to_random", 1.0))
    assert (cfg.direct_lr, cfg.direct_steps, cfg.generator_steps, cfg.y_rand) == (1e-3, 20, 20, "digits")


def test_paper_protein_preset_equals_the_papers_settings():
    cfg = preset_config("paper-protein")
    assert (cfg.objective, cfg.weight_decay) == ((("neg_squared_discrepancy", 0.05), ("teacher_to_random", 0.95)), 1e-6)
    assert (cfg.de_strategy, cfg.de_generations, cfg.y_rand, cfg.alphas) == ("best2bin", 25, "unit", ("decreasing",))


def test_every_preset_is_a_valid_config():
    for name in PRESETS:
        preset_config(name).validate()


@pytest.mark.parametrize("changes,match", [
    (dict(epochs=-3), "The 'epochs' parameter must be an int in \\[1, 1000000\\]. Got -3 instead."),
    (dict(lr=float("nan")), "'lr' parameter must be a float"),
    (dict(lr=0.0), "'lr' parameter must be a float in \\(0"),
    (dict(batch_size=0), "'batch_size'"),
    (dict(samplers=("magic",)), "No sampler 'magic' registered"),
    (dict(alphas=("2",)), "must be a number in \\[0, 1\\]"),
    (dict(selection="best"), "'selection' parameter must be one of"),
], ids=["negative-epochs", "nan-lr", "zero-lr", "zero-batch", "unknown-sampler", "alpha-2", "bad-selection"])
def test_absurd_hyperparameters_are_rejected_saying_what_was_expected(changes, match):
    with pytest.raises((ConfigError, RegistryError), match=match):
        DistillConfig(**changes).validate()


def test_config_round_trips_through_json_and_the_url_query():
    cfg = DistillConfig(dataset="cpusmall", samplers=("direct", "generator"), seeds=(1, 2), direct_lr=0.05)
    assert DistillConfig.from_json(cfg.to_json()) == cfg
    assert DistillConfig.from_query(cfg.to_query()) == cfg
    custom = cfg.replace(alphas=("custom:0:1,1000:0", "decreasing"))  # a spec that holds a comma
    assert custom.to_query()["alphas"] == "custom:0:1,1000:0;decreasing"
    assert DistillConfig.from_query(custom.to_query()) == custom


def test_unknown_config_keys_are_named_in_the_error():
    with pytest.raises(ConfigError, match="Unknown configuration key\\(s\\): warp_speed"):
        DistillConfig.from_dict({"warp_speed": 9})


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)], ids=["mnist", "digits"])
def test_digit_cnn_maps_images_to_one_positive_prediction_each(shape):
    model = DigitCNN(shape, filters=5)
    out = model(torch.rand(4, *shape))
    assert out.shape == (4,) and torch.all(out > 0)  # softplus output


def test_digit_cnn_channels_last_is_the_same_function_and_gradient(monkeypatch):
    """The layout is a speed choice only: the same weights give the same predictions and input
    gradients (float64) channels-first and channels-last, and its state_dict loads either way."""
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    outputs = []
    state = None
    for channels_last in (False, True):
        monkeypatch.setattr(DigitCNN, "channels_last", channels_last)
        torch.manual_seed(3)
        model = DigitCNN((1, 28, 28), filters=5).double().eval()
        if state is None:
            state = model.state_dict()
        model.load_state_dict(state)
        assert model.features[2].weight.is_contiguous(memory_format=model.memory_format)  # 5 input channels
        xi = x.clone().requires_grad_(True)
        y = model(xi)
        (g,) = torch.autograd.grad(y.sum(), xi)
        outputs.append((y.detach(), g))
    torch.testing.assert_close(outputs[0][0], outputs[1][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outputs[0][1], outputs[1][1], rtol=1e-10, atol=1e-12)


def test_student_cnn_is_smaller_than_teacher_cnn():
    assert count_parameters(DigitCNN((1, 28, 28), 5)) < count_parameters(DigitCNN((1, 28, 28), 10))


def test_generator_output_respects_the_simplex_prior():
    gen = Generator(simplex_prior(20), z_dim=50, hidden=500)
    x = gen(torch.randn(8, 50))
    assert torch.allclose(x.sum(1), torch.ones(8), atol=1e-5) and torch.all(x >= 0)


def test_rbf_network_predicts_one_value_per_point():
    net = RBFNetwork((20,), units=100, prior=simplex_prior(20))
    assert net(simplex_prior(20).sample(7)).shape == (7,)


def test_evaluate_matches_sklearn_metrics():
    x = torch.randn(300, 4)
    y = torch.randn(300)
    model = MLPRegressor((4,), 8)
    rmse, mae = evaluate(model, x, y, chunk=64)
    with torch.no_grad():
        pred = model(x).numpy()
    assert rmse == pytest.approx(math.sqrt(mean_squared_error(y.numpy(), pred)), rel=1e-5)
    assert mae == pytest.approx(mean_absolute_error(y.numpy(), pred), rel=1e-5)


def test_trained_teacher_is_cached_and_reused():
    split = tabular_split()
    teacher, info = get_teacher(split, "mlp32", "cpu")
    again, info2 = get_teacher(split, "mlp32", "cpu")
    assert not info.cached and info2.cached
    assert info2.test_rmse == pytest.approx(info.test_rmse)
    assert info.test_rmse < 0.8  # learned something on a standardized target
    assert all(not p.requires_grad for p in again.module.parameters())


def test_black_box_teacher_counts_its_queries_and_returns_no_gradient():
    teacher = BlackBoxTeacher(lambda x: x.sum(1))
    x = torch.randn(6, 3, requires_grad=True)
    y = teacher.predict(x)
    assert teacher.queries == 6 and not y.requires_grad


def test_a_file_that_is_not_a_model_is_refused_with_a_clear_message(tmp_path):
    bogus = tmp_path / "teacher.pt"
    bogus.write_text("this is not a model")
    with pytest.raises(ModelError, match="is not a TorchScript archive, a state_dict or a skops file"):
        load_teacher_file(bogus, tabular_split())


def test_fast_svr_predictor_equals_sklearns_predict():
    from sklearn.svm import SVR

    from dfkd_core.teachers import fast_svr_predict

    rng = np.random.default_rng(0)
    x, y = rng.random((300, 20)), rng.random(300)
    model = SVR(kernel="rbf", C=1.0, epsilon=0.05, gamma="scale").fit(x, y)
    probe = rng.random((77, 20))
    np.testing.assert_allclose(fast_svr_predict(model)(probe), model.predict(probe), rtol=1e-9, atol=1e-12)


def test_image_teachers_of_a_former_training_recipe_are_retrained_not_reused(monkeypatch):
    from dfkd_core import teachers
    from dfkd_core.data import load_split

    digits, table = load_split("digits", seed=0), tabular_split()
    before = teachers.cache_path(digits, "cnn10"), teachers.cache_path(table, "mlp32")
    monkeypatch.setattr(teachers, "IMAGE_TEACHER_RECIPE", "another-recipe")
    after = teachers.cache_path(digits, "cnn10"), teachers.cache_path(table, "mlp32")
    assert before[0] != after[0] and before[0].parent == after[0].parent
    assert before[1] == after[1]  # tabular teachers (Tables 3-4 caches) keep their key

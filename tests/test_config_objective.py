"""The synthetic-data objective as (term, weight) pairs: read the same from every door, any
registered term reachable, and stored runs / config files of the former six-field shape still
loading to the objective they ran with."""
from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from dfkd_core import dashboard
from dfkd_core.cli import build_parser, main
from dfkd_core.commands.distill import config_from_args
from dfkd_core.config import PAPER_OBJECTIVES, DistillConfig, objective_text, parse_config, preset_config
from dfkd_core.errors import ConfigError
from dfkd_core.synth.objectives import TERMS, Objective, build_objective
from dfkd_core.runs.runstore import RunStore

# DistillConfig().to_dict() at commit 310d879 (before the objective was a list of pairs), and the
# objective build_objective made of it then; the paper-mnist and paper-protein presets' fields likewise
OLD_DEFAULT = json.loads(
    '{"dataset": "friedman1", "split_seed": 0, "teacher": "auto", "student": "auto", "student_hidden": 50, '
    '"teacher_file": "", "teacher_activation": "", "teacher_timeout": 10.0, "teacher_query_budget": 0, "data_file": "", '
    '"target": "", "nan_policy": "refuse", "input_spec": "", "samplers": ["direct"], "alphas": ["decreasing"], '
    '"seeds": [0], "epochs": 2000, "batch_size": 50, "batches_per_epoch": 10, "lr": 0.001, "weight_decay": 1e-05, '
    '"student_loss": "mse", "objective": "eq5", "discrepancy": "mse", "epsilon": 1.0, "beta": 1e-05, '
    '"input_norm": "l2sq", "input_norm_scope": "sample", "gamma": 1e-05, "output_term": "student_sq", "y_rand": "none", '
    '"direct_optimizer": "rmsprop", "direct_lr": 0.1, "direct_steps": 2, "generator_z_dim": 50, "generator_hidden": 500, '
    '"generator_lr": 0.001, "generator_steps": 1, "generator_weight_decay": 1e-05, "de_strategy": "best2bin", '
    '"de_generations": 25, "de_mutation": 0.5, "de_recombination": 0.7, "eval_every": 1, '
    '"snapshot_epochs": [0, 50, 100, 500], "selection": "validation", "device": "auto", "engine": "auto", "preset": ""}')
OLD_MNIST = {**OLD_DEFAULT, "epochs": 1000, "student_loss": "logcosh", "objective": "eq8", "discrepancy": "logcosh",
             "epsilon": 1e-06, "beta": 1e-06, "input_norm": "l1", "gamma": 1.0, "output_term": "teacher_to_random",
             "y_rand": "digits", "direct_lr": 0.001, "direct_steps": 20, "generator_steps": 20, "preset": "paper-mnist"}
OLD_PROTEIN = {**OLD_DEFAULT, "epochs": 500, "weight_decay": 1e-06, "objective": "eq9", "epsilon": 0.05, "beta": 0.0,
               "gamma": 0.95, "output_term": "teacher_to_random", "y_rand": "unit", "preset": "paper-protein"}
OLD_CASES = {
    "default": (OLD_DEFAULT, Objective((("neg_squared_discrepancy", 1.0), ("l2sq_input", 1e-05), ("student_sq", 1e-05)), "none")),
    "paper-mnist": (OLD_MNIST, Objective((("neg_logcosh_discrepancy", 1e-06), ("l1_input", 1e-06),
                                          ("teacher_to_random", 1.0)), "digits")),
    "paper-protein": (OLD_PROTEIN, Objective((("neg_squared_discrepancy", 0.05), ("l2sq_input", 0.0),
                                              ("teacher_to_random", 0.95)), "unit")),
    # a hand-written old config file: missing fields took their defaults; y_rand 'none' with
    # teacher_to_random meant 'unit'
    "hand-written": ({"epsilon": "0.5", "output_term": "teacher_to_random", "objective": "custom"},
                     Objective((("neg_squared_discrepancy", 0.5), ("l2sq_input", 1e-05), ("teacher_to_random", 1e-05)), "unit")),
    "no-output-term": ({"input_norm": "l1", "beta": 0.01, "output_term": "none"},
                       Objective((("neg_squared_discrepancy", 1.0), ("l1_input", 0.01)), "none")),
}


# ---------------------------------------------------------------- stored runs and old config files
@pytest.mark.parametrize("old, objective", OLD_CASES.values(), ids=OLD_CASES)
def test_a_config_dict_of_the_former_shape_loads_to_the_same_objective(old, objective):
    cfg = DistillConfig.from_dict(old)
    assert build_objective(cfg) == objective
    assert parse_config(old) == cfg  # and it is a valid config, read by the one validation point


def test_a_stored_run_of_the_former_shape_loads_with_its_objective():
    store = RunStore()
    run_id = store.create_run(DistillConfig(epochs=3))
    with sqlite3.connect(store.db_path) as conn:  # what a store written before the change holds
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(OLD_MNIST), run_id))
    info = store.get_run(run_id)
    assert info.config is not None and info.config_dict == OLD_MNIST
    assert build_objective(info.config) == OLD_CASES["paper-mnist"][1]
    assert info.config.objective == PAPER_OBJECTIVES["eq8"] and info.config.preset == "paper-mnist"


def test_a_config_file_of_the_former_shape_runs_through_the_cli_flags(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"epsilon": 0.5, "input_norm": "l1", "epochs": 7}))
    cfg = config_from_args(build_parser("distill").parse_args(["distill", "--config", str(path)]))
    assert cfg.objective == (("neg_squared_discrepancy", 0.5), ("l1_input", 1e-05), ("student_sq", 1e-05))
    flagged = config_from_args(build_parser("distill").parse_args(
        ["distill", "--config", str(path), "--objective", "student_sq:1,l1_input:2"]))
    assert flagged.objective == (("student_sq", 1.0), ("l1_input", 2.0))  # the flag overrides the file's objective


# ---------------------------------------------------------------- one spelling, every door
def test_the_objective_reads_the_same_from_every_door(tmp_path):
    text = "neg_logcosh_discrepancy:0.5,l1_input:0.001,teacher_to_random:2"
    want = (("neg_logcosh_discrepancy", 0.5), ("l1_input", 0.001), ("teacher_to_random", 2.0))
    parse = build_parser("distill").parse_args
    pairs_file, object_file = tmp_path / "pairs.json", tmp_path / "object.json"
    pairs_file.write_text(json.dumps({"objective": [list(p) for p in want]}))  # as the run store holds it
    object_file.write_text(json.dumps({"objective": dict(want)}))
    doors = {
        "flag": config_from_args(parse(["distill", "--objective", text])),
        "flag-semicolons": config_from_args(parse(["distill", "--objective", text.replace(",", ";")])),
        "set": config_from_args(parse(["distill", "--set", f"objective={text}"])),
        "file-pairs": config_from_args(parse(["distill", "--config", str(pairs_file)])),
        "file-object": config_from_args(parse(["distill", "--config", str(object_file)])),
        "url": dashboard.config_from_query(dashboard.query_for(DistillConfig(objective=want)))[0],
        "form": dashboard.config_from_widgets({"objective": dashboard.objective_from_widgets(
            [n for n, _ in want], dict(want))}),
    }
    assert {door: cfg.objective for door, cfg in doors.items()} == {door: want for door in doors}


def test_a_url_carries_the_objective_as_text_and_reads_it_back_at_full_precision():
    cfg = DistillConfig(objective=(("neg_squared_discrepancy", 1 / 3), ("l2sq_input", 1e-05)))
    query = cfg.to_query()
    assert query == {"objective": "neg_squared_discrepancy:0.3333333333333333,l2sq_input:1e-05"}
    back, problems = dashboard.config_from_query(query)
    assert problems is None and back == cfg
    assert DistillConfig().to_query() == {}  # eq. 5, the default, is left out of the link
    assert objective_text(DistillConfig().objective) == "neg_squared_discrepancy:1,l2sq_input:1e-05,student_sq:1e-05"


@pytest.mark.parametrize("name", sorted(PAPER_OBJECTIVES))
def test_a_papers_equation_name_expands_to_its_pairs_and_is_stored_as_pairs(name):
    cfg = parse_config({"objective": name})
    assert cfg.objective == PAPER_OBJECTIVES[name]
    stored = json.loads(cfg.to_json())["objective"]
    assert stored == [list(p) for p in PAPER_OBJECTIVES[name]]
    assert DistillConfig.from_json(cfg.to_json()) == cfg


def test_the_presets_hold_the_papers_equations():
    assert preset_config("paper-tabular").objective == PAPER_OBJECTIVES["eq5"] == DistillConfig().objective
    mnist, protein = preset_config("paper-mnist"), preset_config("paper-protein")
    assert (mnist.objective, mnist.y_rand) == (PAPER_OBJECTIVES["eq8"], "digits")
    assert (protein.objective, protein.y_rand) == (PAPER_OBJECTIVES["eq9"], "unit")
    x, teacher, student, y_rand = torch.tensor([[0.5, -2.0]]), torch.tensor([0.8]), torch.tensor([0.5]), torch.tensor([0.2])
    # eq. 9: −ε(T − S)² + (1 − ε)(T − y_rand)², ε = 0.05
    assert build_objective(protein)(x, teacher, student, y_rand).item() == pytest.approx(-0.05 * 0.09 + 0.95 * 0.36)


def test_teacher_to_random_without_random_targets_draws_them_uniform_in_0_1():
    objective = build_objective(parse_config({"objective": "neg_squared_discrepancy:1,teacher_to_random:1"}))
    assert objective.y_rand == "unit"
    draws = objective.draw_y_rand(1000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert 0.0 <= draws.min() and draws.max() <= 1.0 and draws.std() > 0.2


BAD_OBJECTIVES = [
    ({"objective": "l2sq_input:1,student_sq:nan"},
     "The weight of 'student_sq' in the 'objective' parameter must be a float in [0, 1e+06]. Got nan instead."),
    ({"objective": "student_sq:2e6"}, "The weight of 'student_sq' in the 'objective' parameter must be a float in [0, 1e+06]. Got 2000000.0"),
    ({"objective": {"student_sq": True}}, "The weight of 'student_sq' in the 'objective' parameter must be a number. Got True instead."),
    ({"objective": [["student_sq", 1, 2]]}, "The 'objective' parameter must be (term, weight) pairs as"),
    ({"objective": 5}, "The 'objective' parameter must be (term, weight) pairs as"),
    ({"objective": ""}, "The 'objective' parameter must hold at least one (term, weight) pair. Got () instead."),
    ({"objective": "eq7"}, "The 'objective' parameter must be (term, weight) pairs as 'neg_squared_discrepancy:1,l2sq_input:1e-05' "
                           "or one of 'eq3', 'eq5', 'eq8', 'eq9'. Got 'eq7' instead."),
    ({"discrepancy": "huber"}, "The 'discrepancy' parameter must be one of 'mse', 'logcosh'. Got 'huber' instead."),
    ({"epsilon": "much"}, "The 'epsilon' parameter must be a number. Got 'much' instead."),
    ({"beta": -1}, "The weight of 'l2sq_input' in the 'objective' parameter must be a float in [0, 1e+06]. Got -1.0 instead."),
    ({"gamma": 1, "objective": "student_sq:1"}, "The 'gamma' parameter(s) must be given as term:weight pairs of the 'objective' parameter"),
]


@pytest.mark.parametrize("data, message", BAD_OBJECTIVES, ids=[
    "weight-nan", "weight-above-range", "weight-bool", "triple", "number", "empty", "unknown-equation",
    "legacy-discrepancy-unknown", "legacy-epsilon-word", "legacy-beta-negative", "legacy-beside-pairs"])
def test_a_bad_objective_is_refused_saying_what_was_expected(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in str(caught.value)


# ---------------------------------------------------------------- a term registered anywhere
@pytest.fixture
def registered_term():
    """A term registered by the test, as a user's plugin would: |x|₁ / 2, counting its calls."""
    calls = []

    def half_l1_input(t):
        """|x|₁ / 2  (a test's own term)."""
        calls.append(t.x.shape[0])
        return t.x.flatten(1).abs().sum(1) / 2

    TERMS.add("half_l1_input", half_l1_input)
    yield calls
    TERMS._items.pop("half_l1_input")  # the registry is process-wide; other tests must not see it


def test_a_term_registered_outside_config_is_listed_and_trained_with_from_the_cli(capsys, registered_term):
    assert main(["distill", "--help"]) == 0
    assert "half_l1_input: |x|₁ / 2" in " ".join(capsys.readouterr().out.split())  # --objective's help lists TERMS
    code = main(["distill", "--dataset", "toy2d", "--epochs", "1", "--sampler", "direct", "--quiet", "--json",
                 "--objective", "neg_squared_discrepancy:1,half_l1_input:0.01", "--set", "batch_size=8",
                 "--set", "batches_per_epoch=2", "--set", "snapshot_epochs=0", "--student-hidden", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["sampler"] == "direct"
    assert registered_term and all(n == 8 for n in registered_term)  # the direct sampler's batches went through it
    assert "half_l1_input" in dashboard.term_names() and "|x|₁ / 2" in dashboard.term_help()


def test_every_form_help_is_its_config_fields_metadata_not_its_source():
    """Help texts live in each DistillConfig field's metadata (issue 23), not in comments parsed from the source."""
    import dataclasses
    import inspect

    for f in dataclasses.fields(DistillConfig):
        assert f.metadata.get("help"), f.name
        assert dashboard.field_spec(f.name).help.startswith(f.metadata["help"]), f.name
    sources = "".join(inspect.getsource(m) for m in (dashboard.forms, dashboard.views, dashboard.texts))
    assert "getsource" not in sources

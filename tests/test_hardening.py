"""Bad input from every door (CLI flags, `--set`, config files, URLs, the form) and runs too
large for the machine: one message line per problem, exit 2, never a traceback, and the
runs already stored are all still there (SQLite integrity ok, count unchanged)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dfkd_core import dashboard
from dfkd_core.runs import jobs
from dfkd_core import limits
from dfkd_core.cli import main
from dfkd_core.config import DistillConfig, parse_config, preset_config, split_alphas
from dfkd_core.errors import ConfigError, ConfigErrors, DfkdError
from dfkd_core.runs.runstore import RunStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store() -> RunStore:
    """A run store holding two runs, one finished: what no bad input may lose."""
    s = RunStore()
    s.create_run(DistillConfig(epochs=3), title="kept queued")
    done = s.create_run(DistillConfig(epochs=4, seeds=(1,)), title="kept done")
    s.set_status(done, "done")
    return s


def assert_store_kept(store: RunStore, count: int = 2) -> None:
    assert store.integrity_check() == "ok"
    assert len(store.list_runs()) == count


def run_cli(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, err.strip().splitlines(), out


def assert_one_error_line(code: int, lines: list[str], match: str) -> None:
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    assert match in lines[0], lines[0]


# ---------------------------------------------------------------- the CLI: distill's flags
DISTILL_CASES = [
    (["--seed", "2**70"], "The 'seeds' parameter must be an integer (digits only). Got '2**70' instead."),
    (["--seed", str(2**70)], "The 'seeds' parameter must hold ints in [0, 4294967295]. Got 1180591620717411303424 instead."),
    (["--seed", "-1"], "The 'seeds' parameter must hold ints in [0, 4294967295]. Got -1 instead."),
    (["--seed", "1.5"], "The 'seeds' parameter must be an integer (digits only). Got '1.5' instead."),
    (["--seed", "0,0"], "The 'seeds' parameter must not repeat a value. Got 0 more than once."),
    (["--split-seed", "-1"], "The 'split_seed' parameter must be an int in [0, 4294967295]. Got -1 instead."),
    (["--split-seed", str(2**32)], "The 'split_seed' parameter must be an int in [0, 4294967295]. Got 4294967296 instead."),
    (["--epochs", "0"], "The 'epochs' parameter must be an int in [1, 1000000]. Got 0 instead."),
    (["--epochs", "1e3"], "The 'epochs' parameter must be an integer (digits only). Got '1e3' instead."),
    (["--epochs", "inf"], "The 'epochs' parameter must be an integer (digits only). Got 'inf' instead."),
    (["--epochs", ""], "The 'epochs' parameter must be an integer (digits only). Got '' instead."),
    (["--student-hidden", "-5"], "The 'student_hidden' parameter must be an int in [1, 10000]. Got -5 instead."),
    (["--device", "bogus"], "The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'. Got 'bogus' instead."),
    (["--dataset", "nope"], "No dataset 'nope' registered"),
    (["--sampler", "magic"], "No sampler 'magic' registered"),
    (["--alpha", "2"], "The constant α must be a number in [0, 1]. Got '2' instead."),
    (["--alpha", "custom:0:1,1000:nan"], "Every α of a custom schedule must lie in [0, 1]. Got nan instead."),
    (["--alpha", "decreasing:5"], "The decreasing α schedule takes no argument. Got 'decreasing:5' instead."),
    (["--set", "lr=nan"], "The 'lr' parameter must be a float in (0, 10]. Got nan instead."),
    (["--set", "lr=true"], "The 'lr' parameter must be a number. Got 'true' instead."),
    (["--set", "objective=neg_squared_discrepancy:1,l2sq_input:-inf"],
     "The weight of 'l2sq_input' in the 'objective' parameter must be a float in [0, 1e+06]. Got -inf instead."),
    (["--objective", "neg_squared_discrepancy:1,warp_drive:2"],
     "The 'objective' parameter must name registered terms (neg_squared_discrepancy, neg_logcosh_discrepancy, l2sq_input, "
     "l1_input, student_sq, teacher_to_random). Got 'warp_drive' instead."),
    (["--objective", "neg_squared_discrepancy:lots"],
     "The weight of 'neg_squared_discrepancy' in the 'objective' parameter must be a number. Got 'lots' instead."),
    (["--objective", "student_sq:1,l1_input:1,student_sq:2"],
     "The 'objective' parameter must not repeat a term. Got student_sq more than once."),
    (["--objective", "neg_squared_discrepancy"],
     "The 'objective' parameter must be (term, weight) pairs as 'neg_squared_discrepancy:1,l2sq_input:1e-05' or one of "
     "'eq3', 'eq5', 'eq8', 'eq9'. Got 'neg_squared_discrepancy' instead."),
    (["--objective", ",".join(f"t{i}:1" for i in range(11))], "The 'objective' parameter must have at most 10 terms. Got 11 instead."),
    (["--preset", "paper-mnist", "--set", "epsilon=0.5"], "The 'epsilon' parameter(s) must be given as term:weight pairs of the 'objective' parameter"),
    (["--set", "batch_size=0"], "The 'batch_size' parameter must be an int in [1, 10000]. Got 0 instead."),
    (["--set", "generator_hidden=100000"], "The 'generator_hidden' parameter must be an int in [1, 10000]. Got 100000 instead."),
    (["--set", "generator_z_dim=100000"], "The 'generator_z_dim' parameter must be an int in [1, 10000]. Got 100000 instead."),
    (["--set", "teacher=mlp99999999"], "The 'teacher' parameter must have 1 to 10000 units ('mlp1' … 'mlp10000'). Got 'mlp99999999' instead."),
    (["--set", "teacher=cnn9999"], "The 'teacher' parameter must have 1 to 256 filters"),
    (["--set", "student=rbf0"], "The 'student' parameter must have 1 to 10000 units"),
    (["--set", "student=svr"], "The 'student' parameter must be one of 'mlp<units>', 'cnn<filters>', 'rbf<units>', 'svr'."),
    (["--set", "teacher=cnn5"], "The 'teacher' parameter can be a CNN only for image data. Got 'cnn5' for 'friedman1' (tabular)."),
    (["--set", "de_strategy=best9"], "The 'de_strategy' parameter must be one of"),
    (["--set", "preset=nope"], "The 'preset' parameter must be '' or one of"),
    (["--set", "warp_speed=9"], "Unknown configuration key(s): warp_speed."),
    (["--set", "novalue"], "--set takes KEY=VALUE. Got 'novalue' instead."),
    (["--set", "dataset=" + "x" * 5000], "The 'dataset' parameter must be at most 1000 characters."),
    (["--set", "snapshot_epochs=-1"], "The 'snapshot_epochs' parameter must hold ints in [0, 1000000]. Got -1 instead."),
    (["--seed", ",".join(map(str, range(11))), "--sampler", "direct,gaussian,lhs,sobol,halton",
      "--alpha", "0,1,decreasing,increasing,cosine,0.5,0.25,0.75,0.1,0.9,0.2,0.3,0.4,0.6,0.7,0.8,0.05,0.15,0.35"],
     "A comparison may hold at most 1000 students (samplers × alphas × seeds). Got 1045 instead."),
    (["--epochs", "1000000", "--set", "batch_size=10000", "--set", "batches_per_epoch=10000"],
     "floating-point operations (epochs=1000000, 1 student (samplers × alphas × seeds), batch_size=10000"),
    (["--set", "teacher=mlp10000", "--set", "batch_size=10000", "--seed", "0,1,2,3,4,5,6,7,8,9"],
     "of memory, above the budget of 4 GB (DFKD_MAX_MEMORY_GB): batch_size=10000 × 10 students (activations) needs"),
    (["--set", "batch_size=3", "--sampler", "evolution"],
     "The 'batch_size' parameter must be at least 5 with the 'evolution' sampler (its population). Got 3 instead."),
    (["--set", "engine=fused"], "The 'engine' parameter must be one of"),
    (["--config", "/nonexistent/cfg.json"], "Cannot read the config file '/nonexistent/cfg.json': No such file or directory."),
    (["--epochs"], "argument --epochs: expected one argument"),
    (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
]


@pytest.mark.parametrize("args, message", DISTILL_CASES, ids=[
    "seed-power-expression", "seed-2-70", "seed-negative", "seed-fraction", "seed-repeated", "split-seed-negative",
    "split-seed-2-32", "epochs-zero", "epochs-1e3", "epochs-inf", "epochs-empty", "student-hidden-negative",
    "device-bogus", "dataset-unknown", "sampler-unknown", "alpha-above-1", "alpha-custom-nan", "alpha-argument",
    "lr-nan", "lr-true", "objective-weight-minus-inf", "objective-term-unknown",
    "objective-weight-not-a-number", "objective-term-repeated", "objective-term-without-weight", "objective-too-many-terms",
    "legacy-field-beside-objective", "batch-zero", "generator-hidden-huge", "generator-z-huge", "teacher-mlp-huge",
    "teacher-cnn-huge", "student-rbf-zero", "student-svr", "teacher-cnn-on-tabular", "de-strategy-unknown",
    "preset-unknown", "unknown-key", "set-without-value", "dataset-5000-chars", "snapshot-negative", "too-many-students",
    "work-budget", "memory-budget", "evolution-batch-3", "engine-unknown", "config-file-missing", "flag-without-value", "flag-unknown"])
def test_distill_refuses_a_bad_flag_in_one_line_and_keeps_the_stored_runs(capsys, store, args, message):
    code, lines, _ = run_cli(capsys, "distill", "--quiet", *args)
    assert_one_error_line(code, lines, message)
    assert_store_kept(store)


def test_every_problem_of_the_flags_is_reported_at_once_one_line_each(capsys, store):
    code, lines, _ = run_cli(capsys, "distill", "--epochs", "1e3", "--seed", "1.5", "--split-seed", "x",
                             "--set", "lr=nan", "--set", "generator_hidden=100000", "--device", "bogus")
    assert code == 2 and len(lines) == 6 and all(line.startswith("error: The '") for line in lines)
    assert {line.split("'")[1] for line in lines} == {"epochs", "seeds", "split_seed", "lr", "generator_hidden", "device"}
    assert_store_kept(store)


# ---------------------------------------------------------------- the CLI: the other commands
OTHER_CASES = [
    (["datasets", "--load", "friedman1", "--seed", "-1"], "The 'seed' parameter must be an int in [0, 4294967295]. Got -1 instead."),
    (["datasets", "--load", "friedman1", "--seed", "nan"], "The 'seed' parameter must be an integer (digits only). Got 'nan' instead."),
    (["datasets", "--load", "nope"], "No dataset 'nope' registered"),
    (["bench", "--ks", "0"], "The 'ks' parameter must be an int in [1, 1000]. Got 0 instead."),
    (["bench", "--ks", "1,x"], "The 'ks' parameter must be an integer (digits only). Got 'x' instead."),
    (["bench", "--ks", ","], "The 'ks' and 'datasets' parameters must name at least one each."),
    (["bench", "--threads", "0"], "The 'threads' parameter must be an int in [1, 1024]. Got 0 instead."),
    (["bench", "--epochs", "-3"], "The 'epochs' parameter must be an int in [1, 100000]. Got -3 instead."),
    (["bench", "--datasets", "nope"], "No dataset 'nope' registered"),
    (["bench", "--device", "bogus"], "The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'."),
    (["teach", "--dataset", "friedman1", "--split-seed", "-1"], "The 'split_seed' parameter must be an int in [0, 4294967295]."),
    (["teach", "--dataset", "friedman1", "--arch", "mlp99999999"], "The 'arch' parameter must have 1 to 10000 units"),
    (["teach", "--dataset", "friedman1", "--device", "cuda:x"], "The 'device' parameter must be 'auto', 'cpu', 'cuda'"),
    (["reproduce", "--table", "3", "--seeds", "0"], "The 'seeds' parameter must be an int in [1, 1000]. Got 0 instead."),
    (["reproduce", "--table", "3", "--seeds", "1e3"], "The 'seeds' parameter must be an integer (digits only). Got '1e3' instead."),
    (["reproduce", "--table", "3", "--workers", "0"], "The 'workers' parameter must be an int in [1,"),
    (["reproduce", "--table", "9"], "The 'table' parameter must be one of 3, 4, 5, 6. Got '9' instead."),
    (["runs", "--delete", "no-such-run"], "No run 'no-such-run' in the run store"),
    (["no-such-command"], "argument COMMAND: invalid choice: 'no-such-command'"),
]


@pytest.mark.parametrize("args, message", OTHER_CASES, ids=[
    "datasets-seed-negative", "datasets-seed-nan", "datasets-unknown", "bench-ks-zero", "bench-ks-letter", "bench-ks-empty",
    "bench-threads-zero", "bench-epochs-negative", "bench-dataset-unknown", "bench-device-bogus", "teach-split-seed-negative",
    "teach-arch-huge", "teach-device-bad-index", "reproduce-seeds-zero", "reproduce-seeds-1e3", "reproduce-workers-zero",
    "reproduce-table-9", "runs-delete-unknown", "unknown-command"])
def test_every_command_refuses_an_absurd_value_in_one_line(capsys, store, args, message):
    code, lines, _ = run_cli(capsys, *args)
    assert_one_error_line(code, lines, message)
    assert_store_kept(store)


def test_an_unexpected_exception_is_one_internal_error_line_with_exit_1(capsys, monkeypatch, store):
    import dfkd_core.commands.runs as runs_command

    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(runs_command, "run", broken)
    code, lines, _ = run_cli(capsys, "runs")
    assert code == 1
    assert lines == ["error: internal error: ZeroDivisionError: division by zero second line (set DFKD_DEBUG=1 for the traceback)"]
    monkeypatch.setenv("DFKD_DEBUG", "1")
    code = main(["runs"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: internal error:")
    assert_store_kept(store)


@pytest.mark.parametrize("env, value, message", [
    ("DFKD_THREADS", "0", "The DFKD_THREADS environment variable must be an int in [1, 1024]. Got '0' instead."),
    ("DFKD_DEVICE", "tpu", "The DFKD_DEVICE environment variable must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'. Got 'tpu' instead."),
    ("DFKD_MAX_MEMORY_GB", "lots", "The 'DFKD_MAX_MEMORY_GB' environment variable must be a positive number. Got 'lots' instead."),
    ("DFKD_MAX_WORK", "-1", "The 'DFKD_MAX_WORK' environment variable must be a positive number. Got '-1' instead."),
], ids=["threads-zero", "device-tpu", "memory-budget-words", "work-budget-negative"])
def test_a_bad_environment_variable_is_named_in_one_line(capsys, monkeypatch, store, env, value, message):
    monkeypatch.setenv(env, value)
    code, lines, _ = run_cli(capsys, "distill", "--epochs", "1", "--quiet")
    assert_one_error_line(code, lines, message)
    assert_store_kept(store)


# ---------------------------------------------------------------- config files
FILE_CASES = [
    ({"seeds": [1.5]}, "The 'seeds' parameter must be an integer (digits only). Got 1.5 instead."),
    ({"epochs": True}, "The 'epochs' parameter must be an integer (digits only). Got True instead."),
    ({"epochs": 1e3}, "The 'epochs' parameter must be an integer (digits only). Got 1000.0 instead."),
    ({"lr": False}, "The 'lr' parameter must be a number. Got False instead."),
    ({"lr": "fast"}, "The 'lr' parameter must be a number. Got 'fast' instead."),
    ({"teacher": 500}, "The 'teacher' parameter must be a string. Got 500 instead."),
    ({"samplers": {"direct": 1}}, "The 'samplers' parameter must be a list or a comma-separated string."),
    ({"seeds": [10**30]}, "The 'seeds' parameter must hold ints in [0, 4294967295]. Got a 31-digit number instead."),
    ({"warp_speed": 9}, "Unknown configuration key(s): warp_speed."),
    ([1, 2], "The configuration must be a JSON object. Got list instead."),
    ("{not json", "The configuration must be a JSON object. Got invalid JSON"),
    ("[" * 100_000, "The configuration must be a JSON object. Got JSON nested too deeply."),
    ("{" + " " * 1_000_001 + "}", "must be at most 1000000 bytes."),
]


@pytest.mark.parametrize("content, message", FILE_CASES, ids=[
    "seed-fraction", "epochs-true", "epochs-float", "lr-false", "lr-word", "teacher-number", "samplers-object",
    "seed-huge", "unknown-key", "not-an-object", "invalid-json", "nested-too-deep", "too-large"])
def test_a_config_file_is_read_strictly(capsys, tmp_path, store, content, message):
    path = tmp_path / "cfg.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    code, lines, _ = run_cli(capsys, "distill", "--config", str(path), "--quiet")
    assert_one_error_line(code, lines, message)
    assert_store_kept(store)


def test_a_config_file_with_several_bad_values_reports_them_all(capsys, tmp_path, store):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"seeds": [1.5], "epochs": True, "split_seed": -1, "alphas": ["custom:0:1,1000:2"]}))
    code, lines, _ = run_cli(capsys, "distill", "--config", str(path))
    assert code == 2 and len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    assert "Every α of a custom schedule must lie in [0, 1]. Got 2.0 instead." in lines[-1]
    assert_store_kept(store)


# ---------------------------------------------------------------- custom α: one spelling everywhere
def test_the_help_examples_custom_alpha_reads_the_same_from_every_door(tmp_path):
    from dfkd_core.cli import build_parser
    from dfkd_core.commands.distill import config_from_args

    spec = "custom:0:1,1000:0"
    want = (spec, "decreasing")
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"alphas": list(want)}))
    parse = build_parser("distill").parse_args
    from_flag = config_from_args(parse(["distill", "--alpha", f"{spec},decreasing"]))
    from_flag_semicolon = config_from_args(parse(["distill", "--alpha", f"{spec};decreasing"]))
    from_set = config_from_args(parse(["distill", "--set", f"alphas={spec},decreasing"]))
    from_file = config_from_args(parse(["distill", "--config", str(path)]))
    url_cfg, url_error = dashboard.config_from_query(dashboard.query_for(DistillConfig(alphas=want)))
    form_cfg = dashboard.config_from_widgets({"alphas": list(want)})
    assert url_error is None
    for cfg in (from_flag, from_flag_semicolon, from_set, from_file, url_cfg, form_cfg):
        assert cfg.alphas == want
    assert split_alphas("custom:0:1, 500:0.5,1000:0,0.3,constant:0.2") == ["custom:0:1,500:0.5,1000:0", "0.3", "constant:0.2"]


# ---------------------------------------------------------------- URLs
def test_a_link_with_several_bad_values_reports_every_one_and_keeps_the_good_ones():
    cfg, message = dashboard.config_from_query({"seeds": str(10**30), "split_seed": "-1", "epochs": "true",
                                                "lr": "0.002", "generator_hidden": "100000", "run": "abc"})
    assert cfg.lr == 0.002 and cfg.epochs == DistillConfig().epochs  # unreadable → default; readable kept
    problems = message.splitlines()[1:]
    assert [p.split("'")[1] for p in problems] == ["epochs", "split_seed", "generator_hidden", "seeds"]
    assert all(p.startswith("- The '") and p.endswith("instead.") for p in problems)


URL_CASES = [
    ({"teacher": "mlp99999999"}, "The 'teacher' parameter must have 1 to 10000 units"),
    ({"seeds": str(10**30)}, "The 'seeds' parameter must hold ints in [0, 4294967295]. Got a 31-digit number instead."),
    ({"split_seed": "-1"}, "The 'split_seed' parameter must be an int in [0, 4294967295]. Got -1 instead."),
    ({"lr": "0"}, "The 'lr' parameter must be a float in (0, 10]. Got 0.0 instead."),
    ({"device": "bogus"}, "The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'."),
    ({"batch_size": "10000", "seeds": ",".join(map(str, range(20))), "teacher": "mlp10000"}, "(DFKD_MAX_MEMORY_GB)"),
]


@pytest.mark.parametrize("query, message", URL_CASES, ids=[
    "teacher-huge", "seeds-10-30", "split-seed-negative", "lr-zero", "device-bogus", "memory-budget"])
def test_a_bad_link_is_refused_before_a_run_is_created(store, query, message):
    cfg, shown = dashboard.config_from_query(query)
    assert message in shown and "Traceback" not in shown
    for submit in (lambda: dashboard.submit(dashboard.config_from_widgets(dashboard.widget_values(cfg))),
                   lambda: jobs.submit(cfg, store)):
        with pytest.raises(ConfigError) as caught:
            submit()
        assert message in str(caught.value)
    assert_store_kept(store)


# ---------------------------------------------------------------- resource limits
@pytest.mark.parametrize("arch, shape", [("mlp500", (10,)), ("mlp7", (784,)), ("cnn10", (1, 28, 28)), ("cnn5", (1, 8, 8)),
                                         ("rbf100", (20,))], ids=["mlp500", "mlp7-mnist", "cnn10-mnist", "cnn5-digits", "rbf100"])
def test_the_parameter_count_of_the_estimate_is_the_built_models(arch, shape):
    from dfkd_core.models.networks import DigitCNN, MLPRegressor, RBFNetwork, count_parameters

    kind, n = limits.parse_arch(arch)
    model = {"mlp": MLPRegressor, "cnn": DigitCNN, "rbf": RBFNetwork}[kind](shape, n)
    assert limits.model_cost(arch, shape).params == count_parameters(model)


def test_the_generators_parameter_count_is_the_built_generators():
    import torch

    from dfkd_core.data.priors import Prior
    from dfkd_core.models.networks import Generator, count_parameters

    zeros, ones = torch.zeros(10), torch.ones(10)
    prior = Prior("gaussian", zeros, ones, zeros - 4, ones * 4)
    assert limits.generator_cost(50, 500, 10).params == count_parameters(Generator(prior, 50, 500))


def test_the_papers_settings_fit_the_default_budget():
    for name, dataset in (("paper-tabular", "indoorloc"), ("paper-mnist", "mnist"), ("paper-protein", "protein")):
        cfg = preset_config(name, dataset=dataset, samplers=("direct", "generator"), seeds=(0, 1, 2, 3, 4))
        est = limits.check_budget(cfg)
        assert est.memory_bytes < 4e9 and est.work < 1e16


def test_the_budget_follows_its_environment_variables_and_names_the_setting(monkeypatch):
    cfg = DistillConfig(samplers=("generator",), generator_hidden=10_000, generator_z_dim=10_000)
    limits.check_budget(cfg)
    monkeypatch.setenv("DFKD_MAX_MEMORY_GB", "1")
    with pytest.raises(ConfigErrors, match=r"above the budget of 1 GB \(DFKD_MAX_MEMORY_GB\): generator_hidden=10000, "
                                           r"generator_z_dim=10000 × 1 generators needs ~1.2 GB"):
        cfg.validate()
    monkeypatch.setenv("DFKD_MAX_MEMORY_GB", "4")
    monkeypatch.setenv("DFKD_MAX_WORK", "1e9")
    with pytest.raises(ConfigErrors, match=r"epochs=2000, 1 student .* above the budget of 1e\+09 \(DFKD_MAX_WORK\)"):
        cfg.validate()


def test_the_teach_command_refuses_a_teacher_above_the_memory_budget(capsys, monkeypatch, store):
    monkeypatch.setenv("DFKD_MAX_MEMORY_GB", "0.01")
    code, lines, _ = run_cli(capsys, "teach", "--dataset", "mnist", "--arch", "mlp10000")
    assert_one_error_line(code, lines, "arch=mlp10000 needs ~0.126 GB of memory, above the budget of 0.01 GB (DFKD_MAX_MEMORY_GB)")
    assert_store_kept(store)


def test_a_widgets_form_is_read_by_the_same_rules_as_a_link():
    values = dashboard.widget_values(DistillConfig())
    assert dashboard.config_from_widgets(values) == DistillConfig()
    with pytest.raises(ConfigErrors) as caught:
        dashboard.config_from_widgets({**values, "seeds": "1.5,2", "epochs": True, "lr": "nan"})
    assert [p.split("'")[1] for p in caught.value.problems] == ["seeds", "epochs", "lr"]
    assert parse_config({"seeds": "3", "epochs": "12"}) == DistillConfig(seeds=(3,), epochs=12)


# ---------------------------------------------------------------- the real exit path
@pytest.mark.parametrize("args, message", [
    (["distill", "--set", "teacher=mlp99999999", "--epochs", "2"], "The 'teacher' parameter must have 1 to 10000 units"),
    (["distill", "--seed", "2**70"], "The 'seeds' parameter must be an integer (digits only)."),
    (["distill", "--device", "bogus"], "The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'."),
    (["datasets", "--load", "friedman1", "--seed", "-1"], "The 'seed' parameter must be an int in [0, 4294967295]."),
    (["bench", "--ks", "0"], "The 'ks' parameter must be an int in [1, 1000]. Got 0 instead."),
], ids=["teacher-huge", "seed-expression", "device-bogus", "datasets-seed-negative", "bench-ks-zero"])
def test_the_real_command_exits_2_with_one_line(store, args, message):
    proc = subprocess.run([sys.executable, "-m", "dfkd_core", *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert_store_kept(store)


def test_dfkd_error_is_what_every_refusal_raises():
    for bad in ({"epochs": "x"}, {"teacher": "mlp0"}, {"dataset": "nope"}):
        with pytest.raises(DfkdError):
            parse_config(bad)

"""torch.compile for the generic stack form (engine.compiled): the DFKD_COMPILE policy, eager as
the fallback when compiling fails, and the compiled form against the plain loop in float64."""
from __future__ import annotations

import functools
import logging

import pytest
import torch

from dfkd_core.config import DistillConfig
from dfkd_core.engine import compiled
from dfkd_core.engine.compiled import AUTO_MIN_STEPS, MaybeCompiled, compile_mode, should_compile
from dfkd_core.engine.loop import train_members
from dfkd_core.engine.stacked import ModuleStack
from dfkd_core.errors import ConfigError
from test_batched import assert_same_events, make_run, run_both

TINY = DistillConfig(samplers=("direct", "generator"), alphas=("decreasing",), seeds=(0, 1), epochs=1,
                     batch_size=8, batches_per_epoch=2, generator_hidden=16)


@pytest.fixture(autouse=True)
def own_inductor_cache(monkeypatch):
    """Each test compiles into its own DFKD_HOME/inductor-cache (compiled.use_inductor_cache sets
    TORCHINDUCTOR_CACHE_DIR; monkeypatch removes it again afterwards)."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)


def add_one(x: torch.Tensor) -> torch.Tensor:
    return x + 1


def test_compile_mode_is_auto_unless_dfkd_compile_says_otherwise(monkeypatch):
    monkeypatch.delenv("DFKD_COMPILE", raising=False)
    assert compile_mode() == "auto"
    monkeypatch.setenv("DFKD_COMPILE", " OFF ")
    assert compile_mode() == "off"
    assert compile_mode("on") == "on"


@pytest.mark.parametrize("env, mode, match", [
    ("sometimes", None, r"The DFKD_COMPILE environment variable must be one of 'auto', 'on', 'off'\. Got 'sometimes'"),
    ("auto", "yes", r"The 'compile' parameter must be one of 'auto', 'on', 'off'\. Got 'yes' instead\."),
], ids=["environment", "parameter"])
def test_an_unknown_compile_mode_is_a_config_error(monkeypatch, env, mode, match):
    monkeypatch.setenv("DFKD_COMPILE", env)
    with pytest.raises(ConfigError, match=match):
        compile_mode(mode)


@pytest.mark.parametrize("steps, family, device, mode, expected", [
    (AUTO_MIN_STEPS, "cnn", "cpu", "auto", True),
    (AUTO_MIN_STEPS - 1, "cnn", "cpu", "auto", False),
    (10 * AUTO_MIN_STEPS, "mlp", "cpu", "auto", False),
    (10 * AUTO_MIN_STEPS, "cnn", "cuda", "auto", False),
    (10 * AUTO_MIN_STEPS, "cnn", "cpu", "off", False),
    (1, "mlp", "cuda", "on", True),
], ids=["long-cnn", "short-cnn", "mlp", "unmeasured-device", "off", "on"])
def test_auto_compiles_only_long_cpu_runs_of_the_families_where_it_pays(monkeypatch, steps, family, device, mode,
                                                                        expected):
    monkeypatch.setattr(compiled, "AUTO_FAMILIES", ("cnn",))  # none pays today (see compiled.AUTO_FAMILIES)
    assert should_compile(steps, family, device, mode) is expected


def test_auto_compiles_none_of_the_measured_runs():
    assert not any(should_compile(10**6, family, "cpu", "auto") for family in ("mlp", "cnn", "rbf"))


@pytest.mark.parametrize("mode", ["off", "auto"], ids=["off", "auto-short-mlp-run"])
def test_the_generic_stack_is_built_eagerly_when_dfkd_compile_says_so(monkeypatch, mode):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(fn) or fn)
    monkeypatch.setenv("DFKD_COMPILE", mode)
    stack = ModuleStack(make_run(TINY), TINY.members())
    assert calls == []
    assert not stack.train_loss.is_compiled and not stack.group_forward.is_compiled


def test_a_failing_torch_compile_leaves_the_function_eager_with_one_warning(monkeypatch, caplog):
    def no_compiler(fn, **kw):
        raise RuntimeError("Compiler: /nonexistent/c++ not found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        step = MaybeCompiled(add_one, True, "test step")
        assert not step.is_compiled
        assert step(torch.zeros(2)).tolist() == [1.0, 1.0]
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile of the test step failed (RuntimeError: Compiler: /nonexistent/c++ not found); running it eagerly"]


def test_a_compiled_function_failing_on_its_first_call_runs_eagerly_from_then_on(monkeypatch, caplog):
    attempts = []

    def unsupported(x):
        attempts.append(x)
        raise NotImplementedError("an operation inductor cannot lower")

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: unsupported)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        step = MaybeCompiled(add_one, True, "test step")
        assert step.is_compiled
        assert [step(torch.zeros(1)).item() for _ in range(3)] == [1.0, 1.0, 1.0]
    assert len(attempts) == 1 and not step.is_compiled
    assert len(caplog.records) == 1 and "NotImplementedError" in caplog.records[0].getMessage()


def compiled_form(built: list, run, members, emit, should_stop, start):
    """The engine's loop with ONE generic stack of every member, compiled (DFKD_COMPILE=on)."""
    def build(run_, members_):
        built.append(ModuleStack(run_, members_, compile="on"))
        return built[-1]

    return train_members(run, members, emit, should_stop, start, [(build, list(range(len(members))))])[:2]


def test_the_compiled_generic_form_equals_the_plain_loop_in_float64():
    built: list = []
    ref, bat = run_both(TINY, form=functools.partial(compiled_form, built))
    assert built[0].train_loss.is_compiled and built[0].group_forward.is_compiled  # no fallback happened
    assert_same_events(ref, bat)  # how long the compile takes is bench --compile's business, not a test's


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_run_without_a_c_compiler_falls_back_to_eager_with_the_same_results(monkeypatch, caplog):
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("/nonexistent/c++",))
    torch._dynamo.reset()  # no kernels compiled by an earlier test in this process
    built: list = []
    inductor_log, inductor = Records(), logging.getLogger("torch._inductor")
    inductor.addHandler(inductor_log)
    try:
        with caplog.at_level(logging.WARNING, logger=compiled.__name__):
            ref, bat = run_both(TINY, form=functools.partial(compiled_form, built))
    finally:
        inductor.removeHandler(inductor_log)
        torch._dynamo.reset()
    assert not built[0].train_loss.is_compiled
    assert [r.getMessage()[:36] for r in caplog.records] == ["torch.compile of the samplers' stude",
                                                            "torch.compile of the student step fa"]
    assert "InvalidCxxCompiler" in caplog.records[0].getMessage()
    # inductor's own dump of the code it could not build (dozens of lines) is kept quiet
    assert [r.getMessage()[:40] for r in inductor_log.records if r.levelno >= logging.WARNING] == []
    assert_same_events(ref, bat)

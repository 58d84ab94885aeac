"""torch.compile (inductor) for the generic stack form, by policy: DFKD_COMPILE=auto|on|off picks
eager or compiled per function, eager stays the fallback when compiling fails, and
`time_compiled` measures both side by side (the numbers behind the 'auto' threshold)."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Callable, Iterator

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

COMPILE_MODES = ("auto", "on", "off")
# 'auto' compiles the students of these families (models.MODELS keys) in runs of at least
# AUTO_MIN_STEPS training steps (epochs × n_s). One thread on a CPU (time_compiled, docs/compile.md):
# the digits CNN (K = 3) trains 1.11× faster compiled, 0.43 s saved per epoch of 10 steps, for a
# cold compile of ~90 s (~3 s with inductor's cache warm): ~2000 steps repay a cold compile, and
# short interactive runs stay eager. The MLP students gain nothing measurable (their step is the
# teacher's: the tanh of its 500 units), so they are not compiled unless DFKD_COMPILE=on.
AUTO_FAMILIES = ("cnn",)
AUTO_MIN_STEPS = 2000
CACHE_FOLDER = "inductor-cache"  # under DFKD_HOME, unless TORCHINDUCTOR_CACHE_DIR is set


def compile_mode(mode: str | None = None) -> str:
    """`mode`, or DFKD_COMPILE (default 'auto'), checked."""
    raw = os.environ.get("DFKD_COMPILE", "auto") if mode is None else mode
    value = raw.strip().lower() or "auto"
    if value not in COMPILE_MODES:
        where = "DFKD_COMPILE environment variable" if mode is None else "'compile' parameter"
        raise ConfigError(f"The {where} must be one of {', '.join(map(repr, COMPILE_MODES))}. Got {raw!r} instead.")
    return value


def use_inductor_cache() -> None:
    """Point inductor's on-disk cache at DFKD_HOME/inductor-cache (unless TORCHINDUCTOR_CACHE_DIR
    says otherwise), so a later run of the same shapes loads its kernels instead of compiling them."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return
    from ..paths import home_dir

    try:
        folder = home_dir() / CACHE_FOLDER
        folder.mkdir(exist_ok=True)
    except (ConfigError, OSError):
        return  # inductor's default cache (under the temp folder) does
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)


@contextlib.contextmanager
def quiet_inductor() -> Iterator[None]:
    """Inductor's own error log off: a failed compile (say, without a C compiler) logs the code it
    could not build, dozens of lines; MaybeCompiled says it in one."""
    logger = logging.getLogger("torch._inductor")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


class MaybeCompiled:
    """`fn`, run compiled when `compile` is set: the first failure of the compiled function (no C
    compiler, an operation inductor cannot handle) logs one warning and the call, and every later
    one, runs `fn` eagerly. `fn` must be free of side effects, so a failed call can be repeated."""

    def __init__(self, fn: Callable, compile: bool, name: str) -> None:
        self.fn, self.name = fn, name
        self.compiled = None
        if compile:
            use_inductor_cache()
            try:
                self.compiled = torch.compile(fn, dynamic=False)
            except Exception as exc:  # noqa: BLE001 - any failure to compile means eager
                self._give_up(exc)

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    def _give_up(self, exc: Exception) -> None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        log.warning("torch.compile of the %s failed (%s: %s); running it eagerly", self.name, type(exc).__name__, first)
        self.compiled = None

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                with quiet_inductor():
                    return self.compiled(*args)
            except Exception as exc:  # noqa: BLE001 - eager repeats the call; a real error raises again there
                self._give_up(exc)
        return self.fn(*args)


def should_compile(steps: int, family: str, mode: str | None = None) -> bool:
    """Whether a run of `steps` training steps of students of `family` ('mlp', 'cnn', ...)
    compiles: 'on' always, 'off' never, 'auto' for AUTO_FAMILIES from AUTO_MIN_STEPS on."""
    mode = compile_mode(mode)
    return mode == "on" or (mode == "auto" and family in AUTO_FAMILIES and steps >= AUTO_MIN_STEPS)


def maybe_compile(fn: Callable, *, steps: int, family: str, name: str, mode: str | None = None) -> MaybeCompiled:
    """`fn` compiled when should_compile(steps, family, mode), else eager; either way behind MaybeCompiled."""
    return MaybeCompiled(fn, should_compile(steps, family, mode), name)


# ---------------------------------------------------------------------- measurement
TIMING_CASES = {  # name: (dataset, preset, samplers, seeds → K)
    "cpusmall K=1": ("cpusmall", "paper-tabular", ("direct",), (0,)),
    "cpusmall K=10": ("cpusmall", "paper-tabular", ("direct",), tuple(range(10))),
    "digits CNN K=3": ("digits", "paper-mnist", ("gaussian", "generator", "direct"), (0,)),
}


def timing_run(dataset: str, preset: str, samplers: tuple[str, ...], seeds: tuple[int, ...], data_dir=None):
    """(RunContext, members) of a preset run with α decreasing, student 50, on the CPU, with a
    randomly initialised teacher of the paper's shape (the loop's cost does not depend on its weights)."""
    from ..config import preset_config
    from ..data import load_split
    from ..engine.context import SYNTHETIC_PROBE_SIZE, RunContext
    from ..objectives import build_objective
    from ..teachers import TeacherInfo, TorchTeacher, build_model, default_teacher_arch

    device = torch.device("cpu")
    cfg = preset_config(preset, dataset=dataset, samplers=samplers, alphas=("decreasing",), seeds=seeds,
                        student_hidden=50, device="cpu")
    split = load_split(dataset, seed=cfg.split_seed, data_dir=data_dir)
    arch = default_teacher_arch(split)
    teacher = TorchTeacher(build_model(arch, split, torch.Generator().manual_seed(12345)), arch[:3])
    prior = split.prior.to(device)
    probe_x = prior.sample(SYNTHETIC_PROBE_SIZE, torch.Generator().manual_seed(123_457))
    with torch.no_grad():
        probe_t = teacher.predict(probe_x)
    teacher.queries = 0
    run = RunContext(cfg, split, device, teacher, TeacherInfo(arch, float("nan"), float("nan"), float("nan"), False, 0.0),
                     build_objective(cfg), split.x_val, split.y_val, split.x_test, split.y_test, probe_x, probe_t,
                     frozenset([cfg.epochs - 1]))
    return run, cfg.members()


def time_compiled(cases: tuple[str, ...] = tuple(TIMING_CASES), epochs: int = 20, data_dir=None,
                  say: Callable[[str], None] = print) -> list[dict]:
    """Seconds per epoch of the generic stack form, eager and compiled, side by side in this process
    (epochs alternate between the two, so a change in the machine's load falls on both), after one
    warm-up epoch each, without validation; and the compile time — the compiled form's first epoch
    minus an eager one — with a cold inductor cache (a fresh folder) and with it warm (dynamo's
    in-memory caches reset, the same folder). One row per case of TIMING_CASES."""
    import tempfile

    import torch._dynamo

    from .stacked import ModuleStack

    rows = []
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    try:
        for name in cases:
            with tempfile.TemporaryDirectory(prefix="dfkd-inductor-") as cache:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
                torch._dynamo.reset()
                run, members = timing_run(*TIMING_CASES[name], data_dir=data_dir)

                def epoch_seconds(stack, epoch: int) -> float:
                    start = time.perf_counter()
                    stack.run_epoch(epoch, validate=False)
                    return time.perf_counter() - start

                eager, compiled = ModuleStack(run, members, "off"), ModuleStack(run, members, "on")
                first_eager = epoch_seconds(eager, 0)
                first_compiled = epoch_seconds(compiled, 0)
                assert compiled.train_loss.is_compiled, "the compiled form fell back to eager"
                epoch_seconds(eager, 1)
                epoch_seconds(compiled, 1)
                spent = [0.0, 0.0]
                for epoch in range(2, 2 + epochs):
                    spent[0] += epoch_seconds(eager, epoch)
                    spent[1] += epoch_seconds(compiled, epoch)
                per_eager, per_compiled = spent[0] / epochs, spent[1] / epochs
                torch._dynamo.reset()
                again = ModuleStack(run, members, "on")
                warm = epoch_seconds(again, 0) - first_eager
                row = dict(case=name, K=len(members), steps_per_epoch=run.cfg.batches_per_epoch,
                           eager_s_per_epoch=per_eager, compiled_s_per_epoch=per_compiled,
                           speedup=per_eager / per_compiled, cold_compile_s=first_compiled - first_eager,
                           warm_compile_s=warm, fell_back=not again.train_loss.is_compiled)
                say("{case:16s} K={K:<3d} eager {eager_s_per_epoch:.4f} s/epoch, compiled {compiled_s_per_epoch:.4f} "
                    "s/epoch (x{speedup:.2f}); compile cold {cold_compile_s:.1f} s, warm cache {warm_compile_s:.1f} s"
                    .format(**row))
                rows.append(row)
    finally:
        if saved is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved
        torch._dynamo.reset()
    return rows


if __name__ == "__main__":  # python -m dfkd_core.engine.compiled [epochs] [case ...]
    import sys

    torch.set_num_threads(1)
    time_compiled(tuple(sys.argv[2:]) or tuple(TIMING_CASES), int(sys.argv[1]) if len(sys.argv) > 1 else 20)

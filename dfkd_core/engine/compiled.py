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
# AUTO_MIN_STEPS training steps (epochs × n_s), on a CPU. None qualifies: measured on one CPU
# thread (time_compiled; docs/compile.md) compilation speeds up the student's own parts (MLP
# step ×1.34, CNN samplers' calls ×1.17) but an epoch is mostly the teacher's work, so whole
# epochs gain 2–7 %, inside the shared box's noise, for 10–160 s of cold compilation (2–7 s with
# inductor's cache warm). A family enters here when a measurement shows a clear margin; the
# threshold is where a ~5 % gain on a ~3.5 s CNN epoch repays a ~90 s cold compile.
AUTO_FAMILIES: tuple[str, ...] = ()
AUTO_MIN_STEPS = 5000
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
                # fallback_random: dropout draws the numbers eager draws, so a seed gives the same run either way
                self.compiled = torch.compile(fn, dynamic=False, options={"fallback_random": True})
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


def should_compile(steps: int, family: str, device: str = "cpu", mode: str | None = None) -> bool:
    """Whether a run of `steps` training steps of students of `family` ('mlp', 'cnn', ...) on
    `device` ('cpu', 'cuda', ...) compiles: 'on' always, 'off' never, 'auto' on a CPU (the only
    device measured) for AUTO_FAMILIES from AUTO_MIN_STEPS on."""
    mode = compile_mode(mode)
    if mode != "auto":
        return mode == "on"
    return device == "cpu" and family in AUTO_FAMILIES and steps >= AUTO_MIN_STEPS


def maybe_compile(fn: Callable, *, steps: int, family: str, device: str, name: str,
                  mode: str | None = None) -> MaybeCompiled:
    """`fn` compiled when should_compile(...) says so, else eager; either way behind MaybeCompiled."""
    return MaybeCompiled(fn, should_compile(steps, family, device, mode), name)


# ---------------------------------------------------------------------- measurement
TIMING_CASES = {  # name: (dataset, preset, samplers, seeds → K); α decreasing, student 50
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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # layers the init generator does not reach draw from the global stream
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


VARIANTS = ("eager", "step", "sampler", "both")  # what is compiled: nothing, the student step, the samplers' calls, both


def time_compiled(cases: tuple[str, ...] = tuple(TIMING_CASES), epochs: int = 10, data_dir=None,
                  say: Callable[[str], None] = print) -> list[dict]:
    """Seconds per epoch of the generic stack form with nothing compiled ('eager'), only the student
    step, only the samplers' student calls, or both, side by side in this process: after one warm-up
    epoch each, `epochs` rounds of one epoch of every variant in turn (so a change in the machine's
    load falls on all alike), without validation; best and median epoch per variant. And the compile
    time — the first epoch of 'both' minus an eager one — with a cold inductor cache (a fresh folder)
    and warm (dynamo's in-memory caches reset, the same folder). One row per case of TIMING_CASES."""
    import statistics
    import tempfile

    import torch._dynamo

    from .stacked import ModuleStack

    def epoch_seconds(stack, epoch: int) -> float:
        start = time.perf_counter()
        stack.run_epoch(epoch, validate=False)
        return time.perf_counter() - start

    def variant(run, members, which: str):
        stack = ModuleStack(run, members, "off" if which == "eager" else "on")
        if which == "step":
            stack.group_forward = MaybeCompiled(stack.group_forward.fn, False, stack.group_forward.name)
        if which == "sampler":
            stack.train_loss = MaybeCompiled(stack.train_loss.fn, False, stack.train_loss.name)
        return stack

    rows = []
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    try:
        for name in cases:
            with tempfile.TemporaryDirectory(prefix="dfkd-inductor-") as cache:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
                torch._dynamo.reset()
                run, members = timing_run(*TIMING_CASES[name], data_dir=data_dir)
                stacks = {which: variant(run, members, which) for which in ("eager", "both")}
                first_eager = epoch_seconds(stacks["eager"], 0)
                cold = epoch_seconds(stacks["both"], 0) - first_eager
                torch._dynamo.reset()
                warm_stack = variant(run, members, "both")
                warm = epoch_seconds(warm_stack, 0) - first_eager
                stacks.update({which: variant(run, members, which) for which in ("step", "sampler")})
                for which in ("step", "sampler"):
                    epoch_seconds(stacks[which], 0)
                times: dict[str, list[float]] = {which: [] for which in VARIANTS}
                for epoch in range(1, 1 + epochs):
                    for which in VARIANTS:
                        times[which].append(epoch_seconds(stacks[which], epoch))
                compiled_ok = all(stacks[w].train_loss.is_compiled for w in ("step", "both")) and \
                    all(stacks[w].group_forward.is_compiled for w in ("sampler", "both")) and warm_stack.train_loss.is_compiled
                row = dict(case=name, K=len(members), steps_per_epoch=run.cfg.batches_per_epoch, epochs=epochs,
                           cold_compile_s=cold, warm_compile_s=warm, fell_back=not compiled_ok)
                for which in VARIANTS:
                    row[f"{which}_best_s"] = min(times[which])
                    row[f"{which}_median_s"] = statistics.median(times[which])
                say(f"{name:15s} s/epoch best (median): " + ", ".join(
                    f"{w} {row[w + '_best_s']:.4f} ({row[w + '_median_s']:.4f})" for w in VARIANTS)
                    + f"; compile cold {cold:.1f} s, warm cache {warm:.1f} s" + (" FELL BACK" if not compiled_ok else ""))
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
    time_compiled(tuple(sys.argv[2:]) or tuple(TIMING_CASES), int(sys.argv[1]) if len(sys.argv) > 1 else 10)

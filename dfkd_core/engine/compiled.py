"""torch.compile (inductor) for the generic stack form, by policy: DFKD_COMPILE=auto|on|off picks
eager or compiled per function, and eager stays the fallback when compiling fails
(experiments.compile_timing measures both: the numbers behind 'auto')."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

COMPILE_MODES = ("auto", "on", "off")
# 'auto' compiles the students of these families (models.MODELS keys) in runs of at least
# AUTO_MIN_STEPS training steps (epochs × n_s), on a CPU. None qualifies: measured on one CPU
# thread (experiments.compile_timing; docs/compile.md), whole epochs of the MLP (K = 1, 10) and
# the digits CNN (K = 3) come out 10 % slower to 3 % faster compiled, inside the shared box's
# noise (an epoch is mostly the teacher's work), for 10–160 s of cold compilation (1–7 s with
# inductor's cache warm). A family enters here when a measurement shows a clear margin; the
# threshold is where a ~5 % gain on a ~3 s CNN epoch would repay a ~60–90 s cold compile.
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

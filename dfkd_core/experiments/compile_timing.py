"""Seconds per epoch of the generic stack form eager and through torch.compile, side by side in one
process, and the compile time cold and with inductor's cache warm (docs/compile.md; the numbers
behind engine.compiled's 'auto'). `python -m dfkd_core.experiments.compile_timing [epochs] [case ...]`."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Callable

import torch
import torch._dynamo

from ..config import preset_config
from ..engine.compiled import MaybeCompiled
from ..engine.loop import train_members
from ..engine.stacked import ModuleStack
from ..events import EpochMetrics
from .bench import make_run

TIMING_CASES = {  # name: (dataset, preset, samplers, seeds → K); α decreasing, student 50
    "cpusmall K=1": ("cpusmall", "paper-tabular", ("direct",), (0,)),
    "cpusmall K=10": ("cpusmall", "paper-tabular", ("direct",), tuple(range(10))),
    "digits CNN K=3": ("digits", "paper-mnist", ("gaussian", "generator", "direct"), (0,)),
}


def timing_run(dataset: str, preset: str, samplers: tuple[str, ...], seeds: tuple[int, ...]):
    """(RunContext, members) of a one-epoch preset run with α decreasing, student 50, on the CPU, with a
    randomly initialised teacher of the paper's shape (bench.make_run: the cost does not depend on its weights)."""
    cfg = preset_config(preset, dataset=dataset, samplers=samplers, alphas=("decreasing",), seeds=seeds,
                        student_hidden=50, device="cpu", epochs=1)  # the loop is driven one epoch at a time
    run, _ = make_run(cfg, torch.device("cpu"), "random")
    return run, cfg.members()


VARIANTS = ("eager", "step", "sampler", "both")  # what is compiled: nothing, the student step, the samplers' calls, both


def time_compiled(cases: tuple[str, ...] = tuple(TIMING_CASES), epochs: int = 10,
                  say: Callable[[str], None] = print) -> list[dict]:
    """Seconds per epoch of the generic stack form with nothing compiled ('eager'), only the student
    step, only the samplers' student calls, or both, side by side in this process: after one warm-up
    epoch each, `epochs` rounds of one epoch of every variant in turn (so a change in the machine's
    load falls on all alike), each through the engine's loop as a one-epoch run (validation and
    snapshot included, alike for all); best and median epoch per variant. And the compile
    time — the first epoch of 'both' minus an eager one — with a cold inductor cache (a fresh folder)
    and warm (dynamo's in-memory caches reset, the same folder). One row per case of TIMING_CASES."""
    def epoch_seconds(stack: ModuleStack) -> float:
        """One more epoch of `stack` through the engine's loop (validated, as a run's epoch 0 is)."""
        seconds = []

        def on_event(event) -> None:
            if isinstance(event, EpochMetrics) and event.member == stack.members[0].key:
                seconds.append(event.seconds)

        train_members(stack.run, stack.members, on_event, None, time.perf_counter(),
                      [(lambda run_, members_: stack, list(range(stack.K)))])
        return seconds[0]

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
                run, members = timing_run(*TIMING_CASES[name])
                stacks = {which: variant(run, members, which) for which in ("eager", "both")}
                first_eager = epoch_seconds(stacks["eager"])
                cold = epoch_seconds(stacks["both"]) - first_eager
                torch._dynamo.reset()
                warm_stack = variant(run, members, "both")
                warm = epoch_seconds(warm_stack) - first_eager
                stacks.update({which: variant(run, members, which) for which in ("step", "sampler")})
                for which in ("step", "sampler"):
                    epoch_seconds(stacks[which])
                times: dict[str, list[float]] = {which: [] for which in VARIANTS}
                for _ in range(epochs):
                    for which in VARIANTS:
                        times[which].append(epoch_seconds(stacks[which]))
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


if __name__ == "__main__":
    import sys

    torch.set_num_threads(1)
    time_compiled(tuple(sys.argv[2:]) or tuple(TIMING_CASES), int(sys.argv[1]) if len(sys.argv) > 1 else 10)

"""The one epoch loop of Algorithm 1, for every front end (dashboard workers, the CLI,
`reproduce`, `bench`): prepare the run, build the stacked students (one stack form per run,
see plan_stacks), train epoch by epoch with the evaluation cadence, snapshots and stop
requests, emit the events, return the result."""
from __future__ import annotations

import time
from typing import Callable

import torch

from ..config import DistillConfig, Member
from ..device import describe_device
from ..events import DistillResult, EpochMetrics, EventCallback, MemberResult, RunStarted
from .context import EpochNumbers, RunContext, StopRequested, prepare_run
from .fused_mlp import FusedMLPStack, engine_parts, supports
from .stacked import ModuleStack


def plan_stacks(run: RunContext, members: list[Member]) -> list[tuple[type, list[int]]]:
    """(stack form, caller's member indices) per stacked model. The paper's MLPs with the
    samplers and objective terms the hand-written kernels know take the fused MLP form (its
    gradients by hand win on a CPU: `bench` measures both), split on a CPU into one model per
    fast-path sampler group; every other run — the MNIST CNN, RBF students, black-box and user
    teachers, evolution, any new sampler or term — is ONE generic stack of all its members.
    cfg.engine 'generic' sends every run to the generic form."""
    if run.cfg.engine != "generic" and supports(run, members):
        return [(FusedMLPStack, part) for part in engine_parts(run, members)]
    return [(ModuleStack, list(range(len(members))))]


def train_members(run: RunContext, members: list[Member], emit: EventCallback,
                  should_stop: Callable[[], bool] | None, start: float,
                  stacks: list[tuple[type, list[int]]] | None = None) -> tuple[list[MemberResult], bool, str]:
    """THE epoch loop: per epoch every stack trains n_s steps (and validates every eval_every
    epochs and on the last); then EpochMetrics and Snapshot events in the caller's member order;
    at the end one MemberResult each. Returns (results, cancelled, form)."""
    cfg = run.cfg
    plan = stacks or plan_stacks(run, members)
    built = [(form(run, [members[i] for i in part]), part) for form, part in plan]
    for stack, _ in built:
        stack.should_stop = should_stop  # a form with long epochs also checks between batches
    forms = " + ".join(sorted({stack.form for stack, _ in built}))
    last_epoch, cancelled = -1, False
    for epoch in range(cfg.epochs):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        validate = epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1
        numbers: dict[int, tuple[EpochNumbers, int]] = {}
        try:
            for stack, part in built:
                out = stack.run_epoch(epoch, validate)
                for local, orig in enumerate(part):
                    numbers[orig] = (out, local)
        except StopRequested:  # stopped inside the epoch: it is not logged, the run ends as after the last one
            cancelled = True
            break
        seconds = time.perf_counter() - start
        for i, member in enumerate(members):
            out, j = numbers[i]
            emit(EpochMetrics(member.key, epoch, out.val_rmse[j], out.val_mae[j], out.loss_xg[j], out.loss_xp[j],
                              out.alphas[j], seconds))
            if out.snapshots[j] is not None:
                emit(out.snapshots[j])
        last_epoch = epoch
    results: list = [None] * len(members)
    if last_epoch >= 0:
        for stack, part in built:
            for local, result in enumerate(stack.finish(last_epoch)):
                results[part[local]] = result
        for result in results:
            emit(result)
    return [r for r in results if r is not None], cancelled, forms


def run_distillation(cfg: DistillConfig, *, on_event: EventCallback | None = None,
                     should_stop: Callable[[], bool] | None = None, data_dir=None,
                     device: torch.device | None = None, run: RunContext | None = None) -> DistillResult:
    """Train every student of `cfg.members()` side by side; emit TeacherProgress (while a
    teacher trains first), RunStarted, EpochMetrics (per student per epoch), Snapshot (at
    snapshot epochs) and MemberResult events.
    `run`: a RunContext prepare_run(cfg) made already (the CLI keeps it to export the students)."""
    emit = on_event or (lambda event: None)
    start = time.perf_counter()
    run = run or prepare_run(cfg, data_dir=data_dir, device=device, teacher_progress=emit)
    members = cfg.members()
    plan = plan_stacks(run, members)
    forms = " + ".join(sorted({form.form for form, _ in plan}))
    emit(RunStarted(describe_device(run.device), tuple(m.key for m in members), run.teacher_info.test_rmse,
                    run.teacher_info.test_mae, run.teacher.kind, forms, run.split.note, run.teacher_info.val_rmse))
    results, cancelled, forms = train_members(run, members, emit, should_stop, start, plan)
    return DistillResult(run.cfg.to_dict(), describe_device(run.device), forms, run.teacher_info.test_rmse,
                         run.teacher_info.test_mae, tuple(results), time.perf_counter() - start, cancelled)

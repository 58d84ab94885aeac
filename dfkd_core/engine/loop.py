"""The one epoch loop of Algorithm 1, for every front end (dashboard workers, the CLI,
`reproduce`, `bench`): prepare the run, build the stacked students (one stack form per run,
see plan_stacks), train epoch by epoch with the evaluation cadence, snapshots and stop
requests, emit the events, return the result."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import torch

from ..config import DistillConfig, Member
from ..device import describe_device
from ..errors import QueryBudgetSpent
from ..events import DistillResult, EpochMetrics, EventCallback, MemberResult, RunStarted
from .context import EpochNumbers, RunContext, StackForm, StopRequested, prepare_run
from .fused_mlp import FusedMLPStack, engine_parts, member_fits, students_fit
from .stacked import ModuleStack


def plan_stacks(run: RunContext, members: list[Member]) -> list[tuple[type[StackForm], list[int]]]:
    """(stack form, caller's member indices) per stacked model, placed by what the parts declare:
    when the students fit the fused MLP form (the paper's MLPs: fused_mlp.students_fit), every
    member whose sampler declares a fused implementation (and, for a gradient search, whose
    objective terms declare their gradients: fused_mlp.member_fits) takes it — split on a CPU into
    one model per fast-path sampler group (engine_parts) — and the other members (evolution, a new
    sampler, a term without a declared gradient) share ONE generic stack beside them. Every other
    run — the MNIST CNN, RBF students, cfg.engine 'generic' — is one generic stack of all its
    members. The teacher never decides: it is one callable for any stack (engine.teacher_call)."""
    everyone = list(range(len(members)))
    if not members or not students_fit(run):
        return [(ModuleStack, everyone)]
    fused = [i for i in everyone if member_fits(run, members[i])]
    rest = [i for i in everyone if i not in fused]
    plan: list[tuple[type[StackForm], list[int]]] = []
    if fused:
        plan += [(FusedMLPStack, [fused[j] for j in part]) for part in engine_parts(run, [members[i] for i in fused])]
    if rest:
        plan.append((ModuleStack, rest))
    return plan


def train_members(run: RunContext, members: list[Member], emit: EventCallback,
                  should_stop: Callable[[], bool] | None, start: float,
                  stacks: list[tuple[type, list[int]]] | None = None,
                  early_snapshot: bool = False) -> tuple[list[MemberResult], bool, str]:
    """THE epoch loop: per epoch every stack trains n_s steps (and validates every eval_every
    epochs and on the last); then EpochMetrics and Snapshot events in the caller's member order;
    at the end one MemberResult each. Returns (results, cancelled, form).
    `early_snapshot`: when the first epoch is a snapshot epoch, a form with long epochs (the
    generic stack) also emits its first batch as Snapshot(early=True) while the epoch trains."""
    cfg = run.cfg
    plan = stacks or plan_stacks(run, members)
    built = [(form(run, [members[i] for i in part]), part) for form, part in plan]
    for stack, _ in built:
        stack.should_stop = should_stop  # a form with long epochs also checks between batches
        if early_snapshot:
            stack.early_snapshots = _emitter(emit)
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
                if epoch == 1:
                    stack.early_snapshots = None  # the first digits are on the page: later epochs send theirs at the end
                out = stack.run_epoch(epoch, validate)
                for local, orig in enumerate(part):
                    numbers[orig] = (out, local)
        except StopRequested:  # stopped inside the epoch: it is not logged, the run ends as after the last one
            cancelled = True
            break
        except QueryBudgetSpent as exc:  # the students of the epochs before are kept, the run ends here
            run.interrupted = f"{exc} The run stopped in epoch {epoch + 1} of {cfg.epochs}."
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
                results[part[local]] = dataclasses.replace(result, engine=stack.form)  # the form that trained it
        for result in results:
            emit(result)
    return [r for r in results if r is not None], cancelled, forms


def _emitter(emit: EventCallback) -> Callable[[list], None]:
    """A stack's early snapshots (caller's member order, None for a member without one) as events."""
    def hand(snapshots: list) -> None:
        for snapshot in snapshots:
            if snapshot is not None:
                emit(snapshot)
    return hand


def run_distillation(cfg: DistillConfig, *, on_event: EventCallback | None = None,
                     should_stop: Callable[[], bool] | None = None, data_dir=None,
                     device: torch.device | None = None, run: RunContext | None = None,
                     early_snapshot: bool = False) -> DistillResult:
    """Train every student of `cfg.members()` side by side; emit TeacherProgress (while a
    teacher trains first), RunStarted, EpochMetrics (per student per epoch), Snapshot (at
    snapshot epochs), MemberResult events and, after training, the RunNote of any
    run.after_training step.
    `run`: a RunContext prepare_run(cfg) made already (the CLI keeps it to export the students).
    `early_snapshot`: also the first epoch's first batch, as soon as it is trained (a page
    waiting for digits: see train_members)."""
    emit = on_event or (lambda event: None)
    start = time.perf_counter()
    run = run or prepare_run(cfg, data_dir=data_dir, device=device, teacher_progress=emit)
    members = cfg.members()
    plan = plan_stacks(run, members)
    forms = " + ".join(sorted({form.form for form, _ in plan}))
    emit(RunStarted(describe_device(run.device), tuple(m.key for m in members), run.teacher_info.test_rmse,
                    run.teacher_info.test_mae, run.teacher.kind, forms, run.split.note, run.teacher_info.val_rmse))
    results, cancelled, forms = train_members(run, members, emit, should_stop, start, plan, early_snapshot)
    seconds = time.perf_counter() - start  # the run's training: what follows is not the students' time
    if not cancelled:
        for after in run.after_training:  # e.g. the data-trained reference of a run on the user's rows
            event = after(should_stop)
            if event is not None:
                emit(event)
    return DistillResult(run.cfg.to_dict(), describe_device(run.device), forms, run.teacher_info.test_rmse,
                         run.teacher_info.test_mae, tuple(results), seconds, cancelled,
                         run.interrupted)

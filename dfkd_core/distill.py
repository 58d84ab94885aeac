"""The distillation loop (the paper's Algorithm 1) and the run entry point that every
front end drives: run_distillation(cfg) loads the split and the teacher, trains every
student of the comparison side by side epoch by epoch, emits events, returns the result."""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import DistillConfig, Member
from .data.split import Split
from .device import describe_device, pick_device
from .errors import ConfigError, ModelError
from .events import DistillResult, EpochMetrics, EventCallback, MemberResult, RunStarted, Snapshot, TeacherProgress
from .objectives import Objective, build_objective, log_cosh, sampler_objective
from .samplers import SAMPLERS, SamplerContext
from .schedules import AlphaSchedule, parse_alpha
from .teachers import (Teacher, TeacherInfo, build_model, default_student_arch, evaluate, get_teacher,
                       teacher_epoch_budget)
from .user_models import prepare_user_run, store_user_inputs, uses_user_inputs

SYNTHETIC_PROBE_SIZE = 1000  # prior points on which the data-free selection compares student and teacher


def student_loss_per_sample(kind: str, student_pred: torch.Tensor, teacher_pred: torch.Tensor) -> torch.Tensor:
    """L_S (eq. 1): (T(x) − S(x))², or log cosh(T(x) − S(x)) for MNIST."""
    diff = student_pred - teacher_pred
    return log_cosh(diff) if kind == "logcosh" else diff.pow(2)


def batch_sizes(schedule: AlphaSchedule, m: int) -> tuple[int, int]:
    """(|x_g|, |x_p|) per step. With α fixed at 0 or 1 only one set contributes, so it gets
    2m points: the paper's "number of training samples needs to be doubled" (3.2.4)."""
    if schedule.constant == 0.0:
        return 0, 2 * m
    if schedule.constant == 1.0:
        return 2 * m, 0
    return m, m


def member_seed(member: Member) -> int:
    """Seed of a student: its init depends on `seed` only (so samplers start from the same
    student); its random stream also on the sampler and schedule."""
    return member.seed


def stream_seed(member: Member) -> int:
    return (member.seed * 1_000_003 + zlib.crc32(f"{member.sampler}|{member.alpha}".encode())) % (2**62)


@dataclass
class Selection:
    """Tracks the best student by one criterion (lower is better)."""

    name: str
    best: float = float("inf")
    epoch: int = -1
    state: dict | None = None

    def offer(self, value: float, epoch: int, student: nn.Module) -> None:
        if value < self.best or self.state is None:
            self.best, self.epoch = value, epoch
            self.state = {k: v.detach().clone() for k, v in student.state_dict().items()}


@dataclass
class RunContext:
    """What every student of a run shares: config, split (on device), teacher, objective."""

    cfg: DistillConfig
    split: Split
    device: torch.device
    teacher: Teacher
    teacher_info: TeacherInfo
    objective: Objective
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    probe_x: torch.Tensor  # prior points for the strictly data-free selection
    probe_t: torch.Tensor  # the teacher on them
    snapshot_epochs: frozenset = field(default_factory=frozenset)


class StudentTrainer:
    """One student of the comparison on the reference (unbatched) path: its model,
    optimizer, sampler, α schedule and random streams, trained one epoch at a time."""

    def __init__(self, member: Member, run: RunContext) -> None:
        cfg, split, device = run.cfg, run.split, run.device
        self.member, self.run = member, run
        self.schedule = parse_alpha(member.alpha)
        self.m_g, self.m_p = batch_sizes(self.schedule, cfg.batch_size)
        torch.manual_seed(member_seed(member))
        arch = default_student_arch(split, cfg.student_hidden) if cfg.student == "auto" else cfg.student
        self.student = build_model(arch, split, torch.Generator().manual_seed(member_seed(member))).to(device)
        self.opt = torch.optim.RMSprop(self.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.generator = torch.Generator(device=device).manual_seed(stream_seed(member))
        prior = split.prior.to(device)
        self.prior = prior
        objective = sampler_objective(run.objective, cfg, member.sampler, self.m_g)
        sampler_ctx = SamplerContext(run.teacher, prior, objective, cfg, device, self.generator,
                                     np.random.default_rng(stream_seed(member)))
        self.sampler = SAMPLERS.get(member.sampler)(sampler_ctx) if self.m_g else None
        self.selections = {name: Selection(name) for name in ("validation", "last", "synthetic")}
        self.teacher_queries = 0

    def train_epoch(self, epoch: int) -> tuple[EpochMetrics | None, Snapshot | None, float, float]:
        """n_s steps of Algorithm 1; returns (None, snapshot, loss_xg, loss_xp) — metrics are
        assembled by the caller after validation."""
        cfg, run = self.run.cfg, self.run
        alpha = self.schedule(epoch, cfg.epochs)
        loss_g = torch.zeros((), device=run.device)
        loss_p = torch.zeros((), device=run.device)
        queries_before = run.teacher.queries
        snapshot = None
        if self.sampler is not None:
            self.sampler.begin_epoch()
        for step in range(cfg.batches_per_epoch):
            parts = []
            if self.m_g:
                self.student.eval()
                parts.append(self.sampler.sample(self.student, self.m_g))
            if self.m_p:
                parts.append(self.prior.sample(self.m_p, self.generator))
            x = torch.cat(parts).detach()
            with torch.no_grad():
                t = run.teacher.predict(x)
            self.student.train()
            per_sample = student_loss_per_sample(cfg.student_loss, self.student(x), t)
            lg = per_sample[: self.m_g].mean() if self.m_g else None
            lp = per_sample[self.m_g:].mean() if self.m_p else None
            if lg is None:
                loss = lp
            elif lp is None:
                loss = lg
            else:
                loss = alpha * lg + (1.0 - alpha) * lp
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if lg is not None:
                loss_g += lg.detach()
            if lp is not None:
                loss_p += lp.detach()
            if step == cfg.batches_per_epoch - 1 and epoch in run.snapshot_epochs:
                keep = slice(0, self.m_g) if self.m_g else slice(0, self.m_p)
                snapshot = Snapshot(self.member.key, epoch, x[keep].cpu().numpy().astype(np.float32),
                                    per_sample[keep].detach().cpu().numpy().astype(np.float64),
                                    t[keep].cpu().numpy().astype(np.float64))
        self.teacher_queries += run.teacher.queries - queries_before
        n = cfg.batches_per_epoch
        lg_v = float(loss_g) / n if self.m_g else float("nan")
        lp_v = float(loss_p) / n if self.m_p else float("nan")
        return None, snapshot, lg_v, lp_v

    @torch.no_grad()
    def validate(self, epoch: int) -> tuple[float, float]:
        self.student.eval()
        rmse, mae = evaluate(self.student, self.run.x_val, self.run.y_val)
        probe_rmse = float((self.student(self.run.probe_x) - self.run.probe_t).pow(2).mean().sqrt())
        self.selections["validation"].offer(rmse, epoch, self.student)
        self.selections["synthetic"].offer(probe_rmse, epoch, self.student)
        return rmse, mae

    def finish(self, last_epoch: int, primary: str) -> MemberResult:
        self.selections["last"].offer(-float("inf"), last_epoch, self.student)
        scores = {}
        for name, sel in self.selections.items():
            self.student.load_state_dict(sel.state)
            self.student.eval()
            rmse, mae = evaluate(self.student, self.run.x_test, self.run.y_test)
            scores[name] = (sel.epoch, rmse, mae)
        chosen = self.selections[primary]
        epoch, rmse, mae = scores[primary]
        return MemberResult(
            member=self.member.key, sampler=self.member.sampler, alpha=self.member.alpha, seed=self.member.seed,
            test_rmse=rmse, test_mae=mae, best_epoch=epoch,
            best_val_rmse=self.selections["validation"].best,
            other_selections={k: v for k, v in scores.items() if k != primary},
            teacher_queries=self.teacher_queries,
            state_dict={k: v.cpu() for k, v in chosen.state.items()},
        )


def prepare_run(cfg: DistillConfig, data_dir=None, device: torch.device | None = None,
                teacher_progress: Callable[[TeacherProgress], None] | None = None) -> RunContext:
    """Validate the config, load the split and the teacher (shipped, cached or trained: then
    `teacher_progress` hears of every teacher epoch), build the objective."""
    from .data import load_split

    cfg.validate()
    device = device or pick_device(None if cfg.device == "auto" else cfg.device)
    if uses_user_inputs(cfg):  # the user's teacher file, data file or input spec (stored under DFKD_HOME)
        cfg = store_user_inputs(cfg)
        progress = _progress_events(teacher_progress, teacher_epoch_budget("tabular"))  # a user's table is tabular
        split, teacher, info = prepare_user_run(cfg, device, data_dir, progress)
    else:
        split = load_split(cfg.dataset, seed=cfg.split_seed, data_dir=data_dir)
        progress = _progress_events(teacher_progress, teacher_epoch_budget(split.kind))
        teacher, info = get_teacher(split, cfg.teacher, device, progress=progress)
    for name in cfg.samplers:
        if SAMPLERS.get(name).needs_gradients and not teacher.differentiable:
            if any(parse_alpha(a).constant != 0.0 for a in cfg.alphas):  # α = 0 never calls the sampler
                raise ModelError(f"The {name!r} sampler needs the teacher's gradients, but the {teacher.kind} "
                                 f"teacher of {cfg.dataset!r} is a black box; use 'evolution' or a random sampler.")
    objective = build_objective(cfg)
    prior = split.prior.to(device)
    probe_gen = torch.Generator(device=device).manual_seed(123_457 + cfg.split_seed)
    probe_x = prior.sample(SYNTHETIC_PROBE_SIZE, probe_gen)
    with torch.no_grad():
        probe_t = teacher.predict(probe_x)
    teacher.queries = 0
    last = cfg.epochs - 1
    return RunContext(cfg, split, device, teacher, info, objective,
                      split.x_val.to(device), split.y_val.to(device), split.x_test.to(device), split.y_test.to(device),
                      probe_x, probe_t, frozenset([e for e in cfg.snapshot_epochs if e <= last] + [last]))


def _progress_events(teacher_progress: Callable[[TeacherProgress], None] | None,
                     budget: int) -> Callable[[int, float], None] | None:
    """The teacher trainer's (epoch, val RMSE) callback as TeacherProgress events, with the
    elapsed time since the first call was made possible."""
    if teacher_progress is None:
        return None
    started = time.perf_counter()

    def progress(epoch: int, val_rmse: float) -> None:
        teacher_progress(TeacherProgress(epoch + 1, budget, time.perf_counter() - started, float(val_rmse)))

    return progress


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
    engine = choose_engine(cfg, run)
    members = cfg.members()
    emit(RunStarted(describe_device(run.device), tuple(m.key for m in members), run.teacher_info.test_rmse,
                    run.teacher_info.test_mae, run.teacher.kind, engine, run.split.note, run.teacher_info.val_rmse))
    if engine == "batched":
        from .batched import run_batched

        results, cancelled = run_batched(run, members, emit, should_stop, start)
    else:
        results, cancelled = _run_reference(run, members, emit, should_stop, start)
    return DistillResult(run.cfg.to_dict(), describe_device(run.device), engine, run.teacher_info.test_rmse,
                         run.teacher_info.test_mae, tuple(results), time.perf_counter() - start, cancelled)


def choose_engine(cfg: DistillConfig, run: RunContext) -> str:
    if cfg.engine == "reference":
        return "reference"
    try:
        from .batched import supports
    except ImportError:
        supports = None
    ok = supports is not None and supports(run, cfg.members())
    if cfg.engine == "batched" and not ok:
        raise ConfigError("The batched engine supports MLP teachers and students with gradient or random samplers; "
                          f"this run ({cfg.dataset}, samplers {', '.join(cfg.samplers)}) needs engine 'reference' or 'auto'.")
    return "batched" if ok else "reference"


def _run_reference(run: RunContext, members: list[Member], emit: EventCallback,
                   should_stop: Callable[[], bool] | None, start: float) -> tuple[list[MemberResult], bool]:
    cfg = run.cfg
    trainers = [StudentTrainer(m, run) for m in members]
    last_epoch, cancelled = -1, False
    for epoch in range(cfg.epochs):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        validate = epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1
        for trainer in trainers:
            _, snapshot, lg, lp = trainer.train_epoch(epoch)
            rmse, mae = trainer.validate(epoch) if validate else (float("nan"), float("nan"))
            emit(EpochMetrics(trainer.member.key, epoch, rmse, mae, lg, lp,
                              trainer.schedule(epoch, cfg.epochs), time.perf_counter() - start))
            if snapshot is not None:
                emit(snapshot)
        last_epoch = epoch
    results = []
    if last_epoch >= 0:
        for trainer in trainers:
            result = trainer.finish(last_epoch, cfg.selection)
            emit(result)
            results.append(result)
    return results, cancelled

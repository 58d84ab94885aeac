"""The plain PyTorch loop of the paper's Algorithm 1 — one student, autograd, torch.optim, a
registered sampler on a group of one — kept only as `bench`'s baseline and as the equivalence
oracle of the engine's tests; the product trains through dfkd_core.engine."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import Member
from ..engine.context import RunContext, batch_sizes, build_student, student_loss_per_sample, stream_seed
from ..events import EpochMetrics, EventCallback, MemberResult, Snapshot
from ..synth.objectives import sampler_objective
from ..synth.samplers import SAMPLERS, SamplerContext
from ..synth.schedules import parse_alpha
from ..models.teachers import evaluate


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


class StudentTrainer:
    """One student of the comparison in the plain loop: its model,
    optimizer, sampler, α schedule and random streams, trained one epoch at a time."""

    def __init__(self, member: Member, run: RunContext) -> None:
        cfg, split, device = run.cfg, run.split, run.device
        self.member, self.run = member, run
        self.schedule = parse_alpha(member.alpha)
        self.m_g, self.m_p = batch_sizes(self.schedule, cfg.batch_size)
        self.student, init_state = build_student(run, member)
        self.opt = torch.optim.RMSprop(self.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.generator = torch.Generator(device=device).manual_seed(stream_seed(member))
        prior = split.prior.to(device)
        self.prior = prior
        objective = sampler_objective(run.objective, cfg, member.sampler, self.m_g)
        sampler_ctx = SamplerContext(run.teacher, prior, objective, cfg, device, self.generator,
                                     np.random.default_rng(stream_seed(member)), [init_state])
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


def run_plain_loop(run: RunContext, members: list[Member], emit: EventCallback,
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

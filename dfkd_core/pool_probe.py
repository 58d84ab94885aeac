"""A diagnostic for slow searching samplers: draw a fixed pool of a sampler's synthetic points
once, then run the usual training loop (reference path, same α schedule, same prior points)
drawing x_g from the pool, to see in minutes whether those points teach the student anything
that transfers to real data over a paper-length run. Faithful only where the sampler's objective
barely looks at the student (eq. 8's ε = 1e-6): the pool is drawn against the initial student."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .config import DistillConfig
from .distill import StudentTrainer, prepare_run
from .errors import ConfigError
from .samplers import Sampler

MAX_POOL = 200_000  # 630 MB of 28×28 float32 images


class PoolSampler(Sampler):
    """x_g drawn uniformly with replacement from a fixed pool of points (n, *input_shape)."""

    name = "pool"

    def __init__(self, pool: torch.Tensor, generator: torch.Generator) -> None:
        self.pool, self.generator = pool, generator

    def sample(self, student: nn.Module, n: int) -> torch.Tensor:
        idx = torch.randint(0, self.pool.shape[0], (n,), generator=self.generator, device=self.pool.device)
        return self.pool[idx]


@dataclass
class PoolProbeResult:
    sampler: str
    alpha: str
    pool_size: int
    pool_seconds: float
    student_weight: float  # total weight of the objective's terms that look at S(x)
    epochs: list[int] = field(default_factory=list)
    val_rmse: list[float] = field(default_factory=list)
    val_mae: list[float] = field(default_factory=list)
    best_epoch: int = -1  # by validation RMSE, as the paper's selection
    test_rmse: float = float("nan")
    test_mae: float = float("nan")
    seconds: float = 0.0


def run_pool_probe(cfg: DistillConfig, pool_size: int, *, data_dir=None,
                   on_epoch: Callable[[int, float, float], None] | None = None) -> PoolProbeResult:
    """Train the single student of `cfg` (one sampler, one α schedule, one seed) with x_g from a
    pool of `pool_size` points of that sampler; validation every cfg.eval_every epochs."""
    members = cfg.members()
    if len(members) != 1:
        raise ConfigError(f"The pool probe trains one student: give one sampler, one α schedule and one seed. "
                          f"Got {len(members)} students instead.")
    if pool_size < cfg.batch_size:
        raise ConfigError(f"The 'pool' parameter must be at least the batch size ({cfg.batch_size}). Got {pool_size} instead.")
    if pool_size > MAX_POOL:
        raise ConfigError(f"The 'pool' parameter must be at most {MAX_POOL} (the pool is kept in memory). Got {pool_size} instead.")
    start = time.perf_counter()
    run = prepare_run(cfg.replace(engine="reference"), data_dir=data_dir)
    trainer = StudentTrainer(members[0], run)
    if trainer.sampler is None:
        raise ConfigError("With α = 0 no synthetic point x_g is used: the pool probe needs an α schedule above 0.")
    trainer.student.eval()
    pool_start, parts, drawn = time.perf_counter(), [], 0
    while drawn < pool_size:
        trainer.sampler.begin_epoch()
        batch = trainer.sampler.sample(trainer.student, min(trainer.m_g, pool_size - drawn))
        parts.append(batch.detach())
        drawn += batch.shape[0]
    pool_seconds = time.perf_counter() - pool_start
    result = PoolProbeResult(members[0].sampler, members[0].alpha, pool_size, pool_seconds,
                             run.objective.student_weight)
    trainer.sampler = PoolSampler(torch.cat(parts), trainer.generator)
    for epoch in range(cfg.epochs):
        trainer.train_epoch(epoch)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            rmse, mae = trainer.validate(epoch)
            result.epochs.append(epoch)
            result.val_rmse.append(rmse)
            result.val_mae.append(mae)
            if on_epoch is not None:
                on_epoch(epoch, rmse, mae)
    final = trainer.finish(cfg.epochs - 1, "validation")
    result.best_epoch, result.test_rmse, result.test_mae = final.best_epoch, final.test_rmse, final.test_mae
    result.seconds = time.perf_counter() - start
    return result

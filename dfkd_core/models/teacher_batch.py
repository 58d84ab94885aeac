"""Batched teacher training: the MLP teachers of several split seeds of one dataset trained
as ONE stacked model, then written into the teacher cache where get_teacher finds them.

Why: a 500-unit MLP teacher on 5000 points with batch 50 is 100 tiny steps an epoch, each
dominated by per-call overhead (autograd, optimizer, Python), not arithmetic. S seeds stacked
as weights (S, d, H) / (S, H, 1) and run with torch.baddbmm / bmm cost about one teacher's
overhead for S teachers' work.

Exactly the paper's / train_torch_teacher's procedure per seed:
  * initial weights: MLPRegressor built under torch.manual_seed(10_000 + seed) (as
    train_torch_teacher does; the global RNG is restored afterwards);
  * minibatch order: each seed's own torch.Generator seeded 10_000 + seed, one randperm an epoch;
  * loss: mean squared error of each seed's minibatch (gradients by hand: d → H tanh → 1);
  * optimizer: RMSprop as torch.optim.RMSprop computes it (alpha 0.99, eps 1e-8, L2 weight
    decay added to the gradient, no momentum, not centered), state per element, so per seed;
  * per-seed validation RMSE after every epoch (one stacked pass), early stopping per seed with
    patience 25 (improvement > 1e-6), max 300 epochs; a stopped seed leaves the stack (its best
    weights kept), the batch ends when every seed has stopped or at max epochs.
The result differs from one-at-a-time training only by floating-point summation order.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..data.split import Split
from ..errors import ConfigError
from .networks import MLPRegressor
from .teachers import TeacherInfo, _split_arch, evaluate, store_trained_teacher
from .updates import rmsprop_



@dataclass
class BatchedResult:
    """What train_stacked returns per seed: the best module, its validation RMSE and epochs run."""

    module: MLPRegressor
    val_rmse: float
    epochs: int


def _tanh(z: torch.Tensor) -> torch.Tensor:
    """tanh in place (torch's own, so the trajectories equal train_torch_teacher's up to summation order)."""
    return z.tanh_()


def _init_module(split: Split, hidden: int) -> MLPRegressor:
    """The initial MLP of train_torch_teacher for this split (same seed, same draws), without
    touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10_000 + split.seed)
        return MLPRegressor(split.input_shape, hidden)


def _check(splits: list[Split], arch: str) -> int:
    if not splits:
        raise ConfigError("train_stacked needs at least one split. Got none instead.")
    name, hidden = _split_arch(arch)
    if name != "mlp":
        raise ConfigError(f"Batched teacher training handles MLP teachers ('mlp<units>'). Got {arch!r} instead.")
    first = splits[0]
    for s in splits:
        if s.kind == "image":
            raise ConfigError(f"Batched teacher training is for tabular splits. Got {s.kind!r} split {s.name!r}.")
        if s.x_train.shape != first.x_train.shape:
            raise ConfigError(f"Batched teachers need one training shape. Got {tuple(s.x_train.shape)} for seed {s.seed} "
                              f"and {tuple(first.x_train.shape)} for seed {first.seed}.")
    return hidden


def train_stacked(splits: list[Split], arch: str = "mlp500", *, max_epochs: int = 300, patience: int = 25,
                  batch_size: int = 50, lr: float = 1e-3, weight_decay: float = 1e-5,
                  progress: Callable[[int, int], None] | None = None) -> list[BatchedResult]:
    """Train one MLP teacher per split (seed) at once, as described in the module docstring.
    progress(epoch, seeds still training) after every epoch. CPU, float32."""
    hidden = _check(splits, arch)
    S = len(splits)
    inits = [_init_module(s, hidden) for s in splits]
    with torch.no_grad():
        W1 = torch.stack([m.fc1.weight.t() for m in inits]).contiguous()  # (S, d, H)
        b1 = torch.stack([m.fc1.bias for m in inits]).unsqueeze(1).contiguous()  # (S, 1, H)
        W2 = torch.stack([m.fc2.weight.t() for m in inits]).contiguous()  # (S, H, 1)
        b2 = torch.stack([m.fc2.bias for m in inits]).unsqueeze(1).contiguous()  # (S, 1, 1)
    params = [W1, b1, W2, b2]
    sq = [torch.zeros_like(p) for p in params]  # RMSprop square_avg

    x = torch.stack([s.x_train.reshape(s.x_train.shape[0], -1).float() for s in splits])  # (S, n, d)
    y = torch.stack([s.y_train.float() for s in splits])  # (S, n)
    same_val = all(s.x_val.shape == splits[0].x_val.shape for s in splits)
    if same_val:
        xv = torch.stack([s.x_val.reshape(s.x_val.shape[0], -1).float() for s in splits])
        yv = torch.stack([s.y_val.float() for s in splits])
    gens = [torch.Generator().manual_seed(10_000 + s.seed) for s in splits]
    n = x.shape[1]

    active = list(range(S))  # original indices of the seeds still in the stack (stack row i ↔ active[i])
    best = [[p[i].clone() for p in params] for i in range(S)]
    best_rmse = [math.inf] * S
    since = [0] * S
    epochs_run = [0] * S
    for epoch in range(max_epochs):
        A = len(active)
        order = torch.stack([torch.randperm(n, generator=gens[j]) for j in active])  # (A, n)
        rows = torch.arange(A).unsqueeze(1)
        xa = x[active] if A < S else x
        ya = y[active] if A < S else y
        xp = xa[rows, order]  # (A, n, d): this epoch's order, per seed
        yp = ya[rows, order].unsqueeze(-1)  # (A, n, 1)
        W1, b1, W2, b2 = params
        for i in range(0, n, batch_size):
            xb = xp[:, i:i + batch_size]
            yb = yp[:, i:i + batch_size]
            B = xb.shape[1]
            h = _tanh(torch.baddbmm(b1, xb, W1))  # (A, B, H)
            out = torch.baddbmm(b2, h, W2)  # (A, B, 1)
            dout = (out - yb).mul_(2.0 / B)  # d mean((out - y)^2) / d out
            gW2 = torch.bmm(h.transpose(1, 2), dout)
            gb2 = dout.sum(1, keepdim=True)
            dz = (dout * W2.transpose(1, 2)).mul_(h.mul(h).neg_().add_(1.0))  # outer product, then tanh'
            gW1 = torch.bmm(xb.transpose(1, 2), dz)
            gb1 = dz.sum(1, keepdim=True)
            grads = [gW1, gb1, gW2, gb2]
            for p, g, v in zip(params, grads, sq):  # torch.optim.RMSprop, as train_torch_teacher steps
                rmsprop_(p, g, v, lr, weight_decay)
        # validation RMSE per seed (evaluate()'s arithmetic: float32 predictions, float64 errors)
        with torch.no_grad():
            if same_val:
                xva = xv[active] if A < S else xv
                yva = yv[active] if A < S else yv
                pv = torch.baddbmm(b2, _tanh(torch.baddbmm(b1, xva, W1)), W2).squeeze(-1)
                rmses = (pv - yva).double().pow(2).mean(1).sqrt().tolist()
            else:
                rmses = []
                for r, j in enumerate(active):
                    xs = splits[j].x_val.reshape(splits[j].x_val.shape[0], -1).float()
                    pv = torch.addmm(b2[r], _tanh(torch.addmm(b1[r], xs, W1[r])), W2[r]).squeeze(-1)
                    rmses.append(float((pv - splits[j].y_val.float()).double().pow(2).mean().sqrt()))
        keep = []
        for r, j in enumerate(active):
            epochs_run[j] = epoch + 1
            if rmses[r] < best_rmse[j] - 1e-6:
                best[j] = [p[r].clone() for p in params]
                best_rmse[j], since[j] = rmses[r], 0
                keep.append(r)
            else:
                since[j] += 1
                if since[j] < patience:
                    keep.append(r)
        if progress:
            progress(epoch, len(keep))
        if not keep:
            break
        if len(keep) < A:  # drop the stopped seeds from the stack, with their optimizer state
            idx = torch.tensor(keep)
            params = [p[idx].contiguous() for p in params]
            sq = [s_[idx].contiguous() for s_ in sq]
            active = [active[r] for r in keep]

    out = []
    for j, split in enumerate(splits):
        module = MLPRegressor(split.input_shape, hidden)
        w1, c1, w2, c2 = best[j]
        with torch.no_grad():
            module.fc1.weight.copy_(w1.t())
            module.fc1.bias.copy_(c1.squeeze(0))
            module.fc2.weight.copy_(w2.t())
            module.fc2.bias.copy_(c2.squeeze(0))
        out.append(BatchedResult(module.eval(), best_rmse[j], epochs_run[j]))
    return out


def train_teachers_batched(splits: list[Split], arch: str = "mlp500", *, max_epochs: int = 300, patience: int = 25,
                           progress: Callable[[int, int], None] | None = None,
                           chunk: int | None = None) -> list[TeacherInfo]:
    """Train the teachers of these splits (one dataset, one training shape, several seeds)
    stacked, in stacks of `chunk` seeds (default all), and write each into the teacher cache
    exactly where get_teacher(split, arch) loads it (with its test RMSE / MAE).
    Returns one TeacherInfo per split (cached=False, seconds = its share of the batch)."""
    infos: list[TeacherInfo] = []
    chunk = chunk or len(splits)
    for k in range(0, len(splits), chunk):
        part = splits[k:k + chunk]
        start = time.perf_counter()
        results = train_stacked(part, arch, max_epochs=max_epochs, patience=patience, progress=progress)
        share = (time.perf_counter() - start) / len(part)
        for split, res in zip(part, results):
            info = store_trained_teacher(split, arch, res.module, res.val_rmse)
            info.seconds = share
            info.extra["epochs"] = res.epochs
            infos.append(info)
    return infos


def missing_teachers(splits: list[Split], arch: str = "mlp500") -> list[Split]:
    """The splits whose teacher is neither in the cache nor shipped with the package."""
    from .teachers import shipped_file
    from .teachers import cache_path

    return [s for s in splits if not cache_path(s, arch).exists() and shipped_file(s, arch) is None]

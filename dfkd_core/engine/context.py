"""What every student of a run shares (RunContext: split, teacher, objective, probe) and how a
run is prepared from its config; the per-member conventions both stack forms follow: seeds,
batch sizes and eq. 7's per-sample weights."""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from ..config import DistillConfig, Member
from ..data.split import Split
from ..device import pick_device
from ..errors import ModelError
from ..events import MemberResult, Snapshot, TeacherProgress
from ..synth.objectives import Objective, build_objective, log_cosh
from ..synth.samplers import SAMPLERS
from ..synth.schedules import SYNTHETIC_PROBE_SIZE, AlphaSchedule, batch_sizes, parse_alpha  # noqa: F401 - the engine's names
from ..models.teachers import Teacher, TeacherInfo, build_model, default_student_arch, get_teacher, teacher_epoch_budget
from ..userrun import prepare_user_run, reference_after_training, store_user_inputs, uses_user_inputs, wants_reference



class StopRequested(Exception):
    """Raised by a stack form between two batches of an epoch when the run's stop flag is set (an
    MNIST epoch is tens of seconds on a CPU): the loop abandons that epoch and ends cancelled."""


def student_loss_per_sample(kind: str, student_pred: torch.Tensor, teacher_pred: torch.Tensor) -> torch.Tensor:
    """L_S (eq. 1): (T(x) − S(x))², or log cosh(T(x) − S(x)) for MNIST."""
    diff = student_pred - teacher_pred
    return log_cosh(diff) if kind == "logcosh" else diff.pow(2)


def member_seed(member: Member) -> int:
    """Seed of a student: its init depends on `seed` only (so samplers start from the same
    student); its random stream also on the sampler and schedule."""
    return member.seed


def stream_seed(member: Member) -> int:
    return (member.seed * 1_000_003 + zlib.crc32(f"{member.sampler}|{member.alpha}".encode())) % (2**62)


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
    interrupted: str = ""  # set by the loop when the run ended early on its own (a query budget spent)
    # work the loop does once the students are trained (not on a stopped run), each given the
    # loop's should_stop and returning an event to emit or None: the data-trained reference student
    # of a run on the user's rows (userrun.reference_after_training)
    after_training: list = field(default_factory=list)


def prepare_run(cfg: DistillConfig, data_dir=None, device: torch.device | None = None,
                teacher_progress: Callable[[TeacherProgress], None] | None = None, reference: bool = True) -> RunContext:
    """Validate the config, load the split and the teacher (shipped, cached or trained: then
    `teacher_progress` hears of every teacher epoch), build the objective. `reference`: on the
    user's rows, train the data-trained reference student too, after the run's students
    (userrun.reference_after_training: the curves start at once)."""
    from ..data import load_split

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
    run = RunContext(cfg, split, device, teacher, info, objective,
                     split.x_val.to(device), split.y_val.to(device), split.x_test.to(device), split.y_test.to(device),
                     probe_x, probe_t, frozenset([e for e in cfg.snapshot_epochs if e <= last] + [last]))
    if reference and wants_reference(cfg, split):
        run.after_training.append(reference_after_training(run))
    return run


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




def student_arch(run: RunContext) -> str:
    """The students' architecture name ('mlp50', 'cnn5', 'rbf100', ...)."""
    cfg = run.cfg
    return default_student_arch(run.split, cfg.student_hidden) if cfg.student == "auto" else cfg.student


def build_student(run: RunContext, member: Member) -> tuple[nn.Module, torch.Tensor]:
    """Member's student, built as every form builds it (global seed, then its own init
    generator), and the global RNG state right after: a sampler's own networks start there."""
    torch.manual_seed(member_seed(member))
    module = build_model(student_arch(run), run.split, torch.Generator().manual_seed(member_seed(member)))
    return module.to(run.device), torch.get_rng_state()


def build_members(run: RunContext, members: list[Member]) -> tuple[list[nn.Module], list[torch.Tensor],
                                                                   list[torch.Generator], list[np.random.Generator]]:
    """Every member's student (build_student), the global RNG state right after it, and its own
    random streams — a torch generator on the run's device and a numpy generator, both seeded
    stream_seed(member) — as every stack form builds them."""
    modules, states, gens, rngs = [], [], [], []
    for member in members:
        module, state = build_student(run, member)
        modules.append(module)
        states.append(state)
        gens.append(torch.Generator(device=run.device).manual_seed(stream_seed(member)))
        rngs.append(np.random.default_rng(stream_seed(member)))
    return modules, states, gens, rngs


class MemberLayout:
    """The members of one stack in internal order: grouped by (sampler, |x_g|), contiguous, in
    order of first appearance; every member's batch is [x_g | x_p] of M = 2m rows (batch_sizes)."""

    def __init__(self, cfg: DistillConfig, members: list[Member]) -> None:
        m = cfg.batch_size
        self.M = 2 * m
        info = []
        for i, mem in enumerate(members):
            schedule = parse_alpha(mem.alpha)
            m_g, m_p = batch_sizes(schedule, m)
            info.append((mem.sampler if m_g else "none", m_g, m_p, schedule, i))
        first_seen: dict = {}
        for kind, m_g, *_ in info:
            first_seen.setdefault((kind, m_g), len(first_seen))
        info.sort(key=lambda t: first_seen[(t[0], t[1])])
        self.members = [members[t[4]] for t in info]
        self.order = [t[4] for t in info]  # internal k -> caller's index
        self.position = {orig: k for k, orig in enumerate(self.order)}  # caller's index -> internal k
        self.schedules = [t[3] for t in info]
        self.m_g = [t[1] for t in info]
        self.m_p = [t[2] for t in info]
        self.kinds = [t[0] for t in info]
        self.K = len(members)
        self.groups: list[tuple[str, int, int, int]] = []  # (kind, m_g, k0, k1)
        k = 0
        while k < self.K:
            j = k
            while j < self.K and (self.kinds[j], self.m_g[j]) == (self.kinds[k], self.m_g[k]):
                j += 1
            self.groups.append((self.kinds[k], self.m_g[k], k, j))
            k = j

    def loss_weights(self, epoch: int, total: int) -> tuple[np.ndarray, list[float]]:
        """Per-sample weights of eq. 7 (K, M) for this epoch — α/|x_g| on x_g, (1 − α)/|x_p| on
        x_p, 1/|set| when there is one set — and the members' α."""
        alphas = [s(epoch, total) for s in self.schedules]
        w = np.zeros((self.K, self.M))
        for k, a in enumerate(alphas):
            m_g, m_p = self.m_g[k], self.m_p[k]
            if m_g and m_p:
                w[k, :m_g], w[k, m_g:] = a / m_g, (1.0 - a) / m_p
            elif m_g:
                w[k, :] = 1.0 / m_g
            else:
                w[k, :] = 1.0 / m_p
        return w, alphas

    def set_means(self) -> np.ndarray:
        """(K, M, 2): its product with per-sample losses gives the mean over x_g (column 0) and over x_p (1)."""
        stat = np.zeros((self.K, self.M, 2))
        for k in range(self.K):
            if self.m_g[k]:
                stat[k, :self.m_g[k], 0] = 1.0 / self.m_g[k]
            if self.m_p[k]:
                stat[k, self.m_g[k]:, 1] = 1.0 / self.m_p[k]
        return stat

    def snapshots(self, epoch: int, x: torch.Tensor, loss: torch.Tensor, t: torch.Tensor,
                  shape: tuple[int, ...], early: bool = False) -> list[Snapshot]:
        """One Snapshot per member (internal order) of a batch kept on the host: x (K, M, …) as
        points of `shape`, the student loss and T (K, M); its x_g rows, or x_p's when it has no x_g.
        `early`: an epoch's first batch, handed on while the epoch trains (Snapshot.early)."""
        out = []
        for k in range(self.K):
            n = self.m_g[k] or self.m_p[k]
            out.append(Snapshot(self.members[k].key, epoch, x[k, :n].reshape(n, *shape).numpy().astype(np.float32),
                                loss[k, :n].numpy().astype(np.float64), t[k, :n].numpy().astype(np.float64),
                                early=early))
        return out

    def results(self, primary: str, last_epoch: int, best: torch.Tensor, best_epoch: torch.Tensor,
                scores: dict[str, tuple[list, list]], queries: list[int],
                state_dict: Callable[[int], dict]) -> list[MemberResult]:
        """One MemberResult per member, in the caller's order: the `primary` selection's test
        scores, epoch and weights (state_dict(k)), the other selections beside it. best and
        best_epoch (2, K): rows 'validation' and 'synthetic' (update_best); scores: selection →
        (test RMSE, test MAE) per member in internal order, in the order the form lists them."""
        epochs = {"validation": best_epoch[0].cpu().tolist(), "synthetic": best_epoch[1].cpu().tolist(),
                  "last": [last_epoch] * self.K}
        best_val = best[0].cpu().tolist()
        results = []
        for orig in range(self.K):
            k = self.position[orig]
            mem = self.members[k]
            per = {name: (epochs[name][k], rmse[k], mae[k]) for name, (rmse, mae) in scores.items()}
            epoch, rmse, mae = per[primary]
            results.append(MemberResult(
                member=mem.key, sampler=mem.sampler, alpha=mem.alpha, seed=mem.seed,
                test_rmse=rmse, test_mae=mae, best_epoch=epoch, best_val_rmse=best_val[k],
                other_selections={name: v for name, v in per.items() if name != primary},
                teacher_queries=queries[k], state_dict=state_dict(k),
            ))
        return results


def update_best(values: torch.Tensor, best: torch.Tensor, best_epoch: torch.Tensor, epoch: int) -> torch.Tensor:
    """The best-so-far selections of a stack, kept on the device (rows 'validation' and 'synthetic',
    a column per member): where `values` (2, K) beat `best`, or nothing is kept yet, they become
    the best, at `epoch`. Returns that mask (2, K), under which the form keeps the weights."""
    better = (values < best) | (best_epoch < 0)
    torch.where(better, values, best, out=best)
    best_epoch.masked_fill_(better, epoch)
    return better


class StackForm(Protocol):
    """The one interface of the engine's stack forms (fused_mlp.FusedMLPStack, stacked.ModuleStack):
    built from a run and its members (the caller's order), trained epoch by epoch by engine.loop,
    finished into one MemberResult per member. On a GPU each captures its own step as CUDA graphs
    inside run_epoch; `form` names it in results. What both do alike is written once here: the
    best-so-far selections (update_best), the snapshots and the results (MemberLayout.snapshots,
    MemberLayout.results)."""

    form: ClassVar[str]

    def __init__(self, run: RunContext, members: list[Member]) -> None: ...

    def run_epoch(self, epoch: int, validate: bool) -> "EpochNumbers": ...

    def finish(self, last_epoch: int) -> list: ...


@dataclass
class EpochNumbers:
    """One epoch of one stack, per member in the caller's order: validation RMSE / MAE (NaN when
    not validated), mean student loss on x_g and x_p (NaN for an empty set), α, and the
    snapshot (or None)."""

    val_rmse: list[float]
    val_mae: list[float]
    loss_xg: list[float]
    loss_xp: list[float]
    alphas: list[float]
    snapshots: list[Snapshot | None]

    @classmethod
    def from_internal(cls, layout: MemberLayout, host: np.ndarray, alphas: list[float],
                      snapshots: list[Snapshot | None]) -> "EpochNumbers":
        """From rows [rmse, mae, loss_xg, loss_xp] (4, K) in a stack's internal member order."""
        ks = [layout.position[orig] for orig in range(layout.K)]
        nan = float("nan")
        return cls([float(host[0, k]) for k in ks], [float(host[1, k]) for k in ks],
                   [float(host[2, k]) if layout.m_g[k] else nan for k in ks],
                   [float(host[3, k]) if layout.m_p[k] else nan for k in ks],
                   [alphas[k] for k in ks], [snapshots[k] for k in ks])

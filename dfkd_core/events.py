"""What a running distillation reports: the event types the engine emits to callbacks,
which the run store persists and the pages plot."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np


@dataclass(frozen=True)
class RunStarted:
    """Emitted once the teacher is ready, before the first epoch."""

    device: str  # describe_device(): 'CPU (1 threads)' or 'GPU: ...'
    members: tuple[str, ...]  # Member.key of every student
    teacher_test_rmse: float
    teacher_test_mae: float
    teacher_kind: str  # 'mlp', 'cnn', 'svr', 'callable'
    engine: str  # the stack forms that train the run: 'fused MLP', 'stacked (torch.func)' (formerly 'batched' / 'reference')
    note: str = ""  # the split's note (e.g. MNIST offline split)
    teacher_val_rmse: float = float("nan")  # the reference line of validation charts (test figures stay in the results)


@dataclass(frozen=True)
class TeacherProgress:
    """Emitted while a teacher that is neither shipped nor cached trains, before RunStarted."""

    epoch: int  # epochs finished (1-based)
    max_epochs: int  # the budget; early stopping may end sooner
    seconds: float  # wall time since the teacher started training
    val_rmse: float  # the teacher's validation RMSE after this epoch

    @property
    def seconds_left(self) -> float:
        """At most this many seconds remain (early stopping may end training sooner)."""
        return self.seconds / max(self.epoch, 1) * max(self.max_epochs - self.epoch, 0)

    def line(self) -> str:
        """'training the teacher: epoch 3 / 100 · 12 s elapsed · at most ~6 min left'"""
        return (f"training the teacher: epoch {self.epoch} / {self.max_epochs} · {duration(self.seconds)} elapsed"
                f" · at most ~{duration(self.seconds_left)} left (early stopping usually ends sooner)")


def duration(seconds: float) -> str:
    """12 s, 3.5 min, 1.2 h."""
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class EpochMetrics:
    """One student after one epoch (val_rmse is NaN on epochs that were not validated)."""

    member: str
    epoch: int
    val_rmse: float
    val_mae: float
    loss_xg: float  # mean student loss on the synthetic batches x_g of this epoch
    loss_xp: float  # mean student loss on the prior samples x_p of this epoch
    alpha: float
    seconds: float  # wall time since the run started


@dataclass(frozen=True)
class Snapshot:
    """The last synthetic batch x_g of a snapshot epoch, with each point's student loss
    (T(x) − S(x))² and the teacher's prediction, for boxplots, UMAP and digit grids.
    `early`: the epoch's FIRST batch instead, sent while the epoch still trains (a form with long
    epochs does so for the run's first epoch when asked: engine.loop) so a page shows digits
    within seconds; the epoch's own snapshot, which follows, replaces it."""

    member: str
    epoch: int
    x: np.ndarray  # (m, *input_shape) float32
    student_loss: np.ndarray  # (m,)
    teacher_pred: np.ndarray  # (m,)
    early: bool = False


@dataclass(frozen=True)
class RunNote:
    """A line added to the run's note once its students are trained (the data-trained reference
    student of a run on the user's rows, trained after the run so the curves start at once)."""

    text: str


@dataclass(frozen=True)
class MemberResult:
    """Final numbers of one student: the selected student evaluated on the test set."""

    member: str
    sampler: str
    alpha: str
    seed: int
    test_rmse: float
    test_mae: float
    best_epoch: int
    best_val_rmse: float
    # the strictly data-free selections, side by side with the paper's: name -> (epoch, test_rmse, test_mae)
    other_selections: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    teacher_queries: int = 0  # black-box teachers: how many points were sent to the teacher
    state_dict: dict[str, Any] | None = None  # weights of the selected student (CPU tensors)
    engine: str = ""  # the stack form that trained it (engine.loop.plan_stacks); "" outside the engine


@dataclass(frozen=True)
class DistillResult:
    config: dict[str, Any]  # DistillConfig.to_dict()
    device: str
    engine: str
    teacher_test_rmse: float
    teacher_test_mae: float
    members: tuple[MemberResult, ...]
    seconds: float
    cancelled: bool = False
    interrupted: str = ""  # why the run ended early on its own (an HTTP teacher's query budget spent); '' = it did not


Event = Union[TeacherProgress, RunStarted, EpochMetrics, Snapshot, RunNote, MemberResult]
EventCallback = Callable[[Event], None]

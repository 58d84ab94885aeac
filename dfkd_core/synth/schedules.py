"""α schedules (eq. 7: L_S = α·L_S(x_g) + (1 − α)·L_S(x_p)): epoch → α, registered by
name and written as short specs ('decreasing', '0', 'constant:0.3', 'custom:0:1,500:0.2')."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry

MAX_KNOTS = 100  # knots of a custom schedule
MAX_SPEC = 1000  # characters of a spec

# name -> factory(argument string or None) -> function (epoch, total_epochs) -> α
SCHEDULES: Registry[Callable[[str | None], Callable[[int, int], float]]] = Registry("α schedule", package=__package__)


@SCHEDULES.register("constant")
def _constant(arg: str | None) -> Callable[[int, int], float]:
    value = _parse_unit_float(arg if arg is not None else "0.5", "constant")
    return lambda epoch, total: value


@SCHEDULES.register("decreasing")
def _decreasing(arg: str | None) -> Callable[[int, int], float]:
    """α = 1 − (t + 1)/T (Kang & Kang; the paper's 'decreasing α')."""
    _no_argument("decreasing", arg)
    return lambda epoch, total: 1.0 - (epoch + 1) / total


@SCHEDULES.register("increasing")
def _increasing(arg: str | None) -> Callable[[int, int], float]:
    """α = (t + 1)/T."""
    _no_argument("increasing", arg)
    return lambda epoch, total: (epoch + 1) / total


@SCHEDULES.register("cosine")
def _cosine(arg: str | None) -> Callable[[int, int], float]:
    """α = ½(1 + cos(π t / T)): from 1 down to ~0, slowly at both ends."""
    _no_argument("cosine", arg)
    return lambda epoch, total: 0.5 * (1.0 + math.cos(math.pi * epoch / total))


@SCHEDULES.register("custom")
def _custom(arg: str | None) -> Callable[[int, int], float]:
    """Piecewise linear through 'epoch:α' knots, e.g. 'custom:0:1,1000:0.5,2000:0'; flat outside."""
    if not arg:
        raise ConfigError("The custom α schedule must list knots 'epoch:alpha,...'. Got nothing instead.")
    try:
        knots = sorted((int(e), float(a)) for e, a in (item.split(":") for item in arg.split(",")))
        if len(knots) > MAX_KNOTS or any(abs(e) > 10_000_000 for e, _ in knots):
            raise ValueError
    except ValueError:
        raise ConfigError(f"The custom α schedule must list knots 'epoch:alpha,...'. Got {arg!r} instead.") from None
    for _, a in knots:
        if not 0.0 <= a <= 1.0:
            raise ConfigError(f"Every α of a custom schedule must lie in [0, 1]. Got {a!r} instead.")
    xs, ys = zip(*knots)
    return lambda epoch, total: float(np.interp(epoch, xs, ys))


def _no_argument(name: str, arg: str | None) -> None:
    if arg:
        raise ConfigError(f"The {name} α schedule takes no argument. Got {name + ':' + arg!r} instead.")


def _parse_unit_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"The {what} α must be a number in [0, 1]. Got {text!r} instead.") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"The {what} α must be a number in [0, 1]. Got {text!r} instead.")
    return value


@dataclass(frozen=True)
class AlphaSchedule:
    spec: str
    fn: Callable[[int, int], float]
    constant: float | None  # the value when the schedule is constant, else None

    def __call__(self, epoch: int, total: int) -> float:
        return min(1.0, max(0.0, float(self.fn(epoch, total))))

    def values(self, total: int) -> np.ndarray:
        return np.array([self(t, total) for t in range(total)])


def parse_alpha(spec: str) -> AlphaSchedule:
    """'0.5' or 'constant:0.5' → constant; 'decreasing'; 'custom:0:1,100:0'; unknown → ConfigError."""
    spec = str(spec).strip()
    if len(spec) > MAX_SPEC:
        raise ConfigError(f"An α schedule spec must be at most {MAX_SPEC} characters. Got {len(spec)} instead.")
    try:
        value = float(spec)
    except ValueError:
        pass
    else:
        value = _parse_unit_float(spec, "constant")
        return AlphaSchedule(spec, lambda epoch, total: value, value)
    name, _, arg = spec.partition(":")
    factory = SCHEDULES.get(name)
    fn = factory(arg or None)
    constant = fn(0, 1) if name == "constant" else None
    return AlphaSchedule(spec, fn, constant)


# ---------------------------------------------------------------- what a schedule asks per step
SYNTHETIC_PROBE_SIZE = 1000  # prior points on which the data-free selection compares student and teacher


def batch_sizes(schedule: AlphaSchedule, m: int) -> tuple[int, int]:
    """(|x_g|, |x_p|) per step. With α fixed at 0 or 1 only one set contributes, so it gets
    2m points: the paper's "number of training samples needs to be doubled" (3.2.4)."""
    if schedule.constant == 0.0:
        return 0, 2 * m
    if schedule.constant == 1.0:
        return 2 * m, 0
    return m, m

"""The caps a run is held to, on the package's lowest floor (models/ and limits both read them):
model strings and their size caps ('mlp500' an MLP of 500 hidden units, 'cnn10' a CNN of 10
filters, 'rbf100' an RBF network of 100 units), and the budgets read from the environment
(DFKD_MAX_MEMORY_GB, DFKD_MAX_WORK). limits.py estimates a run against them."""
from __future__ import annotations

import math
import os

from .errors import ConfigError

ARCH_CAPS = {"mlp": 10_000, "cnn": 256, "rbf": 10_000}  # largest units / filters of a model string
ARCH_FORMS = "'mlp<units>', 'cnn<filters>', 'rbf<units>'"
DEFAULT_MEMORY_GB = 4.0
DEFAULT_WORK = 1e16


def parse_arch(arch: str, setting: str = "model") -> tuple[str, int]:
    """'mlp500' → ('mlp', 500), refusing other forms and sizes above ARCH_CAPS."""
    text = arch if isinstance(arch, str) else repr(arch)
    for prefix, cap in ARCH_CAPS.items():
        digits = text[len(prefix):]
        if text.startswith(prefix) and digits.isdigit() and digits.isascii():
            if len(digits) > 12 or not 1 <= int(digits) <= cap:
                what = "filters" if prefix == "cnn" else "units"
                raise ConfigError(f"The {setting!r} parameter must have 1 to {cap} {what} ('{prefix}1' … '{prefix}{cap}'). "
                                  f"Got {short(text)} instead.")
            return prefix, int(digits)
    raise ConfigError(f"The {setting!r} parameter must be one of {ARCH_FORMS}, 'svr'. Got {short(text)} instead.")


def short(text: str) -> str:
    """A user's value as shown in a message: repr, cut to 40 characters when long."""
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}… ({len(text)} characters)"


def memory_budget_gb() -> float:
    return _env_number("DFKD_MAX_MEMORY_GB", DEFAULT_MEMORY_GB)


def work_budget() -> float:
    return _env_number("DFKD_MAX_WORK", DEFAULT_WORK)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"The {name!r} environment variable must be a positive number. Got {short(raw)} instead.")
    return value

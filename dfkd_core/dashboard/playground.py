"""The sampler playground for its page: experiments.playground's stepping state (Playground),
its settings (PlaygroundConfig), the functions of two inputs and the samplers to pick, and each
sampler's story; the page steps the state and draws dashboard.figures of its frames."""
from __future__ import annotations

from typing import Any

from ..experiments import playground as _model
from ..experiments.playground import (FUNCTIONS, PLANE, SAMPLERS, TEACHER_HIDDEN, TEACHER_POINTS,  # noqa: F401
                                      Playground, PlaygroundConfig, sampler_story)


def __getattr__(name: str) -> Any:
    """Any other public name of experiments.playground, as the page asks for it."""
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_model, name)

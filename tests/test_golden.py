"""Golden numbers of a tiny end-to-end run (Friedman #1, a few epochs, both stack forms),
kept in tests/golden/ and compared with a tolerance; only `pytest --update-golden` rewrites them."""
from __future__ import annotations

import json

import pytest

from dfkd_core.config import DistillConfig
from dfkd_core.engine import run_distillation

from conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "friedman1_tiny.json"


def tiny_run(engine: str) -> dict:
    cfg = DistillConfig(dataset="friedman1", epochs=6, samplers=("gaussian", "generator", "direct"),
                        alphas=("decreasing", "1"), seeds=(0,), engine=engine)
    result = run_distillation(cfg)
    return {"teacher_test_rmse": result.teacher_test_rmse,
            **{m.member: {"test_rmse": m.test_rmse, "best_epoch": m.best_epoch} for m in result.members}}


# 'generic' (the torch.func form) holds the numbers the plain loop made before the engine became
# one; 'auto' (the fused MLP form here) those of the former batched engine
@pytest.mark.parametrize("engine", ["generic", "auto"])
def test_tiny_friedman_run_matches_the_golden_numbers(engine, update_golden):
    numbers = tiny_run(engine)
    stored = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if update_golden or engine not in stored:
        stored[engine] = numbers
        GOLDEN.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        if not update_golden:
            pytest.fail(f"no golden numbers for {engine!r} yet: written now, commit {GOLDEN.name}")
        return
    golden = stored[engine]
    assert numbers["teacher_test_rmse"] == pytest.approx(golden["teacher_test_rmse"], rel=1e-3)
    for member, values in golden.items():
        if member == "teacher_test_rmse":
            continue
        assert numbers[member]["test_rmse"] == pytest.approx(values["test_rmse"], rel=2e-2), member

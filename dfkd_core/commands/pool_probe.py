"""`pool-probe`: train one student on a fixed pool of a sampler's points (drawn once), to see
quickly whether a slow sampler's points transfer to real data over a paper-length run."""
from __future__ import annotations

import json
import sys

HELP = "diagnostic: train one student with x_g drawn from a fixed pool of a sampler's points"


def configure(parser) -> None:
    from .distill import configure as distill_flags

    distill_flags(parser)
    parser.add_argument("--pool", default="20000", help="points in the pool (default 20000)")


def run(args) -> int:
    from ..pool_probe import run_pool_probe
    from .distill import config_from_args

    from ..config import parse_int

    cfg = config_from_args(args)
    pool = parse_int("pool", args.pool)  # run_pool_probe checks its range

    def on_epoch(epoch: int, rmse: float, mae: float) -> None:
        if not args.quiet:
            print(f"epoch {epoch + 1}/{cfg.epochs}: validation RMSE {rmse:.4f} MAE {mae:.4f}", file=sys.stderr, flush=True)

    r = run_pool_probe(cfg, pool, on_epoch=on_epoch)
    if args.json:
        print(json.dumps(r.__dict__))
        return 0
    print(f"{cfg.dataset}: {r.sampler} α {r.alpha}, pool of {r.pool_size} drawn in {r.pool_seconds:.1f} s "
          f"(weight of the objective's student terms: {r.student_weight:g}; the pool was drawn against the initial student)")
    best_mae = min(range(len(r.val_mae)), key=r.val_mae.__getitem__)
    print(f"validation MAE: first {r.val_mae[0]:.4f}, lowest {r.val_mae[best_mae]:.4f} at epoch {r.epochs[best_mae]}, "
          f"last {r.val_mae[-1]:.4f}")
    print(f"paper's selection (best validation RMSE, epoch {r.best_epoch}): test RMSE {r.test_rmse:.4f}, MAE {r.test_mae:.4f} "
          f"({r.seconds:.1f} s)")
    return 0

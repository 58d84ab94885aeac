"""`teach`: train (or load the cached) teacher of a dataset and print its test metrics."""
from __future__ import annotations

import sys

from ..files_out import json_text

HELP = "train or load the cached teacher of a dataset and print its test RMSE/MAE"


def configure(parser) -> None:
    from ..data import DATASETS

    parser.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS.names())}")
    parser.add_argument("--split-seed", default="0", help="seed of the train/val/test split (default 0)")
    parser.add_argument("--arch", default="auto", help="'auto' (paper: mlp500 / cnn10 / svr), 'mlp<h>', 'cnn<f>', 'svr'")
    parser.add_argument("--retrain", action="store_true", help="ignore the cached teacher")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ship", action="store_true",
                        help="train afresh and ship the teacher inside the package (dfkd_core/shipped_teachers, with its checksum)")


def run(args) -> int:
    from ..config import SEED_RANGE, parse_int
    from ..data import get_dataset, load_split
    from ..device import describe_device, pick_device
    from ..limits import check_model, parse_arch
    from ..models.teachers import get_teacher

    split_seed = parse_int("split_seed", args.split_seed, *SEED_RANGE)
    spec = get_dataset(args.dataset)
    if args.arch not in ("auto", "svr"):
        parse_arch(args.arch, "arch")
        check_model(args.arch, tuple(spec.input_shape), "arch")
    device = pick_device(args.device)
    split = load_split(args.dataset, seed=split_seed)
    if args.ship:
        from ..models.teachers import ship_teacher

        command = f"python -m dfkd_core teach --dataset {args.dataset} --split-seed {split_seed} --arch {args.arch} --ship"
        entry = ship_teacher(split, args.arch, command, device)
        print(json_text(entry) if args.json else f"shipped {entry['arch']} teacher of {args.dataset}: "
              f"test RMSE {entry['test_rmse']:.4f}, MAE {entry['test_mae']:.4f}, {entry['bytes']} bytes, sha256 {entry['sha256'][:12]}…")
        return 0

    def progress(epoch: int, rmse: float) -> None:
        print(f"\rteacher epoch {epoch + 1}: val RMSE {rmse:.4f}", end="", file=sys.stderr, flush=True)

    _, info = get_teacher(split, args.arch, device, retrain=args.retrain, progress=progress)
    print("", file=sys.stderr)
    out = {"dataset": args.dataset, "split_seed": split_seed, "arch": info.arch, "test_rmse": info.test_rmse,
           "test_mae": info.test_mae, "val_rmse": info.val_rmse, "cached": info.cached, "seconds": round(info.seconds, 3),
           "device": describe_device(device), "path": info.path}
    if args.json:
        print(json_text(out))
    else:
        state = "cached" if info.cached else f"trained in {info.seconds:.1f} s"
        print(f"{args.dataset} teacher {info.arch} ({state}, {out['device']}): test RMSE {info.test_rmse:.4f}, MAE {info.test_mae:.4f}")
    return 0

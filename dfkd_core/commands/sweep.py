"""`sweep`: a grid over configuration fields × student seeds, every sampler stacked in each run,
on any executor (local processes, a Dask LocalCluster, a Dask scheduler), stored as the runs of
one sweep; prints the metric per grid point and method with the paired verdicts over seeds."""
from __future__ import annotations

import sys

from ..files_out import json_text

HELP = "run a grid over configuration fields × seeds × samplers (--grid FIELD=V1,V2, repeatable), stored as one sweep"


def configure(parser) -> None:
    from ..config import PRESETS

    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                        help="a configuration field and its values (repeatable; ';' separates values holding commas), "
                             "e.g. --grid student_hidden=10,25,50 --grid direct_lr=0.05,0.1")
    parser.add_argument("--dataset", default=None, help="dataset (default friedman1)")
    parser.add_argument("--sampler", default=None, help="sampler(s), comma-separated: trained side by side in every run")
    parser.add_argument("--alpha", default=None, help="α schedule(s), comma-separated")
    parser.add_argument("--seed", default=None, help="student seeds, comma-separated (default 0): one run per seed")
    parser.add_argument("--split-seed", default=None, help="seed of the data split and teacher (default 0)")
    parser.add_argument("--epochs", default=None, help="epochs of every run")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="start from one of the paper's settings")
    parser.add_argument("--config", default=None, help="a JSON file with a DistillConfig: the base of every run "
                                                            "(flags and --set override it; its seeds are --seed's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other DistillConfig field held fixed over the sweep (repeatable)")
    parser.add_argument("--executor", default=None, help="local (worker processes, the default) or dask-local")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="run on this Dask scheduler's cluster")
    parser.add_argument("--workers", default=None, help="local worker processes / LocalCluster workers (default: CPU cores)")
    parser.add_argument("--resume", action="store_true", help="skip the cells already stored as finished runs of this sweep")
    parser.add_argument("--json", action="store_true", help="end stdout with one JSON object")


def base_settings(args) -> dict:
    """The settings every run of the sweep shares: preset < config file < flags < --set (checked per
    cell by parse_config)."""
    from ..config import config_file_settings, preset_config
    from ..errors import ConfigError

    merged: dict = preset_config(args.preset).to_dict() if args.preset else {}
    if args.config:
        merged.update(config_file_settings(args.config))
    flags = {"dataset": args.dataset, "samplers": args.sampler, "alphas": args.alpha, "epochs": args.epochs,
             "split_seed": args.split_seed}
    merged.update({k: v for k, v in flags.items() if v is not None})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE. Got {item[:60]!r} instead.")
        merged[key.strip()] = value.strip()
    merged.pop("seeds", None)
    return merged


def run(args) -> int:
    from ..config import parse_int
    from ..experiments.runner import check_executor
    from ..experiments.sweep import format_sweep, parse_grid, parse_seeds, run_sweep

    grid = parse_grid(args.grid)
    seeds = parse_seeds(args.seed)
    executor, scheduler = check_executor(args.executor, args.scheduler)
    workers = None if args.workers is None else parse_int("workers", args.workers)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rep = run_sweep(base_settings(args), grid, seeds, executor=executor, scheduler=scheduler, workers=workers,
                    resume=args.resume, log=log)
    print(format_sweep(rep), flush=True)
    if args.json:
        print(json_text(rep, default=str), flush=True)  # NaN as null: valid JSON
    if rep.get("failed_tasks"):
        print(f"error: {len(rep['failed_tasks'])} run(s) of the sweep failed twice and are stored as failed runs",
              file=sys.stderr, flush=True)
        return 1
    return 0

"""`distill`: one headless distillation run (or a side-by-side comparison) with a
progress bar on stderr; `--json` ends stdout with one JSON object per run."""
from __future__ import annotations

import json
import math
import sys
import time

from ..config import DistillConfig, preset_config

HELP = "distill a student from a dataset's teacher with the chosen sampler(s) and α schedule(s)"


def configure(parser) -> None:
    from ..config import PRESETS
    from ..data import DATASETS
    from ..samplers import SAMPLERS
    from ..schedules import SCHEDULES

    d = DistillConfig()
    parser.add_argument("--dataset", default=None, help=f"one of: {', '.join(DATASETS.names())} (default {d.dataset})")
    parser.add_argument("--sampler", default=None,
                        help=f"one or several (comma-separated) of: {', '.join(SAMPLERS.names())} (default {d.samplers[0]})")
    parser.add_argument("--alpha", default=None,
                        help=f"α schedule(s): a number in [0, 1] or one of {', '.join(SCHEDULES.names())} "
                             "('constant:0.3', 'custom:0:1,1000:0')")
    parser.add_argument("--student-hidden", default=None, help=f"student hidden units (default {d.student_hidden})")
    parser.add_argument("--epochs", default=None, help=f"epochs t_max (default {d.epochs}, or the preset's)")
    parser.add_argument("--seed", default=None, help="student seed(s), comma-separated (default 0)")
    parser.add_argument("--split-seed", default=None, help="seed of the data split and teacher (default 0)")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="start from one of the paper's settings")
    parser.add_argument("--selection", default=None, choices=("validation", "last", "synthetic"),
                        help="how the reported student is chosen (default: validation, as the paper)")
    parser.add_argument("--engine", default=None, choices=("auto", "batched", "reference"))
    parser.add_argument("--device", default=None, help="'auto', 'cpu' or 'cuda'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other DistillConfig field, e.g. --set direct_lr=0.05 (repeatable)")
    parser.add_argument("--config", default=None, help="a JSON file with a DistillConfig (flags override it)")
    parser.add_argument("--json", action="store_true", help="end stdout with one JSON object per student")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> DistillConfig:
    """Preset (if any) < config file (if any) < the flags the user typed, read and checked by
    config.parse_config like a URL or the dashboard's form (every problem reported at once)."""
    from ..config import MAX_CONFIG_BYTES, json_settings, parse_config
    from ..errors import ConfigError

    merged: dict = preset_config(args.preset).to_dict() if args.preset else {}
    if args.config:
        try:
            with open(args.config, "rb") as fh:
                text = fh.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"Cannot read the config file {args.config!r}: {exc.strerror}.") from None
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"The config file {args.config!r} must be at most {MAX_CONFIG_BYTES} bytes. Got more instead.")
        merged.update(json_settings(text))
    flags = {"dataset": args.dataset, "samplers": args.sampler, "alphas": args.alpha, "seeds": args.seed,
             "student_hidden": args.student_hidden, "epochs": args.epochs, "split_seed": args.split_seed,
             "selection": args.selection, "engine": args.engine, "device": args.device}
    merged.update({k: v for k, v in flags.items() if v is not None})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE. Got {item[:60]!r} instead.")
        merged[key.strip()] = value.strip()
    return parse_config(merged)


def run(args) -> int:
    from ..distill import run_distillation
    from ..events import EpochMetrics, RunStarted, TeacherProgress

    cfg = config_from_args(args)
    members = cfg.members()
    total = cfg.epochs * len(members)
    done = 0
    started = time.perf_counter()
    show = not args.quiet and not _ci()
    teacher_line = [False, 0.0]  # a '\r' teacher line is open; when the last logged one was printed

    def on_event(event) -> None:
        nonlocal done
        if isinstance(event, TeacherProgress):
            text = f"{event.line()}  val RMSE {event.val_rmse:.4f}"
            if show:
                print(f"\r{text}", end="", file=sys.stderr, flush=True)
                teacher_line[0] = True
            elif not args.quiet and (event.epoch == 1 or time.perf_counter() - teacher_line[1] >= 10):
                print(text, file=sys.stderr, flush=True)  # a log, not a terminal: a line now and then
                teacher_line[1] = time.perf_counter()
        elif isinstance(event, RunStarted):
            if teacher_line[0]:
                print("", file=sys.stderr)
            print(f"device: {event.device}; engine: {event.engine}; teacher test RMSE {event.teacher_test_rmse:.4f}"
                  f" (validation {event.teacher_val_rmse:.4f})" + (f"; {event.note}" if event.note else ""), file=sys.stderr)
        elif isinstance(event, EpochMetrics):
            done += 1
            if show and (done % max(1, total // 200) == 0 or done == total):
                frac = done / total
                bar = "#" * int(30 * frac)
                rmse = "" if math.isnan(event.val_rmse) else f" val RMSE {event.val_rmse:.4f}"
                print(f"\r[{bar:<30}] {100 * frac:5.1f}% epoch {event.epoch + 1}/{cfg.epochs}{rmse} "
                      f"{time.perf_counter() - started:6.1f}s", end="", file=sys.stderr, flush=True)

    result = run_distillation(cfg, on_event=on_event)
    if show:
        print("", file=sys.stderr)
    for m in result.members:
        row = {"dataset": cfg.dataset, "sampler": m.sampler, "alpha": m.alpha, "seed": m.seed, "epochs": cfg.epochs,
               "student_hidden": cfg.student_hidden, "test_rmse": m.test_rmse, "test_mae": m.test_mae,
               "best_epoch": m.best_epoch, "best_val_rmse": m.best_val_rmse, "selection": cfg.selection,
               "other_selections": {k: {"epoch": e, "test_rmse": r, "test_mae": a} for k, (e, r, a) in m.other_selections.items()},
               "teacher_test_rmse": result.teacher_test_rmse, "teacher_test_mae": result.teacher_test_mae,
               "teacher_queries": m.teacher_queries, "seconds": round(result.seconds, 3), "device": result.device,
               "engine": result.engine, "cancelled": result.cancelled}
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{m.sampler:>10} α={m.alpha:<10} seed {m.seed}: test RMSE {m.test_rmse:.4f}  MAE {m.test_mae:.4f}  "
                  f"(best epoch {m.best_epoch}; teacher RMSE {result.teacher_test_rmse:.4f})")
    return 130 if result.cancelled else 0


def _ci() -> bool:
    return not sys.stderr.isatty()

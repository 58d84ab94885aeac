"""`distill`: one headless distillation run (or a side-by-side comparison) with a
progress bar on stderr; `--json` ends stdout with one JSON object per run."""
from __future__ import annotations

import json
import math
import sys
import time

from ..config import CHOICES, DistillConfig, preset_config

HELP = "distill a student from a dataset's teacher with the chosen sampler(s) and α schedule(s)"


def configure(parser) -> None:
    from ..config import PAPER_OBJECTIVES, PRESETS, objective_text
    from ..data import DATASETS
    from ..synth.objectives import TERMS, term_summary
    from ..synth.samplers import SAMPLERS
    from ..synth.schedules import SCHEDULES

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
    parser.add_argument("--objective", default=None, metavar="TERM:WEIGHT,...",
                        help=f"the synthetic-data objective as term:weight pairs, or one of {', '.join(PAPER_OBJECTIVES)} "
                             f"(default {objective_text(d.objective)}); registered terms: "
                             + "; ".join(f"{name}: {term_summary(name).rstrip('.')}" for name in TERMS.names()))
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="start from one of the paper's settings")
    parser.add_argument("--selection", default=None, choices=("validation", "last", "synthetic"),
                        help="how the reported student is chosen (default: validation, as the paper)")
    parser.add_argument("--engine", default=None, choices=CHOICES["engine"],
                        help="auto: the fastest stack form for the run; generic: the torch.func form for every model")
    parser.add_argument("--device", default=None, help="'auto', 'cpu' or 'cuda'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other DistillConfig field, e.g. --set direct_lr=0.05 (repeatable)")
    parser.add_argument("--config", default=None, help="a JSON file with a DistillConfig (flags override it)")
    parser.add_argument("--json", action="store_true", help="end stdout with one JSON object per student")
    _configure_user_inputs(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-store", action="store_true",
                        help="do not keep the run in the run store (by default `runs` and the Runs page list it)")


def config_from_args(args) -> DistillConfig:
    """Preset (if any) < config file (if any) < the flags the user typed, read and checked by
    config.parse_config like a URL or the dashboard's form (every problem reported at once)."""
    from ..config import config_file_settings, parse_config
    from ..errors import ConfigError

    merged: dict = preset_config(args.preset).to_dict() if args.preset else {}
    if args.config:
        merged.update(config_file_settings(args.config))
    flags = {"dataset": args.dataset, "samplers": args.sampler, "alphas": args.alpha, "seeds": args.seed,
             "student_hidden": args.student_hidden, "epochs": args.epochs, "split_seed": args.split_seed,
             "selection": args.selection, "engine": args.engine, "device": args.device, "objective": args.objective}
    merged.update({k: v for k, v in flags.items() if v is not None})
    merged.update(_user_input_fields(args))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE. Got {item[:60]!r} instead.")
        merged[key.strip()] = value.strip()
    return parse_config(merged)


PROGRESS_EVERY_S = 5.0  # with stderr not a terminal (a log): one plain progress line this often


def run(args) -> int:
    from ..data.user import original_name
    from ..models.user_models import plan_cli_box
    from ..runs.runstore import RunStore
    from ..userrun import http_query_plan, query_plan_line, store_user_inputs, units_choice, uses_user_inputs

    cfg = config_from_args(args)
    if uses_user_inputs(cfg):
        cfg = store_user_inputs(cfg)  # checked, then kept once: the run (and --export's card) names the stored copies
        # a teacher file is loaded inside a box that writes only --export and, unless --no-store, this run's store
        plan_cli_box(cfg, [args.export], store=None if args.no_store else RunStore())
    _check_export_dir(args)
    plan = http_query_plan(cfg)
    if plan is not None:
        print(query_plan_line(plan), file=sys.stderr, flush=True)
    stored: list = []  # the stored run, once the teacher and data have passed their checks (bad input stores nothing)
    try:
        result, run_ctx = _train(args, cfg, stored)
    except KeyboardInterrupt:
        if stored:
            stored[0].fail("interrupted", "Interrupted: the command was stopped (Ctrl-C).")
        raise
    except BaseException as exc:
        if stored:
            stored[0].fail("failed", " ".join(str(exc).split())[:500] or type(exc).__name__)
        raise
    if stored:
        stored[0].finish(result)
    if result.interrupted:
        print(f"interrupted: {result.interrupted} The best students so far are kept.", file=sys.stderr, flush=True)
    exported = _export(args, cfg, result, run_ctx)
    data_free = bool(cfg.input_spec and not cfg.data_file)  # scored against the teacher: it has no error of its own
    for m in result.members:
        row = {"dataset": cfg.dataset, "sampler": m.sampler, "alpha": m.alpha, "seed": m.seed, "epochs": cfg.epochs,
               "student_hidden": cfg.student_hidden, "test_rmse": m.test_rmse, "test_mae": m.test_mae,
               "best_epoch": m.best_epoch, "best_val_rmse": m.best_val_rmse, "selection": cfg.selection,
               "other_selections": {k: {"epoch": e, "test_rmse": r, "test_mae": a} for k, (e, r, a) in m.other_selections.items()},
               "teacher_test_rmse": result.teacher_test_rmse, "teacher_test_mae": result.teacher_test_mae,
               "teacher_queries": m.teacher_queries, "seconds": round(result.seconds, 3), "device": result.device,
               "engine": m.engine or result.engine, "cancelled": result.cancelled, "interrupted": result.interrupted,
               "run_id": stored[0].run_id if stored else None}
        choice = units_choice(run_ctx.teacher_info)
        if choice:
            row.update(teacher_units=choice["units"], teacher_units_requested=choice["requested"],
                       teacher_units_validation_rmse=choice["validation_rmse"], teacher_warning=choice["warning"] or None)
        reference = run_ctx.teacher_info.extra.get("reference")
        if reference:  # what going data-free cost: the same student on the real labels
            row.update(reference_test_rmse=reference["test_rmse"], reference_best_epoch=reference["best_epoch"])
        if cfg.data_file or cfg.input_spec:  # the user's own data: errors in the target's units too
            row.update(dataset=original_name(cfg.data_file or cfg.input_spec), real_data=bool(cfg.data_file),
                       test_rmse_raw=m.test_rmse * run_ctx.split.y_std, test_mae_raw=m.test_mae * run_ctx.split.y_std,
                       target=run_ctx.split.extra.get("target"), y_std=run_ctx.split.y_std)
        if exported:
            row["export"] = exported.get(m.member)
        if args.json:
            print(json.dumps(_finite(row), allow_nan=False))  # NaN / inf as null: the line stays JSON
        else:
            versus = ("RMSE against the teacher itself: data-free" if data_free
                      else f"teacher RMSE {result.teacher_test_rmse:.4f}")
            print(f"{m.sampler:>10} α={m.alpha:<10} seed {m.seed}: test RMSE {m.test_rmse:.4f}  MAE {m.test_mae:.4f}  "
                  f"(best epoch {m.best_epoch}; {versus})")
    return 130 if result.cancelled and not result.interrupted else 0


def _train(args, cfg, stored):
    """Prepare the run (the teacher's units said before training), then train with progress on
    stderr: a bar on a terminal, a plain line every PROGRESS_EVERY_S seconds in a log."""
    from ..engine import run_distillation
    from ..engine.context import prepare_run
    from ..events import EpochMetrics, RunNote, RunStarted, TeacherProgress
    from ..userrun import units_choice

    members = cfg.members()
    total = cfg.epochs * len(members)
    state = {"done": 0, "last_line": 0.0}
    started = time.perf_counter()
    bar = not args.quiet and not _ci()
    log = not args.quiet and _ci()
    teacher_line = [False, 0.0]  # a '\r' teacher line is open; when the last logged one was printed

    def on_event(event) -> None:
        if stored:
            stored[0].record(event)
        if isinstance(event, TeacherProgress):
            text = f"{event.line()}  val RMSE {event.val_rmse:.4f}"
            if bar:
                print(f"\r{text}", end="", file=sys.stderr, flush=True)
                teacher_line[0] = True
            elif log and (event.epoch == 1 or time.perf_counter() - teacher_line[1] >= 10):
                print(text, file=sys.stderr, flush=True)  # a log, not a terminal: a line now and then
                teacher_line[1] = time.perf_counter()
        elif isinstance(event, RunStarted):
            if teacher_line[0]:
                print("", file=sys.stderr)
            teacher = ("the teacher is the reference (data-free: its own answers label the validation and test points)"
                       if cfg.input_spec and not cfg.data_file else
                       f"teacher test RMSE {event.teacher_test_rmse:.4f} (validation {event.teacher_val_rmse:.4f})")
            print(f"device: {event.device}; engine: {event.engine}; {teacher}" + (f"; {event.note}" if event.note else ""),
                  file=sys.stderr)
        elif isinstance(event, RunNote):  # said once the students are trained (the data-trained reference)
            print(("\n" if bar else "") + event.text, file=sys.stderr, flush=True)
        elif isinstance(event, EpochMetrics):
            state["done"] += 1
            done = state["done"]
            frac = done / total
            rmse = "" if math.isnan(event.val_rmse) else f" val RMSE {event.val_rmse:.4f}"
            elapsed = time.perf_counter() - started
            if bar and (done % max(1, total // 200) == 0 or done == total):
                print(f"\r[{'#' * int(30 * frac):<30}] {100 * frac:5.1f}% epoch {event.epoch + 1}/{cfg.epochs}{rmse} "
                      f"{elapsed:6.1f}s", end="", file=sys.stderr, flush=True)
            elif log and (elapsed - state["last_line"] >= PROGRESS_EVERY_S or done == total):
                state["last_line"] = elapsed
                print(f"progress: {100 * frac:5.1f}% epoch {event.epoch + 1}/{cfg.epochs}{rmse} {elapsed:.1f}s",
                      file=sys.stderr, flush=True)

    run_ctx = prepare_run(cfg, teacher_progress=on_event)  # kept: --export needs its split and teacher
    choice = units_choice(run_ctx.teacher_info)
    if choice:  # said before training, with the warning when the teacher is no better than the mean
        print(f"teacher units: {choice['units']} ({'chosen by auto' if choice['requested'] == 'auto' else 'as asked'}"
              + "".join(f"; validation RMSE {v:.4g} {k}" for k, v in choice["validation_rmse"].items()) + ")",
              file=sys.stderr, flush=True)
        if choice["warning"]:
            print(f"warning: {choice['warning']}", file=sys.stderr, flush=True)
    if not args.no_store:
        from ..runs.jobs import InProcessRun

        stored.append(InProcessRun(run_ctx.cfg, tags={"source": "cli"}))
        if not args.quiet:
            print(f"run {stored[0].run_id} (stored: `python -m dfkd_core runs` and the Runs page list it; "
                  "--no-store to skip)", file=sys.stderr, flush=True)
    result = run_distillation(cfg, on_event=on_event, run=run_ctx, should_stop=stored[0].should_stop if stored else None)
    if bar:
        print("", file=sys.stderr)
    return result, run_ctx


# ---------------------------------------------------------------- the user's teacher, data and export
def _configure_user_inputs(parser) -> None:
    from ..models.user_models import ACTIVATIONS, TEACHER_UNITS

    group = parser.add_argument_group("your own teacher and data")
    group.add_argument("--teacher", default=None, metavar="PATH_OR_URL",
                       help="your teacher: a TorchScript file, a state_dict of Linear layers (.pt), a skops file, "
                            "or an http(s):// endpoint taking POST {\"inputs\": [[...]]} (never unpickled)")
    group.add_argument("--teacher-activation", default=None, choices=sorted(ACTIVATIONS),
                       help="hidden activation of a state_dict teacher")
    group.add_argument("--teacher-units", default=None, choices=TEACHER_UNITS,
                       help="what the teacher takes and returns: raw (the data's own units), standardized "
                            "((x-mean)/std in, (y-mean)/std out: most tabular teachers) or auto (default: scored both "
                            "ways on the validation rows, the clearly right one taken; raw with only --input-spec)")
    group.add_argument("--teacher-timeout", type=float, default=None, help="HTTP teacher: seconds per request (default 10)")
    group.add_argument("--query-budget", type=int, default=None, help="HTTP teacher: most points ever sent (default: no limit)")
    group.add_argument("--data", default=None, metavar="PATH", help="your data: a CSV or Parquet file with a header")
    group.add_argument("--target", default=None, metavar="COL", help="the target column of --data")
    group.add_argument("--nan", default=None, choices=("refuse", "drop"), help="rows with missing values (default: refuse)")
    group.add_argument("--input-spec", default=None, metavar="JSON",
                       help="no data at all: per-feature mean/std or min/max (strictly data-free)")
    group.add_argument("--export", default=None, metavar="DIR",
                       help="write the students (TorchScript, ONNX, state_dict, model.json) into DIR")


def _user_input_fields(args) -> dict:
    """DistillConfig fields from the user-input flags; --data / --input-spec imply dataset 'user',
    and --input-spec the data-free 'synthetic' selection unless --selection says otherwise."""
    from ..data.user import USER_DATASET

    fields = {"teacher_file": args.teacher, "teacher_activation": args.teacher_activation,
              "teacher_units": args.teacher_units, "data_file": args.data,
              "target": args.target, "nan_policy": args.nan, "input_spec": args.input_spec,
              "teacher_timeout": args.teacher_timeout, "teacher_query_budget": args.query_budget}
    fields = {k: v for k, v in fields.items() if v is not None}
    if (args.data or args.input_spec) and args.dataset is None:
        fields["dataset"] = USER_DATASET
    if args.input_spec and args.selection is None:
        fields["selection"] = "synthetic"
    return fields


def _check_export_dir(args) -> None:
    """--export into a folder that already holds files is refused before training (no run's
    students end up beside another's)."""
    if not args.export:
        return
    from pathlib import Path

    from ..errors import ConfigError

    out = Path(args.export).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--export must name a folder. Got {str(out)!r}, which is a file.")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--export folder {str(out)!r} is not empty: the students would end up beside what is there. "
                          "Give a new or empty folder.")


def _export(args, cfg, result, run_ctx) -> dict:
    """--export DIR: every student into DIR (the best by validation also at DIR's top); member → folder."""
    if not args.export or not result.members:
        return {}
    from ..runs.export import export_run, member_dicts

    cards = export_run(cfg, member_dicts(result), args.export, run=run_ctx)
    print(f"exported {len(cards['students'])} student(s) to {args.export} (top level: {cards['best']})", file=sys.stderr)
    return {member: {"dir": cards["folders"][member], "top_level": member == cards["best"], "test_rmse_raw": card["student"]["test_rmse_raw"],
                     "parameters": card["student"]["parameters"], "latency_seconds": card["student"]["latency_seconds"]}
            for member, card in cards["students"].items()}


def _finite(value):
    """`value` with every NaN / inf float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _ci() -> bool:
    return not sys.stderr.isatty()

"""`bench`: the plain PyTorch loop against the engine (K = 1, 10, 50; fused MLP and generic stack
forms) on cpusmall and indoorloc, seconds per 2000 epochs, speedups and GFLOP/s next to
torch.matmul; the MNIST CNN's loop stacked (see dfkd_core.experiments.bench)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..files_out import json_text

TEACHER_MODES = ("auto", "train", "random")
HELP = "time the plain PyTorch loop against the engine's stack forms (seconds per 2000 epochs, speedups, GFLOP/s)"


def configure(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--threads", default="1", help="torch.set_num_threads (default 1)")
    parser.add_argument("--epochs", default="100", help="measured epochs per configuration (default 100)")
    parser.add_argument("--warmup", default="5", help="epochs run before measuring (default 5)")
    parser.add_argument("--datasets", default="cpusmall,indoorloc", help="comma-separated (default cpusmall,indoorloc; 'mnist' times the CNN loop: plain vs one stacked model of 1 and 3 students)")
    parser.add_argument("--ks", default="1,10,50", help="numbers of students trained at once (default 1,10,50)")
    parser.add_argument("--device", default="cpu", help="'cpu' (default) or 'cuda'")
    parser.add_argument("--teacher", default="auto",
                        help="'auto': the cached paper teacher, else a random MLP of its shape (timing does not "
                             "depend on the weights); 'train': train it when missing; 'random'; or PATH: YOUR teacher "
                             "(TorchScript / state_dict, with --data CSV --target COL or --spec JSON) side by side with "
                             "the built-in teacher of its shape and the plain loop (--ks counts direct,gaussian students)")
    parser.add_argument("--data", default="", help="with --teacher PATH: your table (CSV / Parquet)")
    parser.add_argument("--target", default="", help="with --teacher PATH --data: the target column")
    parser.add_argument("--spec", default="", help="with --teacher PATH: an input spec (JSON) instead of a table")
    parser.add_argument("--activation", default="", help="with --teacher PATH of a state_dict: its hidden activation")
    parser.add_argument("--compile", action="store_true",
                        help="also time the generic form eager against torch.compile (cpusmall K=1, K=10, digits CNN K=3)")
    parser.add_argument("--start-latency", action="store_true",
                        help="time Start → first stored epoch with a cold worker against the server's warm worker, "
                             "side by side (--repeat tries each)")
    parser.add_argument("--repeat", default="3", help="tries per side for --start-latency, Starts for --dashboard (default 3)")
    parser.add_argument("--dashboard", action="store_true",
                        help="measure the dashboard in Debian's chromium (playwright): Start → first curve point, the "
                             "longest pause and the curve's lag while a run streams, the playground's frames per "
                             "second and flicker, Start → first MNIST digits (a scratch DFKD_HOME; see docs/PERFORMANCE.md)")
    parser.add_argument("--digits", default="digits,mnist",
                        help="with --dashboard: the MNIST page's datasets timed to their first digits (default digits,mnist; '' none)")
    parser.add_argument("--against", default="",
                        help="with --dashboard: another checkout's folder (e.g. a `git worktree` of an older commit): "
                             "its dashboard is measured first, then this one's, and both columns printed side by side")
    parser.add_argument("--playground", action="store_true",
                        help="time the sampler playground instead: ms per step per sampler (target ≤ 100 ms)")


def run(args) -> int:
    import torch

    from ..experiments.bench import bench
    from ..config import MAX_STUDENTS, parse_int
    from ..data import get_dataset
    from ..device import MAX_THREADS, pick_device
    from ..errors import ConfigError

    threads = parse_int("threads", args.threads, 1, MAX_THREADS)
    epochs = parse_int("epochs", args.epochs, 1, 100_000)
    warmup = parse_int("warmup", args.warmup, 1, 100_000)
    ks = tuple(parse_int("ks", k, 1, MAX_STUDENTS) for k in args.ks.split(",") if k.strip())
    if args.start_latency:
        from ..experiments.bench import start_latency

        result = start_latency(parse_int("repeat", args.repeat, 1, 100), say=None if args.json else print)
        if args.json:
            print(json_text(result))
        return 0
    if args.dashboard:
        from ..experiments.browser import REPO, compare_table, dashboard_bench, table

        say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else (lambda text: print(text, flush=True))
        repeat = parse_int("repeat", args.repeat, 1, 100)
        digits = tuple(d.strip() for d in args.digits.split(",") if d.strip())
        against = Path(args.against).expanduser().resolve() if args.against else None
        if against is not None and not (against / "app.py").is_file():
            raise ConfigError(f"The 'against' option must name a checkout's folder holding app.py. Got {args.against!r} instead.")
        before = dashboard_bench(repeat, digits=digits, say=say, app_dir=against) if against else None
        result = dashboard_bench(repeat, digits=digits, say=say)
        if before is not None:
            print(json_text({"against": before, "this": result}) if args.json
                  else compare_table(before, result, str(against), str(REPO)))
        else:
            print(json_text(result) if args.json else table(result))
        return 0
    if args.playground:
        torch.set_num_threads(threads)
        return run_playground(epochs, warmup, threads, args.json)
    if args.teacher not in TEACHER_MODES:
        torch.set_num_threads(threads)
        return run_user_teacher(args, ks, epochs, warmup)
    if args.data or args.target or args.spec or args.activation:
        raise ConfigError(f"The --data, --target, --spec and --activation options go with --teacher PATH. "
                          f"Got --teacher {args.teacher!r} instead.")
    datasets = tuple(d.strip() for d in args.datasets.split(",") if d.strip())
    if not ks or not datasets:
        raise ConfigError(f"The 'ks' and 'datasets' parameters must name at least one each. Got {args.ks!r} and {args.datasets!r} instead.")
    for name in datasets:
        get_dataset(name)
    device = pick_device(args.device)
    torch.set_num_threads(threads)
    progress = None if args.json else (lambda text: print(text, flush=True))
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    result = bench(datasets, ks, epochs=epochs, warmup=warmup, device=str(device), teacher=args.teacher, progress=say)
    if args.compile:  # the generic form eager against torch.compile, side by side (experiments.compile_timing)
        from ..experiments.compile_timing import time_compiled

        for row in time_compiled(epochs=max(3, epochs // 10), say=say):
            case = row["case"].replace(" ", "_").replace("=", "")
            result.update({f"compile_{case}_{key}": value for key, value in row.items() if key != "case"})
    if args.json:
        print(json_text(result))
    return 0


def run_playground(epochs: int, warmup: int, threads: int, as_json: bool) -> int:
    """`bench --playground`: every registered sampler in the playground's default setting, --epochs steps each."""
    from ..dashboard import playground_views
    from ..experiments.playground import PlaygroundConfig, time_frames, time_steps
    from ..synth.samplers import SAMPLERS

    result = {}
    for name in SAMPLERS.names():
        result.update(time_steps(PlaygroundConfig(samplers=(name,)), steps=epochs, warmup=warmup,
                                 canvas=playground_views.canvas))
        if not as_json:
            r = result[name]
            print(f"playground {name:>10}: {r['step_ms_median']:6.1f} ms per step (max {r['step_ms_max']:6.1f}), "
                  f"canvas data {r['figure_ms_median']:5.1f} ms", flush=True)
    frames = time_frames(PlaygroundConfig(), frames=max(10, epochs // 2), warmup=min(warmup, 5),
                         draw=playground_views.frame)
    if not as_json:
        print(f"playground frame (default pair {', '.join(PlaygroundConfig().samplers)}: step, both canvases, the "
              f"curves, Arrow encoding): {frames['frame_ms_median']:6.1f} ms median, {frames['frame_ms_max']:6.1f} ms "
              f"max → {frames['frames_per_second']:.1f} frames per second possible (Play asks for 4)", flush=True)
    if as_json:
        print(json_text({"playground": result, "playground_frame": frames, "threads": threads}))
    return 0


def run_user_teacher(args, ks, epochs: int, warmup: int) -> int:
    """`bench --teacher PATH`: the user's teacher against the built-in teacher of its shape and the plain loop."""
    from ..device import pick_device
    from ..errors import ConfigError
    from ..experiments.bench import time_user_teacher

    if not (args.spec or (args.data and args.target)):
        raise ConfigError(f"bench --teacher PATH needs --data CSV --target COL or --spec JSON. Got --teacher "
                          f"{args.teacher!r} alone instead.")
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else (lambda text: print(text, flush=True))
    result = time_user_teacher(args.teacher, data_file=args.data, target=args.target, input_spec=args.spec,
                               activation=args.activation, ks=ks, epochs=epochs, warmup=warmup,
                               device=str(pick_device(args.device)), progress=say)
    if args.json:
        print(json_text(result))
    return 0

"""`reproduce`: run one of the paper's Tables 3-6 with the engine (teachers cached, every
comparison stored in the run store) and print our mean ± sd beside the paper's, with a
verdict per cell, under both selection protocols; `--json` ends stdout with one JSON object."""
from __future__ import annotations

import json
import sys

HELP = "reproduce one of the paper's Tables 3-6 and print ours beside the paper's numbers"


def configure(parser) -> None:
    # plain strings, checked in run(): a bad value is one 'error: …' line, never argparse's usage block
    parser.add_argument("--table", required=True, help="3, 4 (RMSE, students of 25 / 50 units), 5 (MNIST MAE) or 6 (protein RMSE)")
    parser.add_argument("--seeds", default=None, help="number of seeds 0..N-1 (split, teacher and students); "
                                                      "default 10 for Tables 3-4, 5 for Tables 5-6, 1 with --quick")
    parser.add_argument("--datasets", default=None, help="comma-separated datasets (default: the table's datasets "
                                                         "whose files are in DFKD_DATA_DIR)")
    parser.add_argument("--epochs", default=None, help="student epochs (default: the paper's; 20 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a harness check: 20 epochs, one seed, two small datasets, a small quickly trained teacher")
    parser.add_argument("--workers", default=None, help="worker processes running teachers and comparisons in "
                                                        "parallel (default: the number of CPU cores); with "
                                                        "--executor dask-local, the LocalCluster's workers")
    parser.add_argument("--executor", default=None, help="local (worker processes of this machine, the default) or "
                                                         "dask-local (a Dask LocalCluster on 127.0.0.1)")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="run the comparisons on the Dask cluster of this scheduler (see README)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse comparisons already stored as finished runs of the same settings (continue a "
                             "stopped reproduction, or add seeds to one) instead of training them again")
    parser.add_argument("--from-store", action="store_true",
                        help="train nothing: print the table from the runs already stored (e.g. of a reproduction "
                             "that was stopped; with --epochs, only runs of that many epochs)")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the table in the paper's layout as Markdown, under each selection protocol")
    parser.add_argument("--json", action="store_true", help="end stdout with one JSON object")


def _int(name: str, text: str | None) -> int | None:
    """A flag's int by the config's rules (digits only); its range is checked by reproduce.plan."""
    from ..config import parse_int

    return None if text is None else parse_int(name, text)


def run(args) -> int:
    from ..experiments.reproduce import format_report, get_table, reproduce

    table = get_table(args.table).number
    seeds = _int("seeds", args.seeds)
    epochs = _int("epochs", args.epochs)
    workers = _int("workers", args.workers)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets is not None else None
    if datasets is not None and not datasets:
        from ..errors import ConfigError

        raise ConfigError(f"The 'datasets' parameter must name at least one dataset. Got {args.datasets!r} instead.")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.from_store:
        from ..experiments.reproduce import report
        from ..runs.runstore import RunStore

        rep = report(RunStore(), table, None, epochs=epochs)
        if not rep["cells"]:
            from ..errors import ConfigError

            raise ConfigError(f"No finished runs of Table {table} are stored"
                              f"{f' with {epochs} epochs' if epochs else ''}; run it first.")
    else:
        from ..experiments.runner import check_executor

        executor, scheduler = check_executor(args.executor, args.scheduler)
        rep = reproduce(table, seeds=seeds, datasets=datasets, epochs=epochs, quick=args.quick, log=log,
                        workers=workers, resume=args.resume, executor=executor, scheduler=scheduler)
    print(format_report(rep), flush=True)
    failed = rep.get("failed_tasks") or []
    if args.markdown:
        from ..experiments.reproduce import PROTOCOLS, markdown_table

        for protocol in PROTOCOLS:
            print(f"\n{protocol} selection:\n\n{markdown_table(rep, protocol)}", flush=True)
    if args.json:
        print(json.dumps(rep), flush=True)
    if failed:
        print(f"error: {len(failed)} comparison(s) failed twice and are stored as failed runs: "
              + ", ".join(f["run_id"] for f in failed), file=sys.stderr, flush=True)
        return 1
    return 0

"""`python -m dfkd_core runs`: list, delete, stop and export the runs in the run store."""
from __future__ import annotations

import argparse
import sys

# = runstore.STATUSES, spelled out so that building the CLI does not import pandas
STATUSES = ("queued", "running", "done", "failed", "interrupted", "cancelled")
HELP = "list stored runs (--json, --status); --delete ID, --stop ID, --export ID --out DIR"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON records")
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--dataset", help="only runs on this dataset")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--delete", metavar="ID", help="delete a run: its rows and its files")
    action.add_argument("--stop", metavar="ID", help="stop a queued or running run: ask its worker, then end it (SIGTERM, SIGKILL)")
    action.add_argument("--export", metavar="ID", help="write the run's metrics.csv, results.csv and config.json to --out")
    parser.add_argument("--out", metavar="DIR", help="folder for --export (created if missing)")
    parser.add_argument("--force", action="store_true", help="with --delete: also delete a queued or running run")


def run(args: argparse.Namespace) -> int:
    from ..runs.runstore import RunStore

    for flag, value in (("--delete", args.delete), ("--stop", args.stop), ("--export", args.export), ("--out", args.out)):
        if value is not None and not value.strip():
            print(f"error: {flag} needs a value. Got {value!r} instead.", file=sys.stderr)
            return 2
    store = RunStore()
    store.mark_interrupted()  # runs whose worker died show as interrupted, not running
    if args.delete:
        store.delete_run(args.delete, force=args.force)
        print(f"deleted run {args.delete}")
        return 0
    if args.stop:
        from ..runs.jobs import stop

        stop(args.stop, store, wait=True)  # returns once the worker has ended (a few seconds at most)
        print(f"stopped run {args.stop} (now {store.get_run(args.stop).status})")
        return 0
    if args.export:
        if not args.out:
            print("error: --export needs --out DIR", file=sys.stderr)
            return 2
        from ..files_out import json_text, plain_folder, write_csv, write_text

        info = store.get_run(args.export)
        out = plain_folder(args.out)
        write_csv(out / "metrics.csv", store.metrics(args.export))  # formula-like cells neutralised, links not followed
        results = store.results(args.export)
        results["other_selections"] = results["other_selections"].map(json_text)
        write_csv(out / "results.csv", results)
        write_text(out / "config.json", json_text(info.config_dict, indent=2, sort_keys=True) + "\n")
        for name in ("metrics.csv", "results.csv", "config.json"):
            print(out / name)
        return 0
    df = store.list_runs(status=args.status, dataset=args.dataset)
    if args.json:
        print(df.to_json(orient="records", date_format="iso", indent=2))
        return 0
    if df.empty:
        print("no runs" + (f" with status {args.status!r}" if args.status else ""))
        return 0
    cols = ["id", "created_at", "status", "dataset", "last_epoch", "epochs", "members", "best_test_rmse", "title"]
    view = df[cols].copy()
    view["created_at"] = view["created_at"].dt.strftime("%Y-%m-%d %H:%M")
    print(view.to_string(index=False, na_rep="-"))
    return 0

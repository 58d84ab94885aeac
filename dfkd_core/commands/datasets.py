"""`python -m dfkd_core datasets`: list the dataset catalogue, verify checksums of the files
present, download a dataset, or load one by the paper's split protocol."""
from __future__ import annotations

import argparse
import sys

from ..data.catalog import dataset_catalog, get_dataset, load_dataset
from ..data.download import stderr_progress
from ..data.protocol import load_split
from ..files_out import json_text

HELP = "List the datasets (rows, features, target, available here or not); --check verifies checksums."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the catalogue as a JSON list")
    parser.add_argument("--check", action="store_true", help="verify the sha256 of every file present; exit 1 on a mismatch")
    parser.add_argument("--data-dir", metavar="DIR", default=None, help="the data folder (default: DFKD_DATA_DIR or the per-user cache)")
    parser.add_argument("--download", metavar="NAME", default=None,
                        help="download the files of dataset NAME that are missing (MNIST: the full training set too)")
    parser.add_argument("--load", metavar="NAME", default=None, help="load NAME by the paper's split protocol and print the split's sizes")
    parser.add_argument("--seed", default="0", help="split seed for --load (default 0)")


def run(args: argparse.Namespace) -> int:
    if args.download:
        get_dataset(args.download)
        load_dataset(args.download, data_dir=args.data_dir, download=True, progress=stderr_progress)
    if args.load:
        return _show_split(args)
    if args.check:
        return _check(args)
    rows = dataset_catalog(args.data_dir)
    if args.json:
        print(json_text(rows, indent=2))
        return 0
    _print_table(rows)
    return 0


def _print_table(rows: list[dict]) -> None:
    header = ("name", "paper name", "rows", "features", "target", "kind", "available", "source / where")
    lines = [header]
    for r in rows:
        where = r["source"] if r["builtin"] else r["where"]
        lines.append((r["name"], r["paper_name"], str(r["rows"]), str(r["features"]), r["target"], r["kind"],
                      "yes" if r["available"] else "no", where))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1])
    notes = [(r["name"], r["note"]) for r in rows if r["note"]]
    if notes:
        print()
        for name, note in notes:
            print(f"{name}: {note}")


def _check(args: argparse.Namespace) -> int:
    rows = dataset_catalog(args.data_dir, verify=True)
    bad = 0
    results = []
    for r in rows:
        for f in r["files"]:
            if f["check"] == "missing":
                continue
            results.append({"dataset": r["name"], "file": f["path"], "found_at": f["found_at"], "check": f["check"]})
            bad += f["check"] == "mismatch"
    if args.json:
        print(json_text(results, indent=2))
    else:
        for res in results:
            print(f"{res['check']:<10} {res['dataset']:<10} {res['found_at']}")
        print(f"{len(results)} files checked, {bad} mismatch{'es' if bad != 1 else ''}")
    if bad:
        print(f"error: {bad} file(s) do not match their published sha256; download them again", file=sys.stderr)
    return 1 if bad else 0


def _show_split(args: argparse.Namespace) -> int:
    from ..config import SEED_RANGE, parse_int

    seed = parse_int("seed", args.seed, *SEED_RANGE)
    get_dataset(args.load)
    split = load_split(args.load, seed=seed, data_dir=args.data_dir, progress=stderr_progress)
    info = {
        "name": split.name, "kind": split.kind, "input_shape": list(split.input_shape),
        "train": len(split.y_train), "val": len(split.y_val), "test": len(split.y_test),
        "prior": split.prior.kind, "seed": split.seed, "note": split.note, "source": split.extra.get("source"),
    }
    if args.json:
        print(json_text(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:<12} {value}")
    return 0

"""The command line: `python -m dfkd_core <command>`; each command is a module in
dfkd_core/commands/ with `HELP`, `configure(parser)` and `run(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .device import apply_thread_policy
from .errors import DfkdError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dfkd_core", description="DFKD Lab: data-free knowledge distillation of regression networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = sub.add_parser(info.name.replace("_", "-"), help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        apply_thread_policy()  # a command's own --threads flag may change it afterwards
        return int(args._run(args) or 0)
    except DfkdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

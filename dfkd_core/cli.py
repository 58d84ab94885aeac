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


def command_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `only` (so running one command never depends on
    importing the others)."""
    parser = argparse.ArgumentParser(prog="python -m dfkd_core", description="DFKD Lab: data-free knowledge distillation of regression networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [only] if only else command_names():
        module = importlib.import_module(f"{commands.__name__}.{name}")
        command = sub.add_parser(name.replace("_", "-"), help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argv[0].replace("-", "_") if argv else ""
    parser = build_parser(only=first if first in command_names() else None)
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

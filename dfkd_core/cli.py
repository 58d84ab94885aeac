"""The command line: `python -m dfkd_core <command>`; each command is a module in
dfkd_core/commands/ with `HELP`, `configure(parser)` and `run(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

from . import commands
from .device import apply_thread_policy
from .errors import DfkdError


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser, whose errors (an unknown flag, a missing value) are one `error:` line."""

    def error(self, message: str) -> None:  # argparse's own prints the usage block first
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def command_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `only` (so running one command never depends on
    importing the others)."""
    parser = OneLineParser(prog="python -m dfkd_core", description="DFKD Lab: data-free knowledge distillation of regression networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [only] if only else command_names():
        module = importlib.import_module(f"{commands.__name__}.{name}")
        command = sub.add_parser(name.replace("_", "-"), help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command: 0 done; 2 bad input (one `error:` line per problem); 1 an internal
    error (one line; DFKD_DEBUG=1 shows the traceback); 130 interrupted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argv[0].replace("-", "_") if argv else ""
    parser = build_parser(only=first if first in command_names() else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, its line printed already)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        apply_thread_policy()  # a command's own --threads flag may change it afterwards
        return int(args._run(args) or 0)
    except DfkdError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the machine refused: a file, a folder, the disk
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # the last line of defence: a bug, said in one line
        if os.environ.get("DFKD_DEBUG", "").strip() not in ("", "0"):
            traceback.print_exc()
        message = " ".join(str(exc).split())[:300]
        print(f"error: internal error: {type(exc).__name__}: {message} (set DFKD_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1

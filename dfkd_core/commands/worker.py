"""`python -m dfkd_core worker RUN_ID`: the internal command a submitted run's worker process
executes (started by dfkd_core.runs.jobs.submit; not meant to be typed by hand)."""
from __future__ import annotations

import argparse
import signal

HELP = "(internal) execute a queued run from the run store; started by the dashboard"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="id of a queued run in the run store")


def _terminate(signum, frame):  # SIGTERM → KeyboardInterrupt, so the run ends 'interrupted' cleanly
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from ..runs.jobs import work

    signal.signal(signal.SIGTERM, _terminate)
    return work(args.run_id)

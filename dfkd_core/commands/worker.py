"""`python -m dfkd_core worker RUN_ID`: the internal command a run's worker process executes
(started by dfkd_core.runs.jobs.dispatch; not meant to be typed by hand). `worker --warm` is a
server's warm worker: it imports torch and the engine first, then waits for the run to take."""
from __future__ import annotations

import argparse
import os
import signal
import sys

HELP = "(internal) execute a queued run from the run store; started by the dashboard"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", nargs="?", help="id of a queued run in the run store")
    parser.add_argument("--warm", action="store_true",
                        help="import everything first, then read the run to execute from stdin (a server's warm worker)")


def _terminate(signum, frame):  # SIGTERM → KeyboardInterrupt, so the run ends 'cancelled' or 'interrupted' cleanly
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..runs.jobs import after_run, warm_main, work

    signal.signal(signal.SIGTERM, _terminate)
    if args.warm:
        code = warm_main()
    elif not args.run_id:
        raise ConfigError("worker needs a RUN_ID (or --warm).")
    else:
        code = work(args.run_id)
        after_run()
    # everything is in the run store: skip the interpreter's teardown of torch and scikit-learn
    # (seconds on a busy machine), so that the slot and the process are free as soon as the run ends
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

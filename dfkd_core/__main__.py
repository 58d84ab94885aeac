"""`python -m dfkd_core`: the command-line entry point."""
import sys

from .cli import main
from .models import sandbox

sandbox.own_process()  # this process is the CLI's own: it may box itself before loading a user's model
sys.exit(main())

"""One module per CLI command (`datasets`, `teach`, `distill`, `bench`, ...), found by dfkd_core.cli."""

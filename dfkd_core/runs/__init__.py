"""Runs kept and run: the SQLite run store with its artifacts, and worker processes with their queue."""

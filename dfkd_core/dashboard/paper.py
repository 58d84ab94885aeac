"""The Paper page without Streamlit: the paper's Tables 3-6 as published (shown even on an empty
run store), our stored reproduction beside them with each claim's verdict in words, and
starting a reproduction (experiments.reproduce, detached)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..experiments import reproduce
from .views import store

PAPER_TABLES = tuple(sorted(reproduce.TABLES))
VERDICT_WORDS = {True: "holds", False: "does not hold", None: "not decided yet (cells missing)"}
PAIRED_HELP = ("Paired over seeds (each seed shares its split and teacher across methods): per dataset the mean of "
               "the per-seed difference a − b with its 95 % t interval and the Wilcoxon signed-rank p; 'a ≤ b' holds "
               "when the whole interval lies below 0, does not hold when it lies above 0, else undecided.")
VERDICT_HELP = ("Each cell: ours mean ± sd (paper mean ± sd) and a verdict — 'within' the paper's mean ± 2 sd, "
                "'better' below that band, 'worse' above it.")


def table_caption(table: int) -> str:
    return reproduce.table_caption(table)


def table_defaults(table: int) -> dict:
    """What the start form offers: the table's default number of seeds."""
    return {"seeds": reproduce.get_table(table).default_seeds}


def paper_table(table: int) -> pd.DataFrame:
    """The table as the paper prints it: one row per dataset, one column per method, 'mean ± sd'
    (the paper's own numbers, from experiments/paper_numbers.json; no run needed)."""
    spec = reproduce.get_table(table)
    cells = reproduce.paper_numbers()["tables"][str(spec.number)]["cells"]
    rows = {}
    for dataset in [*spec.paper_datasets, *(d for d in cells if d not in spec.paper_datasets)]:
        row = {}
        for method in spec.methods:
            mean, sd = reproduce.paper_cell(spec.number, dataset, method.key)
            row[method.label] = "—" if mean is None else f"{mean:.4f}" + ("" if sd is None else f" ± {sd:.4f}")
        rows[dataset] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "dataset"
    return frame


def stored_reproductions(table: int) -> pd.DataFrame:
    """The store's reproductions of a table, one row per epochs setting (newest first)."""
    return reproduce.stored_reproductions(store(), table)


def reproduction_cells(table: int, epochs: int) -> pd.DataFrame:
    """Ours beside the paper per (dataset, method), for one stored reproduction."""
    return reproduce.summarize(reproduce.collect(store(), table, epochs=epochs), table)


def reproduction_paired(table: int, epochs: int, protocol: str) -> pd.DataFrame:
    """The paper's two-method claims checked seed by seed on one stored reproduction (reproduce.paired_verdicts)."""
    return reproduce.paired_verdicts(reproduce.collect(store(), table, epochs=epochs), table, protocol)


def executor_line() -> str:
    """What a reproduction started here runs on: the Dask cluster at DFKD_SCHEDULER, else local processes."""
    from ..experiments.runner import dashboard_executor, executor_label

    return f"Runs on {executor_label(*dashboard_executor())}."


def reproduction_table(cells: pd.DataFrame, table: int, protocol: str) -> pd.DataFrame:
    """The paper's layout with 'ours (paper) verdict' in each cell."""
    return reproduce.display_table(cells, table, protocol)


def paper_claims(cells: pd.DataFrame, table: int, protocol: str) -> list[str]:
    """Each of the paper's claims about the table, checked on our numbers, as one markdown line
    that says in words whether it holds (no emoji: they draw as empty boxes without an emoji font)."""
    return [f"**{VERDICT_WORDS[c['holds']]}** — {c['claim']} (paper: {c['paper']}; ours: {c['ours']})"
            for c in reproduce.claims(cells, table, protocol)]


def start_reproduction(table: int, *, seeds: int | None, datasets: list[str] | None, epochs: int | None,
                       quick: bool, resume: bool) -> tuple[int, Path]:
    """Start `python -m dfkd_core reproduce` detached: (process id, its log file)."""
    return reproduce.start_reproduction(table, seeds=seeds, datasets=datasets, epochs=epochs, quick=quick, resume=resume)


def active_reproduction(table: int) -> tuple[pd.DataFrame, str]:
    """The table's reproduction runs still queued or running, and the newest log's last lines."""
    active = reproduce.active_runs(store(), table)
    _, tail = reproduce.latest_log()
    return active, tail

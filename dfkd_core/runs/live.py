"""What a page polling a running run reads, kept cheap enough to poll every second: the epoch
metrics read incrementally (only the epochs since the last one seen, per process), and the
projection shown until the next one is ready (no empty chart while a new snapshot is projected)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, MutableMapping

import pandas as pd

from .runstore import RunStore

MAX_CACHED_RUNS = 16  # runs whose metrics a server keeps in memory between polls


@dataclass
class _Tail:
    frame: pd.DataFrame  # every metrics row read so far, ordered by member and epoch
    last_epoch: int  # the highest epoch read (its rows are read again: a flush may end mid-epoch)


_tails: "OrderedDict[tuple[str, str], _Tail]" = OrderedDict()
_lock = threading.Lock()


def metrics(store: RunStore, run_id: str) -> pd.DataFrame:
    """store.metrics(run_id), read incrementally: the first call reads every row, later calls only
    the rows from the last epoch seen on (a worker may flush an epoch's members in two writes, so
    that epoch is read again). Equal to a full read as long as stored rows are only appended,
    which is how workers write. The frame returned is shared: do not modify it."""
    key = (str(store.home), run_id)
    with _lock:
        tail = _tails.get(key)
        if tail is not None:
            _tails.move_to_end(key)
    if tail is None:
        full = store.metrics(run_id)
        tail = _Tail(full, int(full["epoch"].max()) if len(full) else -1)
    else:
        since = max(tail.last_epoch, 0)
        new = store.metrics(run_id, since_epoch=since)
        if len(new):
            kept = tail.frame[tail.frame["epoch"] < since]
            frame = pd.concat([kept, new], ignore_index=True) if len(kept) else new
            tail = _Tail(frame.sort_values(["member", "epoch"], kind="stable", ignore_index=True), int(new["epoch"].max()))
    with _lock:
        _tails[key] = tail
        while len(_tails) > MAX_CACHED_RUNS:
            _tails.popitem(last=False)
    return tail.frame


def forget(store: RunStore, run_id: str) -> None:
    """Drop the cached rows of a run (deleted, or rewritten)."""
    with _lock:
        _tails.pop((str(store.home), run_id), None)


def hold_projection(state: MutableMapping[str, Any], key: str, run_id: str, epoch: int, method: str,
                    ready: Any | None) -> tuple[Any | None, int | None, bool]:
    """The projection to draw at `epoch`: (projection, its epoch, pending). While the one asked
    for is still being computed (`ready` is None), the last one drawn for this run and method
    stays up, with pending=True (the page says which epoch it shows); `state` (a session's
    state) remembers it under `key`."""
    if ready is not None:
        state[key] = (run_id, method, epoch, ready)
        return ready, epoch, False
    held = state.get(key)
    if held and held[0] == run_id and held[1] == method:
        return held[3], held[2], True
    return None, None, True

"""Parcel chunks of a processor, spread over the Dask cluster the processor runs on.

A processor that works parcel by parcel maps a picklable function over chunks of parcel ids with
:func:`map_chunks`. When the processor itself runs as a Dask task (a season run or an OGC job),
the chunks become tasks of the same cluster: the calling task leaves its worker slot
(``distributed.worker_client``) and waits for them, so every worker takes part. Results come
back in chunk order, so the product is identical to a serial run. Outside Dask (``capmon run``)
the chunks run one after the other in the process.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

AHEAD = 4
"""Chunks submitted ahead of the one being consumed (bounds the memory of waiting results)."""


def in_dask_worker() -> bool:
    """Whether this code runs inside a task of a Dask worker."""
    if "distributed" not in sys.modules:  # never imported: not a worker (and keep it unloaded)
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def chunked(ids: Sequence[Any], size: int) -> list[list[Any]]:
    """``ids`` cut into consecutive chunks of at most ``size``."""
    step = max(1, size)
    return [list(ids[i : i + step]) for i in range(0, len(ids), step)]


def map_chunks(
    function: Callable[[list[Any]], T], chunks: Sequence[list[Any]], *, ahead: int = AHEAD
) -> Iterator[T]:
    """``function(chunk)`` for each chunk, in order; on the cluster when running in a worker."""
    if len(chunks) <= 1 or not in_dask_worker():
        for chunk in chunks:
            yield function(chunk)
        return
    from distributed import worker_client

    with worker_client() as client:
        pending: deque[Any] = deque()
        remaining = iter(chunks)
        for chunk in remaining:
            pending.append(client.submit(function, chunk, pure=False))
            if len(pending) > ahead:
                break
        while pending:
            yield pending.popleft().result()
            following = next(remaining, None)
            if following is not None:
                pending.append(client.submit(function, following, pure=False))

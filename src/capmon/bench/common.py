"""What the benchmarks share: the machine's load and their working folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (reported with every figure: a shared machine's
    other work changes timings a lot)."""
    return [round(x, 2) for x in os.getloadavg()]


@contextmanager
def working_folder(path: Path | None, prefix: str) -> Iterator[Path]:
    """``path`` (created, kept and reused), or a temporary folder removed at the end."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

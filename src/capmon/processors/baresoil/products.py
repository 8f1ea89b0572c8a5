"""Product writing shared by the 2022 use-case processors (bare soil, heterogeneity,
multi-annual): a product folder written atomically, tables appended chunk by chunk. Names,
folders and catalogue rows come from :mod:`capmon.processors.common`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from capmon.errors import InputError
from capmon.workspace import atomic_path


def write_product_folder(
    folder: Path, writers: Mapping[str, Callable[[Path], None]], report: Mapping[str, Any]
) -> dict[str, Path]:
    """Write each file (name -> writer(path)) and ``report.json`` into ``folder`` atomically.

    The folder is built under a temporary name and renamed when complete, so it is either
    complete or absent.
    """
    if folder.exists():
        raise InputError(f"the product folder {folder} already exists")
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        for name, write in writers.items():
            write(tmp / name)
        (tmp / "report.json").write_text(
            json.dumps(report, indent=2, default=str), encoding="utf-8"
        )
    return {name: folder / name for name in [*writers, "report.json"]}


class TableAppender:
    """Appends pandas tables chunk by chunk to Parquet or CSV files of a product being written
    (so a 1M-parcel run never holds every row in memory)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._parquet: dict[str, pq.ParquetWriter] = {}
        self._csv_started: set[str] = set()

    def append(self, name: str, table: pd.DataFrame) -> None:
        """Append ``table`` to ``folder/name`` (``.parquet`` or ``.csv``)."""
        path = self.folder / name
        if name.endswith(".parquet"):
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            writer = self._parquet.get(name)
            if writer is None:
                writer = pq.ParquetWriter(path, arrow.schema, compression="zstd")
                self._parquet[name] = writer
            writer.write_table(arrow.cast(writer.schema))
        elif name.endswith(".csv"):
            first = name not in self._csv_started
            table.to_csv(path, mode="w" if first else "a", header=first, index=False)
            self._csv_started.add(name)
        else:
            raise InputError(f"unknown table format of {name}")

    def close(self) -> None:
        """Finish the Parquet files."""
        for writer in self._parquet.values():
            writer.close()
        self._parquet.clear()

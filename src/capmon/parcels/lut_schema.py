"""The stored form of a crop LUT, and the strict UTF-8 CSV reading every LUT format shares.

See :mod:`capmon.parcels.lut` for the rules; this module only knows the columns and how to
normalise them, so that the Sen4CAP reader and the HCAT converter produce the same table.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from capmon.errors import EncodingError, InputError
from capmon.parcels.codes import crop_key
from capmon.parcels.report import MAX_PROBLEM_ROWS, LutReport

LUT_COLUMNS = (
    "ori_crop",
    "ctnum",
    "ct",
    "lc",
    "ctnuml4a",
    "ctl4a",
    "ctnumdiv",
    "eaa",
    "al",
    "pgrass",
    "tgrass",
    "fallow",
    "cwater",
)
INTEGER_COLUMNS = ("ctnum", "lc", "ctnuml4a", "ctnumdiv")
FLAG_COLUMNS = ("eaa", "al", "pgrass", "tgrass", "fallow", "cwater")
TEXT_COLUMNS = ("ct", "ctl4a")
INTEGER_TEXT = re.compile(r"^[+-]?\d+$")
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class PreparedLut:
    """A validated crop LUT in the stored form, and its import report."""

    table: pd.DataFrame
    report: LutReport


@dataclass(frozen=True)
class CsvRecord:
    """One data record of a CSV file: its first line number and its values by column."""

    line: int
    values: dict[str, str]


def read_utf8_csv(path: str | Path) -> tuple[list[str], list[CsvRecord]]:
    """Header (as written) and records of a UTF-8 CSV; quoted fields may span lines."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: file not found")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise EncodingError(
            f"{file}: line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not UTF-8; "
            "crop LUTs must be saved as UTF-8"
        ) from exc
    if not text.strip():
        raise InputError(f"{file}: the file is empty")
    first_line = text.splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise InputError(f"{file}: line 1: not a CSV header ({exc})") from exc
    header = [h.strip() for h in header]
    records: list[CsvRecord] = []
    line = reader.line_num + 1
    try:
        for values in reader:
            start, line = line, reader.line_num + 1
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(header):
                raise InputError(
                    f"{file}: line {start}: {len(values)} fields but the header has {len(header)}"
                )
            padded = values + [""] * (len(header) - len(values))
            records.append(CsvRecord(start, dict(zip(header, padded, strict=True))))
    except csv.Error as exc:
        raise InputError(f"{file}: line {reader.line_num}: {exc}") from exc
    return header, records


def problem_listing(title: str, items: Sequence[str]) -> str:
    shown = "; ".join(items[:MAX_PROBLEM_ROWS])
    more = f"; and {len(items) - MAX_PROBLEM_ROWS} more" if len(items) > MAX_PROBLEM_ROWS else ""
    return f"{title}: {shown}{more}"


def normalised_lut(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """The stored form of a LUT; checks that ``ori_crop`` and ``ctnum`` are unique.

    ``rows`` holds the Sen4CAP columns (``ori_crop`` as text or numbers) and a ``line`` column
    with each row's line in ``source`` for the error messages; extra columns are kept.
    """
    keys = pd.Series([crop_key(v) for v in rows["ori_crop"]], dtype="string")
    problems: list[str] = []
    for column, values in (("ori_crop", keys), ("ctnum", rows["ctnum"])):
        repeated = values[values.duplicated(keep=False)]
        for value, index in list(repeated.groupby(repeated, sort=False).groups.items()):
            lines = ", ".join(str(rows["line"].iloc[i]) for i in index)
            problems.append(f"{column} {value!r} appears on lines {lines}")
    if problems:
        raise InputError(problem_listing(f"{source}: the LUT has repeated codes", problems))
    texts = [str(v).strip() for v in rows["ori_crop"]]
    if all(INTEGER_TEXT.match(t) for t in texts):
        ori_crop: pd.Series = pd.Series([int(t) for t in texts], dtype="Int64")
    else:
        ori_crop = pd.Series(texts, dtype="string")
    table = pd.DataFrame({"ori_crop": ori_crop})
    for column in INTEGER_COLUMNS:
        table[column] = rows[column].astype("int32").to_numpy()
    for column in TEXT_COLUMNS:
        table[column] = rows[column].astype("string").to_numpy()
    for column in FLAG_COLUMNS:
        table[column] = rows[column].astype(bool).to_numpy()
    table = table[list(LUT_COLUMNS)]
    table["crop_key"] = keys.to_numpy()
    for column in rows.columns:
        if column not in table.columns and column != "line":
            table[column] = rows[column].to_numpy()
    return table.sort_values("ctnum", kind="stable").reset_index(drop=True)

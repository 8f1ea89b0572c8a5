"""Parcel and holding identifiers: ``ori_id``/``ori_hold`` from the declared columns, stable
``NewID``/``HoldID`` across re-imports (Sen4CAP ``data-preparation.py`` rules, sen4cap-system 2.2).

* ``ori_id``: the parcel id columns joined with ``'-'``. Ids are text; numbers become text one
  value at a time: integers as written, whole numbers stored as reals (``12.0`` in shapefile
  DBF and GeoPackage REAL columns) without the ``.0`` (``'12'``, so an id keeps its text when a
  later file stores it as an integer), other reals in their shortest exact text (``'12.5'``,
  ``'1e-07'``), never rounded. A whole real at or beyond 2**53 (2**24 for float32) is refused
  naming its row and column: above that a float no longer holds every integer, so the id read
  may not be the id written (``1e300`` would become a 301-digit id); such ids must be stored
  as text or integers. Infinite values are refused likewise.
* An id (after joining) longer than :data:`MAX_ID_LENGTH` characters is refused naming its row.
  Rows sharing an id get the suffixes ``-A``, ``-B``, ... ``-Z``, ``-AA`` ... in file order when
  asked to (otherwise that is an error).
* ``NewID``: kept from the previous version when ``ori_id`` matches; new parcels get
  ``max(previous NewID) + rank`` ordered by ``ori_id`` (text order), so ids never get reused.
* ``HoldID``: the same rule on ``ori_hold`` with a dense rank (one id per holding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from capmon.errors import InputError

MAX_ID_LENGTH = 254
"""The longest ``ori_id``/``ori_hold`` (characters): a shapefile text field holds 254, and the
ids go into the shapefiles and CSVs of the products; real ids are far shorter."""
MAX_LISTED_IDS = 10


def id_text(value: Any) -> str | None:
    """One id value as text; None when missing or blank.

    Raises :class:`InputError` (without the row: the caller knows it) for a float that cannot
    be an exact id: infinite, or whole and beyond the float's exact integer range.
    """
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise InputError(f"the id {value} is not a finite number")
        if not float(value).is_integer():
            return str(value)  # shortest text that reads back as the same float (float32 too)
        exact = 2 ** (np.finfo(np.asarray(value).dtype).nmant + 1)
        if abs(value) >= exact:
            raise InputError(
                f"the id {value} is a real number of 2**{exact.bit_length() - 1} or more, where "
                f"{np.asarray(value).dtype} no longer holds every integer, so it may not be the "
                "id written: store the ids as text or integers"
            )
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value).strip()
    return text or None


def join_id_columns(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    label: str = "the declarations",
    rows: Sequence[int] | npt.NDArray[np.int64] | None = None,
    strict: bool = True,
) -> pd.Series:
    """The columns' values joined with ``'-'``; NA where any of them is missing.

    ``rows`` are the 1-based feature numbers of ``frame``'s rows in the file (default 1, 2, ...)
    for the errors, which name ``label``, the row and the column. With ``strict=False`` an id
    that cannot be read (see :func:`id_text`) or is too long is NA instead of an error (for
    features that are only listed in a report).
    """
    numbers = list(range(1, len(frame) + 1)) if rows is None else [int(r) for r in rows]
    problems: list[str] = []
    parts: list[list[str | None]] = []
    for column in columns:
        texts: list[str | None] = []
        for position, value in enumerate(_values(frame[column])):
            try:
                texts.append(id_text(value))
            except InputError as exc:
                texts.append(None)
                problems.append(f"row {numbers[position]}, column {column!r}: {exc}")
        parts.append(texts)
    joined: list[str | None] = []
    for position, row in enumerate(zip(*parts, strict=True)):
        text = None if any(p is None for p in row) else "-".join(str(p) for p in row)
        if text is not None and len(text) > MAX_ID_LENGTH:
            problems.append(
                f"row {numbers[position]}, {_column_names(columns)}: the id is {len(text)} "
                f"characters long, more than the {MAX_ID_LENGTH} allowed ({text[:40]!r}...)"
            )
            text = None
        joined.append(text)
    if problems and strict:
        raise InputError(f"{label}: {len(problems)} invalid ids: {_listed(problems)}")
    return pd.Series(joined, index=frame.index, dtype="string")


def check_id_lengths(
    ids: pd.Series, rows: Sequence[int] | npt.NDArray[np.int64], label: str, why: str
) -> None:
    """Refuse ids longer than :data:`MAX_ID_LENGTH` (``why`` says how they got long)."""
    lengths = ids.str.len().fillna(0).to_numpy()
    long = np.flatnonzero(lengths > MAX_ID_LENGTH)
    if len(long):
        problems = [
            f"row {int(rows[i])}: {ids.iloc[i][:40]!r}... has {int(lengths[i])} characters"
            for i in long.tolist()
        ]
        raise InputError(
            f"{label}: {len(long)} ids are longer than {MAX_ID_LENGTH} characters {why}: "
            f"{_listed(problems)}"
        )


def _values(column: pd.Series) -> list[Any]:
    """The column's values, numpy float scalars kept as such (their text depends on the width)."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
        return list(column.to_numpy())
    return column.tolist()


def _column_names(columns: Sequence[str]) -> str:
    if len(columns) == 1:
        return f"column {columns[0]!r}"
    return "columns " + " + ".join(repr(c) for c in columns)


def _listed(problems: list[str]) -> str:
    more = len(problems) - MAX_LISTED_IDS
    return "; ".join(problems[:MAX_LISTED_IDS]) + (f" and {more} more" if more > 0 else "")


def suffix_letters(position: int) -> str:
    """``A`` for 0, ``B`` for 1, ... ``Z``, ``AA``, ``AB`` ... (bijective base 26)."""
    letters = ""
    n = position + 1
    while n > 0:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def add_duplicate_suffixes(ori_id: pd.Series) -> tuple[pd.Series, npt.NDArray[np.bool_]]:
    """Sen4CAP's ``-A``/``-B`` suffixes on every row of an id shared by several rows.

    Returns the new ids and which rows got a suffix. A suffixed id that collides with an
    existing id gets a later suffix until it is unique.
    """
    values: list[str | None] = [None if pd.isna(v) else str(v) for v in ori_id.tolist()]
    shared = (ori_id.notna() & ori_id.duplicated(keep=False)).to_numpy()
    taken = {v for v in values if v is not None}
    seen: dict[str, int] = {}
    result = list(values)
    for position in np.flatnonzero(shared):
        base = str(values[position])
        rank = seen.get(base, 0)
        candidate = f"{base}-{suffix_letters(rank)}"
        while candidate in taken:
            rank += 1
            candidate = f"{base}-{suffix_letters(rank)}"
        seen[base] = rank + 1
        taken.add(candidate)
        result[position] = candidate
    return pd.Series(result, index=ori_id.index, dtype="string"), shared


def assign_stable_ids(keys: pd.Series, previous: pd.Series | None, *, dense: bool) -> pd.Series:
    """Integer ids for ``keys``, keeping ``previous`` ids (a Series: key -> id) where they match.

    New keys get ``max(previous ids) + rank`` in key order (``dense``: one id per distinct key,
    as for holdings). Missing keys get a missing id.
    """
    known: dict[str, int] = {}
    highest = 0
    if previous is not None and len(previous):
        present = previous.dropna()
        known = {str(k): int(v) for k, v in present.items()}
        highest = int(present.max()) if len(present) else 0
    values: list[int | None] = []
    new_keys = sorted({str(k) for k in keys.dropna().tolist() if str(k) not in known})
    if not dense and len(new_keys) != int(keys.dropna().map(lambda k: k not in known).sum()):
        raise ValueError("parcel ids must be unique before NewIDs are assigned")
    rank = {key: highest + i + 1 for i, key in enumerate(new_keys)}
    for key in keys.tolist():
        if key is None or key is pd.NA:
            values.append(None)
        else:
            text = str(key)
            values.append(known[text] if text in known else rank[text])
    return pd.Series(values, index=keys.index, dtype="Int64")

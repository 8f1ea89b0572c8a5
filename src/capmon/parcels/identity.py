"""Parcel and holding identifiers: ``ori_id``/``ori_hold`` from the declared columns, stable
``NewID``/``HoldID`` across re-imports (Sen4CAP ``data-preparation.py`` rules, sen4cap-system 2.2).

* ``ori_id``: the parcel id columns joined with ``'-'``; whole numbers stored as reals (``12.0``
  in shapefiles) are written without the ``.0``. Rows sharing an id get the suffixes ``-A``,
  ``-B``, ... ``-Z``, ``-AA`` ... in file order when asked to (otherwise that is an error).
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


def id_text(value: Any) -> str | None:
    """One id value as text; None when missing or blank."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value).strip()
    return text or None


def join_id_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The columns' values joined with ``'-'``; NA where any of them is missing."""
    parts = [[id_text(v) for v in frame[c].tolist()] for c in columns]
    joined = [
        None if any(p is None for p in row) else "-".join(str(p) for p in row)
        for row in zip(*parts, strict=True)
    ]
    return pd.Series(joined, index=frame.index, dtype="string")


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

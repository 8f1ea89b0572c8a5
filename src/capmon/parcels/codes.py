"""Crop codes: their stored type, and the normalised key that joins declarations to a crop LUT.

Sen4CAP stores a numeric crop code column as ``int`` and a text one as ``text``; capmon does
the same (``Int64`` or ``string`` columns). Paying agencies and LUT authors do not always agree
on how a code is written, so codes are joined on a normalised key (:func:`crop_key`):
surrounding blanks are removed, and an integer written as text loses its leading zeros and any
``.0`` (DE-BB declares ``'001'`` where the EuroCrops table says ``1``; DK's shapefile stores
``593.0``). Other text codes are kept as written (case included).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

_INTEGER_TEXT = re.compile(r"^[+-]?\d+(?:\.0*)?$")
MAX_LISTED_CODES = 50


def crop_key(value: Any) -> str | None:
    """The normalised join key of one crop code, or None for a missing code."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    if not text:
        return None
    if _INTEGER_TEXT.match(text):
        return str(int(text.split(".")[0]))
    return text


def crop_keys(values: pd.Series) -> pd.Series:
    """:func:`crop_key` of every value, as a ``string`` Series (missing codes are NA)."""
    return pd.Series([crop_key(v) for v in values], index=values.index, dtype="string")


def crop_code_column(values: pd.Series) -> pd.Series:
    """A declared crop code column in its stored type: ``Int64`` if numeric, else ``string``.

    A float column holding only whole numbers (shapefiles store integers as reals) is numeric;
    text stays text even when it looks numeric, as in Sen4CAP, but loses surrounding blanks.
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("Int64")
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64")
    if pd.api.types.is_float_dtype(values.dtype):
        present = values.dropna()
        if bool((present == np.floor(present)).all()):
            return values.astype("Int64")
        return pd.Series(
            [None if pd.isna(v) else repr(float(v)) for v in values],
            index=values.index,
            dtype="string",
        )
    text = pd.Series(
        [None if _missing(v) else str(v).strip() for v in values],
        index=values.index,
        dtype="string",
    )
    return text.mask(text == "")


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class MissingCropCode:
    """A declared crop code that the LUT does not have, and how many parcels declare it."""

    code: str
    parcels: int


@dataclass(frozen=True)
class CropCodeCheck:
    """Declared crop codes compared with a crop LUT's codes (both as normalised keys)."""

    lut_version: int | None
    declaration_version: int | None
    distinct_codes: int
    missing_code_count: int
    parcels_without_lut_entry: int
    missing_codes: tuple[MissingCropCode, ...]

    @property
    def coverage(self) -> float:
        """Share of the declared distinct codes that the LUT has (1.0 when nothing declared)."""
        if self.distinct_codes == 0:
            return 1.0
        return 1.0 - self.missing_code_count / self.distinct_codes


def check_crop_codes(
    declared: Iterable[Any],
    lut_keys: Iterable[str],
    *,
    lut_version: int | None = None,
    declaration_version: int | None = None,
) -> CropCodeCheck:
    """Which declared codes (one value per parcel) have no LUT entry; most frequent first."""
    counts = Counter(k for k in (crop_key(v) for v in declared) if k is not None)
    known = set(lut_keys)
    missing = sorted(
        ((code, n) for code, n in counts.items() if code not in known),
        key=lambda item: (-item[1], item[0]),
    )
    return CropCodeCheck(
        lut_version=lut_version,
        declaration_version=declaration_version,
        distinct_codes=len(counts),
        missing_code_count=len(missing),
        parcels_without_lut_entry=sum(n for _, n in missing),
        missing_codes=tuple(MissingCropCode(c, n) for c, n in missing[:MAX_LISTED_CODES]),
    )

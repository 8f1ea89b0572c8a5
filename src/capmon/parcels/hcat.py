"""Converting EuroCrops HCAT mapping CSVs (national crop code -> HCAT3 class) to a Sen4CAP LUT.

Input: one or more EuroCrops country mapping CSVs (``csvs/country_mappings/*.csv``). Their
schemas vary; the columns used are found by name, case-insensitively: the code
(``original_code``; tables without codes, such as EE, IE, LT and SK, are keyed by
``original_name`` instead), ``original_name``, ``translated_name``, ``HCAT3_code`` and
``HCAT3_name``. Quoted fields may span several lines. Rows without a code or with a code seen
before (in the same file or an earlier one) are skipped and listed in the report.

The conversion rule, one LUT row per national code:

* ``ori_crop`` = the national code; ``crop_key`` its normalised form (leading zeros stripped,
  so DE-BB's declared ``'001'`` matches the table's ``1``).
* ``ctnum`` = 1..N, rows numbered in the order (HCAT3 code, code): Sen4CAP requires a unique
  integer per row, and the 10-digit HCAT3 code itself does not fit its ``int4`` column; the code
  is kept in the extra column ``hcat3_code`` (``hcat3_name``, ``ori_name`` are kept too).
* ``ct`` = the HCAT3 class name (e.g. ``winter_common_soft_wheat``).
* ``ctnuml4a`` / ``ctl4a`` = the L4A crop group: the HCAT3 class itself when it is at most four
  levels deep (``xx xx xx xx 00``) or a season-specific class (``winter_``/``spring_``/
  ``summer_`` names: season matters for phenology); otherwise (species of herbs, grasses,
  flowers, vegetables, fruit; ``unspecified_season_`` classes) its level-4 parent. The number is
  the group's HCAT3 code minus 3 300 000 000 (``spring_barley`` 3301010402 -> 1010402), which
  fits ``int4`` and reads back to the code.
* ``ctnumdiv`` = ``ctnuml4a`` (crop diversification counts winter and spring crops apart).
* ``lc`` and the flags, from the HCAT3 hierarchy:

  =====================================  ==  ===  ==  ======  ======  ======  ======
  HCAT3 class (code prefix)              lc  eaa  al  pgrass  tgrass  fallow  cwater
  =====================================  ==  ===  ==  ======  ======  ======  ======
  arable crops (3301), by default        1   1    1   0       0       0       0
  rice (33010107)                        1   1    1   0       0       0       1
  temporary grass, grasses (33010901-02) 2   1    1   0       1       0       0
  fallow land (3301110000)               4   1    1   0       0       1       0
  kitchen gardens (3301120000)           5   0    0   0       0       0       0
  permanent grassland (3302)             2   1    0   1       0       0       0
  permanent crops (3303)                 3   1    0   0       0       0       0
  mushrooms, energy, GM crops (3304)     5   1    0   0       0       0       0
  greenhouses (3305)                     5   1    1   0       0       0       0
  trees/forest, peat, unmaintained,      0   0    0   0       0       0       0
  not known/other (3306, 3307, 3308, 3399)
  =====================================  ==  ===  ==  ======  ======  ======  ======

  So ``lc``: 1 arable crop, 2 grassland, 3 permanent crop, 4 fallow, 5 other agricultural
  land, 0 not agricultural or unknown (L4A classifies ``lc`` 1-4, as Sen4CAP's default).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from capmon.errors import ColumnError, InputError
from capmon.parcels.codes import crop_key
from capmon.parcels.hcat3_classes import hcat3_classes
from capmon.parcels.lut_schema import PreparedLut, normalised_lut, read_utf8_csv
from capmon.parcels.report import LutReport, ProblemList, ProblemRow

HCAT_OFFSET = 3_300_000_000
_SEASONS = ("winter_", "spring_", "summer_")


def l4a_group(code: int) -> int:
    """The HCAT3 code of the L4A group of an HCAT3 class (see the module docstring)."""
    if code % 100 == 0:
        return code
    name = hcat3_classes().get(code, "")
    if name.startswith(_SEASONS):
        return code
    parent = code - code % 100
    return parent if parent in hcat3_classes() else code


def land_cover_and_flags(code: int) -> dict[str, int | bool]:
    """``lc`` and the six Sen4CAP flags of an HCAT3 class (table in the module docstring)."""
    digits = f"{code:010d}"
    group, arable_group = digits[:4], digits[:8]
    flags = dict(eaa=False, al=False, pgrass=False, tgrass=False, fallow=False, cwater=False)
    lc = 0
    if group == "3301":
        lc, flags["eaa"], flags["al"] = 1, True, True
        if arable_group == "33010107":
            flags["cwater"] = True
        elif arable_group in ("33010901", "33010902"):
            lc, flags["tgrass"] = 2, True
        elif code == 3301110000:
            lc, flags["fallow"] = 4, True
        elif code == 3301120000:
            lc, flags["eaa"], flags["al"] = 5, False, False
    elif group == "3302":
        lc, flags["eaa"], flags["pgrass"] = 2, True, True
    elif group == "3303":
        lc, flags["eaa"] = 3, True
    elif group == "3304":
        lc, flags["eaa"] = 5, True
    elif group == "3305":
        lc, flags["eaa"], flags["al"] = 5, True, True
    return {"lc": lc, **flags}


def _column(header: Sequence[str], *names: str) -> str | None:
    lower = {h.lower(): h for h in header}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def hcat_lut(paths: Sequence[Path]) -> PreparedLut:
    """Convert EuroCrops HCAT mapping CSVs to a LUT (first file wins for a repeated code)."""
    rows: list[dict[str, Any]] = []
    skipped: list[ProblemRow] = []
    seen: dict[str, str] = {}
    read = 0
    for path in paths:
        header, records = read_utf8_csv(path)
        code_col = _column(header, "original_code") or _column(header, "original_name")
        hcat_col = _column(header, "HCAT3_code")
        if code_col is None or hcat_col is None:
            needed = [
                n
                for n, c in (("original_code or original_name", code_col), ("HCAT3_code", hcat_col))
                if c is None
            ]
            raise ColumnError(
                f"{path}: not a EuroCrops HCAT mapping: no {' or '.join(needed)} column "
                f"(found: {', '.join(header)})"
            )
        name_col = _column(header, "original_name")
        english_col = _column(header, "translated_name")
        hcat_name_col = _column(header, "HCAT3_name")
        for record in records:
            read += 1
            value = record.values
            code = value[code_col].strip()
            key = crop_key(code)
            if key is None:
                skipped.append(ProblemRow(record.line, None, f"{path.name}: no crop code"))
                continue
            if key in seen:
                skipped.append(
                    ProblemRow(record.line, code, f"{path.name}: code already in {seen[key]}")
                )
                continue
            hcat_text = value[hcat_col].strip()
            if not hcat_text.isdigit():
                skipped.append(
                    ProblemRow(record.line, code, f"{path.name}: HCAT3 code {hcat_text!r}")
                )
                continue
            seen[key] = f"{path.name} line {record.line}"
            hcat_code = int(hcat_text)
            hcat_name = (
                value[hcat_name_col].strip() if hcat_name_col else ""
            ) or hcat3_classes().get(hcat_code, str(hcat_code))
            group = l4a_group(hcat_code)
            rows.append(
                {
                    "line": record.line,
                    "ori_crop": code,
                    "hcat3_code": hcat_code,
                    "ct": hcat_name,
                    "ctnuml4a": group - HCAT_OFFSET,
                    "ctl4a": hcat3_classes().get(group, hcat_name),
                    "ctnumdiv": group - HCAT_OFFSET,
                    **land_cover_and_flags(hcat_code),
                    "hcat3_name": hcat_name,
                    "ori_name": value[name_col].strip() if name_col else "",
                    "translated_name": value[english_col].strip() if english_col else "",
                }
            )
    if not rows:
        raise InputError(f"{', '.join(str(p) for p in paths)}: no usable HCAT mapping rows")
    frame = pd.DataFrame(rows)
    frame["_key"] = [crop_key(v) for v in frame["ori_crop"]]
    frame = frame.sort_values(["hcat3_code", "_key"], kind="stable").drop(columns="_key")
    frame["ctnum"] = range(1, len(frame) + 1)
    frame["hcat3_code"] = frame["hcat3_code"].astype("Int64")
    source = " + ".join(str(p) for p in paths)
    table = normalised_lut(frame.reset_index(drop=True), source)
    report = LutReport(
        sources=tuple(str(p) for p in paths),
        kind="hcat",
        rows_read=read,
        entries=len(table),
        skipped=ProblemList.of(skipped),
        notes=("converted from EuroCrops HCAT3 by capmon.parcels.hcat's documented rule",),
    )
    return PreparedLut(table, report)

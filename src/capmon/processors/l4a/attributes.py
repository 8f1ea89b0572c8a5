"""Parcel attributes as L4A features: terrain, weather or any other number per parcel.

The satellite series say how a parcel grows; where it lies says which crops can grow there.
Elevation and slope (from a DEM) and the season's rainfall and temperature (e.g. AgERA5) are
the ancillary inputs of WorldCereal's classifiers; on the WorldCereal development sets they
raise the random forest's accuracy on both sets (docs/l4a.md). They enter every model (the
one on both sensors and the single-sensor fallbacks) as ``XX_A_<name>`` features.

They come from columns of the parcels table (``attributes``), or from an attributes file
(``attributes_file``: CSV or Parquet with the parcel id in ``NewID``, capmon's id, or
``ori_id``, the declarations' parcel id) joined to the parcels. A parcel without a value takes
the column's median over the parcels (no declared class is used), which the notes count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from capmon.errors import ColumnError, InputError
from capmon.parcels.identity import id_text
from capmon.processors.l4a.features import FeatureTable

PREFIX = "XX_A_"
ID_COLUMNS = ("NewID", "ori_id")


@dataclass(frozen=True)
class AttributesFile:
    """The parcels with an attributes file's columns joined, and what the join found."""

    parcels: pd.DataFrame
    names: tuple[str, ...]
    notes: tuple[str, ...]


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: attributes file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, sep=None, engine="python", dtype={"ori_id": "string"})
        if suffix in (".parquet", ".geoparquet"):
            return pd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pandas/pyarrow parse errors are ValueError/OSError
        raise InputError(f"{path}: not a readable attributes table: {exc}") from exc
    raise InputError(f"{path}: an attributes file is CSV or Parquet (.csv, .parquet)")


def _ids(values: pd.Series, place: str, first_row: int) -> list[str | None]:
    """Each id as text (:func:`capmon.parcels.identity.id_text`); an unreadable one is an
    error naming ``place`` and the row."""
    texts: list[str | None] = []
    for i, value in enumerate(values.tolist()):
        try:
            texts.append(id_text(value))
        except InputError as exc:
            raise InputError(f"{place}: row {i + first_row}: {exc}") from exc
    return texts


def read_attributes(
    path: str | Path, parcels: pd.DataFrame, names: Sequence[str] = ()
) -> AttributesFile:
    """Join the attributes file at ``path`` to ``parcels`` (by ``NewID``, else ``ori_id``).

    ``names`` are the columns to use; none given: every numeric column but the ids. An id
    repeated or empty in the file, a named column it lacks, or no id in common with the
    parcels is an error naming the file (and the row: CSV lines count the header as 1).
    """
    path = Path(path)
    table = _read(path)
    key = next((c for c in ID_COLUMNS if c in table.columns), None)
    if key is None:
        raise ColumnError(
            f"{path}: no parcel id column; give NewID (capmon's parcel id) or ori_id (the "
            f"declarations' parcel id); its columns: {', '.join(map(str, table.columns))}"
        )
    if key not in parcels.columns:
        raise ColumnError(f"{path}: joined on {key}, which the parcels table lacks")
    if table.empty:
        raise InputError(f"{path}: the attributes file has no rows")
    line = 2 if path.suffix.lower() == ".csv" else 1  # the first data row's number
    ids = _ids(table[key], str(path), line)
    for i, text in enumerate(ids):
        if text is None:
            raise InputError(f"{path}: row {i + line}: empty {key}")
    seen: dict[str, int] = {}
    for i, text in enumerate(ids):
        assert text is not None
        if text in seen:
            raise InputError(
                f"{path}: row {i + line}: {key} {text!r} is also in row {seen[text] + line}"
            )
        seen[text] = i
    others = [c for c in table.columns if c not in ID_COLUMNS and c != "geometry"]
    if names:
        absent = [n for n in names if n not in table.columns]
        if absent:
            raise ColumnError(
                f"{path}: no column {', '.join(absent)} (attributes); its columns: "
                f"{', '.join(map(str, table.columns))}"
            )
        chosen = list(names)
    else:
        chosen = [c for c in others if pd.api.types.is_numeric_dtype(table[c])]
        if not chosen:
            raise InputError(f"{path}: no numeric column to use as parcel attributes")
    values = table[chosen].copy()
    values.index = pd.Index(ids, dtype="object")
    keys = _ids(parcels[key], f"the parcels joined to {path}", 1)
    found = np.array([k in seen for k in keys], dtype=bool)
    if not found.any():
        raise InputError(
            f"{path}: none of its {len(ids)} {key} values is a parcel of the run "
            f"(e.g. {ids[0]!r}; a parcel: {keys[0]!r})"
            if keys
            else f"{path}: there are no parcels to join it to"
        )
    joined = parcels.drop(columns=[c for c in chosen if c in parcels.columns])
    for name in chosen:
        joined[name] = values[name].reindex(keys).to_numpy()
    notes = []
    if (~found).any():
        notes.append(f"{int((~found).sum())} parcel(s) not in the attributes file {path.name}")
    unused = len(ids) - int(found.sum())
    if unused:
        notes.append(f"{unused} row(s) of the attributes file {path.name}: not parcels of the run")
    return AttributesFile(joined, tuple(chosen), tuple(notes))


def with_attributes(
    features: FeatureTable, parcels: pd.DataFrame, names: Sequence[str]
) -> FeatureTable:
    """The feature table with the parcels' ``names`` columns as ``XX_A_<name>`` features.

    Every parcel of the table gets a value: a missing one takes the column's median over the
    parcels. A column that is absent, not numeric, infinite or empty is an error naming it.
    """
    if not names:
        return features
    absent = [n for n in names if n not in parcels.columns]
    if absent:
        raise ColumnError(
            f"the parcels lack the attribute columns {', '.join(absent)} (attributes); "
            f"their columns: {', '.join(map(str, parcels.columns))}"
        )
    if "is_deleted" in parcels.columns:
        parcels = parcels[~parcels["is_deleted"].astype(bool)]
    ids = parcels["NewID"].astype("int64").to_numpy()
    values: dict[str, pd.Series] = {}
    filled: list[str] = []
    for name in names:
        column = parcels[name]
        if pd.api.types.is_bool_dtype(column):
            column = column.astype("float64")
        numbers = pd.to_numeric(column, errors="coerce").astype("float64")
        wrong = (column.notna().to_numpy() & numbers.isna().to_numpy()) | np.isinf(numbers)
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            value = column.iat[i]
            shown = repr(value) if isinstance(value, str) else str(value)
            raise InputError(
                f"attribute {name!r} of parcel NewID {ids[i]}: {shown} is not a finite number"
            )
        if numbers.isna().all():
            raise InputError(f"attribute {name!r}: no parcel has a value")
        missing = int(numbers.isna().sum())
        if missing:
            filled.append(f"{name} ({missing})")
        values[f"{PREFIX}{name}"] = pd.Series(
            numbers.fillna(numbers.median()).to_numpy(), index=ids
        )
    frame = pd.DataFrame(values).astype("float32")
    frame.index.name = features.features.index.name
    joined = features.features.drop(columns=list(values), errors="ignore").join(frame, how="left")
    notes = list(features.notes)
    if filled:
        notes.append("attributes missing for some parcels, given the median: " + ", ".join(filled))
    return replace(
        features,
        features=joined,
        groups=features.groups | {"attributes": len(values)},
        notes=tuple(notes),
    )

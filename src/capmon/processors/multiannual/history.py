"""Per parcel and year: declared and observed cover class, history along the linked parcels,
and the CAP flags.

Declared class, from the crop LUT flags of the declared crop: ``permanent_grassland``
(``pgrass``), ``temporary_grassland`` (``tgrass``), ``arable`` (``al``, fallow included),
``permanent_crop`` (none of them), ``unknown`` (code not in the LUT).

Observed behaviour, from the year's MDB (:func:`observed_behaviour`): dekads observed, bare-soil
dekads (the ``baresoil`` model), harvest residue dekads (NDVI < 0.3 but not bare, after a green
dekad, NDVI >= 0.5, with no bare dekad in between: a ripening or harvested crop, its stubble),
mowing-like NDVI drops. Low NDVI that does not follow a green canopy is not a harvest: last
year's stubble before a ley is sown, a new crop emerging after ploughing. Observed class
``arable`` when the year shows a bare-soil dekad or a harvest phase (``harvest_dekads``, 2: a
ripening crop and its stubble last weeks, a snow or cloud-shadow dip in a meadow one dekad),
``grassland`` when at least ``min_observed_dekads`` dekads were observed without either and
the canopy was green at least once, else ``unknown``.

Flags (see docs/use-cases-2022.md):

* ``tg_5_years``: grass for 5 or more consecutive years (declared temporary or permanent
  grassland, or observed grassland behaviour) while not declared permanent grassland: under
  the CAP definition it has become permanent grassland;
* ``pg_ploughed``: a permanent grassland (declared, or by the 5-year rule, this year or the year
  before) with a bare-soil period this year: ploughing or tillage of permanent grassland;
* ``class_contradiction``: declared grassland with a harvest phase, or a declared arable crop
  (not fallow) with grassland behaviour.

Crop-type predictions (optional, :func:`predicted_classes`): when the year has an L4A product,
each parcel's predicted class (``CT_pred_1``, an L4A class number) is mapped to a cover class
through the LUT flags of the crops of that class (``grassland`` when one of them is permanent or
temporary grassland, ``fallow`` when all are fallow, ``arable`` when they are arable land, else
``permanent_crop``). A confident prediction (``CT_conf_1`` >= ``min_confidence``) is observed
evidence next to the MDB behaviour: it raises ``class_contradiction`` when it contradicts the
declaration (declared grassland predicted as an arable crop, a declared arable crop predicted as
grassland), and, in a year whose MDB behaviour is ``unknown`` (no MDB, too few dekads), a
predicted grassland counts as a grass year. Predicted fallow contradicts nothing. Without an
L4A product everything rests on the MDB behaviour, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from capmon.errors import ColumnError, InputError
from capmon.mdb.query import MarkersDatabase
from capmon.parcels.codes import crop_keys
from capmon.processors.baresoil.detect import BARE, NO_DATA, VEG, detect_bare_soil
from capmon.processors.baresoil.model import FEATURES, BareSoilModel

PERMANENT_GRASSLAND = "permanent_grassland"
TEMPORARY_GRASSLAND = "temporary_grassland"
ARABLE = "arable"
PERMANENT_CROP = "permanent_crop"
UNKNOWN = "unknown"
GRASSLAND = "grassland"
FLAGS = ("tg_5_years", "pg_ploughed", "class_contradiction")
FALLOW = "fallow"
PREDICTION_COLUMNS = ("parcel_id", "predicted_crop", "predicted_confidence", "predicted_class")
BEHAVIOUR_COLUMNS = (
    "parcel_id", "observed_dekads", "bare_dekads", "first_bare", "residue_dekads",
    "mowing_like_drops", "ndvi_min", "observed_class",
)  # fmt: skip


def declared_classes(parcels: pd.DataFrame, lut: pd.DataFrame) -> pd.DataFrame:
    """``parcel_id``, ``ori_id``, ``ori_crop``, ``crop_name``, ``declared_class``, ``fallow``."""
    missing = [c for c in ("ori_crop", "al", "pgrass", "tgrass", "fallow") if c not in lut]
    if missing:
        raise InputError(f"the crop LUT lacks column(s) {', '.join(missing)}")
    table = lut.assign(_key=crop_keys(lut["ori_crop"]))
    flags = table.drop_duplicates("_key").set_index("_key")
    keys = crop_keys(parcels["ori_crop"])
    found = keys.isin(flags.index).to_numpy()
    lookup = flags.reindex(keys.fillna("").to_numpy())

    def flag(name: str) -> np.ndarray:
        return lookup[name].fillna(False).astype(bool).to_numpy()

    pgrass, tgrass, arable, fallow = flag("pgrass"), flag("tgrass"), flag("al"), flag("fallow")
    declared = np.select(
        [~found, pgrass, tgrass, arable],
        [UNKNOWN, PERMANENT_GRASSLAND, TEMPORARY_GRASSLAND, ARABLE],
        PERMANENT_CROP,
    )
    names = lookup["ct"].to_numpy() if "ct" in lookup else np.full(len(keys), None)
    return pd.DataFrame(
        {
            "parcel_id": parcels["NewID"].to_numpy(np.int64),
            "ori_id": parcels["ori_id"].astype(str).to_numpy(),
            "ori_crop": keys.to_numpy(),
            "crop_name": names,
            "declared_class": declared,
            "fallow": fallow & found,
        }
    )


def predicted_classes(predictions: pd.DataFrame, lut: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Cover class of each parcel's L4A prediction (see module): ``PREDICTION_COLUMNS``.

    ``predictions`` is an L4A ``Parcels_all_with_predictions`` table (``NewID``, ``CT_pred_1``,
    ``CT_conf_1``); ``source`` names it in errors. Parcels without a prediction, or predicted in
    a class absent from the LUT, get ``unknown``.
    """
    missing = [c for c in ("NewID", "CT_pred_1", "CT_conf_1") if c not in predictions]
    if missing:
        raise ColumnError(f"the L4A predictions {source} lack column(s) {', '.join(missing)}")
    if "ctnuml4a" not in lut:
        raise ColumnError("the crop LUT lacks column ctnuml4a (L4A class of each crop)")
    classes = lut.dropna(subset=["ctnuml4a"]).assign(
        _class=lambda t: pd.to_numeric(t["ctnuml4a"], errors="coerce")
    )
    flags = classes.groupby("_class").agg(
        grass=("pgrass", "any"), temporary=("tgrass", "any"), fallow=("fallow", "all"),
        arable=("al", "any"),
    )  # fmt: skip
    cover = pd.Series(
        np.select(
            [flags["grass"] | flags["temporary"], flags["fallow"], flags["arable"]],
            [GRASSLAND, FALLOW, ARABLE],
            PERMANENT_CROP,
        ),
        index=flags.index,
    )
    crop = pd.to_numeric(predictions["CT_pred_1"], errors="coerce")
    confidence = pd.to_numeric(predictions["CT_conf_1"], errors="coerce")
    return pd.DataFrame(
        {
            "parcel_id": pd.to_numeric(predictions["NewID"], errors="raise").astype(np.int64),
            "predicted_crop": crop.astype("Int64"),
            "predicted_confidence": confidence.astype(np.float64),
            "predicted_class": crop.map(cover).fillna(UNKNOWN).astype(object),
        }
    ).drop_duplicates("parcel_id")


def observed_behaviour(
    mdb: MarkersDatabase,
    parcel_ids: list[int],
    start: date,
    end: date,
    *,
    model: BareSoilModel,
    low_ndvi: float = 0.3,
    green_ndvi: float = 0.5,
    drop: float = 0.12,
    min_observed_dekads: int = 6,
    harvest_dekads: int = 2,
    chunk: int = 20000,
) -> pd.DataFrame:
    """Per parcel: bare-soil, harvest residue and mowing-like markers of one season (see
    module)."""
    frames = []
    for first in range(0, len(parcel_ids), chunk):
        ids = parcel_ids[first : first + chunk]
        rows = mdb.timeseries(ids, FEATURES, start, end)
        result = detect_bare_soil(rows, ids, start, end, model=model)
        frames.append(
            season_behaviour(
                result.status,
                result.observations,
                ids,
                low_ndvi=low_ndvi,
                green_ndvi=green_ndvi,
                drop=drop,
                min_observed_dekads=min_observed_dekads,
                harvest_dekads=harvest_dekads,
            )
        )
    if frames:
        return pd.concat(frames, ignore_index=True)
    return pd.DataFrame(columns=list(BEHAVIOUR_COLUMNS))


def season_behaviour(
    status: pd.DataFrame,
    observations: pd.DataFrame,
    ids: list[int],
    *,
    low_ndvi: float = 0.3,
    green_ndvi: float = 0.5,
    drop: float = 0.12,
    min_observed_dekads: int = 6,
    harvest_dekads: int = 2,
) -> pd.DataFrame:
    """The markers and observed class of :func:`observed_behaviour` from the bare-soil
    pipeline's dekad ``status`` and ``observations`` tables."""
    status = status.sort_values(["parcel_id", "dekad"], kind="stable").reset_index(drop=True)
    observed = status["status"] != NO_DATA
    bare = status["status"] == BARE
    vegetation = status["status"] == VEG
    # The last canopy phase before each dekad: green (+1) or bare soil (-1).
    phase = (
        pd.Series(
            np.where(bare, -1.0, np.where(vegetation & (status["NDVI"] >= green_ndvi), 1.0, np.nan))
        )
        .groupby(status["parcel_id"])
        .ffill()
    )
    green = vegetation & (status["NDVI"] >= green_ndvi)
    residue = vegetation & (status["NDVI"] < low_ndvi) & (phase == 1.0)
    per = status.assign(
        _observed=observed,
        _bare=bare,
        _green=green,
        _residue=residue,
        _first_bare=status["dekad"].where(bare),
        _ndvi=status["NDVI"].where(observed),
    ).groupby("parcel_id")
    table = per.agg(
        observed_dekads=("_observed", "sum"),
        bare_dekads=("_bare", "sum"),
        green_dekads=("_green", "sum"),
        residue_dekads=("_residue", "sum"),
        first_bare=("_first_bare", "min"),
        ndvi_min=("_ndvi", "min"),
    )
    obs = observations.sort_values(["parcel_id", "date"])
    previous = obs.groupby("parcel_id")["NDVI"].shift()
    cut = (previous - obs["NDVI"] >= drop) & (obs["NDVI"] >= 0.35) & (previous >= 0.35)
    table["mowing_like_drops"] = cut.groupby(obs["parcel_id"]).sum()
    table = table.reindex(pd.Index(ids, name="parcel_id"))
    counts = ("observed_dekads", "bare_dekads", "green_dekads", "residue_dekads")
    for column in (*counts, "mowing_like_drops"):
        table[column] = table[column].fillna(0).astype(np.int64)
    arable = (table["bare_dekads"] > 0) | (table["residue_dekads"] >= harvest_dekads)
    grass = (table["observed_dekads"] >= min_observed_dekads) & (table["green_dekads"] > 0)
    table["observed_class"] = np.select([arable, grass], [ARABLE, GRASSLAND], UNKNOWN)
    return table.reset_index()[list(BEHAVIOUR_COLUMNS)]


def parcel_history(
    years: Mapping[int, pd.DataFrame],
    lineage: pd.DataFrame,
    *,
    grass_years_rule: int = 5,
    harvest_dekads: int = 2,
    min_confidence: float = 0.7,
) -> pd.DataFrame:
    """One row per parcel and year with classes, the consecutive grass years and the flags.

    ``years`` maps each year to its :func:`declared_classes` table joined with its
    :func:`observed_behaviour` (observed columns NaN when the year has no MDB) and, when the
    year has an L4A product, its :func:`predicted_classes` (``PREDICTION_COLUMNS``, NaN
    otherwise); ``lineage`` is :func:`capmon.processors.multiannual.link.lineages`.
    """
    frames = []
    for year, table in sorted(years.items()):
        frames.append(table.assign(year=year))
    rows = pd.concat(frames, ignore_index=True).merge(lineage, on=["year", "parcel_id"], how="left")
    rows = rows.sort_values(["year", "parcel_id"]).reset_index(drop=True)
    rows["observed_class"] = rows["observed_class"].fillna(UNKNOWN)
    for column in PREDICTION_COLUMNS[1:]:
        if column not in rows:
            rows[column] = np.nan
    rows["predicted_class"] = rows["predicted_class"].astype(object).fillna(UNKNOWN)
    confident = rows["predicted_confidence"].fillna(0).to_numpy(np.float64) >= min_confidence
    predicted = np.where(confident, rows["predicted_class"].to_numpy(dtype=object), UNKNOWN)
    n = len(rows)
    grass_years = np.zeros(n, dtype=np.int64)
    cover = rows["declared_class"].to_numpy(dtype=object).copy()
    predecessor_row = np.full(n, -1, dtype=np.int64)
    declared = rows["declared_class"].to_numpy(dtype=object)
    observed = rows["observed_class"].to_numpy(dtype=object)
    grass = (
        np.isin(declared, [PERMANENT_GRASSLAND, TEMPORARY_GRASSLAND])
        | (observed == GRASSLAND)
        | ((observed == UNKNOWN) & (predicted == GRASSLAND))
    )
    year_of = rows["year"].to_numpy()
    for year in sorted(years):  # a predecessor's year is always done first
        here = np.flatnonzero(year_of == year)
        before = np.flatnonzero(year_of == year - 1)
        if len(before):
            rank = pd.Series(before, index=rows["parcel_id"].to_numpy()[before])
            pred = rows["predecessor"].to_numpy()[here]
            known = pd.notna(pred)
            found = rank.reindex(pred[known].astype(np.int64)).to_numpy()
            target = here[known]
            predecessor_row[target] = np.where(np.isnan(found), -1, found).astype(np.int64)
        previous = np.where(
            predecessor_row[here] >= 0, grass_years[np.maximum(predecessor_row[here], 0)], 0
        )
        grass_years[here] = np.where(grass[here], previous + 1, 0)
    promoted = (declared != PERMANENT_GRASSLAND) & grass & (grass_years >= grass_years_rule)
    cover[promoted] = PERMANENT_GRASSLAND
    rows["grass_years"] = grass_years
    rows["cover_class"] = cover
    rows["tg_5_years"] = (rows["declared_class"] != PERMANENT_GRASSLAND) & (
        rows["cover_class"] == PERMANENT_GRASSLAND
    )
    previous_cover = (
        pd.Series(cover[np.maximum(predecessor_row, 0)])
        .where(pd.Series(predecessor_row >= 0))
        .to_numpy(dtype=object)
    )
    was_permanent = (cover == PERMANENT_GRASSLAND) | (previous_cover == PERMANENT_GRASSLAND)
    bare = rows["bare_dekads"].fillna(0).to_numpy() > 0
    # A conversion ploughed in the autumn is flagged in that year; the next year's stubble
    # tillage of the new crop is not flagged again.
    flagged = np.zeros(n, dtype=bool)
    for year in sorted(years):
        here = np.flatnonzero(year_of == year)
        pred = predecessor_row[here]
        already = np.where(pred >= 0, flagged[np.maximum(pred, 0)], False)
        now_permanent = cover[here] == PERMANENT_GRASSLAND
        flagged[here] = bare[here] & (now_permanent | (was_permanent[here] & ~already))
    rows["pg_ploughed"] = flagged
    grass_declared = rows["declared_class"].isin([PERMANENT_GRASSLAND, TEMPORARY_GRASSLAND])
    crop_declared = (rows["declared_class"] == ARABLE) & ~rows["fallow"].astype(bool)
    by_behaviour = (grass_declared & (rows["residue_dekads"].fillna(0) >= harvest_dekads)) | (
        crop_declared & (rows["observed_class"] == GRASSLAND)
    )
    by_prediction = (grass_declared & (predicted == ARABLE)) | (
        crop_declared & (predicted == GRASSLAND)
    )
    rows["class_contradiction"] = by_behaviour | by_prediction
    rows["contradiction_evidence"] = np.select(
        [by_behaviour & by_prediction, by_behaviour, by_prediction],
        ["behaviour+prediction", "behaviour", "prediction"],
        "",
    )
    rows["previous_cover_class"] = previous_cover
    return rows


def rotation_sequences(history: pd.DataFrame) -> pd.DataFrame:
    """Per parcel of the last year: its declared crops and cover classes along its main
    predecessors, oldest first (``Y1..Yn``), and the flags raised on the way."""
    last = int(history["year"].max())
    index = history.set_index(["year", "parcel_id"])
    out = []
    for pid in history.loc[history["year"] == last, "parcel_id"].tolist():
        chain = []
        year, current = last, pid
        while (year, current) in index.index:
            row = index.loc[(year, current)]
            chain.append((year, row))
            pred = row["predecessor"]
            if pd.isna(pred):
                break
            year, current = year - 1, int(pred)
        chain.reverse()
        flags = sorted({f"{flag}:{y}" for y, row in chain for flag in FLAGS if bool(row[flag])})
        out.append(
            {
                "parcel_id": pid,
                "ori_id": index.loc[(last, pid), "ori_id"],
                "first_year": chain[0][0],
                "crops": " > ".join(str(row["ori_crop"]) for _y, row in chain),
                "crop_names": " > ".join(str(row["crop_name"]) for _y, row in chain),
                "cover_classes": " > ".join(str(row["cover_class"]) for _y, row in chain),
                "observed_classes": " > ".join(str(row["observed_class"]) for _y, row in chain),
                "flags": ";".join(flags),
            }
        )
    return pd.DataFrame(out)

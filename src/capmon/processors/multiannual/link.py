"""Linking parcels across declaration years by geometry (ids change between years).

Two parcels of consecutive years are linked when their intersection covers at least
``min_share`` of either of them. Each year is reprojected to one common projected CRS first
(the first year's when it is projected, else the UTM zone of its centre), so declaration sets
in different CRSs are compared in metres. The relation of each link:

* ``same``: one predecessor and one successor (``iou`` says how much the outline changed);
* ``split``: the predecessor has several successors;
* ``merge``: the successor has several predecessors;
* ``split+merge``: both at once (boundaries redrawn);

and unlinked parcels appear as ``new`` (no predecessor) or ``gone`` (no successor) rows. Each
parcel's *main predecessor* is the one covering the largest share of it; following main
predecessors gives the parcel's history (:func:`lineages`).
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from capmon.errors import CRSError, InputError

LINK_COLUMNS = (
    "year_from", "parcel_from", "ori_id_from", "year_to", "parcel_to", "ori_id_to",
    "share_from", "share_to", "iou", "relation",
)  # fmt: skip


def common_crs(parcels_by_year: Mapping[int, gpd.GeoDataFrame]) -> CRS:
    """The projected CRS every year is compared in."""
    if not parcels_by_year:
        raise InputError("no declaration year to link")
    first = parcels_by_year[min(parcels_by_year)]
    for year, frame in parcels_by_year.items():
        if frame.crs is None:
            raise CRSError(f"the parcels of {year} have no CRS; capmon never guesses one")
    crs = CRS(first.crs)
    if crs.is_projected:
        return crs
    utm = first.estimate_utm_crs()
    if utm is None:
        raise CRSError("cannot choose a projected CRS for the parcels")
    return CRS(utm)


def link_years(
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    year_from: int,
    year_to: int,
    *,
    crs: CRS,
    min_share: float = 0.3,
) -> pd.DataFrame:
    """Links between the parcels of two years (``NewID``, ``ori_id`` and geometry columns)."""
    if not 0 < min_share <= 1:
        raise InputError(f"min_share must be in (0, 1], not {min_share}")
    a = before.to_crs(crs)
    b = after.to_crs(crs)
    ga, gb = a.geometry.to_numpy(), b.geometry.to_numpy()
    ida, idb = a["NewID"].to_numpy(np.int64), b["NewID"].to_numpy(np.int64)
    oria, orib = a["ori_id"].astype(str).to_numpy(), b["ori_id"].astype(str).to_numpy()
    tree = shapely.STRtree(gb)
    left, right = tree.query(ga, predicate="intersects")
    area_a, area_b = shapely.area(ga), shapely.area(gb)
    shared = shapely.area(shapely.intersection(ga[left], gb[right]))
    with np.errstate(divide="ignore", invalid="ignore"):
        share_a = np.where(area_a[left] > 0, shared / area_a[left], 0.0)
        share_b = np.where(area_b[right] > 0, shared / area_b[right], 0.0)
    keep = (share_a >= min_share) | (share_b >= min_share)
    left, right = left[keep], right[keep]
    share_a, share_b, shared = share_a[keep], share_b[keep], shared[keep]
    union = area_a[left] + area_b[right] - shared
    links = pd.DataFrame(
        {
            "year_from": year_from,
            "parcel_from": ida[left],
            "ori_id_from": oria[left],
            "year_to": year_to,
            "parcel_to": idb[right],
            "ori_id_to": orib[right],
            "share_from": share_a,
            "share_to": share_b,
            "iou": np.where(union > 0, shared / np.maximum(union, 1e-9), 0.0),
        }
    )
    successors = links.groupby("parcel_from")["parcel_to"].transform("size")
    predecessors = links.groupby("parcel_to")["parcel_from"].transform("size")
    links["relation"] = np.select(
        [(successors > 1) & (predecessors > 1), successors > 1, predecessors > 1],
        ["split+merge", "split", "merge"],
        "same",
    )
    gone = np.setdiff1d(np.arange(len(ida)), left)
    new = np.setdiff1d(np.arange(len(idb)), right)
    unlinked = pd.DataFrame(
        {
            "year_from": [year_from] * len(gone) + [year_from] * len(new),
            "parcel_from": pd.array([*ida[gone], *([None] * len(new))], dtype="Int64"),
            "ori_id_from": [*oria[gone], *([None] * len(new))],
            "year_to": [year_to] * (len(gone) + len(new)),
            "parcel_to": pd.array([*([None] * len(gone)), *idb[new]], dtype="Int64"),
            "ori_id_to": [*([None] * len(gone)), *orib[new]],
            "share_from": np.nan,
            "share_to": np.nan,
            "iou": np.nan,
            "relation": ["gone"] * len(gone) + ["new"] * len(new),
        }
    )
    links["parcel_from"] = links["parcel_from"].astype("Int64")
    links["parcel_to"] = links["parcel_to"].astype("Int64")
    frames = [f for f in (links, unlinked) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(LINK_COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    return out[list(LINK_COLUMNS)]


def main_predecessors(links: pd.DataFrame) -> pd.DataFrame:
    """For each (year_to, parcel_to): the predecessor covering the largest share of it."""
    linked = links.dropna(subset=["parcel_from", "parcel_to"])
    best = linked.sort_values("share_to", ascending=False, kind="stable").drop_duplicates(
        ["year_to", "parcel_to"]
    )
    return best[["year_to", "parcel_to", "year_from", "parcel_from", "relation", "share_to"]]


def lineages(parcels_by_year: Mapping[int, pd.Series], links: pd.DataFrame) -> pd.DataFrame:
    """Per year and parcel: its main predecessor and its lineage (the id of its oldest main
    ancestor, ``<first year>:<NewID>``), so that a parcel's rows over the years share one id."""
    years = sorted(parcels_by_year)
    best_rows = main_predecessors(links)
    best: dict[tuple[int, int], tuple[int, str]] = {
        (int(y), int(p)): (int(f), str(r))
        for y, p, f, r in zip(
            best_rows["year_to"], best_rows["parcel_to"], best_rows["parcel_from"],
            best_rows["relation"], strict=True,
        )
    }  # fmt: skip
    rows: list[tuple[int, int, int | None, str, str]] = []
    lineage: dict[tuple[int, int], str] = {}
    for year in years:
        for pid in parcels_by_year[year].astype(np.int64).tolist():
            key = (year, pid)
            if key in best:
                parent, relation = best[key]
                root = lineage.get((year - 1, parent), f"{year - 1}:{parent}")
                rows.append((year, pid, parent, relation, root))
            else:
                root = f"{year}:{pid}"
                rows.append((year, pid, None, "new" if year != years[0] else "first", root))
            lineage[key] = root
    table = pd.DataFrame(rows, columns=["year", "parcel_id", "predecessor", "relation", "lineage"])
    table["predecessor"] = table["predecessor"].astype("Int64")
    return table

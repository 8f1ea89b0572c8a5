"""The Sen4CAP side files of the synthetic world: LUT CSV, L4B and L4C configs, practice CSVs.

Formats follow sen4cap-system.md 2.3-2.5 and the sample files of the Sen4CAP repository: the
L4C config has the sections of ``S4C_L4C_Default_Config.cfg`` with the Dutch catch-crop
overrides (a loam region with similar practices), the L4B config the sections of
``S4C_L4B_Default_Config.cfg`` with the grassland ``ctnum`` filter and compliance windows of
the synthetic crops. Practice CSVs have Sen4CAP's header; one file per practice.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from capmon.synth.crops import (
    CROPS,
    FALLOW,
    GRAIN_MAIZE,
    LUT_COLUMNS,
    POTATO,
    SILAGE_MAIZE,
    SUGAR_BEET,
    CropKind,
    CropType,
    lut_rows,
)
from capmon.synth.management import ParcelSeason

COUNTRY = "BEL"
PRACTICE_COLUMNS = (
    "FIELD_ID", "MAIN_CROP", "VEG_START", "H_START", "H_END", "PRACTICE", "P_TYPE", "P_START",
    "P_END",
)  # fmt: skip
PRACTICES = ("CC", "FL", "NFC", "NA")


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text with Unix line ends (byte-identical across runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def lut_csv() -> str:
    """The crop LUT as Sen4CAP expects it (UTF-8 CSV, one row per ``ori_crop``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LUT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(lut_rows())
    return buffer.getvalue()


def l4b_config(year: int) -> str:
    """An L4B (grassland mowing) config for ``year`` with the world's grassland crops."""
    grass = [c for c in CROPS if c.is_grass]
    ctnums = ", ".join(str(c.lut.ctnum) for c in grass)
    codes = ", ".join(str(c.code) for c in grass)
    window = ", ".join(f"('01/04/{year}', '31/10/{year}')" for _ in grass)
    rules = ", ".join("0" for _ in grass)
    return f"""[GENERAL_CONFIG]
CTNUM_FILTER = {ctnums}

s1_orbit_list_filter =
s1_orbit_type_list_filter =

s2_tiles_list_filter =
s2_tiles_type_list_filter =

[S1_constants]
S1_time_interval = 6
SAR_spacing = 20
cohe_ENL = 100
min_cohe_var = 0.024
locAcqTimeASC = 18:00:00
locAcqTimeDESC = 06:00:00

[S2_constants]
S2_time_interval = 5
locAcqTime = 10:30:00

[S2_model]
apply_model = False
modelDir = model
NDVI_nomow_model_perc = 95.
sampling_days = 1.
minimum_parcels_th = 20
model_temporal_range_str = ('{year}0101 00:00:00', '{year}1231 23:59:59')
start_params = (0.05, 50., 0.05, 340.)
bounds = ([0.02, 0., 0.02, 180.], [1, 180., 1, 360.])

[S1_processing]
pol_types = VH
data_types = COHE
invalid_data = nan
saturate_sigma = True
pfa = 3.0e-8
stat_smpl_n = 5
non_overlap_interval_days = 28
options_layer_burning = 'ALL_TOUCHED=False'
erode_pixels = 0

[S2_processing]
prod_type_list = SNDVI
sc_fact = 1000
corrupted_th = 0.1
invalid_data = -10000
decreasing_abs_th = 0.12
decreasing_rate_th = -0.000001
increasing_rate_th = 0.05
high_abs_th = 0.75
low_abs_th = 0.5
erode_pixels = 0
options_layer_burning = ['ALL_TOUCHED=False']
no_mowing_after_det = 30
non_overlap_interval_days = 45
stat_smpl_n = 0

[compliancy]
; synthetic Belgian grassland codes: mowing required between April and October
crop_codes = {codes}
crop_time_intervals = {window}
crop_rule = {rules}

[validation]
fwd_tol_days = 3
bkw_tol_days = 3
validation_temporal_range_str = ('{year}0401 00:00:00', '{year}1031 23:59:59')
"""


_L4C_DEFAULTS = """OPTTHRVEGCYCLE=350
NDVIDW=300
NDVIUP=350
NDVISTEP=5
OPTTHRMIN=100
COHTHRBASE=0.05
COHTHRHIGH=0.15
COHTHRABS=0.75
TLCOHTHRBASE=0.05
TLCOHTHRABS=0.75
TLMONITORINGENDDATE=""
AMPTHRMIN=0.1
CATCHMAIN=""
CATCHPERIOD=56
CATCHPERIODSTART=""
CATCHCROPISMAIN=""
CATCHPROPORTION=""
EFANDVITHR=325
EFANDVIUP=400
EFANDVIDW=300
EFACOHCHANGE=0.2
EFACOHVALUE=0.7
EFANDVIMIN="-10000"
EFAAMPTHR="-10000"
STDDEVINAMPTHR=1
AMPTHRVALDEN=2
OPTTHRBUFDEN=4
AMPTHRBREAKDEN=6
FLMARKSTARTDATE=
FLMARKSTENDDATE=
"""


def l4c_config(year: int) -> str:
    """An L4C (agricultural practices) config for ``year`` (country ``BEL``)."""
    return f"""[COMMON]
# Synthetic capmon world, country {COUNTRY}, year {year}

[DEFAULT_TIME_SERIES_ANALYSIS_PARAMS]
{_L4C_DEFAULTS}
[CC_TIME_SERIES_ANALYSIS_PARAMS]
CC_CATCHPERIODSTART="{year}-07-15"
CC_NDVIUP=500
CC_AMPTHRMIN=0.2
CC_COHTHRBASE=0.1
CC_COHTHRABS=0.7
CC_EFAAMPTHR=0.03
CC_AMPTHRBREAKDEN=3
CC_AMPTHRVALDEN=3

[FL_TIME_SERIES_ANALYSIS_PARAMS]
FL_FLMARKSTARTDATE="{year}-01-01"
FL_FLMARKSTENDDATE="{year}-07-31"

[NFC_TIME_SERIES_ANALYSIS_PARAMS]
# defaults

[NA_TIME_SERIES_ANALYSIS_PARAMS]
NA_NDVIUP=500
NA_AMPTHRMIN=0.2
NA_COHTHRBASE=0.1
NA_COHTHRABS=0.7
NA_AMPTHRBREAKDEN=3
NA_AMPTHRVALDEN=3
NA_EFANDVITHR="-10000"
NA_EFANDVIUP="-10000"
NA_EFANDVIDW="-10000"
NA_EFACOHCHANGE="-10000"
NA_EFACOHVALUE="-10000"
"""


def harvest_window(crop: CropType, year: int) -> tuple[date, date, date]:
    """(VEG_START, H_START, H_END) that a paying agency would declare for ``crop``."""
    if crop.kind is CropKind.WINTER:
        return date(year, 3, 1), date(year, 6, 20), date(year, 9, 15)
    if crop in (SILAGE_MAIZE, GRAIN_MAIZE):
        return date(year, 5, 20), date(year, 8, 20), date(year, 11, 30)
    if crop is SUGAR_BEET:
        return date(year, 5, 1), date(year, 9, 1), date(year, 12, 15)
    if crop is POTATO:
        return date(year, 5, 15), date(year, 8, 1), date(year, 10, 31)
    if crop.kind is CropKind.SPRING:
        return date(year, 4, 15), date(year, 7, 1), date(year, 9, 30)
    return date(year, 3, 1), date(year, 6, 1), date(year, 10, 31)


def practice_rows(seasons: Iterable[ParcelSeason], practice: str) -> list[dict[str, str]]:
    """Rows of the practice CSV ``practice`` (CC, FL, NFC or NA) for one year's parcels."""
    rows = []
    for season in seasons:
        crop = season.declared_crop
        year = season.year
        if practice == "CC":
            if not season.catch_crop_declared:
                continue
            kind, p_type, start, end = (
                "CatchCrop",
                "CatchCrop_1",
                date(year, 9, 15),
                date(year, 11, 10),
            )
        elif practice == "FL":
            if crop is not FALLOW:
                continue
            kind, p_type, start, end = "Fallow", "FL_1", date(year, 1, 1), date(year, 7, 31)
        elif practice == "NFC":
            if not crop.nitrogen_fixing:
                continue
            kind, p_type, start, end = "NFC", "NFC_1", date(year, 5, 15), date(year, 8, 15)
        else:
            if not crop.is_arable_crop or crop.nitrogen_fixing or season.catch_crop_declared:
                continue
            kind, p_type, start, end = "NA", "NA", None, None
        veg, h_start, h_end = harvest_window(crop, year)
        rows.append(
            {
                "FIELD_ID": season.parcel.parcel_id,
                "MAIN_CROP": str(crop.code),
                "VEG_START": veg.isoformat(),
                "H_START": h_start.isoformat(),
                "H_END": h_end.isoformat(),
                "PRACTICE": kind,
                "P_TYPE": p_type,
                "P_START": start.isoformat() if start else "NA",
                "P_END": end.isoformat() if end else "NA",
            }
        )
    return rows


def practice_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(PRACTICE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()

"""Real national declarations (fiboa LPIS samples) and EuroCrops HCAT mappings.

Every sample with a crop column is imported; its ``Area_meters`` is compared with the area the
paying agency declared (where the data has one) and its crop codes are looked up in the
EuroCrops mapping of the country, with at least the coverage listed in INDEX.csv.

Agreement means within 5 % of the declared area, or within one step of its last decimal when
the agency rounds it (FR's ``surf_parc`` has 0.01 ha steps, so a 160 m² parcel is declared as
200 m²; DE-BB truncates ``groesse`` to whole m², so 9.8 m² is declared as 9 m²).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box

from capmon import sites
from capmon.parcels.codes import check_crop_codes
from capmon.parcels.declarations import ColumnMapping, import_declarations, prepare_declarations
from capmon.parcels.lut import import_lut, prepare_lut
from capmon.vector import VectorFile, read_vector
from capmon.workspace import Workspace

pytestmark = pytest.mark.shared_data

CONVERT = "fiboa_lpis_samples/tests/data-files/convert"
MAPPINGS = "eurocrops_hcat/csvs/country_mappings"


@dataclass(frozen=True)
class Sample:
    """One sample file, how to import it, and what to check."""

    path: str
    parcel_id: tuple[str, ...]
    crop_code: str
    layer: str | None = None
    holding_id: tuple[str, ...] = ()
    area_column: str | None = None
    area_unit_m2: float = 10_000.0  # hectares by default
    area_step_m2: float = 0.0  # the declared area is rounded or truncated to this step
    mappings: tuple[str, ...] = ()
    min_coverage: float = 0.0  # share of parcels whose code the mapping has
    suffix_ids: bool = False
    row_ids: bool = False  # the file has no id column: number the rows


SAMPLES = {
    "at": Sample(f"{CONVERT}/at/inspire_schlaege_2025-1_polygon.gpkg.zip", ("GEO_ID",),
                 "SNAR_CODE", area_column="SL_FLAECHE_BRUTTO_HA",
                 mappings=("at_2021.csv",), min_coverage=0.80),
    "be_vlg": Sample(
        f"{CONVERT}/be_vlg/Landbouwgebruikspercelen_2023_-_Definitief_(extractie_28-03-2024)_GPKG.zip",
        ("REF_ID",), "GWSCOD_H", area_column="GRAF_OPP",
        mappings=("be_vlg_2021.csv",), min_coverage=1.0),
    "ch": Sample(f"{CONVERT}/ch/lwb_nutzungsflaechen_v2_0_lv95.gpkg", ("identifikator_be",),
                 "lnf_code", area_column="flaeche_m2", area_unit_m2=1.0),
    "cz": Sample("fiboa_lpis_samples/extracted/cz_GEOPROSTOR_ZADOSTI23_2024.zip",
                 ("ZAKRES_ID",), "PLODINA_ID", holding_id=("ID_UZ",), area_column="ZAKRES_VYM",
                 area_step_m2=1.0,
                 mappings=("cz_2023.csv",), min_coverage=1.0),
    "de_bb": Sample(f"{CONVERT}/de_bb/antrag.zip", ("ref_ident", "tf_typ"), "code",
                    area_column="groesse", area_step_m2=1.0, mappings=("de_bb_2023.csv",),
                    min_coverage=0.95,
                    suffix_ids=True),
    "de_fusion": Sample("fiboa_lpis_samples/from_history/de_fusion/de_train_2018.geojson",
                        ("fid",), "crop_id", area_column="SHAPE_AREA", area_unit_m2=1.0),
    "dk": Sample(f"{CONVERT}/dk/Marker_2026.zip", ("Journalnr", "Marknr"), "Afgkode",
                 holding_id=("CVR",), area_column="IMK_areal", area_step_m2=100.0,
                 mappings=("dk_2019.csv",), min_coverage=0.99),
    "ec_lv": Sample(f"{CONVERT}/ec_lv/LV_2021.zip", ("PARCEL_ID",), "PRODUCT_CO",
                    area_column="AREA_DECLA", area_step_m2=100.0, mappings=("lv_2021.csv",),
                    min_coverage=1.0),
    # RO features are land-cover zones whose AREA_HA is not their polygon's area
    "ec_ro": Sample(f"{CONVERT}/ec_ro/RO_ny.zip", ("LC_MAPCODE",), "LC_MAPCODE",
                    mappings=("ro_no_year.csv",), min_coverage=1.0, suffix_ids=True),
    "ec_si": Sample(f"{CONVERT}/ec_si/SI_2021.zip", ("ID",), "SIFRA_KMRS", area_column="AREA",
                    area_unit_m2=1.0, mappings=("si_2021.csv",), min_coverage=1.0),
    "fi": Sample(f"{CONVERT}/fi/LandUse.ExistingLandUse.GSAAAgriculturalParcel.gpkg",
                 ("PERUSLOHKOTUNNUS", "LOHKONUMERO"), "KASVIKOODI", area_column="PINTA_ALA",
                 area_step_m2=100.0,
                 mappings=("fi_2020.csv",), min_coverage=0.65),
    "fr": Sample("fiboa_lpis_samples/extracted/fr_RPG_2022_PARCELLES_GRAPHIQUES.gpkg",
                 ("id_parcel",), "code_cultu", area_column="surf_parc", area_step_m2=100.0,
                 mappings=("fr_2018.csv", "fr_other_years.csv"), min_coverage=1.0),
    "it_1": Sample(f"{CONVERT}/it_1/iti1_2023.parquet", ("cropfield",), "original_code",
                   area_column="area_ha"),
    "lt": Sample(f"{CONVERT}/lt/LT_2024.zip", ("field_id",), "crop_name",
                 area_column="field_size", area_step_m2=100.0,
                 mappings=("lt_2021.csv",), min_coverage=0.80),
    "lv": Sample(f"{CONVERT}/lv/1_100.xml", ("PARCEL_ID",), "PRODUCT_CODE", layer="Lauki",
                 area_column="AREA_DECLARED", area_step_m2=100.0, mappings=("lv_2021.csv",),
                 min_coverage=1.0),
    "nl": Sample(f"{CONVERT}/nl/brpgewaspercelen_definitief_2023.gpkg", ("row",), "gewascode",
                 mappings=("nl_2020.csv", "nl_other_years.csv"), min_coverage=0.91,
                 row_ids=True),
    "pt": Sample(f"{CONVERT}/pt/Continente.gpkg", ("OBJECTID",), "CUL_CODIGO",
                 layer="Culturas_Aveiro", area_column="Shape_Area", area_unit_m2=1.0,
                 mappings=("pt_2021.csv",)),
    "se": Sample(f"{CONVERT}/se/se2023.zip", ("blockid", "skiftesbet"), "grdkod_mar",
                 area_column="ansokt_are", area_step_m2=100.0, mappings=("se_2021.csv",),
                 min_coverage=1.0),
}  # fmt: skip

SKIPPED = {
    "at_block": "reference parcels (blocks), no crop codes",
    "be_wal": "one dataset-level GML feature readable, no crop codes",
    "bg": "arable-land blocks, no crop codes",
    "de_sh": "field blocks, no crop codes",
    "es_cat": "crop names only, no crop codes",
    "hr": "land parcels with land-use ids, no crop codes",
    "ie": "crop only in a GML attribute (specificLandUse@title) GDAL does not expose",
    "nl_block": "reference parcels, no crop codes",
    "si": "RAR5 archive, not a vector file GDAL reads",
}

CASES = [pytest.param(name, id=name) for name in SAMPLES] + [
    pytest.param(name, id=f"{name}-skipped", marks=pytest.mark.skip(reason=reason))
    for name, reason in SKIPPED.items()
]


def _vector(shared_data: Path, sample: Sample) -> VectorFile:
    vector = read_vector(shared_data / sample.path, sample.layer)
    if not sample.row_ids:
        return vector
    frame = vector.frame.copy()
    frame["row"] = np.arange(1, len(frame) + 1)
    return VectorFile(frame, vector.path, vector.layer, vector.member)


@pytest.mark.parametrize("name", CASES)
def test_sample_imports_with_true_areas_and_mapped_crop_codes(shared_data: Path, name: str) -> None:
    sample = SAMPLES[name]
    vector = _vector(shared_data, sample)
    prepared = prepare_declarations(
        vector,
        ColumnMapping(sample.parcel_id, sample.holding_id, sample.crop_code),
        on_duplicate_id="suffix" if sample.suffix_ids else "error",
    )
    parcels = prepared.parcels
    assert len(parcels) == len(vector.frame)
    assert parcels["NewID"].is_unique
    assert parcels["GeomValid"].all()
    assert (parcels["Area_meters"] > 0).all()
    if sample.area_column is not None:
        rows = parcels["source_row"].to_numpy(dtype=int) - 1
        declared = vector.frame[sample.area_column].to_numpy(dtype=float)[rows]
        declared = declared * sample.area_unit_m2
        known = declared > 0
        difference = np.abs(parcels["Area_meters"].to_numpy() - declared)[known]
        agree = difference <= np.maximum(0.05 * declared[known], sample.area_step_m2)
        assert known.sum() >= 0.9 * len(parcels)
        assert agree.mean() >= 0.95, f"{name}: only {agree.mean():.0%} agree within 5 %"
    if sample.mappings:
        lut = prepare_lut([shared_data / MAPPINGS / m for m in sample.mappings], "hcat")
        check = check_crop_codes(parcels["ori_crop"].tolist(), lut.table["crop_key"].tolist())
        covered = 1 - check.parcels_without_lut_entry / len(parcels)
        assert covered >= sample.min_coverage, f"{name}: {covered:.0%} of parcels mapped"


def test_every_eurocrops_mapping_converts(shared_data: Path) -> None:
    for path in sorted((shared_data / MAPPINGS).glob("*.csv")):
        prepared = prepare_lut(path, "hcat")
        assert prepared.table["ctnum"].is_unique, path.name
        assert prepared.table["crop_key"].is_unique, path.name
        assert prepared.report.entries + prepared.report.skipped.count == (
            prepared.report.rows_read
        )


def test_de_bb_codes_match_thanks_to_leading_zero_normalisation(
    shared_data: Path, workspace: Workspace
) -> None:
    with workspace.session() as session:
        sites.create_site(session, "Brandenburg", box(11.7, 51.6, 14.6, 53.4))
    mapping = shared_data / MAPPINGS / "de_bb_2023.csv"
    imported_lut = import_lut(workspace, "Brandenburg", 2025, mapping, lut_format="hcat")
    assert imported_lut.report.crop_codes is None  # no declarations yet
    result = import_declarations(
        workspace,
        "Brandenburg",
        2025,
        shared_data / SAMPLES["de_bb"].path,
        parcel_id_cols=["ref_ident", "tf_typ"],
        crop_code_col="code",
        on_duplicate_id="suffix",
    )
    codes = result.report.crop_codes
    assert codes is not None
    raw = {str(v) for v in result.parcels["ori_crop"]}
    assert any(code.startswith("0") for code in raw)  # '088' in the data, 88 in the table
    assert 1 - codes.parcels_without_lut_entry / len(result.parcels) > 0.42
    assert codes.missing_code_count <= 1

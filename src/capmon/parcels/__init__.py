"""Declarations (GSAA/LPIS parcels) and crop look-up tables, imported per site and year.

* :func:`prepare_declarations` validates a declarations file into a parcels table without a
  workspace; :func:`import_declarations` stores it as a new version of a site's parcels.
* :func:`prepare_lut` reads a Sen4CAP LUT CSV or converts EuroCrops HCAT mappings;
  :func:`import_lut` stores it as a new version of a site's LUT.
"""

from capmon.parcels.codes import CropCodeCheck, check_crop_codes, crop_key
from capmon.parcels.declarations import (
    PARCEL_COLUMNS,
    ColumnMapping,
    DeclarationImport,
    DuplicateIdPolicy,
    ParcelChange,
    PreparedDeclarations,
    declaration_report,
    import_declarations,
    list_declaration_sets,
    load_parcels,
    load_parcels_file,
    prepare_declarations,
)
from capmon.parcels.lut import (
    LutFormat,
    LutImport,
    import_lut,
    list_luts,
    load_lut,
    lut_info,
    prepare_lut,
)
from capmon.parcels.lut_schema import LUT_COLUMNS, PreparedLut
from capmon.parcels.report import DeclarationCounts, DeclarationReport, LutReport

__all__ = [
    "LUT_COLUMNS",
    "PARCEL_COLUMNS",
    "ColumnMapping",
    "CropCodeCheck",
    "DeclarationCounts",
    "DeclarationImport",
    "DeclarationReport",
    "DuplicateIdPolicy",
    "LutFormat",
    "LutImport",
    "LutReport",
    "ParcelChange",
    "PreparedDeclarations",
    "PreparedLut",
    "check_crop_codes",
    "crop_key",
    "declaration_report",
    "import_declarations",
    "import_lut",
    "list_declaration_sets",
    "list_luts",
    "load_lut",
    "load_parcels",
    "load_parcels_file",
    "lut_info",
    "prepare_declarations",
    "prepare_lut",
]

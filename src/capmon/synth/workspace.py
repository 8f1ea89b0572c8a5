"""Importing a synthetic world's declarations, whose columns the generator names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capmon.parcels import import_declarations
from capmon.parcels.declarations import DeclarationImport
from capmon.workspace import Workspace

PARCEL_ID_COLUMN = "PARCEL_ID"
HOLDING_ID_COLUMN = "HOLDING_ID"
CROP_CODE_COLUMN = "CROP_CODE"


def import_world_declarations(
    workspace: Workspace, site: str, year: int, path: str | Path, **options: Any
) -> DeclarationImport:
    """``import_declarations`` of a synthetic declarations file with its column mapping."""
    return import_declarations(
        workspace,
        site,
        year,
        path,
        parcel_id_cols=[PARCEL_ID_COLUMN],
        holding_id_cols=[HOLDING_ID_COLUMN],
        crop_code_col=CROP_CODE_COLUMN,
        **options,
    )

"""The ``l4a`` processor: ``capmon run l4a`` on given MDB, parcels and LUT files, its product
files and columns, its catalogue row, and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pytest
from shapely.geometry import box
from sqlalchemy import select
from typer.testing import CliRunner

from capmon.catalog.models import Product, season_year
from capmon.cli.main import app
from capmon.errors import NotFoundError
from capmon.mdb.store import MDB_SCHEMA, MdbManifest, MdbStore
from capmon.parcels import PARCEL_COLUMNS
from capmon.processors import RunContext, get_processor
from capmon.processors.files import run_period
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.workspace import Workspace, open_workspace
from tests.test_l4a import lut, parcels, series

runner = CliRunner()
SITE = "l4a-site"
FAST_OPTIONS = ["--num-trees", "20", "--smote-target", "40", "--pa-min", "5", "--folds", "3",
                "--jobs", "1"]  # fmt: skip


PREFIXES = (
    "Parcels_all_with_predictions_", "Parcels_classified_with_predictions_", "Accuracy_metrics_",
    "Confusion_matrix_", "Confusion_user_", "Confusion_producer_", "Crop_types_summary_",
    "Accuracy_metrics_plot_",
)  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An MDB folder, a parcels GeoParquet and a Sen4CAP LUT CSV, made by hand."""
    folder = tmp_path_factory.mktemp("l4a-inputs")
    table = parcels({1: 25, 2: 25, 3: 25})
    rows = series(table)
    store = MdbStore(folder / "mdb")
    store.initialise(MdbManifest(SITE, f"{SITE}/2024/v1", None, 5.0, 10.0, 2, 0.1, "1"))
    n = len(rows)
    columns = {
        "parcel_id": rows["parcel_id"],
        "signal": rows["signal"],
        "sensor": ["S1A" if s.startswith(("AMP", "COHE")) else "S2A" for s in rows["signal"]],
        "date": rows["date"],
        "date_first": [None] * n,
        "orbit": [None] * n,
        "orbit_direction": rows["orbit_direction"],
        "tile": [None] * n,
        "product_id": ["handmade"] * n,
        "count": rows["count"],
        "pixels": rows["count"],
        "mean": rows["mean"],
        "stdev": rows["stdev"],
    }
    arrays = {f.name: pa.array(columns.get(f.name, [None] * n), type=f.type) for f in MDB_SCHEMA}
    store.write_product("handmade", [pa.Table.from_pydict(arrays, schema=MDB_SCHEMA)])
    full = table.copy()
    for column in PARCEL_COLUMNS:
        if column not in full.columns:
            full[column] = {"repaired": False, "ShapeInd": 1.0, "geom_change_ratio": 0.0,
                            "source_row": 0}.get(column)  # fmt: skip
    full["inserted_at"] = datetime(2024, 1, 1)
    full["updated_at"] = datetime(2024, 1, 1)
    full["ori_hold"] = full["ori_id"]
    full["change"] = "new"
    full = gpd.GeoDataFrame(full[list(PARCEL_COLUMNS)], geometry="geometry", crs="EPSG:32631")
    full.to_parquet(folder / "parcels.parquet")
    table_lut = lut()
    for flag in ("eaa", "al", "pgrass", "tgrass", "fallow", "cwater"):
        table_lut[flag] = table_lut[flag].astype(int)
    table_lut.to_csv(folder / "lut.csv", index=False)
    return {"mdb": folder / "mdb", "parcels": folder / "parcels.parquet", "lut": folder / "lut.csv"}


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace with a site and its 2024 season, but no declarations or MDB."""
    opened = open_workspace(tmp_path / "home")
    with opened.session() as session:
        site = create_site(session, SITE, box(4.3, 50.8, 4.4, 50.9))
        create_season(session, site, "2024", SeasonDates.parse("2024-02-01", "2024-11-30",
                                                               "2024-06-15"))  # fmt: skip
    yield opened
    opened.dispose()


def _options(inputs: dict[str, Path]) -> list[str]:
    return [f"--{key}={path}" for key, path in inputs.items()] + FAST_OPTIONS


def test_cli_run_writes_the_sen4cap_files(workspace: Workspace, inputs: dict[str, Path]) -> None:
    home = str(workspace.home)
    result = runner.invoke(app, ["--home", home, "run", "l4a", SITE, "2024", *_options(inputs)])
    assert result.exit_code == 0, result.output
    assert "overall accuracy" in result.output
    with workspace.session() as session:
        product = session.scalars(select(Product).where(Product.product_type == "s4c_l4a")).one()
        folder = Path(product.path)
        assert product.name.startswith("SEN4CAP_L4A_S")
        assert "_V20240301_" in product.name
        assert product.properties["overall_accuracy"] > 0.9
    assert folder.parent == workspace.home / "products" / "l4a_site" / "l4a"  # the short name
    names = sorted(p.name for p in folder.iterdir())
    for prefix in PREFIXES:
        assert any(n.startswith(prefix) for n in names), prefix
    assert {"CropType.gpkg", "features.parquet", "l4a.json"} <= set(names)
    [all_csv] = folder.glob("Parcels_all_with_predictions_*.csv")
    predictions = pd.read_csv(all_csv)
    assert len(predictions) == 75
    for column in ("NewID", "CT_decl", "CT_pred_1", "CT_conf_1", "CT_pred_2", "CT_conf_2",
                   "Classif_r"):  # fmt: skip
        assert column in predictions.columns
    assert (predictions["Classif_r"] == "Classified_conform").all()
    [matrix_csv] = folder.glob("Confusion_matrix_*.csv")
    matrix = pd.read_csv(matrix_csv, index_col=0)
    assert "user_accuracy" in matrix.columns
    assert "producer_accuracy" in matrix.index
    [plot] = folder.glob("Accuracy_metrics_plot_*.png")
    assert plot.read_bytes()[:4] == b"\x89PNG"
    layer = gpd.read_file(folder / "CropType.gpkg")
    assert len(layer) == 75
    assert {"NewID", "CT_pred_1", "Classif_r"} <= set(layer.columns)
    assert layer.crs is not None
    features = pd.read_parquet(folder / "features.parquet")
    assert len(features) == 75
    assert features.columns[0] == "NewID"


def test_registry_run_with_until(workspace: Workspace, inputs: dict[str, Path]) -> None:
    processor = get_processor("l4a")
    with workspace.session() as session:
        site = get_site(session, SITE)
        season = get_season(session, site, "2024")
    values = {"mdb": inputs["mdb"], "parcels": inputs["parcels"], "lut": inputs["lut"],
              "until": "2024-05-01", "num_trees": 20, "smote_target": 40, "pa_min": 5,
              "folds": 3, "jobs": 1, "mode": "s2-only"}  # fmt: skip
    result = processor.run(RunContext(workspace, site, season), processor.parse_parameters(values))
    assert result.figures["last_acquisition"] <= "2024-05-01"
    assert "_V20240301_20240430_" in Path(result.outputs["product"]).name
    assert result.figures["overall_accuracy"] > 0.8


def test_missing_mdb_is_a_named_error(workspace: Workspace, inputs: dict[str, Path]) -> None:
    processor = get_processor("l4a")
    with workspace.session() as session:
        site = get_site(session, SITE)
        season = get_season(session, site, "2024")
    values = {"parcels": inputs["parcels"], "lut": inputs["lut"]}
    with pytest.raises(NotFoundError, match="has no declarations for 2024"):
        processor.run(RunContext(workspace, site, season), processor.parse_parameters(values))


def test_the_season_year_comes_from_the_season_not_its_end_date(workspace: Workspace) -> None:
    """Issue 17: a season named 2023 that ends on 2024-01-31 reads the 2023 declarations."""
    with workspace.session() as session:
        site = get_site(session, SITE)
        create_season(session, site, "2023", SeasonDates.parse("2023-02-01", "2024-01-31",
                                                               "2023-07-01"))  # fmt: skip
    with workspace.session() as session:
        site = get_site(session, SITE)
        season = get_season(session, site, "2023")
        assert season.year == 2023
        assert get_season(session, site, "2024").year == 2024
    assert run_period(RunContext(workspace, site, season), None, "L4A").year == 2023
    # no single year in the name, or one outside the season: the year of the end date
    assert season_year("2023-2024", date(2023, 10, 1), date(2024, 7, 31)) == 2024
    assert season_year("main", date(2023, 10, 1), date(2024, 7, 31)) == 2024
    assert season_year("2019", date(2023, 10, 1), date(2024, 7, 31)) == 2024
    assert season_year("20231001-20240731", date(2023, 10, 1), date(2024, 7, 31)) == 2024
    assert season_year("winter 2023", date(2023, 10, 1), date(2024, 7, 31)) == 2023
    processor = get_processor("l4a")
    with pytest.raises(NotFoundError, match="has no declarations for 2023"):
        processor.run(RunContext(workspace, site, season), processor.parse_parameters({}))


def test_cli_reports_bad_parameters(workspace: Workspace, inputs: dict[str, Path]) -> None:
    home = str(workspace.home)
    early = runner.invoke(
        app,
        ["--home", home, "run", "l4a", SITE, "2024", *_options(inputs), "--until", "2024-01-15"],
    )
    assert early.exit_code != 0
    assert "before the first acquisition" in early.output
    bad_mode = runner.invoke(app, ["--home", home, "run", "l4a", SITE, "2024", "--mode", "s3"])
    assert bad_mode.exit_code != 0
    assert "--mode" in bad_mode.output


def test_the_earlier_optical_step_is_read_as_a_calendar_period() -> None:
    """Schedules stored before calendar periods pass ``optical_step_days``: 10 reads as
    dekads, 30 as months, another step is refused with the new parameter's name."""
    from capmon.processors.l4a.parameters import L4AParameters

    assert L4AParameters.model_validate({"optical_step_days": 10}).period == "dekad"
    assert L4AParameters.model_validate({"optical_step_days": 30}).period == "month"
    with pytest.raises(ValueError, match="set period to dekad or month"):
        L4AParameters.model_validate({"optical_step_days": 7})

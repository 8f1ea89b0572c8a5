"""Processors on files (``capmon run <id> --mdb DIR --parcels FILE --out DIR``, and
``capmon.run_processor``): no site, season or catalogue; parcels in another vector format with
their ids in a column; an MDB with means only (as an imported one); the output folder rules;
the errors naming the option a processor needs; the CLI's comma lists, ``--json`` and exit code.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import capmon
from capmon.cli.main import app
from capmon.cli.processors import _parse, failed_products, processor_command
from capmon.errors import ColumnError, ConflictError, InputError
from capmon.mdb.extract import extract_season
from capmon.mdb.imports import UNKNOWN_COUNT, import_statistics, load_spec
from capmon.mdb.query import open_mdb
from capmon.mdb.store import MDB_SCHEMA, MdbStore, read_manifest
from capmon.parcels import import_lut, load_parcels
from capmon.processors import (
    Processor,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    get_processor,
)
from capmon.processors.files import run_processor
from capmon.sites import SeasonDates, create_season, create_site, get_site
from capmon.sources import ingest_products
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import open_workspace

runner = CliRunner()
SITE = "files"
ONLY_MEANS = ("stdev", "min", "max", "median", "p25", "p75")
UNKNOWN_COUNTS = ("count", "pixels")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    return generate_world(
        tmp_path_factory.mktemp("files-world") / "w", parcels=50, window_km=1.4,
        revisit_days=10, s1_repeat_days=12, seed=23,
    )  # fmt: skip


@pytest.fixture(scope="module")
def inputs(world: SynthWorld, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A means-only MDB (every other statistic null, counts unknown, as `capmon mdb import`
    writes from a table of means), the parcels as a GeoPackage in EPSG:3035 with their ids in
    PLOTID and crop codes in CROP, the LUT and an L4C practice table, and the site MDB."""
    folder = tmp_path_factory.mktemp("files-inputs")
    year = world.years[0]
    workspace = open_workspace(folder / "home")
    with workspace.session() as session:
        site = create_site(session, SITE, world.aoi)
        create_season(session, site, "S", SeasonDates.parse(f"{year}-02-01", f"{year}-11-30",
                                                            f"{year}-06-15"))  # fmt: skip
    import_lut(workspace, SITE, year, world.lut)
    import_world_declarations(workspace, SITE, year, world.declarations[year])
    with workspace.session() as session:
        ingest_products(
            session, get_site(session, SITE), [p for p in (world.s2_dir, world.s1_dir) if p]
        )
    site_mdb = extract_season(workspace, SITE, "S").mdb_path
    parcels = load_parcels(workspace, SITE, year)
    workspace.dispose()

    rows = open_mdb(site_mdb).duckdb().arrow()
    if isinstance(rows, pa.RecordBatchReader):
        rows = rows.read_all()
    columns = {
        f.name: (
            pa.nulls(rows.num_rows, f.type)
            if f.name in ONLY_MEANS or f.name not in rows.column_names
            else rows.column(f.name).cast(f.type)
        )
        for f in MDB_SCHEMA
    }
    for name in UNKNOWN_COUNTS:  # `capmon mdb import` writes 0 for counts a source lacks
        columns[name] = pa.array([UNKNOWN_COUNT] * rows.num_rows, type=pa.int32())
    means = MdbStore(folder / "means")
    means.initialise(read_manifest(site_mdb))
    unknown = pa.schema([f.with_nullable(f.name not in ("parcel_id", "signal", "date"))
                         for f in MDB_SCHEMA])  # fmt: skip
    means.observations.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(columns, schema=unknown),
                   means.observations / "imported.parquet")  # fmt: skip

    plots = gpd.GeoDataFrame(
        {"PLOTID": parcels["NewID"].astype("int64"), "CROP": parcels["ori_crop"].astype(str)},
        geometry=parcels.geometry.to_numpy(),
        crs=parcels.crs,
    ).to_crs("EPSG:3035")
    plots.to_file(folder / "plots.gpkg", driver="GPKG")
    texts = plots.assign(PLOTID="plot-" + plots["PLOTID"].astype(str))
    texts.to_file(folder / "text-ids.gpkg", driver="GPKG")
    # the practice table names the parcels by the ids of the parcels file
    practices = pd.read_csv(world.practices[year]["NA"], sep=None, engine="python", dtype=str,
                             keep_default_na=False)  # fmt: skip
    new_ids = dict(zip(parcels["ori_id"].astype(str), parcels["NewID"].astype(str), strict=True))
    practices["FIELD_ID"] = practices["FIELD_ID"].map(new_ids)
    practices.to_csv(folder / "practices.csv", index=False, sep=";")
    return {
        "site_mdb": site_mdb,
        "mdb": folder / "means",
        "parcels": folder / "plots.gpkg",
        "text_ids": folder / "text-ids.gpkg",
        "lut": world.lut,
        "practices": folder / "practices.csv",
    }


def _files(inputs: dict[str, Path], **extra: Any) -> dict[str, Any]:
    return {"mdb": inputs["mdb"], "parcels": inputs["parcels"], "parcel_id_col": "PLOTID"} | extra


def test_means_only_mdb_has_no_other_statistic(inputs: dict[str, Path]) -> None:
    rows = open_mdb(inputs["mdb"]).timeseries(signals=["NDVI"])
    assert len(rows) > 0
    assert rows["mean"].notna().all()
    for column in ONLY_MEANS:
        assert rows[column].isna().all(), column
    for column in UNKNOWN_COUNTS:
        assert (rows[column] == UNKNOWN_COUNT).all(), column


def test_l4b_on_files_with_means_only(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "l4b"
    result = capmon.run_processor("l4b", out=out, **_files(inputs))
    assert isinstance(result, RunResult)
    assert result.outputs["product"] == str(out)
    assert all(Path(p).exists() for p in result.outputs.values())
    plots = gpd.read_file(inputs["parcels"])
    # without a LUT every parcel is analysed as grassland, and the MDB's means are used
    assert result.figures["parcels"] == len(plots)
    assert result.figures["processed"] > 0.8 * len(plots)
    assert result.figures["events"] > 0
    assert any("no crop LUT" in note for note in result.figures["notes"])
    # season dates from the MDB
    first = open_mdb(inputs["mdb"]).duckdb().aggregate("min(date)").fetchall()[0][0]
    assert json.loads(Path(result.outputs["report"]).read_text())["start"] == str(first)
    # nothing left beside the product
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l4b"]


def test_l4b_sen4cap_method_on_files_with_unknown_counts(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    """Counts of 0 (unknown) used to reach an all-NaN median: a RuntimeWarning, an error here."""
    result = run_processor("l4b", out=tmp_path / "p", method="sen4cap", **_files(inputs))
    assert result.figures["processed"] > 0


def test_l4b_on_files_with_the_lut_selects_grassland(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    result = run_processor(
        "l4b", out=tmp_path / "p", lut=inputs["lut"], crop_code_col="CROP", **_files(inputs)
    )
    assert 0 < result.figures["parcels"] < len(gpd.read_file(inputs["parcels"]))


def test_l4b_cli_on_files_prints_json(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "a" / ("long-folder-name-" * 8)
    args = ["run", "l4b", "--mdb", str(inputs["mdb"]), "--parcels", str(inputs["parcels"]),
            "--parcel-id-col", "PLOTID", "--out", str(out), "--sensors", "S2",
            "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["processor"] == "l4b"
    assert payload["outputs"]["product"] == str(out)
    assert payload["failed"] == []
    assert payload["figures"]["parcels"] > 0
    # text output: long paths on one line when the output is not a terminal
    again = runner.invoke(app, [*args[:-1], "--overwrite"])
    assert again.exit_code == 0, again.output
    assert f"product: {out}\n" in again.stdout


def test_out_folder_rules(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    run_processor("baresoil", out=out, **_files(inputs))
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ConflictError, match="--overwrite"):
        run_processor("baresoil", out=out, **_files(inputs))
    # a failed run with --overwrite leaves the previous product in place
    with pytest.raises(InputError, match="before --start"):
        run_processor(
            "baresoil", out=out, overwrite=True, start=date(2030, 1, 1), end=date(2029, 1, 1),
            **_files(inputs),
        )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    result = run_processor("baresoil", out=out, overwrite=True, **_files(inputs))
    assert result.outputs["product"] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConflictError, match="is a file"):
        run_processor("baresoil", out=tmp_path / "file", **_files(inputs))


def test_baresoil_on_files_with_means_only(inputs: dict[str, Path], tmp_path: Path) -> None:
    result = run_processor("baresoil", out=tmp_path / "b", year=2024, **_files(inputs))
    status = pd.read_parquet(tmp_path / "b" / "status.parquet")
    assert result.figures["parcels"] == len(gpd.read_file(inputs["parcels"]))
    assert (status["status"] != "NO_DATA").sum() > 0
    # rows of unknown count are observations of full weight, not of valid fraction 0
    observations = pd.read_parquet(tmp_path / "b" / "observations.parquet")
    assert (observations["valid_fraction"] == 1.0).all()
    assert set(status["ori_id"].astype(str)) <= {
        str(v) for v in gpd.read_file(inputs["parcels"])["PLOTID"]
    }


def test_multiannual_on_files(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--parcels YEAR=FILE"):
        run_processor("multiannual", out=tmp_path / "x", parcels=[], lut=inputs["lut"])
    with pytest.raises(InputError, match="--parcels must be YEAR=PATH"):
        run_processor("multiannual", out=tmp_path / "x", parcels=inputs["parcels"])
    years = {2023: inputs["parcels"], 2024: inputs["parcels"]}
    with pytest.raises(ColumnError, match="--crop-code-col"):
        run_processor("multiannual", out=tmp_path / "x", parcels=years, lut=inputs["lut"],
                      parcel_id_col="PLOTID")  # fmt: skip
    result = run_processor(
        "multiannual", out=tmp_path / "m", parcels=years, mdb={2024: inputs["mdb"]},
        lut=inputs["lut"], parcel_id_col="PLOTID", crop_code_col="CROP", use_l4a=False,
    )  # fmt: skip
    assert result.figures["years"] == 2
    history = pd.read_csv(tmp_path / "m" / "history.csv")
    n = len(gpd.read_file(inputs["parcels"]))
    assert len(history) == 2 * n
    observed = history.groupby("year")["observed_dekads"].sum()
    assert observed.get(2023, 0) == 0
    assert observed[2024] > 0  # the means-only MDB gives the 2024 behaviour


def test_l4a_on_files_needs_crop_codes_and_a_lut(inputs: dict[str, Path], tmp_path: Path) -> None:
    fast = {"num_trees": 20, "smote_target": 40, "pa_min": 5, "folds": 3, "jobs": 1}
    with pytest.raises(ColumnError, match="--crop-code-col"):
        run_processor("l4a", out=tmp_path / "x", lut=inputs["lut"], **_files(inputs), **fast)
    with pytest.raises(InputError, match="--lut"):
        run_processor("l4a", out=tmp_path / "x", crop_code_col="CROP", **_files(inputs), **fast)
    assert not (tmp_path / "x").exists()
    result = run_processor(
        "l4a", out=tmp_path / "a", lut=inputs["lut"], crop_code_col="CROP", **_files(inputs),
        **fast,
    )  # fmt: skip
    assert result.outputs["product"] == str(tmp_path / "a")
    assert result.figures["features"] > 0
    assert any(
        p.name.startswith("Parcels_all_with_predictions_") for p in (tmp_path / "a").iterdir()
    )


def test_l4a_on_files_with_an_attributes_file(inputs: dict[str, Path], tmp_path: Path) -> None:
    fast = {"num_trees": 20, "pa_min": 5, "folds": 3, "jobs": 1}
    plots = gpd.read_file(inputs["parcels"])
    table = pd.DataFrame({"ori_id": plots["PLOTID"].astype(str).iloc[:-3],
                          "elevation": np.linspace(10, 500, len(plots) - 3),
                          "note": "x"})  # fmt: skip
    table.to_csv(tmp_path / "terrain.csv", index=False, sep=";")
    common = {"lut": inputs["lut"], "crop_code_col": "CROP", **_files(inputs), **fast}
    plain = run_processor("l4a", out=tmp_path / "plain", **common)
    result = run_processor(
        "l4a", out=tmp_path / "a", attributes_file=tmp_path / "terrain.csv", **common
    )
    # every numeric column of the file (not the text one), for every parcel
    assert result.figures["features"] == plain.figures["features"] + 1
    stored = pd.read_parquet(tmp_path / "a" / "features.parquet")
    assert stored["XX_A_elevation"].notna().all()  # the 3 parcels not in the file: the median
    assert "XX_A_note" not in stored.columns
    table.rename(columns={"ori_id": "plot"}).to_csv(tmp_path / "no-id.csv", index=False)
    with pytest.raises(ColumnError, match=r"no-id.csv: no parcel id column"):
        run_processor("l4a", out=tmp_path / "b", attributes_file=tmp_path / "no-id.csv", **common)
    with pytest.raises(ColumnError, match=r"terrain.csv: no column slope"):
        run_processor("l4a", out=tmp_path / "c", attributes_file=tmp_path / "terrain.csv",
                      attributes=["slope"], **common)  # fmt: skip
    assert not (tmp_path / "b").exists()
    assert not (tmp_path / "c").exists()


def test_l4c_on_files_needs_a_practice_table(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--practices"):
        run_processor("l4c", out=tmp_path / "x", **_files(inputs))
    result = run_processor(
        "l4c", out=tmp_path / "c", practices=inputs["practices"], **_files(inputs)
    )
    assert result.outputs["product"] == str(tmp_path / "c")
    assert result.figures["parcels"] > 0


def test_heterogeneity_on_files_runs_cv_only(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--methods cv"):
        run_processor("heterogeneity", out=tmp_path / "x", methods=["mixture"], **_files(inputs))
    result = run_processor("heterogeneity", out=tmp_path / "h", **_files(inputs))
    report = json.loads((tmp_path / "h" / "report.json").read_text())
    assert any("means only" in note for note in report["notes"])
    assert result.figures["cv_flagged"] == 0
    # the site MDB has stdevs: the cv method votes there
    on_site = run_processor(
        "heterogeneity", out=tmp_path / "s", mdb=inputs["site_mdb"], parcels=inputs["parcels"],
        parcel_id_col="PLOTID", cv_threshold=0.01, cv_persistence=1,
    )  # fmt: skip
    assert on_site.figures["cv_flagged"] > 0


def test_text_ids_without_an_id_map_are_named(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"row 1: parcel id 'plot-\d+' is not an integer"):
        run_processor(
            "baresoil", out=tmp_path / "x", mdb=inputs["mdb"], parcels=inputs["text_ids"],
            parcel_id_col="PLOTID",
        )  # fmt: skip
    with pytest.raises(ColumnError, match="--parcel-id-col"):
        run_processor(
            "baresoil", out=tmp_path / "x", mdb=inputs["mdb"], parcels=inputs["parcels"],
            parcel_id_col="NOPE",
        )  # fmt: skip


def test_processors_that_need_a_site_say_so(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="SITE SEASON"):
        run_processor("mdb", out=tmp_path / "x", **_files(inputs))
    result = runner.invoke(app, ["run", "l4b", "--mdb", str(inputs["mdb"])])
    assert result.exit_code == 2
    assert "--out" in result.output
    result = runner.invoke(app, ["run", "l4b", "--parcel-id-col", "X", "site", "season"])
    assert result.exit_code == 2
    assert "only for a run on files" in result.output


def test_comma_lists_and_repeats_are_the_same() -> None:
    mdb = get_processor("mdb")
    commas = _parse(mdb, {"signals": ["B04,B8A"], "scl_invalid_classes": ["0,1,3"]})
    repeats = _parse(mdb, {"signals": ["B04", "B8A"], "scl_invalid_classes": ["0", "1", "3"]})
    assert commas == repeats
    assert commas.model_dump()["signals"] == ["B04", "B8A"]
    assert commas.model_dump()["scl_invalid_classes"] == [0, 1, 3]
    mixed = _parse(get_processor("heterogeneity"), {"months": ["4,5", "6"]})
    assert mixed.model_dump()["months"] == [4, 5, 6]
    with pytest.raises(InputError, match="--scl-invalid-classes"):
        _parse(mdb, {"scl_invalid_classes": ["0,x"]})


class _NoParameters(BaseModel):
    pass


def _failing(figures: dict[str, Any], failed: tuple[str, ...] = ()) -> Processor:
    def run(_context: RunContext, _parameters: Any) -> RunResult:
        return RunResult("ran", figures, {"out": "/x"}, failed)

    return Processor(
        id="failing", title="Failing", version="1", description="A test processor.",
        parameters=_NoParameters, inputs=(),
        outputs=(ProcessorOutput("x", "x", "nothing"),), schedule=Schedule(kind="once"),
        run=run, needs_season=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("figures", "failed", "code"),
    [
        ({"failed": 2, "failures": ["a: broken", "b: broken"]}, (), 1),
        ({"failed": 0}, (), 0),
        ({}, ("product c",), 1),
    ],
)
def test_failed_products_make_a_non_zero_exit(
    tmp_path: Path, figures: dict[str, Any], failed: tuple[str, ...], code: int
) -> None:
    import typer

    from capmon.workspace import open_workspace as opened

    home = tmp_path / "home"
    workspace = opened(home)
    with workspace.session() as session:
        create_site(session, "s", gpd.GeoSeries.from_wkt(["POINT (4 50)"]).buffer(0.01)[0])
    workspace.dispose()
    one = typer.Typer()
    one.command("failing")(processor_command(_failing(figures, failed)))
    one.command("other")(lambda: None)
    from capmon.cli.common import CliState

    result = runner.invoke(one, ["failing", "s", "--json"], obj=CliState(home=home))
    assert result.exit_code == code, result.output
    payload = json.loads(result.stdout)
    assert payload["failed"] == failed_products(RunResult("", figures, {}, failed))
    assert bool(payload["failed"]) == bool(code)


def test_real_gmd_exports_feed_l4b_on_files(shared_data: Path, tmp_path: Path) -> None:
    """`capmon mdb import` of the real GMD exports (Slovak grassland plots: S2, S1 and coherence
    series from Google Earth Engine, means only, text plot ids) then `capmon run l4b` on files,
    the plots given as points with their PLOTID."""
    folder = shared_data / "mowing_gmd_dev"
    mdb = tmp_path / "lr2022"
    for spec, path in (("gmd-s2", folder / "S2" / "ts_LR_GMI_S2_LR_2022.csv"),
                       ("gmd-s1", folder / "S1" / "ts_LR_GMI_S1_2022.csv"),
                       ("gmd-coh", folder / "COH" / "ts_LR_GMI_COH_2022.csv")):  # fmt: skip
        import_statistics([path], mdb, load_spec(spec), site="gmd", parcel_set="LR")
    plots = gpd.read_file(folder / "GMI_Long_LR_NB.gpkg")
    plots = plots[plots["id"] == "LR"].drop_duplicates("PLOTID")[["PLOTID", "geometry"]]
    plots.to_file(tmp_path / "plots.gpkg", driver="GPKG")
    out = tmp_path / "l4b"
    args = ["run", "l4b", "--mdb", str(mdb), "--parcels", str(tmp_path / "plots.gpkg"),
            "--parcel-id-col", "PLOTID", "--out", str(out), "--method", "sen4cap",
            "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["figures"]
    assert figures["parcels"] == figures["processed"] == len(plots)
    assert figures["events"] > 0
    assert figures["first_acquisition"].startswith("2022-01")
    layer = gpd.read_file(next(out.glob("*.gpkg")))
    assert set(layer["Ori_id"]) == set(plots["PLOTID"])
    # the plots' text ids went through the import's id map
    again = capmon.run_processor("l4b", mdb=mdb, parcels=tmp_path / "plots.gpkg",
                                 parcel_id_col="PLOTID", out=tmp_path / "capmon")  # fmt: skip
    assert again.figures["processed"] == len(plots)
    duplicated = gpd.read_file(folder / "GMI_Long_LR_NB.gpkg")
    duplicated.to_file(tmp_path / "events.gpkg", driver="GPKG")
    with pytest.raises(
        InputError, match="column 'PLOTID': parcel id 'LR1' is also the id of row 1"
    ):
        run_processor("l4b", mdb=mdb, parcels=tmp_path / "events.gpkg", parcel_id_col="PLOTID",
                      out=tmp_path / "x")  # fmt: skip


def test_cv_method_on_rows_of_unknown_count() -> None:
    """Imported rows have count and pixels 0 (unknown): the CV method used to drop them all as
    'not enough valid pixels'; one-pixel rows (count 1) have no spread and give no vote."""
    from capmon.processors.heterogeneity.methods import cv_method

    days = pd.date_range("2024-05-01", periods=4, freq="10D")
    rows = pd.DataFrame(
        {
            "parcel_id": [1] * 4 + [2] * 4,
            "signal": "NDVI",
            "date": list(days) * 2,
            "mean": 0.6,
            "stdev": 0.2,
            "count": [0] * 4 + [1] * 4,
            "pixels": [0] * 4 + [40] * 4,
        }
    )
    table = cv_method(rows, [1, 2], persistence=3).set_index("parcel_id")
    assert bool(table.loc[1, "cv_flag"])
    assert table.loc[1, "cv_dates_used"] == 4
    assert not bool(table.loc[2, "cv_flag"])
    assert table.loc[2, "cv_dates_used"] == 0

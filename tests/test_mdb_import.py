"""``capmon mdb import``: statistics computed elsewhere, read into a normal MDB."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from typer.testing import CliRunner

import capmon
from capmon.cli.main import app
from capmon.errors import ColumnError, ConflictError, InputError
from capmon.mdb.export import export_sen4cap
from capmon.mdb.imports import (
    PARCEL_ID_MAP,
    UNKNOWN_COUNT,
    Extract,
    ImportSpec,
    ValueSource,
    builtin_specs,
    import_statistics,
    load_spec,
    parcel_id_map,
    read_parcel_ids,
    spec_from_mapping,
    to_parcel_ids,
)
from capmon.mdb.store import MdbManifest, MdbStore

runner = CliRunner()
LONG = ImportSpec(
    layout="long",
    id_column="parcel",
    date_column="date",
    signal_column="signal",
    sensor_from=Extract("sensor"),
    orbit_from=Extract("orbit"),
    sar_unit="amp-db",
)
LONG_HEADER = "parcel,date,signal,sensor,orbit,count,mean,stdev,min,max"


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _long_csv(path: Path, *rows: str) -> Path:
    return _write(path, LONG_HEADER, *rows)


def _rows(mdb: Path) -> pd.DataFrame:
    return capmon.open_mdb(mdb).timeseries()


def _listing(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- the long layout --------------------------------------------------------------------------


def test_long_table_keeps_given_statistics_and_leaves_the_others_null(tmp_path: Path) -> None:
    source = _long_csv(
        tmp_path / "stats.csv",
        "17,2024-05-03,NDVI,S2A,,120,0.61,0.05,0.4,0.8",
        "17,2024-05-13,NDVI,S2B,,,0.65,,,",
        "18,2024-05-03,AMP_VV,S1A,37,80,-6.5,0.7,-8,-5",
    )
    report = import_statistics([source], tmp_path / "mdb", LONG)
    assert report.observations == 3
    assert not report.id_map
    rows = _rows(tmp_path / "mdb")
    first, second, sar = (rows.iloc[i] for i in range(3))
    assert (first["parcel_id"], first["signal"], first["sensor"]) == (17, "NDVI", "S2A")
    assert first["count"] == 120
    assert first["mean"] == pytest.approx(0.61)
    assert first["pixels"] == UNKNOWN_COUNT  # the source does not give it
    assert math.isnan(first["median"])
    assert math.isnan(first["p25"])
    assert second["count"] == UNKNOWN_COUNT
    assert math.isnan(second["stdev"])
    assert (sar["orbit"], sar["mean"]) == (37, pytest.approx(-6.5))
    assert math.isnan(first["orbit"])
    manifest = capmon.open_mdb(tmp_path / "mdb").manifest
    assert manifest.engine_version == "import-1"
    assert manifest.min_count == 0


def test_long_table_maps_signal_names_and_statistic_columns(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "other.csv",
        "fid,day,band,n,avg,sd,p50",
        "5,03/05/2024,ndvi,40,0.5,0.1,0.52",
    )
    spec = ImportSpec(
        id_column="fid",
        date_column="day",
        date_format="%d/%m/%Y",
        signal_column="band",
        sensor="S2",
        values=(ValueSource("ndvi", "NDVI"),),
        statistic_columns=(("count", "n"), ("mean", "avg"), ("stdev", "sd"), ("median", "p50")),
    )
    import_statistics([source], tmp_path / "mdb", spec)
    row = _rows(tmp_path / "mdb").iloc[0]
    assert (row["signal"], str(row["date"]), row["count"]) == ("NDVI", "2024-05-03", 40)
    assert row["median"] == pytest.approx(0.52)
    assert row["stdev"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "17,2024-13-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7",
            "line 2, column 'date': '2024-13-03' is not a date",
        ),
        ("17,2024-05-03,NDVX,S2A,,5,0.6,0.1,0.5,0.7", "unknown signal 'NDVX'"),
        ("17,2024-05-03,NDVI,S2A,,5,inf,0.1,0.5,0.7", "column 'mean': inf is not a value"),
        ("17,2024-05-03,NDVI,S2A,,5,0.6,-0.1,0.5,0.7", "column 'stdev': stdev -0.1 is negative"),
        ("17,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.8,0.7", "NDVI min 0.8 > max 0.7"),
        ("17,2024-05-03,NDVI,S2A,,-3,0.6,0.1,0.5,0.7", "column 'count': count -3"),
        ("17,2024-05-03,NDVI,S2A,,2.5,0.6,0.1,0.5,0.7", "column 'count': count 2.5"),
        ("17,2024-05-03,NDVI,S2A,,5,abc,0.1,0.5,0.7", "column 'mean': 'abc' is not a number"),
        ("17,2024-05-03,NDVI,S2A,,5,4.5,0.1,0.5,0.7", "NDVI mean 4.5 is far outside"),
        ("17,2024-05-03,B04,S2A,,5,2500,10,2400,2600", "scale = 0.0001"),
        ("17,2024-05-03,NDVI,S1A,,5,0.6,0.1,0.5,0.7", "NDVI is not a S1A signal"),
        ("17,2024-05-03,NDVI,S7,,5,0.6,0.1,0.5,0.7", "unknown sensor 'S7'"),
        ("17,2024-05-03,AMP_VV,S1A,3.5,5,-6,0.1,-7,-5", "orbit 3.5 is not a relative orbit"),
        (",2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7", "line 2, column 'parcel': empty parcel id"),
        ("x" * 300 + ",2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7", "parcel id of 300 characters"),
    ],
)
def test_bad_values_are_refused_naming_file_line_and_column(
    tmp_path: Path, row: str, message: str
) -> None:
    source = _long_csv(tmp_path / "bad.csv", row)
    with pytest.raises(InputError) as raised:
        import_statistics([source], tmp_path / "mdb", LONG)
    assert message in str(raised.value)
    assert str(source) in str(raised.value)
    assert not (tmp_path / "mdb").exists()


def test_sar_values_need_their_unit(tmp_path: Path) -> None:
    source = _long_csv(tmp_path / "s1.csv", "1,2024-05-03,AMP_VV,S1A,37,5,-13,1,-15,-11")
    with pytest.raises(InputError, match="AMP_VV needs the unit of its values"):
        import_statistics(
            [source], tmp_path / "mdb", ImportSpec(**{**LONG.__dict__, "sar_unit": None})
        )
    import_statistics([source], tmp_path / "mdb", ImportSpec(**{**LONG.__dict__, "sar_unit": "db"}))
    row = _rows(tmp_path / "mdb").iloc[0]
    # sigma0 dB -> Sen4CAP's AMP dB: every statistic halves, the stdev too
    assert (row["mean"], row["stdev"], row["min"], row["max"]) == (-6.5, 0.5, -7.5, -5.5)


def test_duplicate_observations_name_both_lines(tmp_path: Path) -> None:
    source = _long_csv(
        tmp_path / "dup.csv",
        "1,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7",
        "2,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7",
        "1,2024-05-03,NDVI,S2A,,6,0.61,0.1,0.5,0.7",
    )
    with pytest.raises(InputError, match=r"lines 2 and 4 are the same observation \(parcel 1"):
        import_statistics([source], tmp_path / "mdb", LONG)


def test_values_slightly_outside_the_physical_range_are_no_observation(tmp_path: Path) -> None:
    """A reflectance of 1.64 (a cloud the source's mask missed) is dropped like an extraction
    drops such pixels; the other rows are kept and the report says how many went."""
    source = _long_csv(
        tmp_path / "bright.csv",
        "1,2024-05-03,B02,S2A,,5,1.64,0.1,1.5,1.7",
        "1,2024-05-03,B08,S2A,,5,0.3,0.1,0.2,0.4",
    )
    report = import_statistics([source], tmp_path / "mdb", LONG)
    assert _rows(tmp_path / "mdb")["signal"].tolist() == ["B08"]
    assert "1 observations outside their signal's physical range dropped" in report.notes[0]


# --- ids, parcels ------------------------------------------------------------------------------


def test_text_ids_are_numbered_and_the_numbering_is_kept(tmp_path: Path) -> None:
    spec = ImportSpec(
        layout="wide",
        id_column="PLOTID",
        date_column="Date",
        sensor="S2",
        values=(ValueSource("ndvi", "NDVI"),),
    )
    first = _write(
        tmp_path / "a.csv", "PLOTID,Date,ndvi", "LR10,2024-05-03,0.5", "LR2,2024-05-03,0.6"
    )
    second = _write(
        tmp_path / "b.csv", "PLOTID,Date,ndvi", "LR10,2024-05-13,0.7", "NB1,2024-05-13,0.2"
    )
    mdb = tmp_path / "mdb"
    import_statistics([first], mdb, spec)
    assert parcel_id_map(mdb) == {"LR2": 1, "LR10": 2}  # natural order
    import_statistics([second], mdb, spec)
    assert parcel_id_map(mdb) == {"LR2": 1, "LR10": 2, "NB1": 3}  # extended, never renumbered
    assert to_parcel_ids(mdb, ["LR10", "NB1", "XX", None]) == [2, 3, None, None]
    series = capmon.open_mdb(mdb).timeseries(parcel_ids=[2])
    assert series["mean"].tolist() == pytest.approx([0.5, 0.7])
    assert pd.read_csv(mdb / PARCEL_ID_MAP).columns.tolist() == ["original_id", "parcel_id"]


def test_integer_ids_are_used_as_they_are(tmp_path: Path) -> None:
    source = _long_csv(tmp_path / "a.csv", "42,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7")
    import_statistics([source], tmp_path / "mdb", LONG)
    assert parcel_id_map(tmp_path / "mdb") is None
    assert to_parcel_ids(tmp_path / "mdb", [42, "42", 42.0, "LR1"]) == [42, 42, 42, None]
    text = _long_csv(tmp_path / "b.csv", "LR1,2024-05-04,NDVI,S2A,,5,0.6,0.1,0.5,0.7")
    with pytest.raises(ConflictError, match="integer parcel ids; parcel id 'LR1'"):
        import_statistics([text], tmp_path / "mdb", LONG)


def test_parcels_file_refuses_or_skips_unknown_parcels(tmp_path: Path) -> None:
    parcels = _write(tmp_path / "parcels.csv", "PLOTID,name", "LR1,a", "LR2,b", "LR3,c")
    source = _write(
        tmp_path / "s.csv", "PLOTID,Date,ndvi", "LR2,2024-05-03,0.5", "LR9,2024-05-03,0.6"
    )
    spec = ImportSpec(
        layout="wide", id_column="PLOTID", date_column="Date", sensor="S2",
        values=(ValueSource("ndvi", "NDVI"),),
    )  # fmt: skip
    ids = read_parcel_ids(parcels, "PLOTID")
    with pytest.raises(InputError, match=r"s.csv: line 3: parcel 'LR9' is not in the parcels file"):
        import_statistics([source], tmp_path / "mdb", spec, parcels=ids)
    report = import_statistics(
        [source], tmp_path / "mdb", spec, parcels=ids, skip_unknown_parcels=True
    )
    assert report.sources[0].unknown_parcel_rows == 1
    # every parcel of the parcels file is numbered, rows or not, in the file's natural order
    assert parcel_id_map(tmp_path / "mdb") == {"LR1": 1, "LR2": 2, "LR3": 3}
    assert _rows(tmp_path / "mdb")["parcel_id"].tolist() == [2]


# --- atomic, idempotent -----------------------------------------------------------------------


def test_importing_a_file_twice_changes_nothing_and_a_corrected_file_replaces(
    tmp_path: Path,
) -> None:
    mdb = tmp_path / "mdb"
    source = _long_csv(
        tmp_path / "stats.csv",
        "1,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7",
        "2,2024-05-03,NDVI,S2A,,5,0.3,0.1,0.2,0.4",
    )
    import_statistics([source], mdb, LONG)
    before = _listing(mdb)
    again = import_statistics([source], mdb, LONG)
    assert again.sources[0].already_imported
    assert _listing(mdb) == before
    assert len(_rows(mdb)) == 2
    _long_csv(source, "1,2024-05-03,NDVI,S2A,,5,0.65,0.1,0.5,0.7")  # corrected: one row left
    corrected = import_statistics([source], mdb, LONG)
    assert not corrected.sources[0].already_imported
    rows = _rows(mdb)
    assert rows["parcel_id"].tolist() == [1]
    assert rows["mean"].tolist() == [pytest.approx(0.65)]
    assert capmon.open_mdb(mdb).duckdb().count("*").fetchall() == [(1,)]
    # going back to the first version works too (its product was retired, it is stored anew)
    _long_csv(
        source,
        "1,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7",
        "2,2024-05-03,NDVI,S2A,,5,0.3,0.1,0.2,0.4",
    )
    import_statistics([source], mdb, LONG)
    assert _rows(mdb)["mean"].tolist() == pytest.approx([0.6, 0.3])


def test_a_failing_import_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    mdb = tmp_path / "mdb"
    good = _long_csv(tmp_path / "good.csv", "1,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7")
    import_statistics([good], mdb, LONG)
    before = _listing(mdb)
    fine = _long_csv(tmp_path / "fine.csv", "1,2024-05-13,NDVI,S2A,,5,0.6,0.1,0.5,0.7")
    bad = _long_csv(tmp_path / "bad.csv", "1,2024-05-23,NDVI,S2A,,5,0.6,0.1,0.5,x")
    with pytest.raises(InputError, match=r"bad\.csv: line 2, column 'max'"):
        import_statistics([fine, bad], mdb, LONG)
    assert _listing(mdb) == before
    # the same observation from another file is refused, naming the product that has it
    twin = _long_csv(tmp_path / "twin.csv", "1,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7")
    with pytest.raises(ConflictError, match=r"is already in .* \(product IMPORT_good@"):
        import_statistics([twin], mdb, LONG)
    with pytest.raises(InputError, match=r"IMPORT_fine@.* both hold parcel 1"):
        import_statistics(
            [fine, _long_csv(tmp_path / "fine2.csv", "1,2024-05-13,NDVI,S2A,,5,0.6,0.1,0.5,0.7")],
            mdb,
            LONG,
        )
    assert _listing(mdb) == before


def test_an_extracted_mdb_or_another_parcel_set_is_refused(tmp_path: Path) -> None:
    extracted = tmp_path / "extracted"
    MdbStore(extracted).initialise(
        MdbManifest("demo", "declarations-1", 1, 5.0, 10.0, 2, 0.1, "engine-3")
    )
    before = _listing(extracted)
    source = _long_csv(tmp_path / "a.csv", "1,2024-05-03,NDVI,S2A,,5,0.6,0.1,0.5,0.7")
    with pytest.raises(ConflictError, match="made by extraction"):
        import_statistics([source], extracted, LONG)
    assert _listing(extracted) == before
    import_statistics([source], tmp_path / "mdb", LONG, site="x", parcel_set="LR")
    with pytest.raises(ConflictError, match="parcel set 'LR', not 'x', 'NB'"):
        import_statistics([source], tmp_path / "mdb", LONG, site="x", parcel_set="NB")


# --- wide layouts (Earth Engine exports) -------------------------------------------------------


def test_wide_table_with_mask_nodata_tile_and_coherence_pairs(tmp_path: Path) -> None:
    bands = ["blue", "green", "red", "re1", "re2", "re3", "nir", "swir1", "swir2"]
    optical = tmp_path / "s2.csv"
    pd.DataFrame(
        {
            "system:index": [f"20220102T095411_20220102T095409_T33UYQ_{i}" for i in range(3)],
            "PLOTID": ["LR1", "LR2", "LR1"],
            "Date": ["2022-01-02", "2022-01-02", "2022-01-07"],
            "ndvi": [0.5, -9999, -9999],
            **{band: [0.1, 0.2, -9999] for band in bands},
            "mask": [1, 1, 0],
        }
    ).to_csv(optical, index=False)
    pairs = _write(
        tmp_path / "coh.csv",
        "system:index,PLOTID,Date,b1,b2",
        "lr_20230103-20230115_0,LR1,2023-01-03,0.4,0.3",
    )
    mdb = tmp_path / "mdb"
    report = import_statistics([optical], mdb, load_spec("gmd-s2"))
    s2 = report.sources[0]
    assert (s2.rows_not_valid, s2.missing_values, s2.observations) == (1, 1, 19)
    import_statistics([pairs], mdb, load_spec("gmd-coh"))
    rows = _rows(mdb)
    assert set(rows["tile"].dropna()) == {"33UYQ"}
    assert set(rows["sensor"]) == {"S2", "S1"}
    assert not (rows[["mean"]] == -9999).any().any()
    coherence = rows[rows["signal"] == "COHE_VV"].iloc[0]
    assert (str(coherence["date_first"]), str(coherence["date"])) == ("2023-01-03", "2023-01-15")
    assert coherence["orbit"] == 175
    assert coherence["mean"] == pytest.approx(0.4)


def test_shipped_specs_and_spec_errors(tmp_path: Path) -> None:
    assert {"gmd-s2", "gmd-s1", "gmd-coh", "worldcereal-month"} <= set(builtin_specs())
    with pytest.raises(InputError, match="unknown keys \\['colums'\\]"):
        spec_from_mapping({"layout": "wide", "colums": {}})
    with pytest.raises(InputError, match="columns 'a' and 'b' both give the mean of NDVI"):
        spec_from_mapping({"layout": "wide", "columns": {"a": "NDVI", "b": "NDVI"}})
    with pytest.raises(InputError, match="is neither a spec file nor a shipped spec"):
        load_spec("no-such-spec")
    bad = _write(tmp_path / "bad.toml", "layout = 'wide'", "[columns", "a = 'NDVI'")
    with pytest.raises(InputError, match=r"bad\.toml: not valid TOML"):
        load_spec(bad)


# --- openEO, JRC CbM ---------------------------------------------------------------------------


def test_openeo_aggregate_spatial_csv_and_json(tmp_path: Path) -> None:
    csv = _write(
        tmp_path / "timeseries.csv",
        "date,feature_index,avg(band_0),avg(band_1),sd(band_0)",
        "2020-07-06T00:00:00.000Z,0,0.05,0.30,0.01",
        "2020-07-06T00:00:00.000Z,1,0.04,,0.02",
    )
    spec = ImportSpec(
        layout="openeo",
        sensor="S2",
        values=(ValueSource("band_0", "B04"), ValueSource("band_1", "B08")),
    )
    import_statistics([csv], tmp_path / "csv", spec)
    rows = _rows(tmp_path / "csv")
    assert rows[["parcel_id", "signal"]].values.tolist() == [[0, "B04"], [0, "B08"], [1, "B04"]]
    assert rows["stdev"].tolist()[0] == pytest.approx(0.01)
    assert str(rows["date"][0]) == "2020-07-06"
    payload = {"2020-07-06T00:00:00Z": [[0.05, 0.3], [0.04, None]]}
    (tmp_path / "ts.json").write_text(json.dumps(payload))
    import_statistics([tmp_path / "ts.json"], tmp_path / "json", spec)
    assert _rows(tmp_path / "json")["mean"].tolist() == pytest.approx([0.05, 0.3, 0.04])
    with pytest.raises(InputError, match="no column maps to a signal"):
        import_statistics([csv], tmp_path / "none", ImportSpec(layout="openeo", sensor="S2"))


def test_jrc_cbm_signature_tables(tmp_path: Path) -> None:
    s2 = _write(
        tmp_path / "time_series_s2.csv",
        ",date_part,band,count,mean,std,min,p25,p50,p75,max",
        "0,1588550400,B4,120,812.5,40.1,700,790,810,830,950",
        "1,1588550400,B08,120,3120.0,99.0,2900,3050,3110,3190,3400",
        "2,1588550400,SC,120,4.2,0.5,4,4,4,4,5",
    )
    spec = ImportSpec(layout="cbm", cbm_kind="s2")
    with pytest.raises(InputError, match="no parcel id column 'pid'"):
        import_statistics([s2], tmp_path / "s2", spec)
    frame = pd.read_csv(s2)
    frame.insert(0, "pid", 7)
    frame.drop(columns=frame.columns[1]).to_csv(s2, index=False)
    import_statistics([s2], tmp_path / "s2", spec)
    rows = _rows(tmp_path / "s2")
    assert rows["signal"].tolist() == ["B04", "B08"]  # the SC (scene class) rows are skipped
    red = rows.iloc[0]
    assert (str(red["date"]), red["count"], red["parcel_id"]) == ("2020-05-04", 120, 7)
    assert red["mean"] == pytest.approx(0.08125)
    assert red["median"] == pytest.approx(0.081)
    assert red["stdev"] == pytest.approx(0.00401)
    backscatter = _write(
        tmp_path / "bs.csv",
        "pid,obstime,band,count,mean,std,min,p25,p50,p75,max",
        "7,2020-05-04 05:30:00,VV,40,0.1,0.02,0.01,0.05,0.09,0.12,0.3",
    )
    report = import_statistics(
        [backscatter],
        tmp_path / "bs",
        ImportSpec(layout="cbm", cbm_kind="bs", date_column="obstime"),
    )
    vv = _rows(tmp_path / "bs").iloc[0]
    assert vv["signal"] == "AMP_VV"
    assert vv["backscatter"] == "gamma0"
    assert vv["median"] == pytest.approx(5 * math.log10(0.09), abs=1e-5)  # exact for quantiles
    assert math.isnan(vv["stdev"])
    assert any("stdev of linear" in n for n in report.notes)


# --- Sen4CAP's own export, back ---------------------------------------------------------------


def test_sen4cap_export_imports_back(tmp_path: Path) -> None:
    source = _long_csv(
        tmp_path / "stats.csv",
        "1,2024-05-03,NDVI,S2A,,5,0.61,0.05,0.4,0.8",
        "2,2024-05-03,NDVI,S2A,,5,0.31,0.02,0.2,0.4",
        "1,2024-05-04,AMP_VV,S1A,37,80,-6.5,0.7,-8,-5",
        "1,2024-05-04,AMP_VH,S1A,37,80,-9.5,0.6,-11,-8",
        "2,2024-05-13,B8A,S2B,,9,0.35,0.01,0.3,0.4",
    )
    import_statistics([source], tmp_path / "mdb", LONG)
    original = capmon.open_mdb(tmp_path / "mdb")
    written = export_sen4cap(original, tmp_path / "export", "SEN4CAP_MDB1_S1_V_T")
    for path, name in ((written.csv, "csv"), (written.ipc, "ipc")):
        report = import_statistics([path], tmp_path / name, ImportSpec(layout="sen4cap"))
        assert any("AMP_VVVH" in n for n in report.notes)  # MDB2's derived column is skipped
        back = _rows(tmp_path / name)
        key = ["parcel_id", "signal", "date"]
        left = _rows(tmp_path / "mdb").sort_values(key).reset_index(drop=True)
        right = back.sort_values(key).reset_index(drop=True)
        assert left[key].values.tolist() == right[key].values.tolist()
        assert right["mean"].tolist() == pytest.approx(left["mean"].tolist())
        assert right["stdev"].tolist() == pytest.approx(left["stdev"].tolist())
        assert right["orbit"].tolist()[:2] == [37, 37]
        assert set(right["sensor"]) == {"S1", "S2"}  # the export keeps the family only


def test_arrow_ipc_and_parquet_sources(tmp_path: Path) -> None:
    table = pa.table(
        {
            "PLOTID": pa.array([1, 2], type=pa.int64()),
            "Date": pa.array(pd.to_datetime(["2024-05-03", "2024-05-04"])),
            "ndvi": pa.array([0.5, np.nan]),
        }
    )
    import pyarrow.parquet as pq

    pq.write_table(table, tmp_path / "s.parquet")
    with pa.OSFile(str(tmp_path / "s.arrow"), "wb") as sink, ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    spec = ImportSpec(
        layout="wide", id_column="PLOTID", date_column="Date", sensor="S2",
        values=(ValueSource("ndvi", "NDVI"),),
    )  # fmt: skip
    for name in ("s.parquet", "s.arrow"):
        report = import_statistics([tmp_path / name], tmp_path / f"mdb-{name}", spec)
        assert (report.observations, report.sources[0].missing_values) == (1, 1)
    bad = pa.table({"PLOTID": [1], "Date": ["yesterday"], "ndvi": [0.5]})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="row 1, column 'Date'"):
        import_statistics([tmp_path / "bad.parquet"], tmp_path / "bad", spec)


# --- the command ------------------------------------------------------------------------------


def test_command_line(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "ee.csv",
        "system:index,PLOTID,Date,VV,VH,Orbit",
        "S1A_IW_GRDH_1SDV_20220108T163505_0,LR1,2022-01-08,-14.5,-18.5,175.0",
        "S1A_IW_GRDH_1SDV_20220108T163505_1,LR2,2022-01-08,-9999,-20.0,175.0",
    )
    mdb = tmp_path / "mdb"
    arguments = [
        "mdb", "import", str(source), "--mdb", str(mdb), "--layout", "wide",
        "--id-col", "PLOTID", "--date-col", "Date", "--signal-map", "VV=AMP_VV,VH=AMP_VH",
        "--sensor-col", "system:index", "--sensor-pattern", "^(S1[A-D])_",
        "--orbit-col", "Orbit", "--nodata", "-9999", "--sar-unit", "db",
        "--backscatter", "sigma0", "--site-name", "gmd", "--json",
    ]  # fmt: skip
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["observations"] == 3
    assert payload["sources"][0]["missing_values"] == 1
    rows = _rows(mdb)
    assert rows["mean"].tolist() == pytest.approx([-9.25, -7.25, -10.0])
    assert set(rows["sensor"]) == {"S1A"}
    assert set(rows["backscatter"]) == {"sigma0"}
    info = runner.invoke(app, ["mdb", "info", str(mdb), "--json"])
    assert info.exit_code == 0
    assert {r["signal"] for r in json.loads(info.output)} == {
        "AMP_VV",
        "AMP_VH",
    }
    failed = runner.invoke(app, [*arguments[:-1], "--scale", "VV"])
    assert failed.exit_code == 2
    assert "--scale: 'VV' is not SOURCE=VALUE" in failed.output


# --- real exports ------------------------------------------------------------------------------


def test_real_gmd_exports_of_one_region_and_year(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "mowing_gmd_dev"
    mdb = tmp_path / "lr2022"
    files = {
        "gmd-s2": folder / "S2" / "ts_LR_GMI_S2_LR_2022.csv",
        "gmd-s1": folder / "S1" / "ts_LR_GMI_S1_2022.csv",
        "gmd-coh": folder / "COH" / "ts_LR_GMI_COH_2022.csv",
    }
    reports = {name: import_statistics([path], mdb, load_spec(name), site="gmd", parcel_set="LR")
               for name, path in files.items()}  # fmt: skip
    database = capmon.open_mdb(mdb)
    rows = database.timeseries()
    ids = parcel_id_map(mdb)
    assert ids is not None
    assert len(ids) == 77
    assert ids["LR1"] == 1
    raw = pd.read_csv(files["gmd-s2"])
    clear = raw[raw["mask"] == 1]
    s2 = reports["gmd-s2"].sources[0]
    assert (s2.rows_read, s2.rows_not_valid) == (len(raw), int((raw["mask"] != 1).sum()))
    # per plot: one NDVI row per clear date (less the few bright values dropped as clouds)
    ndvi = rows[rows["signal"] == "NDVI"].groupby("parcel_id").size()
    expected = clear.groupby("PLOTID").size().rename(index=ids)
    assert (ndvi <= expected.reindex(ndvi.index)).all()
    assert ndvi.sum() >= 0.97 * len(clear)
    assert ndvi.sum() == int((clear["ndvi"] != -9999).sum())  # NDVI in -1..1: none dropped
    assert (rows["mean"] > -9000).all()
    assert rows["mean"].notna().all()
    assert (rows["count"] == 0).all()
    assert rows["stdev"].isna().all()
    # AMP = half the sigma0 dB of the export, same plot and date
    s1 = pd.read_csv(files["gmd-s1"])
    first = s1.iloc[0]
    vv = database.timeseries(parcel_ids=[ids[first["PLOTID"]]], signals=["AMP_VV"])
    on_day = vv[vv["date"].astype(str) == first["Date"]]
    assert on_day["mean"].iloc[0] == pytest.approx(first["VV"] / 2, abs=1e-5)
    assert on_day["sensor"].iloc[0] == first["system:index"][:3]
    assert on_day["orbit"].iloc[0] == 175
    assert len(rows[rows["signal"] == "AMP_VV"]) == len(s1)
    coh = rows[rows["signal"] == "COHE_VV"]
    assert len(coh) == len(pd.read_csv(files["gmd-coh"]))
    assert ((coh["date"] - coh["date_first"]).map(lambda d: d.days) == 12).all()
    series = database.timeseries(parcel_ids=[1], signals=["NDVI", "AMP_VV", "COHE_VV"])
    assert set(series["signal"]) == {"NDVI", "AMP_VV", "COHE_VV"}


def test_real_worldcereal_monthly_composites(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "worldcereal_dev" / "2021_BEL_flanders_month.parquet"
    report = import_statistics([path], tmp_path / "mdb", load_spec("worldcereal-month"))
    raw = pd.read_parquet(path, columns=["sample_id", "timestamp", "S2-L2A-B04", "S1-SIGMA0-VV"])
    rows = _rows(tmp_path / "mdb")
    ids = parcel_id_map(tmp_path / "mdb")
    assert ids is not None
    assert len(ids) == raw["sample_id"].nunique() == 100
    assert "B8A" not in set(rows["signal"])  # 65535 everywhere: missing, never a value
    red = rows[rows["signal"] == "B04"]
    assert len(red) == int((raw["S2-L2A-B04"] != 65535).sum())
    assert red["mean"].between(0, 1).all()
    sample = raw[raw["S1-SIGMA0-VV"] != 65535].iloc[0]
    vv = rows[(rows["signal"] == "AMP_VV") & (rows["parcel_id"] == ids[sample["sample_id"]])]
    on_month = vv[vv["date"].astype(str) == str(sample["timestamp"].date())]
    expected = (20 * math.log10(sample["S1-SIGMA0-VV"]) - 83) / 2
    assert on_month["mean"].iloc[0] == pytest.approx(expected, abs=1e-4)
    assert report.sources[0].parcels == 100


def test_sen4cap_export_of_a_long_sar_series(tmp_path: Path) -> None:
    """An imported year of S1 dates exports (MDB2 columns for 120 dates: the export used to
    insert them one by one, a PerformanceWarning, an error in the tests)."""
    days = pd.date_range("2024-01-01", periods=120, freq="3D").strftime("%Y-%m-%d")
    rows = [f"1,{d},AMP_{p},S1A,37,5,-7,0.5,-8,-6" for d in days for p in ("VV", "VH")]
    import_statistics([_long_csv(tmp_path / "s1.csv", *rows)], tmp_path / "mdb", LONG)
    written = export_sen4cap(capmon.open_mdb(tmp_path / "mdb"), tmp_path / "out", "MDB1")
    header = written.csv.read_text().splitlines()[0]
    assert written.columns == 120 * 3 * 2
    assert '"20240101_mean_AMP_VVVH_037"' in header


def test_orbit_direction_and_orbit_from_a_pattern(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "ee.csv",
        "id,Date,VV,pass,name",
        "1,2022-01-08,-14.0,DESCENDING,S1A_R175",
        "2,2022-01-08,-12.0,DESCENDING,S1A_Rxyz",
    )
    spec = ImportSpec(
        layout="wide", id_column="id", date_column="Date", sensor="S1A",
        orbit_direction_from=Extract("pass"), orbit_from=Extract("name", r"_R(\w+)$"),
        values=(ValueSource("VV", "BCK_VV", sar_unit="db"),),
    )  # fmt: skip
    with pytest.raises(InputError, match=r"line 3, column 'name': orbit 'xyz' is not a number"):
        import_statistics([source], tmp_path / "mdb", spec)
    _write(source, "id,Date,VV,pass,name", "1,2022-01-08,-14.0,DESCENDING,S1A_R175")
    import_statistics([source], tmp_path / "mdb", spec)
    row = _rows(tmp_path / "mdb").iloc[0]
    assert (row["orbit_direction"], row["orbit"], row["mean"]) == ("DESC", 175, -14.0)


def test_optional_columns_an_extraction_lacks_are_named_not_refused(tmp_path: Path) -> None:
    """WorldCereal extractions differ in their bands (no S1, no B8A): the shipped spec marks
    them optional; a file with none of the spec's columns is still an error."""
    frame = pd.DataFrame(
        {
            "sample_id": ["a", "a", "b"],
            "timestamp": pd.to_datetime(["2022-01-01", "2022-02-01", "2022-01-01"]),
            "tile": "31UES",
            "S2-L2A-B04": [500, 65535, 700],
            "S2-L2A-B08": [3000, 3100, 65535],
        }
    )
    source = tmp_path / "2022_XXX_s2only_month.parquet"
    frame.to_parquet(source)
    report = import_statistics([source], tmp_path / "mdb", load_spec("worldcereal-month"))
    assert report.sources[0].signals == ("B04", "B08")
    assert report.sources[0].observations == 4
    absent = [n for n in report.notes if "no column" in n]
    assert len(absent) == 1
    assert "S1-SIGMA0-VV" in absent[0]
    assert "AMP_VV" in absent[0]
    assert "S2-L2A-B04" not in absent[0]
    nothing = tmp_path / "2022_XXX_nothing_month.parquet"
    frame.drop(columns=["S2-L2A-B04", "S2-L2A-B08"]).to_parquet(nothing)
    with pytest.raises(ColumnError, match=r"2022_XXX_nothing_month.parquet: none of the value"):
        import_statistics([nothing], tmp_path / "other", load_spec("worldcereal-month"))
    assert not (tmp_path / "other").exists()
    # a column not marked optional stays required
    required = spec_from_mapping(
        {"layout": "wide", "id_column": "sample_id", "date_column": "timestamp",
         "columns": {"S2-L2A-B04": {"signal": "B04", "scale": 0.0001},
                     "S2-L2A-B05": {"signal": "B05", "scale": 0.0001, "optional": True},
                     "S2-L2A-B03": {"signal": "B03", "scale": 0.0001}}, "nodata": [65535]}
    )  # fmt: skip
    with pytest.raises(ColumnError, match="no value column 'S2-L2A-B03'"):
        import_statistics([source], tmp_path / "third", required)
    with pytest.raises(InputError, match="optional: 'yes' is not true or false"):
        spec_from_mapping(
            {"layout": "wide", "columns": {"x": {"signal": "B04", "optional": "yes"}}}
        )
    # the flag does not change the rows, so it does not change an import's identity
    plain = ValueSource("S2-L2A-B04", "B04")
    assert repr(plain) == repr(ValueSource("S2-L2A-B04", "B04", optional=True))

"""Multi-annual analysis: linking parcels across years (splits, merges, CRSs), cover classes,
the CAP rules on hand-made histories, and ``capmon run multiannual`` on a small world."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.errors import ColumnError, CRSError, InputError, NotFoundError
from capmon.parcels import import_lut, load_lut, load_parcels
from capmon.processors import RunContext, get_processor
from capmon.processors.baresoil.detect import BARE, NO_DATA, VEG
from capmon.processors.multiannual.evaluate import evaluate_multiannual, ploughing_cases
from capmon.processors.multiannual.history import (
    ARABLE,
    GRASSLAND,
    PERMANENT_GRASSLAND,
    TEMPORARY_GRASSLAND,
    UNKNOWN,
    declared_classes,
    parcel_history,
    predicted_classes,
    rotation_sequences,
    season_behaviour,
)
from capmon.processors.multiannual.link import common_crs, lineages, link_years
from capmon.processors.multiannual.processor import parse_l4a_paths, parse_years
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import ingest_products
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, open_workspace

runner = CliRunner()


def frame(
    rows: list[tuple[int, str, tuple[float, float, float, float]]], crs: str
) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"NewID": [r[0] for r in rows], "ori_id": [r[1] for r in rows]},
        geometry=[box(*r[2]) for r in rows],
        crs=crs,
    )


def test_links_split_merge_new_gone_across_crss() -> None:
    before = frame(
        [
            (1, "A", (0, 0, 100, 100)),  # split in two
            (2, "B", (200, 0, 300, 100)),  # merged with C
            (3, "C", (300, 0, 400, 100)),
            (4, "D", (500, 0, 600, 100)),  # unchanged
            (5, "E", (700, 0, 800, 100)),  # gone
        ],
        "EPSG:32631",
    )
    after = frame(
        [
            (10, "A1", (0, 0, 50, 100)),
            (11, "A2", (50, 0, 100, 100)),
            (12, "BC", (200, 0, 400, 100)),
            (13, "D", (501, 0, 600, 100)),
            (14, "F", (900, 0, 1000, 100)),  # new
        ],
        "EPSG:32631",
    ).to_crs("EPSG:3035")  # another CRS: compared in the first year's
    crs = common_crs({2024: before, 2025: after})
    links = link_years(before, after, 2024, 2025, crs=crs)
    relation = {
        (_text(row.ori_id_from), _text(row.ori_id_to)): row.relation
        for row in links.itertuples(index=False)
    }
    assert relation[("A", "A1")] == "split"
    assert relation[("A", "A2")] == "split"
    assert relation[("B", "BC")] == "merge"
    assert relation[("C", "BC")] == "merge"
    assert relation[("D", "D")] == "same"
    assert relation[("E", None)] == "gone"
    assert relation[(None, "F")] == "new"
    same = links[(links["ori_id_from"] == "D")].iloc[0]
    assert 0.98 < same["iou"] < 1.0
    table = lineages({2024: before["NewID"], 2025: after["NewID"]}, links).set_index(
        ["year", "parcel_id"]
    )
    assert table.loc[(2025, 10), "lineage"] == "2024:1"
    assert table.loc[(2025, 12), "predecessor"] in (2, 3)
    assert table.loc[(2025, 14), "relation"] == "new"


def _text(value: object) -> str | None:
    return None if pd.isna(value) else str(value)  # type: ignore[call-overload]


def test_link_errors() -> None:
    parcels = frame([(1, "A", (0, 0, 1, 1))], "EPSG:32631")
    with pytest.raises(InputError, match="min_share"):
        link_years(parcels, parcels, 2024, 2025, crs=common_crs({1: parcels}), min_share=0)
    with pytest.raises(CRSError, match="no CRS"):
        common_crs({2024: parcels.set_crs(None, allow_override=True)})
    geographic = frame([(1, "A", (4.0, 50.0, 4.01, 50.01))], "EPSG:4326")
    assert common_crs({2024: geographic}).is_projected


def test_parse_years() -> None:
    assert parse_years("2021-2025") == [2021, 2022, 2023, 2024, 2025]
    assert parse_years("2024,2021-2022") == [2021, 2022, 2024]
    for bad in ("2025-2021", "last year", "21-25"):
        with pytest.raises(InputError):
            parse_years(bad)


def lut() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ori_crop": [311, 60, 63, 82, 999],
            "ct": ["Wheat", "Permanent grass", "Temporary grass", "Fallow", "Vineyard"],
            "al": [True, False, True, True, False],
            "pgrass": [False, True, False, False, False],
            "tgrass": [False, False, True, False, False],
            "fallow": [False, False, False, True, False],
        }
    )


def test_declared_classes() -> None:
    parcels = pd.DataFrame({"NewID": [1, 2, 3, 4, 5, 6], "ori_id": list("abcdef"),
                            "ori_crop": ["311", "60", "63", "82", "999", "12345"]})  # fmt: skip
    table = declared_classes(parcels, lut())
    assert table["declared_class"].tolist() == [
        ARABLE, PERMANENT_GRASSLAND, TEMPORARY_GRASSLAND, ARABLE, "permanent_crop", UNKNOWN,
    ]  # fmt: skip
    assert table["fallow"].tolist() == [False, False, False, True, False, False]
    with pytest.raises(InputError, match="pgrass"):
        declared_classes(parcels, lut().drop(columns="pgrass"))


def year_table(rows: list[tuple[int, str, str, str, int, int]]) -> pd.DataFrame:
    """(parcel, declared class, crop, observed class, bare dekads, residue dekads)."""
    return pd.DataFrame(
        {
            "parcel_id": [r[0] for r in rows],
            "ori_id": [f"p{r[0]}" for r in rows],
            "ori_crop": [r[2] for r in rows],
            "crop_name": [r[2] for r in rows],
            "declared_class": [r[1] for r in rows],
            "fallow": False,
            "observed_class": [r[3] for r in rows],
            "observed_dekads": 20,
            "bare_dekads": [r[4] for r in rows],
            "first_bare": [pd.Timestamp("2024-04-11") if r[4] else pd.NaT for r in rows],
            "residue_dekads": [r[5] for r in rows],
            "mowing_like_drops": 0,
            "ndvi_min": 0.5,
        }
    )


def test_rules_on_hand_made_histories() -> None:
    tg, pg, ar = TEMPORARY_GRASSLAND, PERMANENT_GRASSLAND, ARABLE
    grass, arable = GRASSLAND, ARABLE
    years: dict[int, pd.DataFrame] = {}
    plans = {
        # parcel: per year (declared, observed, bare dekads, residue dekads)
        1: [(tg, grass, 0, 0)] * 5,  # a ley kept 5 years: permanent in year 5
        2: [(pg, grass, 0, 0), (pg, grass, 0, 0), (ar, arable, 6, 2)] + [(ar, arable, 4, 3)] * 2,
        3: [(ar, grass, 0, 0)] * 2 + [(ar, arable, 3, 3)] * 3,  # declared crop, grass behaviour
        4: [(tg, grass, 0, 0)] * 4 + [(ar, arable, 5, 2)],  # ley of 4 years ploughed: allowed
        5: [(tg, arable, 0, 4)] + [(tg, grass, 0, 0)] * 4,  # grass declared, harvest seen
    }
    for k, year in enumerate(range(2021, 2026)):
        rows = [(pid, *plan[k][:1], "c", plan[k][1], plan[k][2], plan[k][3])
                for pid, plan in plans.items()]  # fmt: skip
        if year == 2023:
            rows.append((9, ar, "c", arable, 2, 2))  # present in one year only
        years[year] = year_table(rows)
    lineage = pd.DataFrame(
        [
            (year, pid, pid if year > 2021 else None, "same", f"2021:{pid}")
            for year in range(2021, 2026)
            for pid in plans
        ]
        + [(2023, 9, None, "new", "2023:9")],
        columns=["year", "parcel_id", "predecessor", "relation", "lineage"],
    )
    lineage["predecessor"] = lineage["predecessor"].astype("Int64")
    history = parcel_history(years, lineage).set_index(["parcel_id", "year"])
    assert history.loc[(1, 2025), "tg_5_years"]
    assert not history.loc[(1, 2024), "tg_5_years"]
    assert history.loc[(1, 2025), "cover_class"] == pg
    assert history.loc[(2, 2023), "pg_ploughed"]
    assert not history.loc[(2, 2024), "pg_ploughed"]  # the next year's tillage: not again
    assert history.loc[(3, 2021), "class_contradiction"]
    assert not history.loc[(3, 2023), "class_contradiction"]
    assert not history.loc[(4, 2025), "pg_ploughed"]
    assert not history[[f for f in ("tg_5_years", "pg_ploughed")]].loc[4].any().any()
    assert history.loc[(5, 2021), "class_contradiction"]
    assert history.loc[(9, 2023), "grass_years"] == 0
    assert not history.loc[(9, 2023), ["tg_5_years", "pg_ploughed"]].any()
    sequences = rotation_sequences(history.reset_index()).set_index("parcel_id")
    assert sequences.loc[1, "first_year"] == 2021
    assert sequences.loc[1, "flags"] == "tg_5_years:2025"
    assert sequences.loc[2, "cover_classes"].startswith("permanent_grassland > ")
    assert 9 not in sequences.index  # not in the last year


def l4a_lut() -> pd.DataFrame:
    """The hand-made LUT with L4A classes: 1 wheat, 9 grassland (permanent and temporary),
    10 fallow, 11 vineyard."""
    return lut().assign(ctnuml4a=[1, 9, 9, 10, 11])


def test_predicted_classes_from_an_l4a_table() -> None:
    csv = io.StringIO(
        "NewID,CT_pred_1,CT_conf_1,Classif_r\n"
        "1,1,0.95,Classified_conform\n2,9,0.9,Classified_conform\n3,10,0.8,x\n"
        "4,11,0.99,x\n5,,,Not_classified\n6,42,0.9,x\n"
    )
    table = predicted_classes(pd.read_csv(csv), l4a_lut(), source="hand.csv")
    assert table["predicted_class"].tolist() == [
        ARABLE, GRASSLAND, "fallow", "permanent_crop", UNKNOWN, UNKNOWN,
    ]  # fmt: skip
    assert table["predicted_confidence"].iloc[0] == pytest.approx(0.95)
    with pytest.raises(ColumnError, match="CT_conf_1"):
        predicted_classes(pd.DataFrame({"NewID": [1], "CT_pred_1": [1]}), l4a_lut(), source="x")
    with pytest.raises(ColumnError, match="ctnuml4a"):
        predicted_classes(pd.read_csv(io.StringIO("NewID,CT_pred_1,CT_conf_1\n1,1,0.9\n")),
                          lut(), source="x")  # fmt: skip


def test_confident_predictions_contradicting_the_declaration() -> None:
    tg, pg, ar = TEMPORARY_GRASSLAND, PERMANENT_GRASSLAND, ARABLE
    # (parcel, declared, crop, observed, bare, residue) and (predicted class, confidence)
    plans = {
        1: ((1, ar, "311", UNKNOWN, 0, 0), (GRASSLAND, 0.9)),  # crop declared, grass predicted
        2: ((2, pg, "60", GRASSLAND, 0, 0), (ARABLE, 0.85)),  # grass declared, crop predicted
        3: ((3, ar, "311", UNKNOWN, 0, 0), (GRASSLAND, 0.5)),  # not confident: no evidence
        4: ((4, tg, "63", GRASSLAND, 0, 0), ("fallow", 0.95)),  # fallow contradicts nothing
        5: ((5, tg, "63", ARABLE, 0, 3), (ARABLE, 0.9)),  # both kinds of evidence
        6: ((6, ar, "311", ARABLE, 2, 2), (ARABLE, 0.9)),  # agreement
    }
    table = year_table([p[0] for p in plans.values()])
    predictions = pd.DataFrame(
        {
            "parcel_id": list(plans),
            "predicted_crop": 1,
            "predicted_confidence": [p[1][1] for p in plans.values()],
            "predicted_class": [p[1][0] for p in plans.values()],
        }
    )
    lineage = pd.DataFrame({"year": 2024, "parcel_id": list(plans), "relation": "new",
                            "lineage": [f"2024:{p}" for p in plans]})  # fmt: skip
    lineage["predecessor"] = pd.Series([pd.NA] * len(plans), dtype="Int64")
    with_l4a = parcel_history({2024: table.merge(predictions, on="parcel_id")}, lineage)
    history = with_l4a.set_index("parcel_id")
    assert history["class_contradiction"].to_dict() == {
        1: True, 2: True, 3: False, 4: False, 5: True, 6: False,
    }  # fmt: skip
    assert history.loc[1, "contradiction_evidence"] == "prediction"
    assert history.loc[5, "contradiction_evidence"] == "behaviour+prediction"
    assert history.loc[1, "grass_years"] == 1  # no MDB behaviour: the prediction counts
    assert history.loc[3, "grass_years"] == 0
    # without L4A: only the MDB behaviour (parcel 5's harvest) is a contradiction
    without = parcel_history({2024: table}, lineage).set_index("parcel_id")
    assert without["class_contradiction"].to_dict() == {
        1: False, 2: False, 3: False, 4: False, 5: True, 6: False,
    }  # fmt: skip
    assert without["predicted_class"].eq(UNKNOWN).all()


def test_parse_l4a_paths() -> None:
    assert parse_l4a_paths(["2023=/a/b", " 2024 = c.csv"]) == {2023: Path("/a/b"),
                                                            2024: Path("c.csv")}  # fmt: skip
    with pytest.raises(InputError, match="YEAR=PATH"):
        parse_l4a_paths(["/a/b"])
    with pytest.raises(InputError, match="twice"):
        parse_l4a_paths(["2023=a", "2023=b"])


def dekad_status(series: dict[int, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bare-soil pipeline tables from per-parcel strings of dekads from 1 February: ``B`` bare,
    ``-`` no data, a digit ``d``: vegetation with NDVI d/10."""
    status_rows, observation_rows = [], []
    for pid, text in series.items():
        for k, code in enumerate(text):
            dekad = pd.Timestamp("2024-02-01") + pd.DateOffset(days=10 * k)
            state = {"B": BARE, "-": NO_DATA}.get(code, VEG)
            ndvi = 0.12 if code == "B" else (np.nan if code == "-" else int(code) / 10 + 0.05)
            status_rows.append((pid, dekad, state, ndvi))
            if code != "-":
                observation_rows.append((pid, dekad, ndvi))
    status = pd.DataFrame(status_rows, columns=["parcel_id", "dekad", "status", "NDVI"])
    observations = pd.DataFrame(observation_rows, columns=["parcel_id", "date", "NDVI"])
    return status, observations


def test_harvest_residue_follows_a_green_canopy() -> None:
    status, observations = dekad_status(
        {
            1: "7717777877787777777",  # meadow with one snow dip: grassland
            2: "1111BBB25788888888",  # stubble, ploughing, a ley sown in spring: no harvest
            3: "7777777777777BBB22",  # grassland ploughed in autumn, the new crop emerging
            4: "56788888641111BB22",  # a cereal ripening and harvested: a harvest phase
            5: "7777-2-777777777777",  # one low dekad between cloudy ones: no harvest
            6: "1111222",  # never green: not grassland
        }
    )
    table = season_behaviour(status, observations, [1, 2, 3, 4, 5, 6, 7]).set_index("parcel_id")
    residue = table["residue_dekads"].to_dict()
    assert residue == {1: 1, 2: 0, 3: 0, 4: 4, 5: 1, 6: 0, 7: 0}
    assert table["observed_class"].to_dict() == {
        1: GRASSLAND, 2: ARABLE, 3: ARABLE, 4: ARABLE, 5: GRASSLAND, 6: UNKNOWN, 7: UNKNOWN,
    }  # fmt: skip
    assert table.loc[4, "bare_dekads"] == 2
    assert table.loc[4, "first_bare"] == pd.Timestamp("2024-02-01") + pd.DateOffset(days=140)
    # a declared ley with last year's stubble before its sowing is not a harvested crop
    years = {
        2024: year_table(
            [
                (2, TEMPORARY_GRASSLAND, "63", ARABLE, 3, residue[2]),
                (4, TEMPORARY_GRASSLAND, "63", ARABLE, 2, residue[4]),
            ]
        )
    }
    lineage = pd.DataFrame(
        {"year": 2024, "parcel_id": [2, 4], "predecessor": pd.array([None, None], "Int64"),
         "relation": "first", "lineage": ["2024:2", "2024:4"]}
    )  # fmt: skip
    history = parcel_history(years, lineage).set_index("parcel_id")
    assert history["class_contradiction"].to_dict() == {2: False, 4: True}


def truth_rows(rows: list[tuple[str, int, int, int, str, int, float, str]]) -> pd.DataFrame:
    """(parcel, year, true crop, declared crop, cover class, previous crop, area, parents)."""
    return pd.DataFrame(
        rows,
        columns=["parcel_id", "year", "true_crop_code", "declared_crop_code", "cover_class",
                 "previous_crop_code", "area_ha", "parents"],
    )  # fmt: skip


def test_ploughing_cases_of_merged_parcels_and_declared_grassland() -> None:
    pg, ar, tg = "permanent_grassland", "arable", "temporary_grassland"
    truth = truth_rows(
        [
            ("A", 2022, 311, 311, ar, 311, 2.0, ""),  # the first parent: arable
            ("B", 2022, 60, 60, pg, 60, 5.0, ""),  # the larger parent: permanent grassland
            ("AB", 2023, 201, 201, ar, 60, 7.0, "A;B"),  # merged, a spring crop
            ("C", 2022, 311, 311, ar, 311, 2.0, ""),
            ("D", 2022, 60, 60, pg, 60, 5.0, ""),
            ("CD", 2023, 311, 311, ar, 60, 7.0, "C;D"),  # merged, wheat sown on C in 2022
            ("E", 2022, 60, 60, pg, 60, 5.0, ""),  # the larger first parent
            ("F", 2022, 311, 311, ar, 311, 2.0, ""),
            ("EF", 2023, 201, 201, ar, 60, 7.0, "E;F"),
            ("L", 2022, 63, 63, tg, 63, 3.0, ""),  # a ley declared as permanent grassland
            ("L", 2023, 63, 60, tg, 63, 3.0, ""),
            ("L", 2024, 311, 311, ar, 63, 3.0, ""),
        ]
    )
    events = pd.DataFrame(
        [
            ("AB", 2023, "2023-04-10", "ploughing", 201, "main"),
            ("CD", 2023, "2022-10-05", "ploughing", 311, "main"),  # on C's land only
            ("EF", 2023, "2023-04-12", "ploughing", 201, "main"),
            ("L", 2024, "2023-10-02", "ploughing", 311, "main"),
        ],
        columns=["parcel_id", "year", "date", "event", "crop_code", "part"],
    )
    found = ploughing_cases(truth, events, 2022, 2024)
    # the larger parent's grassland is ploughed, whichever parent comes first
    assert set(found.keys) == {("AB", 2023), ("CD", 2023), ("EF", 2023)}
    assert ("CD", 2023) in found.accepted
    assert ("CD", 2022) not in found.accepted
    assert ("B", 2023) in found.accepted
    # the ley declared as permanent grassland: a real ploughing, not a grassland case
    assert found.declared_permanent == {("L", 2023)}


# ------------------------------------------------------------------------------------------
# End to end on a small two-year world

SITE = "ma"


@pytest.fixture(scope="module")
def multi_year(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, SynthWorld]]:
    """Two declaration years imported; an MDB for the first year only."""
    root = tmp_path_factory.mktemp("multiannual")
    world = generate_world(
        root / "world", parcels=50, years=2, window_km=1.3, sentinel1=False, s2_format="cog",
        revisit_days=10, seed=5,
    )  # fmt: skip
    workspace = open_workspace(root / "home")
    first = world.years[0]
    with workspace.session() as session:
        site = create_site(session, SITE, world.aoi)
        create_season(
            session, site, str(first), SeasonDates.parse(f"{first}-02-01", f"{first}-11-30")
        )
    for year in world.years:
        import_lut(workspace, SITE, year, world.lut)
        import_world_declarations(
            workspace, SITE, year, world.declarations[year],
        )  # fmt: skip
    with workspace.session() as session:
        assert world.s2_dir is not None
        ingest_products(session, get_site(session, SITE), [world.s2_dir])
        season = get_season(session, get_site(session, SITE), str(first))
        site_row = get_site(session, SITE)
    mdb = get_processor("mdb")
    mdb.run(
        RunContext(workspace, site_row, season),
        mdb.parse_parameters({"signals": ["NDVI", "NDTILL", "BSI"], "sar": False}),
    )
    yield workspace, world
    workspace.dispose()


def test_multiannual_processor(multi_year: tuple[Workspace, SynthWorld]) -> None:
    workspace, world = multi_year
    first, last = world.years
    outcome = runner.invoke(
        app,
        ["--home", str(workspace.home), "run", "multiannual", SITE, "--years", f"{first}-{last}"],
    )
    assert outcome.exit_code == 0, outcome.output
    folder = next(workspace.path("products").rglob("history.csv")).parent  # rich wraps paths
    history = pd.read_csv(folder / "history.csv")
    assert set(history["year"]) == {first, last}
    counts = history.groupby("year").size()
    assert counts[first] == world.parcel_counts[first]
    assert counts[last] == world.parcel_counts[last]
    # the second year has no season: declarations only, said in the report
    assert history.loc[history["year"] == last, "observed_class"].eq(UNKNOWN).all()
    assert history.loc[history["year"] == first, "observed_class"].ne(UNKNOWN).any()
    report = (folder / "report.json").read_text(encoding="utf-8")
    assert "declarations only" in report
    links = pd.read_csv(folder / "links.csv")
    assert {"same"} <= set(links["relation"])
    figures = evaluate_multiannual(folder, world)
    assert figures["ma_lpis_changes_linked"] == 1.0 or np.isnan(figures["ma_lpis_changes_linked"])
    assert (folder / "sequences.csv").exists()
    assert (folder / "flags.csv").exists()
    assert "no L4A product" in report
    assert history["contradiction_evidence"].fillna("").ne("prediction").all()


def test_multiannual_with_a_hand_made_l4a_csv(
    multi_year: tuple[Workspace, SynthWorld], tmp_path: Path
) -> None:
    """A confident L4A prediction of grassland on a declared crop is flagged; low confidence
    and the other year (no L4A) are not."""
    workspace, world = multi_year
    first, last = world.years
    processor = get_processor("multiannual")
    with workspace.session() as session:
        site = get_site(session, SITE)
    declared = declared_classes(
        load_parcels(workspace, SITE, last), load_lut(workspace, SITE, last)
    )
    crops = declared[(declared["declared_class"] == ARABLE) & ~declared["fallow"]]
    target, other = int(crops["parcel_id"].iloc[0]), int(crops["parcel_id"].iloc[1])
    grass_class = int(load_lut(workspace, SITE, last).query("pgrass")["ctnuml4a"].iloc[0])
    csv = tmp_path / "Parcels_all_with_predictions_0101_0000.csv"
    pd.DataFrame(
        {"NewID": [target, other], "CT_pred_1": [grass_class, grass_class],
         "CT_conf_1": [0.93, 0.4]}
    ).to_csv(csv, index=False)  # fmt: skip
    result = processor.run(
        RunContext(workspace, site, None),
        processor.parse_parameters({"years": f"{first}-{last}", "l4a": [f"{last}={tmp_path}"]}),
    )
    folder = Path(result.outputs["product"])
    history = pd.read_csv(folder / "history.csv").set_index(["year", "parcel_id"])
    assert history.loc[(last, target), "class_contradiction"]
    assert history.loc[(last, target), "contradiction_evidence"] == "prediction"
    assert history.loc[(last, target), "predicted_class"] == GRASSLAND
    assert not history.loc[(last, other), "class_contradiction"]
    flags = pd.read_csv(folder / "flags.csv")
    evidence = flags.loc[flags["parcel_id"].eq(target) & flags["year"].eq(last), "evidence"]
    assert "L4A predicted grassland" in evidence.iloc[0]
    report = (folder / "report.json").read_text(encoding="utf-8")
    assert f"{first}: no L4A product" in report
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="Parcels_all_with_predictions"):
        processor.run(
            RunContext(workspace, site, None),
            processor.parse_parameters({"years": f"{first}-{last}",
                                        "l4a": [f"{last}={tmp_path / 'empty'}"]}),
        )  # fmt: skip


def test_multiannual_errors(multi_year: tuple[Workspace, SynthWorld]) -> None:
    workspace, _world = multi_year
    processor = get_processor("multiannual")
    with workspace.session() as session:
        site = get_site(session, SITE)
    with pytest.raises(NotFoundError, match="2019"):
        processor.run(
            RunContext(workspace, site, None), processor.parse_parameters({"years": "2019-2020"})
        )
    with pytest.raises(ValueError, match="years"):
        processor.parse_parameters({"years": "twenty"})

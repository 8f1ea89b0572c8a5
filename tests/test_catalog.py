"""The catalogue on both backends: migrations, geometry round trip, sites and seasons."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box
from sqlalchemy import inspect, select

from capmon import sites
from capmon.catalog.models import ActivityStatus, Job, Product, Site, StartType, Step, Task
from capmon.errors import ConflictError, CRSError, GeometryError, InputError, NotFoundError
from capmon.workspace import Workspace, open_workspace

BRUSSELS = box(4.30, 50.80, 4.40, 50.90)


def test_migrations_create_every_table(workspace: Workspace) -> None:
    tables = set(inspect(workspace.engine).get_table_names())
    expected = {"site", "season", "declaration_set", "crop_lut", "product", "job", "task", "step"}
    assert expected | {"app_user", "alembic_version"} <= tables


def test_reopening_a_workspace_keeps_its_content(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    with ws.session() as session:
        sites.create_site(session, "Flanders", BRUSSELS)
    ws.dispose()
    again = open_workspace(tmp_path / "ws")
    with again.session() as session:
        assert [s.name for s in sites.list_sites(session)] == ["Flanders"]
    again.dispose()


def test_geometry_round_trip(workspace: Workspace) -> None:
    aoi = MultiPolygon([box(4.3, 50.8, 4.4, 50.9), box(4.5, 50.8, 4.6, 50.85)])
    with workspace.session() as session:
        site_id = sites.create_site(session, "Two parts", aoi).id
    with workspace.session() as session:
        site = session.get(Site, site_id)
        assert site is not None
        assert shapely.equals_exact(site.aoi, aoi, tolerance=1e-12)
        assert site.tiles == ["31UES", "31UFS"]  # 4.6 E lies in the overlap of the two tiles


def test_site_from_projected_aoi_file_is_stored_in_wgs84(
    workspace: Workspace, tmp_path: Path
) -> None:
    aoi = gpd.GeoDataFrame(geometry=[BRUSSELS], crs=4326).to_crs(31370)
    path = tmp_path / "aoi.gpkg"
    aoi.to_file(path)
    with workspace.session() as session:
        site = sites.create_site(session, "Brussels area", path)
        assert site.short_name == "brussels_area"
        assert site.aoi.bounds == pytest.approx(BRUSSELS.bounds, abs=1e-6)
        assert site.tiles == ["31UES"]


def test_site_errors(workspace: Workspace, tmp_path: Path) -> None:
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame(geometry=[Point(4.3, 50.8)], crs=4326).to_file(points)
    no_crs = tmp_path / "nocrs.shp"
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        gpd.GeoDataFrame(geometry=[BRUSSELS]).to_file(no_crs)
    bowtie = Polygon([(4.3, 50.8), (4.4, 50.9), (4.4, 50.8), (4.3, 50.9)])
    with workspace.session() as session:
        with pytest.raises(GeometryError, match=r"points\.geojson.*row 0 \(Point\)"):
            sites.create_site(session, "p", points)
        with pytest.raises(CRSError, match=r"nocrs\.shp.*no coordinate reference system"):
            sites.create_site(session, "c", no_crs)
        with pytest.raises(GeometryError, match="Self-intersection"):
            sites.create_site(session, "b", bowtie)
        with pytest.raises(InputError, match="file not found"):
            sites.create_site(session, "m", tmp_path / "missing.zip")
        sites.create_site(session, "Site A", BRUSSELS)
        with pytest.raises(ConflictError, match="already exists"):
            sites.create_site(session, "site a", BRUSSELS)
        with pytest.raises(NotFoundError, match="no site 'nope'"):
            sites.get_site(session, "nope")


def test_seasons_must_not_overlap_and_dates_must_be_ordered(workspace: Workspace) -> None:
    with workspace.session() as session:
        site = sites.create_site(session, "S", BRUSSELS)
        dates = sites.SeasonDates.parse("2024-01-01", "2024-10-31", "2024-06-01")
        sites.create_season(session, site, "2024", dates)
        with pytest.raises(ConflictError, match="overlaps season '2024'"):
            sites.create_season(
                session, site, "2025", sites.SeasonDates.parse("2024-10-01", "2025-09-30")
            )
        with pytest.raises(ConflictError, match="already has a season"):
            sites.create_season(
                session, site, "2024", sites.SeasonDates.parse("2026-01-01", "2026-09-30")
            )
        sites.create_season(
            session, site, "2025", sites.SeasonDates.parse("2024-11-01", "2025-10-31")
        )
    with pytest.raises(InputError, match="must be after its start"):
        sites.SeasonDates.parse("2024-10-01", "2024-01-01")
    with pytest.raises(InputError, match="mid 2025-01-01 must lie between"):
        sites.SeasonDates.parse("2024-01-01", "2024-10-01", "2025-01-01")
    with pytest.raises(InputError, match="is not a date"):
        sites.SeasonDates.parse("2024-13-01", "2024-10-01")
    assert sites.SeasonDates.parse("2024-01-01", "2024-01-31").mid == date(2024, 1, 16)
    with workspace.session() as session:
        names = [s.name for s in sites.list_seasons(session)]
        assert names == ["2024", "2025"]


def test_jobs_tasks_steps_and_products(workspace: Workspace) -> None:
    with workspace.session() as session:
        site = sites.create_site(session, "J", BRUSSELS)
        job = Job(
            processor="mdb",
            site_id=site.id,
            start_type=StartType.REQUESTED,
            status=ActivityStatus.SUBMITTED,
            parameters={"signals": ["NDVI"]},
        )
        task = Task(module="extract", status=ActivityStatus.PENDING, parameters={})
        task.steps.append(Step(name="T31UES", status=ActivityStatus.PENDING, parameters={}))
        job.tasks.append(task)
        session.add(job)
        session.add(
            Product(
                site_id=site.id,
                name="S2A_MSIL2A_20240503T105031_N0510_R051_T31UES_20240503T161210",
                product_type="l2a",
                sensor="S2A",
                tile="31UES",
                footprint=BRUSSELS,
                path="products/x.SAFE",
                properties={},
            )
        )
    with workspace.session() as session:
        stored = session.scalars(select(Job)).one()
        assert stored.status is ActivityStatus.SUBMITTED
        assert stored.parameters == {"signals": ["NDVI"]}
        assert stored.tasks[0].steps[0].name == "T31UES"
        product = session.scalars(select(Product)).one()
        assert product.footprint is not None
        assert product.footprint.equals(BRUSSELS)

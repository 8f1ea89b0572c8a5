"""Registering products in the catalogue, and the duplicate-acquisition rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shapely.geometry import Point, box

from capmon.grid import s2_tile
from capmon.sites import create_site, get_site
from capmon.sources import (
    IngestStatus,
    ProductInfo,
    ProductType,
    ingest_products,
    list_products,
    open_product,
    select_observations,
)
from capmon.sources.dedup import is_placeholder, superseded
from capmon.workspace import Workspace
from tests.test_sources_helpers import (
    TILE,
    landsat_product,
    maja_product,
    s1_amplitude,
    s1_coherence,
    sen2cor_product,
)

AOI = box(4.40, 51.40, 4.50, 51.46)  # around the test window of tile 31UFS


def _info(name: str, baseline: str | None, generated: str, **changes: object) -> ProductInfo:
    info = ProductInfo(
        name=name,
        product_type=ProductType.L2A,
        sensor="S2A",
        acquired_at=datetime(2024, 5, 3, 10, 50, 31, tzinfo=UTC),
        acquired_first_at=None,
        tile="31UFS",
        relative_orbit=51,
        orbit_direction="DESC",
        processing_baseline=baseline,
        footprint=Point(4.4, 51.4).buffer(0.1),
        path=Path(name),
        properties={"generation_time": generated},
    )
    return replace(info, **changes)  # type: ignore[arg-type]


def test_newest_official_baseline_wins() -> None:
    old = _info("n0400", "04.00", "2022-01-01T00:00:00+00:00")
    new = _info("n0510", "05.10", "2024-05-03T16:00:00+00:00")
    placeholder = _info("n9999", "99.99", "2025-01-01T00:00:00+00:00")
    assert is_placeholder("99.99")
    assert not is_placeholder("05.10")
    for order in ([old, new, placeholder], [placeholder, new, old], [new, placeholder, old]):
        assert select_observations(order) == [new]
    assert superseded([old, new, placeholder]) == [old, placeholder]


def test_placeholder_only_when_no_official_baseline() -> None:
    first = _info("n9999-a", "99.99", "2024-05-03T16:00:00+00:00")
    second = _info("n9999-b", "99.99", "2024-06-01T00:00:00Z")
    assert select_observations([second, first]) == [second]
    same_baseline_later = _info("n0510-b", "05.10", "2024-06-01T00:00:00+00:00")
    same_baseline = _info("n0510-a", "05.10", "2024-05-03T16:00:00+00:00")
    assert select_observations([same_baseline_later, same_baseline]) == [same_baseline_later]


def test_different_acquisitions_are_kept() -> None:
    base = _info("a", "05.10", "2024-05-03T16:00:00+00:00")
    other_day = _info(
        "b", "05.10", "2024-05-03T16:00:00+00:00", acquired_at=base.acquired_at + timedelta(days=5)
    )
    other_sensor = _info("c", "05.10", "2024-05-03T16:00:00+00:00", sensor="S2B")
    other_tile = _info("d", "05.10", "2024-05-03T16:00:00+00:00", tile="31UES")
    other_type = _info("e", "3.1", "2024-05-03T16:00:00+00:00", product_type=ProductType.L2A_MAJA)
    kept = select_observations([other_day, base, other_sensor, other_tile, other_type])
    assert {info.name for info in kept} == {"a", "b", "c", "d", "e"}
    assert kept[-1].name == "b"  # ordered by acquisition time


def test_dedup_of_real_sen2cor_products(tmp_path: Path) -> None:
    official = sen2cor_product(tmp_path, fmt="cog", processing_baseline="05.10").path
    placeholder = sen2cor_product(tmp_path, fmt="cog", processing_baseline="99.99").path
    infos = [open_product(placeholder).info, open_product(official).info]
    assert [info.name for info in select_observations(infos)] == [official.stem]


def _products(folder: Path) -> dict[str, Path]:
    return {
        "l2a": sen2cor_product(folder, fmt="cog").path,
        "l2a_maja": maja_product(folder).path,
        "landsat_l2": landsat_product(folder).path,
        "s1_amp": s1_amplitude(folder),
        "s1_cohe": s1_coherence(folder),
    }


def test_ingest_is_idempotent(workspace: Workspace, tmp_path: Path) -> None:
    paths = _products(tmp_path / "inputs")
    with workspace.session() as session:
        site = create_site(session, "Antwerp", AOI)
        report = ingest_products(session, site, [tmp_path / "inputs"])
        assert report.summary == {
            "registered": 5,
            "known": 0,
            "changed": 0,
            "skipped": 0,
            "failed": 0,
        }
    with workspace.session() as session:
        other = create_site(session, "Other", box(10, 45, 11, 46))
        assert list_products(session, other) == []
        antwerp = list_products(session, get_site(session, "Antwerp"))
        assert len(antwerp) == 5
        by_type = {row.product_type: row for row in antwerp}
        assert set(by_type) == set(paths)
        amp = by_type["s1_amp"]
        assert (amp.sensor, amp.relative_orbit, amp.orbit_direction) == ("S1A", 88, "ASC")
        assert amp.properties["polarisation"] == "VV"
        assert amp.properties["amplitude_convention"] == "sen4cap_amplitude"
        cohe = by_type["s1_cohe"]
        assert cohe.acquired_first_at is not None
        assert cohe.acquired_first_at.replace(tzinfo=UTC) == datetime(
            2024, 4, 22, 17, 24, 3, tzinfo=UTC
        )
        l2a = by_type["l2a"]
        assert (l2a.tile, l2a.processing_baseline, l2a.sensor) == ("31UFS", "05.10", "S2B")
        assert l2a.footprint is not None
        assert l2a.footprint.intersects(AOI)
        assert by_type["landsat_l2"].tile == "198025"
        assert Path(l2a.path) == paths["l2a"].resolve()
    with workspace.session() as session:
        antwerp_site = get_site(session, "Antwerp")
        again = ingest_products(session, antwerp_site, [tmp_path / "inputs"])
        assert again.count(IngestStatus.KNOWN) == 5
        assert again.count(IngestStatus.REGISTERED) == 0
        rows = list_products(session, antwerp_site, ProductType.S1_AMP)
        assert [row.name for row in rows] == [paths["s1_amp"].stem]


def test_ingest_reports_bad_changed_and_outside_products(
    workspace: Workspace, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    good = sen2cor_product(inputs, fmt="cog").path
    broken = maja_product(inputs).path
    next(broken.glob("*_FRE_B4.tif")).unlink()
    far_tile = s2_tile("33UUU")
    far_away = sen2cor_product(
        tmp_path / "far",
        fmt="cog",
        tile=far_tile.name,
        epsg=far_tile.epsg,
        ulx=far_tile.ulx + 600,
        uly=far_tile.uly - 1200,
    ).path
    with workspace.session() as session:
        site = create_site(session, "Antwerp", AOI)
        report = ingest_products(session, site, [inputs, far_away, tmp_path / "missing"])
        by_status = {o.status: o for o in report.outcomes}
        assert report.summary == {
            "registered": 1,
            "known": 0,
            "changed": 0,
            "skipped": 1,
            "failed": 2,
        }
        failed = report.with_status(IngestStatus.FAILED)
        assert "band B04" in str(failed[0].reason)
        assert broken.name in str(failed[0].reason)
        assert "does not exist" in str(failed[1].reason)
        assert "AOI" in str(by_status[IngestStatus.SKIPPED].reason)
    # The same product name with different files is reported, not replaced.
    copy_folder = tmp_path / "copy"
    changed = sen2cor_product(copy_folder, fmt="cog", seed=5).path
    assert changed.name == good.name
    with workspace.session() as session:
        site = get_site(session, "Antwerp")
        report = ingest_products(session, site, [changed, good])
        assert [o.status for o in report.outcomes] == [IngestStatus.CHANGED, IngestStatus.KNOWN]
        assert "different files" in str(report.outcomes[0].reason)
        (row,) = list_products(session, site)
        assert Path(row.path) == good.resolve()


@pytest.mark.parametrize("recursive", [True, False])
def test_ingest_recursion(workspace: Workspace, tmp_path: Path, recursive: bool) -> None:
    s1_amplitude(tmp_path)
    sen2cor_product(tmp_path / "deeper", fmt="cog")
    with workspace.session() as session:
        site = create_site(session, "Antwerp", AOI)
        report = ingest_products(session, site, [tmp_path], recursive=recursive)
    assert report.count(IngestStatus.REGISTERED) == (2 if recursive else 1)


def test_test_products_lie_in_the_aoi(tmp_path: Path) -> None:
    """Guards the tests above: the fixtures' window is inside the AOI, tile 31UFS meets it."""
    footprint = open_product(sen2cor_product(tmp_path, fmt="cog").path).info.footprint
    assert AOI.contains(footprint)
    assert TILE.footprint().intersects(AOI)

"""Orchestration of the synthetic season generator: :func:`generate_world` and :class:`SynthWorld`.

The world is a square window (default 10 km) in the middle of Sentinel-2 tile 31UFS, in the
loam farmland of Belgian Limburg/Brabant (EPSG:32631). Declarations are written in the Belgian
Lambert 72 CRS (EPSG:31370) so that an import has to reproject; tiles outside Belgium get
EPSG:3035. Each simulated year has its own declarations, rotations and products; the landscape
stays, with a few parcels split or merged (new ids) between years.

Layout of the output folder::

    world.json                       manifest (SynthWorld.load reads it)
    aoi.geojson                      window outline, EPSG:4326
    lut.csv                          Sen4CAP crop LUT
    declarations/declarations_<year>.zip
    config/S4C_L4B_Config_<year>.cfg, config/S4C_L4C_Config_BEL_<year>.cfg
    practices/<year>/L4C_<CC|FL|NFC|NA>_<year>.csv
    products/s2/<Sen2Cor .SAFE>      (products/maja/<THEIA folders> with maja=True)
    products/s1/<SEN4CAP_L2A_..._AMP|COHE.tif>
    truth/...                        see capmon.synth.truth

How rough the world is (clouds and unflagged haze, cuts, grazing, senescence, radar noise) comes
from a :class:`~capmon.synth.realism.Realism` profile: ``calibrated`` (default, calibrated on
real Sentinel series, docs/synthetic-vs-real.md) or ``clean`` (smooth, for plumbing tests).
Everything is drawn from random streams keyed by the seed, so the same arguments give the same
world: identical truth tables and identical raster values. Product metadata times are derived
from the acquisition times (no wall-clock time).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely
from shapely import affinity
from shapely.geometry import mapping

from capmon.errors import InputError, StorageError
from capmon.grid import s2_tile
from capmon.synth import sen4cap_files, truth
from capmon.synth.clouds import residual_haze, scene_cloud_cover
from capmon.synth.formats.maja import write_maja
from capmon.synth.formats.sen2cor import S2Acquisition, write_sen2cor_safe
from capmon.synth.formats.sentinel1 import write_s1_amplitude, write_s1_coherence
from capmon.synth.landscape import Landscape, build_landscape, make_window, split_field
from capmon.synth.management import (
    FieldEvent,
    ParcelSeason,
    parcel_seasons,
    plan_rotations,
)
from capmon.synth.phenology import UnitStates, simulate_units
from capmon.synth.realism import CALIBRATED, Realism, realism_profile
from capmon.synth.render import (
    BACKGROUND_SUBSTRATE,
    N_BACKGROUND,
    Scene,
    UnitShape,
    background_states,
    build_scene,
    cumulative_change,
    render_coherence,
    render_s2,
    render_sigma0,
    s1_grid,
    s2_grid,
    solar_position,
)
from capmon.synth.seeding import stream
from capmon.synth.spectra import Substrate, mixed_ndvi
from capmon.synth.weather import Weather, simulate_weather

MANIFEST = "world.json"
S2_RELATIVE_ORBIT = 51
S2_TIME = (10, 46, 21)
S1_ORBITS: tuple[tuple[str, int, tuple[int, int, int], float, date], ...] = (
    ("ASC", 88, (17, 33, 10), 39.5, date(2017, 1, 3)),
    ("DESC", 37, (5, 50, 44), 36.0, date(2017, 1, 5)),
)
_REVISIT_ANCHOR = date(2017, 1, 1)
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SynthWorld:
    """Where everything of a generated world is (absolute paths) and how much of it there is."""

    root: Path
    tile: str
    epsg: int
    window_bounds: tuple[float, float, float, float]
    years: tuple[int, ...]
    seed: int
    site_id: int
    declarations_epsg: int
    aoi: Path
    lut: Path
    declarations: Mapping[int, Path]
    l4b_configs: Mapping[int, Path]
    l4c_configs: Mapping[int, Path]
    practices: Mapping[int, Mapping[str, Path]]
    s2_dir: Path | None
    maja_dir: Path | None
    s1_dir: Path | None
    truth_dir: Path
    truth_parcels: Mapping[int, Path]
    truth_events: Path
    truth_bare_soil: Mapping[int, Path]
    truth_signals: Mapping[int, Path]
    truth_patches: Mapping[int, Path]
    truth_changes: Path
    parcel_counts: Mapping[int, int]
    s2_products: int
    s1_products: int
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, out_dir: str | Path) -> SynthWorld:
        """Re-read a world from its ``world.json`` manifest."""
        root = Path(out_dir).resolve()
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(f"{root} is not a synthetic world: {MANIFEST} is missing") from exc
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc

        def p(rel: str | None) -> Path | None:
            return None if rel is None else root / rel

        def by_year(d: dict[str, str]) -> dict[int, Path]:
            return {int(y): root / rel for y, rel in d.items()}

        return cls(
            root=root,
            tile=data["tile"],
            epsg=int(data["epsg"]),
            window_bounds=tuple(data["window_bounds"]),
            years=tuple(int(y) for y in data["years"]),
            seed=int(data["seed"]),
            site_id=int(data["site_id"]),
            declarations_epsg=int(data["declarations_epsg"]),
            aoi=root / data["aoi"],
            lut=root / data["lut"],
            declarations=by_year(data["declarations"]),
            l4b_configs=by_year(data["l4b_configs"]),
            l4c_configs=by_year(data["l4c_configs"]),
            practices={
                int(y): {k: root / v for k, v in d.items()} for y, d in data["practices"].items()
            },
            s2_dir=p(data["s2_dir"]),
            maja_dir=p(data["maja_dir"]),
            s1_dir=p(data["s1_dir"]),
            truth_dir=root / data["truth_dir"],
            truth_parcels=by_year(data["truth_parcels"]),
            truth_events=root / data["truth_events"],
            truth_bare_soil=by_year(data["truth_bare_soil"]),
            truth_signals=by_year(data["truth_signals"]),
            truth_patches=by_year(data["truth_patches"]),
            truth_changes=root / data["truth_changes"],
            parcel_counts={int(y): int(n) for y, n in data["parcel_counts"].items()},
            s2_products=int(data["s2_products"]),
            s1_products=int(data["s1_products"]),
            options=dict(data.get("options", {})),
        )

    def manifest(self) -> dict[str, Any]:
        """The JSON manifest (paths relative to ``root``)."""

        def rel(path: Path | None) -> str | None:
            return None if path is None else path.relative_to(self.root).as_posix()

        def by_year(d: Mapping[int, Path]) -> dict[str, str | None]:
            return {str(y): rel(v) for y, v in sorted(d.items())}

        return {
            "format": "capmon-synth-world/1",
            "tile": self.tile,
            "epsg": self.epsg,
            "window_bounds": list(self.window_bounds),
            "years": list(self.years),
            "seed": self.seed,
            "site_id": self.site_id,
            "declarations_epsg": self.declarations_epsg,
            "aoi": rel(self.aoi),
            "lut": rel(self.lut),
            "declarations": by_year(self.declarations),
            "l4b_configs": by_year(self.l4b_configs),
            "l4c_configs": by_year(self.l4c_configs),
            "practices": {
                str(y): {k: rel(v) for k, v in sorted(d.items())}
                for y, d in sorted(self.practices.items())
            },
            "s2_dir": rel(self.s2_dir),
            "maja_dir": rel(self.maja_dir),
            "s1_dir": rel(self.s1_dir),
            "truth_dir": rel(self.truth_dir),
            "truth_parcels": by_year(self.truth_parcels),
            "truth_events": rel(self.truth_events),
            "truth_bare_soil": by_year(self.truth_bare_soil),
            "truth_signals": by_year(self.truth_signals),
            "truth_patches": by_year(self.truth_patches),
            "truth_changes": rel(self.truth_changes),
            "parcel_counts": {str(y): n for y, n in sorted(self.parcel_counts.items())},
            "s2_products": self.s2_products,
            "s1_products": self.s1_products,
            "options": dict(self.options),
        }


# --------------------------------------------------------------------------------------------
# The in-memory model


@dataclass(frozen=True)
class YearModel:
    """One simulated year: parcels with their truth, unit states and the two rasterised scenes."""

    year: int
    seasons: tuple[ParcelSeason, ...]
    states: UnitStates
    unit_substrate: npt.NDArray[np.int8]
    unit_offset_db: npt.NDArray[np.float64]
    patch_shapes: tuple[tuple[str, str, Any], ...]  # (parcel id, kind, geometry)
    s2_scene: Scene
    s1_scene: Scene | None

    @property
    def first_parcel_unit(self) -> int:
        return N_BACKGROUND

    def parcel_unit(self, k: int) -> int:
        return N_BACKGROUND + k


@dataclass(frozen=True)
class WorldModel:
    """The whole simulated world before anything is written."""

    landscape: Landscape
    weather: Weather
    first_year: int
    seed: int
    years: tuple[YearModel, ...]
    realism: Realism = CALIBRATED


def _check_arguments(
    parcels: int, years: int, wrong_declarations: float, revisit_days: int, cloud_fraction: float,
    s1_repeat_days: int, first_year: int, defective_parcels: int,
) -> None:  # fmt: skip
    if not isinstance(parcels, int) or parcels < 1:
        raise InputError(f"parcels must be a whole number >= 1, not {parcels!r}")
    if not isinstance(years, int) or not 1 <= years <= 20:
        raise InputError(f"years must be a whole number from 1 to 20, not {years!r}")
    if not 0.0 <= wrong_declarations <= 1.0:
        raise InputError(
            f"wrong_declarations must be a fraction in [0, 1], not {wrong_declarations}"
        )
    if not isinstance(revisit_days, int) or not 1 <= revisit_days <= 60:
        raise InputError(f"revisit_days must be from 1 to 60, not {revisit_days!r}")
    if not 0.0 <= cloud_fraction <= 1.0:
        raise InputError(f"cloud_fraction must be a fraction in [0, 1], not {cloud_fraction}")
    if s1_repeat_days not in (6, 12):
        raise InputError(f"s1_repeat_days must be 6 or 12, not {s1_repeat_days!r}")
    if not 2016 <= first_year <= 2100:
        raise InputError(f"first_year must be from 2016 to 2100, not {first_year!r}")
    if defective_parcels < 0:
        raise InputError(f"defective_parcels must be >= 0, not {defective_parcels}")


def build_world_model(
    *,
    parcels: int = 2000,
    years: int = 1,
    seed: int = 0,
    window_km: float = 10.0,
    tile: str = "31UFS",
    first_year: int = 2024,
    wrong_declarations: float = 0.0,
    sentinel1: bool = True,
    defective_parcels: int = 0,
    realism: Realism | str = CALIBRATED,
) -> WorldModel:
    """Simulate the landscape, the farming and the daily canopy states (nothing is written)."""
    _check_arguments(parcels, years, wrong_declarations, 5, 0.0, 6, first_year, defective_parcels)
    profile = realism_profile(realism)
    window = make_window(s2_tile(tile), window_km)
    landscape = build_landscape(window, parcels, years, seed, defective_parcels=defective_parcels)
    rotations = plan_rotations(landscape, first_year, seed, profile)
    all_seasons = parcel_seasons(landscape, rotations, first_year, seed, wrong_declarations)
    weather = simulate_weather(seed, first_year - 2, first_year + years)
    models = []
    for index, seasons in enumerate(all_seasons):
        models.append(
            _year_model(landscape, weather, first_year + index, seasons, seed, sentinel1, profile)
        )
    return WorldModel(landscape, weather, first_year, seed, tuple(models), profile)


def _year_model(
    landscape: Landscape,
    weather: Weather,
    year: int,
    seasons: list[ParcelSeason],
    seed: int,
    sentinel1: bool,
    realism: Realism,
) -> YearModel:
    n = len(seasons)
    unit_events: list[list[FieldEvent]] = []
    first_crops: list[int] = []
    shapes: list[UnitShape] = []
    patch_shapes: list[tuple[str, str, Any]] = []
    for k, season in enumerate(seasons):
        unit_events.append([ev for plan in season.history for ev in plan.events])
        first_crops.append(season.history[0].crop.code)
        shapes.append(UnitShape(N_BACKGROUND + k, season.parcel.geometry))
    patch_units: list[list[FieldEvent]] = []
    patch_first: list[int] = []
    rng = stream(seed, "patches", year)
    for season in seasons:
        het = season.heterogeneity
        if het is None:
            continue
        geometry = _patch_geometry(season, het.kind, het.fraction, rng)
        if geometry is None or geometry.is_empty:
            continue
        if het.kind == "split":
            cut = date(year, 1, 1)
            harvest = het.plan.harvest or date(year, 12, 31)
            events = [ev for plan in season.history[:2] for ev in plan.events if ev.day < cut]
            events += list(het.plan.events)
            events += [ev for ev in season.history[3].events if ev.day > harvest + timedelta(2)]
        else:
            plans = (season.history[0], season.history[1], het.plan, season.history[3])
            events = [ev for plan in plans for ev in plan.events]
        patch_units.append(events)
        patch_first.append(season.history[0].crop.code)
        label = N_BACKGROUND + n + len(patch_shapes)
        shapes.append(UnitShape(label, geometry))
        patch_shapes.append((season.parcel.parcel_id, het.kind, geometry))
    start = date(year - 2, 1, 1)
    keep = date(year - 1, 1, 1)
    parcel_states = simulate_units(
        unit_events + patch_units, first_crops + patch_first, weather, start,
        date(year, 12, 31), keep, realism,
    )  # fmt: skip
    days = parcel_states.green.shape[1]
    background = background_states(keep, days)
    states = UnitStates(
        keep,
        **{
            name: np.concatenate([background[name], getattr(parcel_states, name)])
            for name in background
        },
    )
    n_units = N_BACKGROUND + len(unit_events) + len(patch_units)
    substrate = np.full(n_units, int(Substrate.SOIL), dtype=np.int8)
    for kind, sub in BACKGROUND_SUBSTRATE.items():
        substrate[int(kind)] = int(sub)
    offset = stream(seed, "s1-offset", year).normal(0.0, 0.4, n_units)
    s2_scene = build_scene(
        landscape, shapes, substrate, s2_grid(landscape), stream(seed, "s2-texture", year)
    )
    s1_scene = None
    if sentinel1:
        s1_scene = build_scene(
            landscape, shapes, substrate, s1_grid(landscape), stream(seed, "s1-texture", year)
        )
    return YearModel(
        year, tuple(seasons), states, substrate, offset, tuple(patch_shapes), s2_scene, s1_scene
    )


def _patch_geometry(
    season: ParcelSeason, kind: str, fraction: float, rng: np.random.Generator
) -> Any:
    poly = season.parcel.geometry
    if kind == "split":
        for _ in range(4):
            parts = split_field(poly, rng)
            if parts is not None:
                small = min(parts, key=lambda p: p.area)
                return small
        return None
    centre = poly.representative_point()
    radius = math.sqrt(fraction * poly.area / math.pi)
    blob = affinity.scale(
        centre.buffer(radius, 24), float(rng.uniform(0.7, 1.4)), float(rng.uniform(0.7, 1.4))
    )
    return blob.intersection(poly)


# --------------------------------------------------------------------------------------------
# Acquisition calendars


def s2_dates(year: int, revisit_days: int) -> list[date]:
    """Sentinel-2 dates of ``year`` from 1 February to 30 November every ``revisit_days``."""
    first, last = date(year, 2, 1), date(year, 11, 30)
    k = math.ceil((first - _REVISIT_ANCHOR).days / revisit_days)
    out = []
    day = _REVISIT_ANCHOR + timedelta(days=k * revisit_days)
    while day <= last:
        out.append(day)
        day += timedelta(days=revisit_days)
    return out


def s2_spacecraft(year: int, day: date, revisit_days: int) -> str:
    """S2A/S2B alternate until 2024, S2B/S2C from 2025 (S2C replaced S2A in January 2025)."""
    pair = ("S2A", "S2B") if year <= 2024 else ("S2B", "S2C")
    return pair[((day - _REVISIT_ANCHOR).days // revisit_days) % 2]


def s1_dates(year: int, anchor: date, repeat_days: int) -> list[date]:
    """Dates of one relative orbit in ``year`` plus the last one before it (for the first pair)."""
    first = date(year, 1, 1)
    k = math.ceil((first - anchor).days / repeat_days) - 1
    out = []
    day = anchor + timedelta(days=k * repeat_days)
    while day <= date(year, 12, 31):
        out.append(day)
        day += timedelta(days=repeat_days)
    return out


def s1_spacecraft(day: date, anchor: date, repeat_days: int) -> str:
    if repeat_days == 12:
        return "S1A"
    return ("S1A", "S1C")[((day - anchor).days // repeat_days) % 2]


# --------------------------------------------------------------------------------------------
# Writing


def _world_lonlat(landscape: Landscape) -> tuple[float, float]:
    w = landscape.window
    t = pyproj.Transformer.from_crs(w.epsg, 4326, always_xy=True)
    lon, lat = t.transform(w.ulx + w.size_m / 2, w.uly - w.size_m / 2)
    return float(lon), float(lat)


def _declarations_epsg(lon: float, lat: float) -> int:
    return 31370 if 2.5 <= lon <= 6.5 and 49.4 <= lat <= 51.6 else 3035


def _write_aoi(path: Path, landscape: Landscape) -> None:
    w = landscape.window
    outline = shapely.segmentize(w.geometry, 500.0)
    t = pyproj.Transformer.from_crs(w.epsg, 4326, always_xy=True)
    geo = shapely.transform(outline, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    geo = shapely.set_precision(geo, 1e-7)
    feature = {
        "type": "FeatureCollection",
        "name": "aoi",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "tile": w.tile,
                    "window_epsg": w.epsg,
                    "window_bounds": list(w.bounds),
                },
                "geometry": mapping(geo),
            }
        ],
    }
    sen4cap_files.write_text(path, json.dumps(feature, indent=1) + "\n")


def _write_declarations(
    path: Path, seasons: tuple[ParcelSeason, ...], landscape: Landscape, epsg: int, first: bool
) -> None:
    rows = [
        {
            "PARCEL_ID": s.parcel.parcel_id,
            "HOLDING_ID": s.parcel.holding_id,
            "CROP_CODE": s.declared_crop.code,
            "CROP_NAME": s.declared_crop.name,
            "AREA_HA": s.declared_area_ha,
            "geometry": s.parcel.geometry,
        }
        for s in seasons
    ]
    if first:
        for n, (kind, geom) in enumerate(landscape.defects):
            source = seasons[n % len(seasons)]
            rows.append(
                {
                    "PARCEL_ID": f"BE-D{n + 1:05d}-{kind}",
                    "HOLDING_ID": source.parcel.holding_id,
                    "CROP_CODE": source.declared_crop.code,
                    "CROP_NAME": source.declared_crop.name,
                    "AREA_HA": round(float(geom.area) / 10_000, 2),
                    "geometry": geom,
                }
            )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=landscape.window.epsg).to_crs(epsg)
    frame["geometry"] = shapely.set_precision(frame.geometry.values, 0.001, mode="pointwise")
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        shp = Path(tmp) / f"{path.stem}.shp"
        frame.to_file(shp, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
        _fix_dbf_date(shp.with_suffix(".dbf"), seasons[0].year)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for member in sorted(Path(tmp).iterdir()):
                info = zipfile.ZipInfo(member.name, date_time=(seasons[0].year, 5, 15, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, member.read_bytes())


def _fix_dbf_date(dbf: Path, year: int) -> None:
    """Replace the DBF header's write date (today) by a fixed one, for byte-identical output."""
    with dbf.open("r+b") as handle:
        handle.seek(1)
        handle.write(bytes([year - 1900 if year < 2156 else 255, 5, 15]))


def _write_table(path: Path, table: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(truth.to_csv_bytes(table))


@dataclass
class _Writer:
    """Runs product writes on two threads so encoding overlaps the next date's simulation."""

    pool: ThreadPoolExecutor
    pending: list[Future[Path]] = field(default_factory=list)

    def submit(self, fn: Callable[..., Path], *args: Any, **kwargs: Any) -> None:
        self.pending.append(self.pool.submit(fn, *args, **kwargs))
        if len(self.pending) > 4:
            self.pending.pop(0).result()

    def drain(self) -> None:
        while self.pending:
            self.pending.pop(0).result()


def generate_world(
    out_dir: str | Path,
    *,
    parcels: int = 2000,
    years: int = 1,
    seed: int = 0,
    window_km: float = 10.0,
    tile: str = "31UFS",
    first_year: int = 2024,
    s2_format: Literal["jp2", "cog"] = "jp2",
    maja: bool = False,
    sentinel1: bool = True,
    wrong_declarations: float = 0.0,
    revisit_days: int = 5,
    cloud_fraction: float = 0.35,
    s1_repeat_days: int = 6,
    defective_parcels: int = 0,
    site_id: int = 1,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    realism: Realism | str = CALIBRATED,
) -> SynthWorld:
    """Generate a synthetic season (or ``years`` seasons) into ``out_dir`` and describe it.

    ``realism`` is how rough the world is: ``calibrated`` on real series (default) or
    ``clean`` (see :mod:`capmon.synth.realism`).

    The folder is built next to ``out_dir`` and renamed at the end, so a failure leaves no
    half-written world. An existing non-empty ``out_dir`` is replaced only with ``overwrite``.
    """
    _check_arguments(parcels, years, wrong_declarations, revisit_days, cloud_fraction,
                     s1_repeat_days, first_year, defective_parcels)  # fmt: skip
    if s2_format not in ("jp2", "cog"):
        raise InputError(f"s2_format must be 'jp2' or 'cog', not {s2_format!r}")
    profile = realism_profile(realism)
    target = Path(out_dir).resolve()
    if target.exists() and not target.is_dir():
        raise InputError(f"out_dir {target} exists and is not a folder")
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise InputError(f"out_dir {target} is not empty; pass overwrite to replace it")

    def report(step: str, done: int, total: int) -> None:
        if progress is not None:
            progress(step, done, total)

    report("simulating the landscape and the seasons", 0, 1)
    model = build_world_model(
        parcels=parcels, years=years, seed=seed, window_km=window_km, tile=tile,
        first_year=first_year, wrong_declarations=wrong_declarations, sentinel1=sentinel1,
        defective_parcels=defective_parcels, realism=profile,
    )  # fmt: skip
    report("simulating the landscape and the seasons", 1, 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    staging.mkdir()
    try:
        _write_world(
            staging, model, s2_format=s2_format, maja=maja, sentinel1=sentinel1,
            revisit_days=revisit_days, cloud_fraction=cloud_fraction,
            s1_repeat_days=s1_repeat_days, site_id=site_id, report=report,
            options={
                "parcels": parcels, "window_km": window_km,
                "wrong_declarations": wrong_declarations, "revisit_days": revisit_days,
                "cloud_fraction": cloud_fraction, "s1_repeat_days": s1_repeat_days,
                "s2_format": s2_format, "maja": maja, "sentinel1": sentinel1,
                "defective_parcels": defective_parcels, "realism": profile.name,
            },
        )  # fmt: skip
        retired = None
        if target.exists():
            retired = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
            os.replace(target, retired)
        os.replace(staging, target)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except StorageError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StorageError(f"cannot write the synthetic world {target}: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SynthWorld.load(target)


def _write_world(
    staging: Path,
    model: WorldModel,
    *,
    s2_format: Literal["jp2", "cog"],
    maja: bool,
    sentinel1: bool,
    revisit_days: int,
    cloud_fraction: float,
    s1_repeat_days: int,
    site_id: int,
    report: ProgressCallback,
    options: dict[str, Any],
) -> None:
    """Write every file of the world into ``staging`` (its final name is given by the caller)."""
    landscape = model.landscape
    lon, lat = _world_lonlat(landscape)
    decl_epsg = _declarations_epsg(lon, lat)
    years = tuple(y.year for y in model.years)
    _write_aoi(staging / "aoi.geojson", landscape)
    sen4cap_files.write_text(staging / "lut.csv", sen4cap_files.lut_csv())
    declarations: dict[int, Path] = {}
    l4b: dict[int, Path] = {}
    l4c: dict[int, Path] = {}
    practices: dict[int, dict[str, Path]] = {}
    truth_parcels: dict[int, Path] = {}
    truth_bare: dict[int, Path] = {}
    truth_signals: dict[int, Path] = {}
    truth_patches: dict[int, Path] = {}
    (staging / "declarations").mkdir()
    land = truth.land_history([ym.seasons for ym in model.years])
    for ym in model.years:
        y = ym.year
        path = staging / "declarations" / f"declarations_{y}.zip"
        _write_declarations(path, ym.seasons, landscape, decl_epsg, ym is model.years[0])
        declarations[y] = path
        l4b[y] = sen4cap_files.write_text(
            staging / "config" / f"S4C_L4B_Config_{y}.cfg", sen4cap_files.l4b_config(y)
        )
        l4c[y] = sen4cap_files.write_text(
            staging / "config" / f"S4C_L4C_Config_{sen4cap_files.COUNTRY}_{y}.cfg",
            sen4cap_files.l4c_config(y),
        )
        practices[y] = {}
        for practice in sen4cap_files.PRACTICES:
            rows = sen4cap_files.practice_rows(ym.seasons, practice)
            practices[y][practice] = sen4cap_files.write_text(
                staging / "practices" / str(y) / f"L4C_{practice}_{y}.csv",
                sen4cap_files.practice_csv(rows),
            )
        pixels = np.bincount(ym.s2_scene.units.ravel(), minlength=len(ym.unit_substrate))
        counts = [int(pixels[ym.parcel_unit(k)]) for k in range(len(ym.seasons))]
        index = {s.parcel.parcel_id: k for k, s in enumerate(ym.seasons)}
        for j, (pid, _kind, _geom) in enumerate(ym.patch_shapes):
            counts[index[pid]] += int(pixels[N_BACKGROUND + len(ym.seasons) + j])
        truth_parcels[y] = staging / "truth" / f"parcels_{y}.csv"
        _write_table(truth_parcels[y], truth.parcels_table(ym.seasons, counts, land))
        truth_bare[y] = staging / "truth" / f"bare_soil_{y}.csv"
        _write_table(truth_bare[y], truth.bare_soil_table(ym.seasons, ym.states, N_BACKGROUND, y))
        truth_patches[y] = staging / "truth" / f"patches_{y}.gpkg"
        patches = gpd.GeoDataFrame(
            {
                "parcel_id": [p[0] for p in ym.patch_shapes],
                "kind": [p[1] for p in ym.patch_shapes],
                "geometry": [p[2] for p in ym.patch_shapes],
            },
            geometry="geometry",
            crs=landscape.window.epsg,
        )
        patches.to_file(truth_patches[y], driver="GPKG", engine="pyogrio", layer="patches")
    truth_events = staging / "truth" / "events.csv"
    _write_table(truth_events, truth.events_table([ym.seasons for ym in model.years]))
    truth_changes = staging / "truth" / "parcel_changes.csv"
    _write_table(truth_changes, truth.changes_table([ym.seasons for ym in model.years]))

    s2_dir = staging / "products" / "s2"
    s2_dir.mkdir(parents=True)
    maja_dir = staging / "products" / "maja" if maja else None
    if maja_dir is not None:
        maja_dir.mkdir(parents=True)
    s1_dir = staging / "products" / "s1" if sentinel1 else None
    if s1_dir is not None:
        s1_dir.mkdir(parents=True)
    n_s2 = n_s1 = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        writer = _Writer(pool)
        for ym in model.years:
            signals = _write_s2_year(
                ym, model, s2_dir, maja_dir, s2_format, revisit_days, cloud_fraction, (lon, lat),
                writer, report,
            )  # fmt: skip
            n_s2 += len(s2_dates(ym.year, revisit_days))
            truth_signals[ym.year] = staging / "truth" / f"s2_parcels_{ym.year}.parquet"
            signals.to_parquet(truth_signals[ym.year], index=False)
            if s1_dir is not None:
                n_s1 += _write_s1_year(ym, model, s1_dir, s1_repeat_days, site_id, writer, report)
        writer.drain()

    world = SynthWorld(
        root=staging,
        tile=landscape.window.tile,
        epsg=landscape.window.epsg,
        window_bounds=landscape.window.bounds,
        years=years,
        seed=model.seed,
        site_id=site_id,
        declarations_epsg=decl_epsg,
        aoi=staging / "aoi.geojson",
        lut=staging / "lut.csv",
        declarations=declarations,
        l4b_configs=l4b,
        l4c_configs=l4c,
        practices=practices,
        s2_dir=s2_dir,
        maja_dir=maja_dir,
        s1_dir=s1_dir,
        truth_dir=staging / "truth",
        truth_parcels=truth_parcels,
        truth_events=truth_events,
        truth_bare_soil=truth_bare,
        truth_signals=truth_signals,
        truth_patches=truth_patches,
        truth_changes=truth_changes,
        parcel_counts={ym.year: len(ym.seasons) for ym in model.years},
        s2_products=n_s2,
        s1_products=n_s1,
        options=options,
    )
    sen4cap_files.write_text(staging / MANIFEST, json.dumps(world.manifest(), indent=1) + "\n")


def _write_s2_year(
    ym: YearModel,
    model: WorldModel,
    s2_dir: Path,
    maja_dir: Path | None,
    s2_format: Literal["jp2", "cog"],
    revisit_days: int,
    cloud_fraction: float,
    lonlat: tuple[float, float],
    writer: _Writer,
    report: ProgressCallback,
) -> pd.DataFrame:
    """Render and write the Sentinel-2 scenes of one year; return the per-parcel truth rows."""
    window = model.landscape.window
    weather = model.weather
    dates = s2_dates(ym.year, revisit_days)
    n = len(ym.seasons)
    units = N_BACKGROUND + np.arange(n)
    flat = ym.s2_scene.units.ravel()
    total = np.bincount(flat, minlength=len(ym.unit_substrate)).astype(float)
    ids = [s.parcel.parcel_id for s in ym.seasons]
    frames = []
    hour = S2_TIME[0] + S2_TIME[1] / 60 + S2_TIME[2] / 3600
    for j, day in enumerate(dates):
        rng = stream(model.seed, "s2", ym.year, day.toordinal())
        zenith, azimuth = solar_position((day, hour), *lonlat)
        cover = scene_cloud_cover(rng, cloud_fraction, model.realism)
        haze = residual_haze(
            stream(model.seed, "haze", ym.year, day.toordinal()), ym.s2_scene.grid.shape,
            model.realism,
        )  # fmt: skip
        wi = weather.index(day)
        moisture = float(weather.soil_moisture[wi])
        snow = float(weather.snow_cover[wi])
        reflectance, scl, sky = render_s2(
            ym.s2_scene, ym.states, day, moisture, snow, cover, (zenith, azimuth), rng, haze
        )
        cloudy = float(np.isin(scl, (8, 9, 10)).mean()) * 100.0
        spacecraft = s2_spacecraft(ym.year, day, revisit_days)
        acq = S2Acquisition(
            tile=window.tile, spacecraft=spacecraft,
            sensing_time=datetime(day.year, day.month, day.day, *S2_TIME, tzinfo=UTC),
            processing_baseline="05.10" if ym.year <= 2024 else "05.11",
            relative_orbit=S2_RELATIVE_ORBIT, epsg=window.epsg, ulx=window.ulx, uly=window.uly,
            width_10m=window.width, height_10m=window.width, sun_zenith=round(zenith, 4),
            sun_azimuth=round(azimuth, 4), view_zenith=5.2, view_azimuth=103.0,
            cloud_cover=round(cloudy, 4),
        )  # fmt: skip
        writer.submit(write_sen2cor_safe, s2_dir, acq, reflectance, scl, fmt=s2_format)
        if maja_dir is not None:
            nothing = np.zeros(ym.s2_scene.grid.shape, dtype=bool)
            writer.submit(
                write_maja, maja_dir, acq, reflectance, cloud=sky.cloud_mask,
                shadow=sky.shadow_mask, snow=sky.snow_mask, saturated=nothing, edge=nothing,
                water=ym.s2_scene.water,
            )  # fmt: skip
        clear = ~(sky.cloud_mask | sky.shadow_mask | sky.snow_mask)
        clear_count = np.bincount(flat, weights=clear.ravel(), minlength=len(total))
        i = ym.states.index(day)
        green = ym.states.green[units, i].astype(float)
        dry = ym.states.dry[units, i].astype(float)
        frames.append(
            pd.DataFrame(
                {
                    "parcel_id": ids,
                    "date": day,
                    "spacecraft": spacecraft,
                    "green": np.round(green, 4),
                    "dry": np.round(dry, 4),
                    "bare": np.round(np.clip(1 - green - dry, 0, 1), 4),
                    "ndvi": np.round(mixed_ndvi(green, dry, moisture), 4),
                    "clear_fraction": np.round(
                        clear_count[units] / np.maximum(total[units], 1.0), 4
                    ),
                }
            )
        )
        report(f"Sentinel-2 {ym.year}", j + 1, len(dates))
    return pd.concat(frames, ignore_index=True)


def _write_s1_year(
    ym: YearModel,
    model: WorldModel,
    s1_dir: Path,
    repeat_days: int,
    site_id: int,
    writer: _Writer,
    report: ProgressCallback,
) -> int:
    """Render and write the amplitude and coherence GeoTIFFs of one year; return their number."""
    scene = ym.s1_scene
    assert scene is not None
    weather = model.weather
    change = cumulative_change(ym.states)
    calendars = [(orbit, s1_dates(ym.year, orbit[4], repeat_days)) for orbit in S1_ORBITS]
    total = sum(len(d) - 1 for _, d in calendars)
    done = written = 0
    for (direction, relative_orbit, hms, incidence, anchor), dates in calendars:
        for previous, day in itertools.pairwise(dates):
            rng = stream(model.seed, "s1", ym.year, relative_orbit, day.toordinal())
            when = datetime(day.year, day.month, day.day, *hms, tzinfo=UTC)
            before = datetime(previous.year, previous.month, previous.day, *hms, tzinfo=UTC)
            wi, wp = weather.index(day), weather.index(previous)
            moisture = float(weather.soil_moisture[wi])
            snow = float(weather.snow_cover[wi])
            rain = float(max(weather.rain_mm[wi], weather.rain_mm[wp]))
            spacecraft = s1_spacecraft(day, anchor, repeat_days)
            orbit_direction: Literal["ASC", "DESC"] = "ASC" if direction == "ASC" else "DESC"
            unit_rng = stream(model.seed, "s1-units", ym.year, relative_orbit, day.toordinal())
            for pol in ("VV", "VH"):
                polarisation: Literal["VV", "VH"] = "VV" if pol == "VV" else "VH"
                noise_db, noise_gamma = _s1_unit_noise(unit_rng, len(ym.unit_substrate),
                                                       model.realism)  # fmt: skip
                sigma = render_sigma0(
                    scene, ym.states, day, moisture, snow, ym.unit_substrate, ym.unit_offset_db,
                    incidence, polarisation, rng, noise_db,
                )  # fmt: skip
                writer.submit(
                    write_s1_amplitude, s1_dir, site_id=site_id, polarisation=polarisation,
                    relative_orbit=relative_orbit, time=when, time_pair=before,
                    amplitude=np.sqrt(sigma), transform=scene.grid.transform, epsg=scene.grid.epsg,
                    spacecraft=spacecraft, orbit_direction=orbit_direction,
                )  # fmt: skip
                gamma = render_coherence(
                    scene, ym.states, change, previous, day, rain, ym.unit_substrate,
                    polarisation, rng, noise_gamma,
                )  # fmt: skip
                writer.submit(
                    write_s1_coherence, s1_dir, site_id=site_id, polarisation=polarisation,
                    relative_orbit=relative_orbit, time=when, time_pair=before, coherence=gamma,
                    transform=scene.grid.transform, epsg=scene.grid.epsg, spacecraft=spacecraft,
                    orbit_direction=orbit_direction,
                )  # fmt: skip
                written += 2
            done += 1
            report(f"Sentinel-1 {ym.year}", done, total)
    return written


def _s1_unit_noise(
    rng: np.random.Generator, units: int, realism: Realism
) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64] | None]:
    """Per-unit backscatter (dB) and coherence changes of one acquisition and polarisation:
    a part shared by the scene plus a part of each unit (None when the profile has none)."""
    noise_db = gamma = None
    if realism.backscatter_noise_db > 0 or realism.backscatter_scene_db > 0:
        noise_db = rng.normal(0.0, realism.backscatter_scene_db) + rng.normal(
            0.0, realism.backscatter_noise_db, units
        )
    if realism.coherence_noise > 0 or realism.coherence_scene > 0:
        gamma = rng.normal(0.0, realism.coherence_scene) + rng.normal(
            0.0, realism.coherence_noise, units
        )
    return noise_db, gamma

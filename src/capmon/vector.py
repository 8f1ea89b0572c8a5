"""Reading vector files of any format capmon accepts, with the checks every caller needs.

Accepted: zipped shapefiles (and zips holding a GeoPackage, GML, GeoJSON or GeoParquet file),
shapefiles, GeoPackage, GML, GeoJSON, FlatGeobuf and GeoParquet (fiboa included). Every problem
raises an :class:`~capmon.errors.InputError` that names the file: missing file, not a vector
file, unknown or ambiguous layer, no features, no CRS.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import geopandas as gpd
import pyogrio
import pyogrio.errors

from capmon.errors import CRSError, InputError

GDAL_SUFFIXES = (".shp", ".gpkg", ".gml", ".xml", ".geojson", ".json", ".fgb", ".kml")
PARQUET_SUFFIXES = (".parquet", ".geoparquet")
POLYGON_TYPES = frozenset({"Polygon", "MultiPolygon", "Polygon Z", "MultiPolygon Z"})


@dataclass(frozen=True)
class VectorFile:
    """A vector layer read into memory, with where it came from."""

    frame: gpd.GeoDataFrame
    path: Path
    layer: str | None
    member: str | None = None
    several_layers: bool = False

    @property
    def source(self) -> str:
        """A human-readable name of the layer: the file, the zip member and the layer."""
        parts = [str(self.path)]
        if self.member:
            parts.append(self.member)
        if self.layer and self.several_layers:
            parts.append(f"layer {self.layer!r}")
        return ", ".join(parts)


def read_vector(
    path: str | Path,
    layer: str | None = None,
    *,
    encoding: str | None = None,
    require_crs: bool = True,
) -> VectorFile:
    """Read one layer of a vector file, zipped or not. See the module docstring."""
    file = Path(path)
    if not file.exists():
        raise InputError(f"{file}: file not found")
    if file.is_dir() and file.suffix.lower() != ".gdb":
        raise InputError(f"{file}: is a folder, not a vector file")
    if file.is_file() and file.stat().st_size == 0:
        raise InputError(f"{file}: the file is empty")
    member: str | None = None
    several = False
    if file.is_file() and zipfile.is_zipfile(file):
        member = _pick_zip_member(file, layer)
        if member.lower().endswith(PARQUET_SUFFIXES):
            with zipfile.ZipFile(file) as archive:
                payload = archive.read(member)
            frame = _read_parquet(io.BytesIO(payload), f"{file}!{member}")
            chosen_layer = None
        else:
            gdal_path = f"/vsizip/{file.resolve()}/{member}"
            sub_layer = layer if layer is not None and layer != member else None
            chosen_layer, several = _pick_layer(gdal_path, sub_layer, f"{file} ({member})")
            frame = _read_gdal(gdal_path, chosen_layer, encoding, f"{file} ({member})")
    elif file.suffix.lower() in PARQUET_SUFFIXES:
        frame = _read_parquet(file, str(file))
        chosen_layer = None
    else:
        chosen_layer, several = _pick_layer(str(file), layer, str(file))
        frame = _read_gdal(str(file), chosen_layer, encoding, str(file))
    result = VectorFile(frame, file, chosen_layer, member, several)
    if len(frame) == 0:
        raise InputError(f"{result.source}: contains no features")
    if frame.geometry.isna().all():
        raise InputError(f"{result.source}: has no geometries")
    if require_crs and frame.crs is None:
        raise CRSError(
            f"{result.source}: has no coordinate reference system "
            "(a shapefile needs its .prj file); capmon never guesses a CRS"
        )
    return result


def _pick_zip_member(file: Path, layer: str | None) -> str:
    with zipfile.ZipFile(file) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
    usable = [
        n
        for n in names
        if n.lower().endswith(GDAL_SUFFIXES + PARQUET_SUFFIXES)
        and not PurePosixPath(n).name.startswith((".", "__MACOSX"))
        and "__MACOSX" not in n
    ]
    if layer is not None:
        matches = [n for n in usable if n == layer or PurePosixPath(n).name == layer]
        matches += [n for n in usable if PurePosixPath(n).stem == layer and n not in matches]
        if len(matches) == 1:
            return matches[0]
        if len(usable) == 1:  # the layer names a layer inside the single member
            return usable[0]
    if len(usable) == 1:
        return usable[0]
    if not usable:
        raise InputError(
            f"{file}: the zip archive holds no vector file "
            f"(found: {', '.join(names[:10]) or 'nothing'})"
        )
    raise InputError(
        f"{file}: the zip archive holds several vector files; choose one with --layer: "
        + ", ".join(usable)
    )


def _pick_layer(gdal_path: str, layer: str | None, label: str) -> tuple[str | None, bool]:
    """The layer to read, and whether the file has several."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. duplicated GML field names
            layers = pyogrio.list_layers(gdal_path)
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(f"{label}: not a readable vector file ({_first_line(exc)})") from exc
    names = [str(row[0]) for row in layers]
    if layer is not None:
        if layer not in names:
            raise InputError(f"{label}: no layer {layer!r}; layers: {', '.join(names)}")
        return layer, len(names) > 1
    if len(names) <= 1:
        return (names[0] if names else None), False
    with_polygons = [str(row[0]) for row in layers if str(row[1]) in POLYGON_TYPES]
    candidates = []
    for name in with_polygons:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            info = pyogrio.read_info(gdal_path, layer=name)
        if int(info.get("features") or 0) != 0:
            candidates.append(name)
    if len(candidates) == 1:
        return candidates[0], True
    raise InputError(
        f"{label}: has several layers; choose one with --layer: "
        + ", ".join(f"{n} ({t})" for n, t in ((str(r[0]), str(r[1])) for r in layers))
    )


def _read_gdal(
    gdal_path: str, layer: str | None, encoding: str | None, label: str
) -> gpd.GeoDataFrame:
    try:
        with warnings.catch_warnings():
            # GDAL reports measured (M) geometries and similar details as RuntimeWarnings.
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pyogrio.read_dataframe(gdal_path, layer=layer, encoding=encoding)
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(f"{label}: not a readable vector file ({_first_line(exc)})") from exc
    except (pyogrio.errors.DataLayerError, pyogrio.errors.FieldError) as exc:
        raise InputError(f"{label}: cannot read layer {layer!r}: {_first_line(exc)}") from exc
    except LookupError as exc:
        raise InputError(f"{label}: unknown text encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{label}: attributes are not in the {encoding or 'declared'} encoding ({exc}); "
            "give the right one with --encoding (e.g. cp1252, cp1251, latin1)"
        ) from exc
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InputError(f"{label}: the layer has no geometry column")
    return frame


def _read_parquet(source: io.BytesIO | Path, label: str) -> gpd.GeoDataFrame:
    try:
        return gpd.read_parquet(source)
    except (ValueError, OSError) as exc:  # not Parquet at all, or no 'geo' metadata
        raise InputError(f"{label}: not a readable GeoParquet file ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

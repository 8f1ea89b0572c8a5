"""The processor registry: one declaration per processor.

A processor declares its id, title, version, description, a pydantic parameter model (whose
defaults are Sen4CAP's where Sen4CAP has the processor), the inputs it needs, its outputs and
its default schedule in a season, and a ``run`` function. ``capmon run <id>``, the OGC API
process descriptions and the season scheduler are generated from these declarations, so a new
processor is added in one place: a module that calls :func:`register`, listed in
``_BUILTIN_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from capmon.errors import ConflictError, InputError, NotFoundError

if TYPE_CHECKING:  # not at run time: `capmon run --help` starts without the catalogue
    from capmon.catalog.models import Season, Site
    from capmon.workspace import Workspace

_BUILTIN_MODULES = (
    "capmon.processors.mdb_extract",
    "capmon.processors.l4a.processor",
    "capmon.processors.baresoil.processor",
    "capmon.processors.multiannual.processor",
    "capmon.processors.heterogeneity.processor",
    "capmon.processors.l4b.processor",
    "capmon.processors.l4c.processor",
    "capmon.acquisition.processor",
)

# The builtin processors' ids, titles and modules, so that the CLI can list them and
# get_processor() import one module rather than all of them (start-up, `capmon bench
# startup`); tests/test_startup.py checks this table against the registrations.
BUILTIN_PROCESSORS: Mapping[str, tuple[str, str]] = {
    "acquire": ("Acquisition of input products", "capmon.acquisition.processor"),
    "baresoil": ("Bare soil detection", "capmon.processors.baresoil.processor"),
    "heterogeneity": ("Sub-parcel heterogeneity", "capmon.processors.heterogeneity.processor"),
    "l4a": ("L4A crop type", "capmon.processors.l4a.processor"),
    "l4b": ("L4B grassland mowing", "capmon.processors.l4b.processor"),
    "l4c": ("L4C agricultural practices", "capmon.processors.l4c.processor"),
    "mdb": ("Markers database extraction", "capmon.processors.mdb_extract"),
    "multiannual": ("Multi-annual analysis", "capmon.processors.multiannual.processor"),
}


@dataclass(frozen=True)
class ProcessorInput:
    """Something a processor reads: MDB signals, the parcels, the LUT, a config file..."""

    name: str
    kind: Literal["products", "parcels", "lut", "mdb", "config", "practices", "product"]
    description: str
    required: bool = True


@dataclass(frozen=True)
class ProcessorOutput:
    """Something a processor writes (a product type in the catalogue, files...)."""

    name: str
    product_type: str
    description: str
    media_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Schedule:
    """When a processor runs in a season (Sen4CAP's ``default_scheduled_tasks``).

    ``first`` is the season date the first run is counted from, ``offset_days`` is added to it,
    then the processor repeats every ``every_days`` days, at each month end (``monthly``), or
    when new products arrive (``on_products``).
    """

    kind: Literal["on_products", "daily", "weekly", "monthly", "every", "once"]
    first: Literal["start", "mid", "end"] = "start"
    offset_days: int = 0
    every_days: int | None = None


@dataclass(frozen=True)
class FilesMode:
    """A run on files rather than on a site (``capmon run <id> --mdb --parcels --out``).

    The product is written to ``out`` (refused when it exists and is not empty, unless
    ``overwrite``) and no catalogue row is added. ``parcel_id_col`` and ``crop_code_col`` name
    the columns of a parcels file that is not a capmon parcels table; ``start``, ``end`` and
    ``year`` give the season's dates (else the MDB's first and last dates).
    """

    out: Path
    overwrite: bool = False
    parcel_id_col: str | None = None
    crop_code_col: str | None = None
    start: date | None = None
    end: date | None = None
    year: int | None = None


class RunContext:
    """What a run gets: the workspace, the site and season, and a progress callback.

    On files (``files`` given) there is no site, and the workspace is optional:
    :attr:`workspace` and :attr:`site` then raise an :class:`InputError` naming what the
    processor needs, so a processor that cannot run without a site says so.
    """

    def __init__(
        self,
        workspace: Workspace | None,
        site: Site | None,
        season: Season | None,
        progress: Callable[[float, str], None] | None = None,
        files: FilesMode | None = None,
    ) -> None:
        if site is None and files is None:
            raise InputError("a run needs a site, or files (FilesMode: --mdb, --parcels, --out)")
        self._workspace = workspace
        self._site = site
        self.season = season
        self.progress: Callable[[float, str], None] = progress or _no_progress
        self.files = files

    @property
    def on_files(self) -> bool:
        """True for a run on files (no site, no catalogue row)."""
        return self._site is None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            raise InputError("this processor needs a capmon workspace (a run on a site)")
        return self._workspace

    @property
    def site(self) -> Site:
        if self._site is None:
            raise InputError("this processor needs a site: run it as `capmon run <id> SITE SEASON`")
        return self._site


def _no_progress(_fraction: float, _message: str) -> None:
    return None


@dataclass(frozen=True)
class RunResult:
    """What a run did: a one-line summary, figures, the files or products it wrote, and the
    products or items that failed (a run with failures exits non-zero on the command line)."""

    summary: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    failed: Sequence[str] = ()


@dataclass(frozen=True)
class Processor:
    """The declaration of a processor (see the module docstring)."""

    id: str
    title: str
    version: str
    description: str
    parameters: type[BaseModel]
    inputs: tuple[ProcessorInput, ...]
    outputs: tuple[ProcessorOutput, ...]
    schedule: Schedule
    run: Callable[[RunContext, Any], RunResult]
    needs_season: bool = True
    runs_on_files: bool = False
    """True when the processor also runs on files, with no site (``--mdb --parcels --out``,
    :func:`capmon.processors.files.run_processor`)."""

    def parse_parameters(self, values: Mapping[str, Any]) -> BaseModel:
        """Validated parameters; pydantic's errors name the offending field."""
        return self.parameters.model_validate(dict(values))


@dataclass(frozen=True)
class MissingInput:
    """A required input a site does not have yet: the processor is not due (skipped, not
    failed) until the user gives it with ``command``."""

    input: str
    reason: str
    command: str

    def __str__(self) -> str:
        return f"{self.reason}, see `{self.command}`"


INPUT_COMMANDS: Mapping[str, tuple[str, str]] = {
    "parcels": ("needs declarations for {year}", "capmon declarations import"),
    "lut": ("needs a crop LUT for {year}", "capmon lut import"),
    "practices": ("needs practice tables ({practice} for {year})", "capmon practices import"),
    "products": ("needs input products in the season", "capmon products ingest"),
    "mdb": ("needs input products in the season", "capmon products ingest"),
}
"""What a season lacks when an input kind is missing, and the command that gives it."""


def missing_inputs(
    processor: Processor,
    workspace: Workspace,
    site: Site,
    season: Season,
    parameters: Mapping[str, Any] | None = None,
) -> list[MissingInput]:
    """The required inputs of ``processor`` that ``site`` lacks for ``season`` (empty: ready).

    One readiness rule for the season scheduler, ``capmon season run`` and the service: an
    input given as a parameter (a path of the same name, e.g. ``practices``) counts as given;
    otherwise the stored declarations, LUT and practice tables of the season's year and the
    season's input products are looked up. Optional inputs (configs) never make it unready.
    """
    values = dict(parameters or {})
    year = season.year
    missing: list[MissingInput] = []
    seen: set[str] = set()
    for needed in processor.inputs:
        if not needed.required or values.get(needed.name) is not None:
            continue
        if needed.kind not in INPUT_COMMANDS:
            continue
        practice = str(values.get("practice") or "na")
        if _has_input(needed.kind, workspace, site, season, practice):
            continue
        reason, command = INPUT_COMMANDS[needed.kind]
        text = reason.format(year=year, practice=practice.upper())
        if text not in seen:
            seen.add(text)
            missing.append(MissingInput(needed.name, text, command))
    return missing


def _has_input(kind: str, workspace: Workspace, site: Site, season: Season, practice: str) -> bool:
    from sqlalchemy import func, select

    from capmon.catalog.models import CropLut, DeclarationSet, Product

    year = season.year
    if kind == "practices":
        from capmon.processors.l4c.config import practice_code
        from capmon.processors.l4c.practices import stored_practices

        return stored_practices(workspace, site.name, year, practice_code(practice)) is not None
    with workspace.session() as session:
        if kind in ("parcels", "lut"):
            model = DeclarationSet if kind == "parcels" else CropLut
            query = select(func.count()).where(model.site_id == site.id, model.year == year)
            return bool(session.scalar(query))
        from capmon.sources import ProductType

        moments = session.scalars(
            select(Product.acquired_at).where(
                Product.site_id == site.id,
                Product.product_type.in_([t.value for t in ProductType]),
            )
        )
        if any(m is not None and season.start_date <= m.date() <= season.end_date for m in moments):
            return True
        if kind != "mdb":
            return False
        # an MDB imported rather than extracted (``capmon mdb import``) has no input products
        from capmon.mdb.extract import mdb_folder

        declarations = session.scalar(
            select(DeclarationSet.id)
            .where(DeclarationSet.site_id == site.id, DeclarationSet.year == year)
            .order_by(DeclarationSet.version.desc())
            .limit(1)
        )
        return declarations is not None and (
            mdb_folder(workspace, site.short_name, season.name, declarations).exists()
        )


_REGISTRY: dict[str, Processor] = {}
_loaded = False


def register(processor: Processor) -> Processor:
    """Add ``processor`` to the registry (its id must be new)."""
    existing = _REGISTRY.get(processor.id)
    if existing is not None and existing is not processor:
        raise ConflictError(f"a processor with id {processor.id!r} is already registered")
    _REGISTRY[processor.id] = processor
    return processor


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def all_processors() -> list[Processor]:
    """Every registered processor, by id."""
    _load_builtins()
    return [_REGISTRY[key] for key in sorted(_REGISTRY)]


def processor_titles() -> dict[str, str]:
    """Every processor's title by id, importing no processor module when the builtins are all
    in :data:`BUILTIN_PROCESSORS` (``capmon run --help``)."""
    listed = {module for _title, module in BUILTIN_PROCESSORS.values()}
    if not listed.issuperset(_BUILTIN_MODULES):
        _load_builtins()
    titles = {key: title for key, (title, _module) in BUILTIN_PROCESSORS.items()}
    titles.update((key, processor.title) for key, processor in _REGISTRY.items())
    return dict(sorted(titles.items()))


def get_processor(processor_id: str) -> Processor:
    """The processor with id ``processor_id`` (importing only its module when it is builtin)."""
    builtin = BUILTIN_PROCESSORS.get(processor_id)
    if processor_id not in _REGISTRY and builtin is not None:
        importlib.import_module(builtin[1])
    if processor_id not in _REGISTRY:
        _load_builtins()
    try:
        return _REGISTRY[processor_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise NotFoundError(f"no processor {processor_id!r} (processors: {known})") from None

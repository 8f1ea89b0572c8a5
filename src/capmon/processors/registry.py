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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from capmon.catalog.models import Season, Site
from capmon.errors import ConflictError, NotFoundError
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


@dataclass
class RunContext:
    """What a run gets: the workspace, the site and season, and a progress callback."""

    workspace: Workspace
    site: Site
    season: Season | None
    progress: Callable[[float, str], None] = field(default=lambda _fraction, _message: None)


@dataclass(frozen=True)
class RunResult:
    """What a run did: a one-line summary, figures, and the files or products it wrote."""

    summary: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)


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

    def parse_parameters(self, values: Mapping[str, Any]) -> BaseModel:
        """Validated parameters; pydantic's errors name the offending field."""
        return self.parameters.model_validate(dict(values))


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


def get_processor(processor_id: str) -> Processor:
    """The processor with id ``processor_id``."""
    _load_builtins()
    try:
        return _REGISTRY[processor_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise NotFoundError(f"no processor {processor_id!r} (processors: {known})") from None

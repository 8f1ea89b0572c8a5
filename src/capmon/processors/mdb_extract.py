"""The markers database extraction as a processor (Sen4CAP's ``s4c_mdb1``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from capmon.mdb.extract import DEFAULT_OPTICAL_SIGNALS, ExtractionSettings, extract_season
from capmon.processors.registry import (
    Processor,
    ProcessorInput,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    register,
)
from capmon.signals.catalogue import get_signal
from capmon.signals.masks import SclMaskConfig
from capmon.sources import MaskConfig


class MdbExtractParameters(BaseModel):
    """Parameters of the MDB extraction (defaults are Sen4CAP's)."""

    model_config = ConfigDict(extra="forbid")

    signals: list[str] = Field(
        default_factory=lambda: list(DEFAULT_OPTICAL_SIGNALS),
        description="Optical signals to extract (any capmon signal or spyndex index name).",
    )
    sar: bool = Field(True, description="Extract Sentinel-1 amplitude and coherence products.")
    optical_buffer_m: float = Field(5.0, ge=0, description="Inward parcel buffer on optical grids.")
    sar_buffer_m: float = Field(10.0, ge=0, description="Inward parcel buffer on SAR grids.")
    compact: bool = Field(
        True, description="Merge new rows into the parcel-sorted files one-parcel queries read."
    )
    s1_tile_grids: bool = Field(
        False, description="Cut Sentinel-1 products to the site's S2 tile grids (20 m) first."
    )
    min_count: int = Field(2, ge=1, description="Minimum number of valid pixels of a row.")
    min_valid_fraction: float = Field(
        0.1, ge=0, lt=1, description="A row needs more valid pixels than this share of the parcel."
    )
    scl_invalid_classes: list[int] = Field(
        default_factory=lambda: sorted(int(c) for c in SclMaskConfig().invalid_classes),
        description="Sen2Cor SCL classes that are not clear observations.",
    )
    valid_scl: list[int] | None = Field(
        None,
        description=(
            "Sen2Cor SCL classes that are clear observations, every other class invalid "
            "(e.g. 4,5); instead of --scl-invalid-classes."
        ),
    )
    allow_unmasked: bool = Field(
        False,
        description=(
            "Extract optical products that have no cloud mask anyway (their rows are marked "
            "unmasked in the MDB); without it such a product fails, naming what was searched."
        ),
    )
    rebuild: bool = Field(
        False,
        description=(
            "Remove the season's MDB first and extract it again (needed to change its masks, "
            "buffers or row filters)."
        ),
    )

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, names: list[str]) -> list[str]:
        for name in names:
            get_signal(name)
        return names

    @model_validator(mode="after")
    def _one_scl_rule(self) -> MdbExtractParameters:
        if self.valid_scl is not None and "scl_invalid_classes" in self.model_fields_set:
            raise ValueError("give --valid-scl or --scl-invalid-classes, not both")
        return self

    def scl(self) -> SclMaskConfig:
        """The SCL rule: from the valid classes when given, else the invalid ones."""
        if self.valid_scl is not None:
            return SclMaskConfig.from_valid_classes(self.valid_scl)
        return SclMaskConfig(invalid_classes=frozenset(self.scl_invalid_classes))

    def settings(self) -> ExtractionSettings:
        return ExtractionSettings(
            optical_signals=tuple(self.signals),
            sar=self.sar,
            optical_buffer_m=self.optical_buffer_m,
            sar_buffer_m=self.sar_buffer_m,
            s1_tile_grids=self.s1_tile_grids,
            min_count=self.min_count,
            min_valid_fraction=self.min_valid_fraction,
            mask=MaskConfig(scl=self.scl(), allow_unmasked=self.allow_unmasked),
        )


def run(context: RunContext, parameters: MdbExtractParameters) -> RunResult:
    if context.season is None:
        raise ValueError("the MDB extraction needs a season")

    def progress(done: int, total: int, name: str) -> None:
        context.progress(done / total if total else 1.0, name)

    result = extract_season(
        context.workspace,
        context.site.name,
        context.season.name,
        parameters.settings(),
        compact=parameters.compact,
        rebuild=parameters.rebuild,
        progress=progress,
    )
    report = result.report
    skipped_products = len({product for product, _s, _r in report.skipped_signals})
    extras = []
    if report.replaced:
        extras.append(f"{len(report.replaced)} stored copies replaced by a better one")
    if report.skipped_signals:
        extras.append(
            f"{len(report.skipped_signals)} signals skipped on {skipped_products} products "
            "that cannot give them"
        )
    if report.not_requested:
        extras.append(f"{len(report.not_requested)} products with no signal asked for")
    return RunResult(
        summary=(
            f"{len(report.extracted)} products extracted, {len(report.already_done)} already "
            f"in the MDB, {len(report.empty)} without valid parcel pixels, "
            f"{len(report.failed)} failed; {report.rows} rows in {report.seconds:.1f} s"
            + "".join(f"; {extra}" for extra in extras)
        ),
        figures={
            "extracted": len(report.extracted),
            "already_done": len(report.already_done),
            "empty": len(report.empty),
            "failed": len(report.failed),
            "superseded": len(report.superseded),
            "replaced": len(report.replaced),
            "not_requested": len(report.not_requested),
            "skipped_signals": len(report.skipped_signals),
            "rows": report.rows,
            "parcels": result.parcels,
            "seconds": round(report.seconds, 2),
            "failures": [f"{name}: {reason}" for name, reason in report.failed],
            "skipped": [f"{name}: {signal}: {why}" for name, signal, why in report.skipped_signals],
            "coherence_gaps": report.coherence_gaps,
        },
        outputs={"mdb": str(result.mdb_path)},
    )


MDB_EXTRACT = register(
    Processor(
        id="mdb",
        title="Markers database extraction",
        version="1.0",
        description=(
            "Per parcel, per acquisition and per signal statistics (count, mean, stdev, min, "
            "max, median, p25, p75) of the season's Sentinel-2, Landsat and Sentinel-1 products, "
            "on inward-buffered parcels with the pixel-centre rule."
        ),
        parameters=MdbExtractParameters,
        inputs=(
            ProcessorInput("products", "products", "Registered input products of the season."),
            ProcessorInput("parcels", "parcels", "The newest declarations of the season's year."),
        ),
        outputs=(
            ProcessorOutput(
                "mdb", "mdb", "Parquet dataset, one file per product.", "application/x-parquet"
            ),
        ),
        schedule=Schedule(kind="on_products", first="start"),
        run=run,
    )
)

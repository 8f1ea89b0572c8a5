"""The markers database extraction as a processor (Sen4CAP's ``s4c_mdb1``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, names: list[str]) -> list[str]:
        for name in names:
            get_signal(name)
        return names

    def settings(self) -> ExtractionSettings:
        return ExtractionSettings(
            optical_signals=tuple(self.signals),
            sar=self.sar,
            optical_buffer_m=self.optical_buffer_m,
            sar_buffer_m=self.sar_buffer_m,
            s1_tile_grids=self.s1_tile_grids,
            min_count=self.min_count,
            min_valid_fraction=self.min_valid_fraction,
            mask=MaskConfig(scl=SclMaskConfig(invalid_classes=frozenset(self.scl_invalid_classes))),
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
        progress=progress,
    )
    report = result.report
    return RunResult(
        summary=(
            f"{len(report.extracted)} products extracted, {len(report.already_done)} already "
            f"in the MDB, {len(report.empty)} without valid parcel pixels, "
            f"{len(report.failed)} failed; {report.rows} rows in {report.seconds:.1f} s"
        ),
        figures={
            "extracted": len(report.extracted),
            "already_done": len(report.already_done),
            "empty": len(report.empty),
            "failed": len(report.failed),
            "superseded": len(report.superseded),
            "rows": report.rows,
            "parcels": result.parcels,
            "seconds": round(report.seconds, 2),
            "failures": [f"{name}: {reason}" for name, reason in report.failed],
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

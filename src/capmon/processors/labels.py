"""Human titles and units of the processors' parameters, for every place that shows them:
the OGC process descriptions (the web UI's run form labels its fields with them) and the
help of ``capmon run <processor>``.

One table per processor, keyed by the parameter's name, on top of :data:`COMMON` for the
file parameters most processors share. tests/test_processor_labels.py checks that every
parameter of every builtin processor has a title here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ParameterLabel:
    """What a form or a help text calls a parameter: a title and the unit of its values."""

    title: str
    unit: str | None = None

    def text(self) -> str:
        """``title (unit)``, or the title alone."""
        return f"{self.title} ({self.unit})" if self.unit else self.title


L = ParameterLabel

COMMON: Mapping[str, ParameterLabel] = {
    "mdb": L("MDB folder"),
    "parcels": L("Parcels file"),
    "lut": L("Crop LUT file"),
    "config": L("Configuration file"),
    "model": L("Calibrated model file"),
}

PROCESSOR_LABELS: Mapping[str, Mapping[str, ParameterLabel]] = {
    "acquire": {
        "sources_file": L("Data sources file"),
        "source_names": L("Sources"),
        "collections": L("Collections"),
        "max_cloud": L("Maximum cloud cover", "%"),
        "look_back_days": L("Search before the season", "days"),
        "until": L("Search until"),
        "dry_run": L("Search only (download nothing)"),
        "ingest": L("Register the downloaded products"),
    },
    "baresoil": {
        "ndvi_max": L("Bare soil: NDVI below"),
        "ndtill_max": L("Bare soil: NDTILL below"),
        "bsi_min": L("Bare soil: BSI above"),
        "use_s1": L("Use Sentinel-1 evidence"),
        "s1_weight": L("Weight of the Sentinel-1 evidence"),
        "cover_start": L("Soil-cover window start", "MM-DD"),
        "cover_end": L("Soil-cover window end", "MM-DD"),
        "max_gap": L("No-data gap bridged in a period", "dekads"),
        "start": L("First analysed day"),
        "end": L("Last analysed day"),
        "chunk_parcels": L("Parcels processed at once", "parcels"),
        "model": L("Calibrated bare-soil model file"),
    },
    "heterogeneity": {
        "methods": L("Methods"),
        "cv_threshold": L("NDVI variation threshold (CV)"),
        "cv_persistence": L("Dates above the CV threshold", "dates"),
        "min_ndvi": L("Minimum mean NDVI of a date"),
        "min_share": L("Minimum share of each part", "fraction"),
        "min_difference": L("Minimum NDVI difference between parts"),
        "pixel_persistence": L("Dates the pixel test must pass", "dates"),
        "k": L("Clusters per window (k)"),
        "max_dates": L("Acquisitions read at pixel level", "dates"),
        "months": L("Months analysed"),
        "cluster_features": L("Clustering features"),
        "cohe_max_days": L("Coherence pair to S2 date, at most", "days"),
    },
    "mdb": {
        "signals": L("Optical signals"),
        "sar": L("Extract Sentinel-1 products"),
        "optical_buffer_m": L("Inward parcel buffer, optical", "m"),
        "sar_buffer_m": L("Inward parcel buffer, SAR", "m"),
        "compact": L("Compact the parcel-sorted files"),
        "s1_tile_grids": L("Cut Sentinel-1 to the S2 tile grids"),
        "min_count": L("Minimum valid pixels of a row", "pixels"),
        "min_valid_fraction": L("Minimum valid share of the parcel", "fraction"),
        "scl_invalid_classes": L("Cloudy SCL classes (invalid)"),
        "valid_scl": L("Clear SCL classes (valid)"),
        "allow_unmasked": L("Extract products without a cloud mask"),
        "rebuild": L("Rebuild the MDB"),
    },
    "l4a": {
        "mode": L("Sensors"),
        "classifier": L("Classifier"),
        "until": L("Use acquisitions up to"),
        "lc": L("Land-cover classes classified (LUT lc)"),
        "attributes": L("Parcel attributes used as features (columns)"),
        "attributes_file": L("Parcel attributes file (CSV or Parquet)"),
        "min_s2_pix": L("Minimum Sentinel-2 pixels of a parcel", "pixels"),
        "min_s1_pix": L("Minimum Sentinel-1 pixels of a parcel", "pixels"),
        "best_s2_pix": L("Sentinel-2 pixels of a calibration parcel", "pixels"),
        "pa_min": L("Minimum calibration parcels of a class", "parcels"),
        "pa_train_h": L("Large class: training share from", "parcels"),
        "pa_train_l": L("Small class: fixed training size from", "parcels"),
        "sample_ratio_h": L("Training share of large classes", "fraction"),
        "sample_ratio_l": L("Training share of small classes", "fraction"),
        "balance": L("Class balance"),
        "smote_target": L("Training size of small classes", "parcels"),
        "smote_k": L("SMOTE nearest neighbours"),
        "num_trees": L("Trees or boosting rounds"),
        "num_leaves": L("LightGBM leaves per tree"),
        "learning_rate": L("LightGBM learning rate"),
        "feature_fraction": L("LightGBM share of features per tree", "fraction"),
        "period": L("Calendar period of the series"),
        "descriptors": L("Temporal descriptors"),
        "min_node_size": L("Minimum node size", "parcels"),
        "radar_weeks": L("Backscatter composite length", "weeks"),
        "backscatter_months": L("Backscatter statistic length", "months"),
        "second_min_confidence": L("Minimum confidence of a second prediction"),
        "cross_prediction": L("Cross-predict the training parcels"),
        "folds": L("Cross-prediction folds"),
        "seed": L("Random seed"),
        "jobs": L("Classifier threads"),
    },
    "l4b": {
        "method": L("Method"),
        "model": L("Mowing model file (capmon train l4b)"),
        "s1_evidence": L("Score drops with S1 evidence"),
        "config": L("L4B configuration file"),
        "sensors": L("Sensors"),
        "start": L("Mowing period start"),
        "until": L("Last acquisition used"),
        "lookback_days": L("Context read before the start", "days"),
        "incremental": L("Continue from the previous product"),
    },
    "l4c": {
        "practice": L("Practice"),
        "country": L("Country rules (code)"),
        "practices": L("Practice table file"),
        "config": L("L4C configuration file"),
        "amplitude": L("Backscatter input"),
        "tillage": L("Detect tillage"),
        "mdb3": L("Write the MDB3 marker export"),
        "s1pix_threshold": L("Minimum Sentinel-1 pixels of a parcel", "pixels"),
        "min_coherence": L("Minimum coherence values of a parcel", "values"),
    },
    "multiannual": {
        "years": L("Declaration years"),
        "min_share": L("Overlap share that links two parcels", "fraction"),
        "grass_years": L("Grass years that make permanent grassland", "years"),
        "min_observed_dekads": L("Observed dekads a year needs", "dekads"),
        "harvest_dekads": L("Residue dekads that make a harvest", "dekads"),
        "model": L("Calibrated bare-soil model file"),
        "l4a": L("L4A product of each year (YEAR=PATH)"),
        "use_l4a": L("Use L4A crop-type predictions"),
        "l4a_min_confidence": L("Minimum L4A confidence"),
        "parcels": L("Parcels file of each year (YEAR=FILE)"),
        "mdb": L("MDB folder of each year (YEAR=DIR)"),
    },
}


def parameter_label(processor_id: str, name: str) -> ParameterLabel | None:
    """The title and unit of a processor's parameter; None when the tables lack it."""
    return PROCESSOR_LABELS.get(processor_id, {}).get(name) or COMMON.get(name)

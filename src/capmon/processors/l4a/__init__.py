"""The L4A crop-type processor (Sen4CAP's ``s4c_l4a``): parcel-level crop classification.

:func:`classify_crops` runs on any parcel time series (an MDB, or a frame in the MDB row
layout), a parcels table and a crop LUT; :func:`write_l4a_product` writes Sen4CAP's files;
the ``l4a`` processor (``capmon run l4a SITE SEASON``) does both on a workspace's season and
registers the product in the catalogue.
"""

from capmon.processors.l4a.attributes import AttributesFile, read_attributes
from capmon.processors.l4a.classify import (
    CLASSIF_VALUES,
    ExcludedClass,
    L4AResult,
    classify_crops,
    classify_features,
)
from capmon.processors.l4a.features import FeatureSettings, FeatureTable, build_features
from capmon.processors.l4a.outputs import product_files, write_l4a_product
from capmon.processors.l4a.parameters import L4AParameters
from capmon.processors.l4a.training import TrainingRules

__all__ = [
    "CLASSIF_VALUES",
    "AttributesFile",
    "ExcludedClass",
    "FeatureSettings",
    "FeatureTable",
    "L4AParameters",
    "L4AResult",
    "TrainingRules",
    "build_features",
    "classify_crops",
    "classify_features",
    "product_files",
    "read_attributes",
    "write_l4a_product",
]

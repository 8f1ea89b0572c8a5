"""The L4B grassland mowing processor (Sen4CAP's ``s4c_l4b``).

:func:`detect_mowing` runs on an MDB and the grassland parcels (:func:`grassland_parcels`),
with a Sen4CAP ``.cfg`` (:func:`read_l4b_config`) and either Sen4CAP's method or capmon's;
:func:`evaluate_mowing` scores a product against reference mowing dates; the ``l4b`` processor
(``capmon run l4b SITE SEASON``) runs it on a workspace's season and registers the product.
"""

from capmon.processors.l4b.compliance import compliance_code
from capmon.processors.l4b.config import (
    ComplianceRule,
    L4BConfig,
    default_l4b_config,
    parse_l4b_config,
    read_l4b_config,
)
from capmon.processors.l4b.evaluate import (
    MowingEvaluation,
    evaluate_mowing,
    load_reference,
    score_events,
)
from capmon.processors.l4b.fusion import MowingEvent

__all__ = [
    "ComplianceRule",
    "L4BConfig",
    "MowingEvaluation",
    "MowingEvent",
    "compliance_code",
    "default_l4b_config",
    "evaluate_mowing",
    "load_reference",
    "parse_l4b_config",
    "read_l4b_config",
    "score_events",
]

"""The L4C agricultural-practices processor (Sen4CAP's ``s4c_l4c``).

Practice CSVs and L4C configs are read and validated by :mod:`.practices` and :mod:`.config`;
:func:`analyse_practices` runs the weekly pre-processing, the harvest markers M1-M5, the
practice markers M6-M10, C_INDEX and tillage on any MDB; :func:`write_l4c_product` writes
Sen4CAP's files; the ``l4c`` processor (``capmon run l4c SITE SEASON --practice ...``) does
both on a workspace's season; :func:`evaluate_practices` compares products with the synthetic
truth.
"""

from capmon.processors.l4c.analysis import AnalysisSettings, L4CResult, analyse_practices
from capmon.processors.l4c.config import L4CConfig, TsaParameters, parse_l4c_config, read_l4c_config
from capmon.processors.l4c.evaluate import evaluate_practices
from capmon.processors.l4c.outputs import product_files, write_l4c_product
from capmon.processors.l4c.practices import (
    PracticeTable,
    import_config,
    import_practices,
    parse_practice_csv,
    read_practice_csv,
)

__all__ = [
    "AnalysisSettings",
    "L4CConfig",
    "L4CResult",
    "PracticeTable",
    "TsaParameters",
    "analyse_practices",
    "evaluate_practices",
    "import_config",
    "import_practices",
    "parse_l4c_config",
    "parse_practice_csv",
    "product_files",
    "read_l4c_config",
    "read_practice_csv",
    "write_l4c_product",
]

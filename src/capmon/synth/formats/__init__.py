"""Writers of real satellite product formats, for synthetic scenes.

They turn arrays into the files that capmon's readers and GDAL open like downloaded products:
Sen2Cor L2A ``.SAFE`` folders (:mod:`.sen2cor`), MAJA / THEIA L2A folders (:mod:`.maja`) and
Sen4CAP Sentinel-1 amplitude / coherence GeoTIFFs (:mod:`.sentinel1`). Every writer builds its
product next to the target and renames it at the end, and refuses to replace an existing
product unless ``overwrite=True``. Product names are built with :mod:`capmon.sources.naming`,
the module the readers parse them with.
"""

from capmon.synth.formats.maja import (
    CLM_BITS,
    MAJA_BANDS,
    MG2_BITS,
    maja_product_name,
    write_maja,
)
from capmon.synth.formats.sen2cor import (
    RESOLUTION_BANDS,
    S2_BANDS,
    SCL_CLASSES,
    S2Acquisition,
    absolute_orbit,
    reflectance_to_dn,
    sen2cor_product_name,
    write_sen2cor_safe,
)
from capmon.synth.formats.sentinel1 import (
    write_s1_amplitude,
    write_s1_coherence,
)

__all__ = [
    "CLM_BITS",
    "MAJA_BANDS",
    "MG2_BITS",
    "RESOLUTION_BANDS",
    "S2_BANDS",
    "SCL_CLASSES",
    "S2Acquisition",
    "absolute_orbit",
    "maja_product_name",
    "reflectance_to_dn",
    "sen2cor_product_name",
    "write_maja",
    "write_s1_amplitude",
    "write_s1_coherence",
    "write_sen2cor_safe",
]

"""Optional tillage detection after the harvest (Sen4CAP's ``TsaTillageAnalysisHandler``).

sen4cap-system.md 7.5: from the week after the harvest week until ``TLMONITORINGENDDATE`` (or
the last week), a week with NDVI > ``OPTTHRVEGCYCLE`` means regrowth (no tillage to see:
``NR``); otherwise the tillage week is the first week where the coherence candidate (M5's rule
with ``TLCOHTHRBASE``/``TLCOHTHRABS``) switches from TRUE to FALSE: the coherence of the bare
post-harvest soil drops when the soil is worked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from capmon.processors.l4c.config import TsaParameters
from capmon.processors.l4c.harvest import HarvestResult
from capmon.processors.l4c.weekly import ParcelWeeks

NO_TILLAGE = "NO-TILLAGE"


@dataclass(frozen=True)
class TillageResult:
    """The tillage week index (None: not found) and why (``found``, ``NR``, ``NO-TILLAGE``)."""

    week: int | None
    status: str


def detect_tillage(
    series: ParcelWeeks, harvest: HarvestResult, parameters: TsaParameters
) -> TillageResult:
    """The first coherence drop after the harvest (see the module docstring)."""
    if harvest.harvest is None:
        return TillageResult(None, "NR")
    p = parameters
    base = p.tlcohthrbase if p.tlcohthrbase is not None else p.number("COHTHRBASE")
    absolute = p.tlcohthrabs if p.tlcohthrabs is not None else p.number("COHTHRABS")
    if not math.isnan(series.coherence_max) and series.coherence_max < absolute:
        absolute = series.coherence_max - base
    candidate = (series.coh_change >= base) | (series.coh_max >= absolute)
    end = (
        np.datetime64(p.tlmonitoringenddate, "D")
        if p.tlmonitoringenddate is not None
        else series.weeks[-1]
    )
    vegetation = p.number("OPTTHRVEGCYCLE")
    for i in range(harvest.harvest + 1, series.size):
        if series.weeks[i] > end:
            break
        if not math.isnan(series.ndvi[i]) and series.ndvi[i] > vegetation:
            return TillageResult(None, "NR")
        if candidate[i - 1] and not candidate[i]:
            return TillageResult(i, "found")
    return TillageResult(None, NO_TILLAGE)

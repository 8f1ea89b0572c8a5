"""benchmarks/synth_vs_real.py: the figures measured on a handmade season with a known cut."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.benchmark_scripts import load_benchmark


def test_a_known_cut_and_noise_are_measured() -> None:
    days = pd.date_range("2024-03-05", "2024-11-25", freq="10D")
    ndvi = [0.80 if d < pd.Timestamp("2024-06-10") else 0.50 if d < pd.Timestamp("2024-06-25")
            else 0.75 for d in days]  # fmt: skip
    ndvi = [v - (0.2 if d.month >= 10 else 0.0) for v, d in zip(ndvi, days, strict=True)]
    pairs = pd.date_range("2024-03-07", "2024-11-25", freq="12D")
    cohe = [0.3 if d < pd.Timestamp("2024-06-20") else 0.6 for d in pairs]
    rows = pd.concat([
        pd.DataFrame({"parcel_id": 1, "signal": "NDVI", "date": days, "mean": ndvi, "count": 9,
                      "orbit": None, "date_first": None}),
        pd.DataFrame({"parcel_id": 1, "signal": "COHE_VH", "date": pairs, "mean": cohe,
                      "count": 9, "orbit": 175, "date_first": pairs - pd.Timedelta(days=12)}),
    ], ignore_index=True)  # fmt: skip
    cuts = pd.DataFrame({"parcel_id": [1], "date": [pd.Timestamp("2024-06-08")]})
    figures = load_benchmark("synth_vs_real").measure(rows, cuts, 2024)
    assert figures["clear NDVI observations"] == [float(len(days))]
    assert figures["cut: NDVI drop"] == [pytest.approx(0.30)]
    assert figures["cut: regrowth"] == [pytest.approx(0.25)]
    assert figures["cut: coherence change"] == [pytest.approx(0.30)]
    assert figures["autumn fall"] == [pytest.approx(0.75 - 0.55)]  # July-August max 0.75
    assert figures["cut: VH change"] == []  # no backscatter rows

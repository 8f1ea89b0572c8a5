"""Sentinel-1 conventions (true dB vs Sen4CAP's AMP dB) and coherence pairing checks."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from capmon.errors import InputError
from capmon.signals.sar import (
    AmplitudeConvention,
    CoherencePair,
    coherence,
    coherence_gaps,
    expected_interval_days,
    parse_convention,
    ratio_db,
    sen4cap_db,
    to_linear_power,
    to_sigma0_db,
)

SIGMA0 = np.array([0.1, 0.01, 0.0, np.nan], dtype=np.float32)


def _as(convention: AmplitudeConvention) -> np.ndarray:
    """SIGMA0 expressed in a convention (0 = nodata in the linear ones)."""
    with np.errstate(divide="ignore"):
        return {
            AmplitudeConvention.SEN4CAP_AMPLITUDE: np.sqrt(SIGMA0),
            AmplitudeConvention.SIGMA0_LINEAR: SIGMA0,
            AmplitudeConvention.GAMMA0_LINEAR: SIGMA0,
            AmplitudeConvention.SIGMA0_DB: np.array([-10.0, -20.0, np.nan, np.nan]),
            AmplitudeConvention.GAMMA0_DB: np.array([-10.0, -20.0, np.nan, np.nan]),
        }[convention]


@pytest.mark.parametrize("convention", list(AmplitudeConvention))
def test_true_db_and_sen4cap_db_in_every_convention(convention: AmplitudeConvention) -> None:
    values = _as(convention)
    true_db = to_sigma0_db(values, convention)
    amp_db = sen4cap_db(values, convention)
    np.testing.assert_allclose(true_db[:2], [-10.0, -20.0], rtol=1e-6)
    np.testing.assert_allclose(amp_db[:2], [-5.0, -10.0], rtol=1e-6)
    assert np.isnan(true_db[2:]).all()
    assert np.isnan(amp_db[2:]).all()
    assert true_db.dtype == np.float32
    assert amp_db.dtype == np.float32
    np.testing.assert_allclose(to_linear_power(values, convention)[:2], [0.1, 0.01], rtol=1e-6)


def test_sen4cap_amp_db_is_ten_log10_of_the_stored_amplitude() -> None:
    amplitude = np.array([0.25, 0.5, 1.0], dtype=np.float32)
    np.testing.assert_allclose(
        sen4cap_db(amplitude, "sen4cap_amplitude"), 10 * np.log10(amplitude), rtol=1e-6
    )
    np.testing.assert_allclose(
        to_sigma0_db(amplitude, "sen4cap_amplitude"), 20 * np.log10(amplitude), rtol=1e-6
    )


def test_negative_and_zero_linear_values_are_nodata() -> None:
    values = np.array([-0.1, 0.0, np.inf], dtype=np.float32)
    assert np.isnan(to_sigma0_db(values, "sigma0_linear")).all()
    assert np.isnan(sen4cap_db(values, "sen4cap_amplitude")).all()


def test_ratio_and_coherence() -> None:
    np.testing.assert_allclose(ratio_db([-8.0, np.nan], [-15.0, -15.0]), [7.0, np.nan])
    with pytest.raises(InputError, match="shape"):
        ratio_db([1.0], [1.0, 2.0])
    np.testing.assert_array_equal(
        coherence([0.0, 0.35, 1.0, 1.5, np.nan]),
        np.array([np.nan, 0.35, 1.0, np.nan, np.nan], np.float32),
    )


def test_unknown_convention() -> None:
    assert parse_convention("SIGMA0_DB") is AmplitudeConvention.SIGMA0_DB
    with pytest.raises(InputError, match="sen4cap_amplitude"):
        parse_convention("beta0")


def test_expected_interval() -> None:
    assert expected_interval_days({"S1A", "S1B"}) == 6
    assert expected_interval_days({"S1A", "S1C"}) == 6
    assert expected_interval_days({"S1A"}) == 12
    with pytest.raises(InputError, match="unit"):
        expected_interval_days({"S2A"})
    with pytest.raises(InputError, match="no Sentinel-1"):
        expected_interval_days(set())


def test_coherence_pair() -> None:
    pair = CoherencePair(date(2022, 1, 1), date(2022, 1, 13), orbit=124, polarisation="VV")
    assert pair.interval_days == 12
    with pytest.raises(InputError, match="follow"):
        CoherencePair(date(2022, 1, 13), date(2022, 1, 1))


def test_regular_series_has_no_gaps() -> None:
    start = date(2021, 3, 1)
    pairs = [(start + timedelta(6 * i), start + timedelta(6 * (i + 1))) for i in range(10)]
    assert coherence_gaps(pairs, 6) == []
    assert coherence_gaps([*pairs, pairs[3]], 6) == []  # a duplicate counts once


def test_gaps_report_long_pairs_and_missing_pairs() -> None:
    d = date(2022, 1, 1)
    pairs = [
        (d, d + timedelta(12)),
        (d + timedelta(12), d + timedelta(24)),
        (d + timedelta(24), d + timedelta(48)),  # a 24-day pair: one acquisition skipped
        (d + timedelta(84), d + timedelta(96)),  # pairs ending on days 60, 72, 84 missing
    ]
    gaps = coherence_gaps(pairs, 12)
    kinds = [(gap.kind, gap.start, gap.end, gap.days, gap.missing) for gap in gaps]
    assert kinds == [
        ("long_pair", d + timedelta(24), d + timedelta(48), 24, 0),
        ("missing_pairs", d + timedelta(24), d + timedelta(48), 24, 1),
        ("missing_pairs", d + timedelta(48), d + timedelta(96), 48, 3),
    ]
    # a one-day shift (orbit timing) is tolerated
    assert (
        coherence_gaps([(d, d + timedelta(13)), (d + timedelta(13), d + timedelta(25))], 12) == []
    )
    with pytest.raises(InputError, match="positive"):
        coherence_gaps(pairs, 0)

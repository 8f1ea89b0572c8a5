"""Daily weather of the synthetic region: temperature, rain, soil moisture, frost and snow.

A temperate Atlantic climate (Belgium: January about 2.5 °C, July about 18 °C, rain on about
40 % of the days). Growth in :mod:`capmon.synth.phenology` scales with a temperature factor;
soil moisture darkens bare soil in the optical bands and raises its radar backscatter; rain
and snow lower the coherence. Every winter has one snow episode in February so that each
season has snowy Sentinel-2 scenes (Sen2Cor class 11) to mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from capmon.synth.seeding import stream

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Weather:
    """Daily series from ``start`` (inclusive), one value per day."""

    start: date
    temperature: FloatArray
    rain_mm: FloatArray
    soil_moisture: FloatArray
    snow_cover: FloatArray

    def index(self, day: date) -> int:
        return (day - self.start).days

    @property
    def growth_factor(self) -> FloatArray:
        """Relative growth rate: 0 below 4 °C, 1 at 16 °C, capped at 1.25."""
        return np.clip((self.temperature - 4.0) / 12.0, 0.0, 1.25)

    @property
    def days(self) -> int:
        return len(self.temperature)


def _year_weather(seed: int, year: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    rng = stream(seed, "weather", year)
    n = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    doy = np.arange(1, n + 1, dtype=float)
    mean = 10.3 - 7.8 * np.cos(2 * math.pi * (doy - 18.0) / 365.25)
    anomaly = np.zeros(n)
    shocks = rng.normal(0.0, 1.6, n)
    for i in range(n):
        anomaly[i] = (anomaly[i - 1] * 0.8 if i else 0.0) + shocks[i]
    temperature = mean + anomaly
    wet_prob = 0.44 + 0.06 * np.cos(2 * math.pi * (doy - 15.0) / 365.25)
    rain = np.where(rng.random(n) < wet_prob, rng.exponential(4.2, n), 0.0)
    snow = np.zeros(n)
    start = int(rng.integers(date(year, 2, 2).timetuple().tm_yday, 52)) - 1
    length = int(rng.integers(4, 9))
    depth = float(rng.uniform(0.7, 1.0))
    for k in range(length):
        snow[start + k] = depth * (1.0 - 0.12 * k)
        temperature[start + k] = min(temperature[start + k], float(rng.uniform(-4.0, 0.5)))
    return temperature, rain, np.clip(snow, 0.0, 1.0)


def simulate_weather(seed: int, first_year: int, last_year: int) -> Weather:
    """Weather for whole calendar years ``first_year`` to ``last_year`` (each year keyed alone)."""
    temps, rains, snows = [], [], []
    for year in range(first_year, last_year + 1):
        t, r, s = _year_weather(seed, year)
        temps.append(t)
        rains.append(r)
        snows.append(s)
    temperature = np.concatenate(temps)
    rain = np.concatenate(rains)
    snow = np.concatenate(snows)
    moisture = np.empty_like(rain)
    m = 0.6
    day0 = date(first_year, 1, 1)
    for i in range(len(rain)):
        doy = (day0 + timedelta(days=i)).timetuple().tm_yday
        drying = 0.035 + 0.07 * max(0.0, math.sin(math.pi * (doy - 60) / 245.0))
        m = min(1.0, m * math.exp(-drying) + rain[i] / 22.0)
        moisture[i] = m
    return Weather(day0, temperature, rain, moisture, snow)

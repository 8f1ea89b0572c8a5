"""Sen4CAP's L4B ``.cfg`` (INI) files, read unchanged (sen4cap-system.md 2.4).

Sections and keys are those of ``S4C_L4B_Default_Config.cfg``; a missing section or key takes
the default of that file. Keys are case-insensitive (Python's ``configparser``, as Sen4CAP).
A value of the wrong type raises :class:`~capmon.errors.InputError` naming the file, the line,
the section and the key. The deprecated ``[S2_model]`` section is read but only
``apply_model = False`` is supported, as in Sen4CAP's default.

Departures: ``sc_fact`` and ``invalid_data`` are read and kept, but the MDB already stores
physical values (NDVI 0..1, no nodata sentinel), so they are not applied; ``corrupted_th``
applies to the physical values. Compliance crop codes match a parcel's ``ori_crop`` as text or,
when both are integers, by value (``046`` matches a code stored as the integer 46).
"""

from __future__ import annotations

import ast
import configparser
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from capmon.errors import InputError

T = TypeVar("T")

# MDB signal of each Sen4CAP L3B product type of ``prod_type_list``.
PRODUCT_SIGNALS = {"SNDVI": "NDVI", "SLAIMONO": "LAI", "SFAPARMONO": "FAPAR"}


@dataclass(frozen=True)
class S1Settings:
    """``[S1_constants]`` and ``[S1_processing]``."""

    time_interval: int = 6
    sar_spacing: float = 20.0
    cohe_enl: float = 100.0
    min_cohe_var: float = 0.024
    acq_time_asc: str = "18:00:00"
    acq_time_desc: str = "06:00:00"
    pol_types: tuple[str, ...] = ("VH",)
    data_types: tuple[str, ...] = ("COHE",)
    invalid_data: float = math.nan
    saturate_sigma: bool = True
    pfa: float = 3.0e-8
    stat_smpl_n: int = 5
    non_overlap_interval_days: int = 28
    erode_pixels: int = 0


@dataclass(frozen=True)
class S2Settings:
    """``[S2_constants]``, ``[S2_model]`` and ``[S2_processing]`` (first product type only)."""

    time_interval: int = 5
    acq_time: str = "10:30:00"
    apply_model: bool = False
    prod_type: str = "SNDVI"
    sc_fact: float = 1000.0
    corrupted_th: float = 0.1
    invalid_data: float = -10000.0
    decreasing_abs_th: float = 0.12
    decreasing_rate_th: float = -0.000001
    increasing_rate_th: float = 0.05
    high_abs_th: float = 0.75
    low_abs_th: float = 0.5
    erode_pixels: int = 0
    no_mowing_after_det: int = 30
    non_overlap_interval_days: int = 45
    stat_smpl_n: int = 0

    @property
    def signal(self) -> str:
        """The MDB signal of ``prod_type`` (NDVI for SNDVI)."""
        return PRODUCT_SIGNALS[self.prod_type]


@dataclass(frozen=True)
class ComplianceRule:
    """One ``[compliancy]`` entry: mowing required for ``crop_code`` in [start, end]."""

    crop_code: str
    start: date
    end: date
    rule: int = 0

    def matches(self, ori_crop: object) -> bool:
        """True when a parcel's ``ori_crop`` is this rule's code (as text, or as integers)."""
        if ori_crop is None or (isinstance(ori_crop, float) and math.isnan(ori_crop)):
            return False
        text = str(ori_crop).strip()
        if text == self.crop_code:
            return True
        try:
            return int(text) == int(self.crop_code)
        except ValueError:
            return False


@dataclass(frozen=True)
class L4BConfig:
    """An L4B configuration: the grassland classes, S1 and S2 settings and compliance rules."""

    ctnum_filter: tuple[int, ...] = ()
    s1_orbits: tuple[int, ...] = ()
    s1_orbit_types: tuple[str, ...] = ()
    s2_tiles: tuple[str, ...] = ()
    s1: S1Settings = field(default_factory=S1Settings)
    s2: S2Settings = field(default_factory=S2Settings)
    compliance: tuple[ComplianceRule, ...] = ()
    fwd_tol_days: int = 3
    bkw_tol_days: int = 3
    source: Path | None = None

    def rule_for(self, ori_crop: object) -> ComplianceRule | None:
        """The compliance rule of a parcel's declared crop, if any."""
        for rule in self.compliance:
            if rule.matches(ori_crop):
                return rule
        return None


_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_KEY = re.compile(r"^([^\s;#=:][^=:]*?)\s*[=:]")


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, lower-case key) -> line number, for error messages."""
    lines: dict[tuple[str, str], int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _SECTION.match(line)
        if header:
            section = header.group(1).strip()
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((section, key.group(1).strip().lower()), number)
    return lines


class _Reader:
    """Typed access to a parsed ``.cfg`` with errors naming file, line, section and key."""

    def __init__(self, parser: configparser.ConfigParser, text: str, where: str) -> None:
        self.parser = parser
        self.lines = _key_lines(text)
        self.where = where

    def _raw(self, section: str, key: str) -> str | None:
        if not self.parser.has_section(section) or not self.parser.has_option(section, key):
            return None
        value = self.parser.get(section, key)
        # Sen4CAP's file puts indented comments under some keys; configparser keeps them as
        # continuation lines of the value.
        kept = [ln for ln in value.splitlines() if not ln.strip().startswith((";", "#"))]
        return "\n".join(kept).strip()

    def fail(self, section: str, key: str, raw: str, expected: str) -> InputError:
        line = self.lines.get((section, key.lower()))
        at = f", line {line}" if line is not None else ""
        return InputError(
            f"{self.where}{at}: [{section}] {key} = {raw!r} is not valid: expected {expected}"
        )

    def typed(
        self, section: str, key: str, default: T, convert: Callable[[str], T], expected: str
    ) -> T:
        raw = self._raw(section, key)
        if raw is None or raw == "":
            return default
        try:
            return convert(raw)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise self.fail(section, key, raw, expected) from exc

    def integer(self, section: str, key: str, default: int) -> int:
        return self.typed(section, key, default, _integer, "an integer")

    def number(self, section: str, key: str, default: float) -> float:
        return self.typed(section, key, default, _first_number, "a number")

    def boolean(self, section: str, key: str, default: bool) -> bool:
        return self.typed(section, key, default, _boolean, "True or False")

    def text(self, section: str, key: str, default: str) -> str:
        return self.typed(section, key, default, str, "text")

    def words(self, section: str, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        return self.typed(section, key, default, _words, "a comma separated list")

    def integers(self, section: str, key: str) -> tuple[int, ...]:
        return self.typed(
            section, key, (), lambda raw: tuple(_integer(w) for w in _words(raw)),
            "a comma separated list of integers",
        )  # fmt: skip


def _integer(raw: str) -> int:
    value = float(raw)
    if not value.is_integer():
        raise ValueError(raw)
    return int(value)


def _first_number(raw: str) -> float:
    """A number; Sen4CAP allows one per product type (comma list): the first one is used."""
    numbers = [float(word) for word in _words(raw)]  # every item must be a number
    return numbers[0]


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(raw)


def _words(raw: str) -> tuple[str, ...]:
    words = tuple(w.strip().strip("'\"") for w in raw.replace("\n", ",").split(","))
    return tuple(w for w in words if w)


def _day(text: str) -> date:
    return datetime.strptime(text.strip(), "%d/%m/%Y").date()


def _intervals(raw: str) -> tuple[tuple[date, date], ...]:
    value = ast.literal_eval(raw)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        value = (value,)  # a single interval
    if not isinstance(value, list | tuple):
        raise ValueError(raw)
    out = []
    for pair in value:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise ValueError(raw)
        start, end = _day(str(pair[0])), _day(str(pair[1]))
        if end < start:
            raise ValueError(raw)
        out.append((start, end))
    return tuple(out)


def _compliance(reader: _Reader) -> tuple[ComplianceRule, ...]:
    section = "compliancy"
    codes = reader.words(section, "crop_codes", ())
    no_intervals: tuple[tuple[date, date], ...] = ()
    intervals = reader.typed(
        section, "crop_time_intervals", no_intervals, _intervals,
        "a list of ('dd/mm/yyyy', 'dd/mm/yyyy') intervals, each start before its end",
    )  # fmt: skip
    rules = reader.integers(section, "crop_rule")
    if not codes:
        return ()
    if len(intervals) != len(codes):
        raise reader.fail(
            section, "crop_time_intervals", f"{len(intervals)} intervals",
            f"one interval per crop code ({len(codes)} in crop_codes)",
        )  # fmt: skip
    if not rules:
        rules = tuple(0 for _ in codes)
    if len(rules) != len(codes):
        raise reader.fail(
            section, "crop_rule", f"{len(rules)} rules",
            f"one rule per crop code ({len(codes)} in crop_codes)",
        )  # fmt: skip
    for rule in rules:
        if rule not in (0, 1):
            raise reader.fail(section, "crop_rule", str(rule), "0 (standard) or 1 (Lithuania)")
    return tuple(
        ComplianceRule(code, start, end, rule)
        for code, (start, end), rule in zip(codes, intervals, rules, strict=True)
    )


def parse_l4b_config(text: str, source: Path | None = None) -> L4BConfig:
    """Parse the text of an L4B ``.cfg`` (``source`` names it in errors)."""
    where = str(source) if source is not None else "L4B config"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=where)
    except configparser.Error as exc:
        raise InputError(f"{where}: not a valid L4B config: {exc}") from exc
    r = _Reader(parser, text, where)
    s1d, s2d = S1Settings(), S2Settings()
    g, c1, p1 = "GENERAL_CONFIG", "S1_constants", "S1_processing"
    c2, m2, p2 = "S2_constants", "S2_model", "S2_processing"
    s1 = S1Settings(
        time_interval=r.integer(c1, "S1_time_interval", s1d.time_interval),
        sar_spacing=r.number(c1, "SAR_spacing", s1d.sar_spacing),
        cohe_enl=r.number(c1, "cohe_ENL", s1d.cohe_enl),
        min_cohe_var=r.number(c1, "min_cohe_var", s1d.min_cohe_var),
        acq_time_asc=r.text(c1, "locAcqTimeASC", s1d.acq_time_asc),
        acq_time_desc=r.text(c1, "locAcqTimeDESC", s1d.acq_time_desc),
        pol_types=tuple(p.upper() for p in r.words(p1, "pol_types", s1d.pol_types)),
        data_types=tuple(d.upper() for d in r.words(p1, "data_types", s1d.data_types)),
        invalid_data=r.number(p1, "invalid_data", s1d.invalid_data),
        saturate_sigma=r.boolean(p1, "saturate_sigma", s1d.saturate_sigma),
        pfa=r.number(p1, "pfa", s1d.pfa),
        stat_smpl_n=r.integer(p1, "stat_smpl_n", s1d.stat_smpl_n),
        non_overlap_interval_days=r.integer(
            p1, "non_overlap_interval_days", s1d.non_overlap_interval_days
        ),
        erode_pixels=r.integer(p1, "erode_pixels", s1d.erode_pixels),
    )
    s2 = S2Settings(
        time_interval=r.integer(c2, "S2_time_interval", s2d.time_interval),
        acq_time=r.text(c2, "locAcqTime", s2d.acq_time),
        apply_model=r.boolean(m2, "apply_model", s2d.apply_model),
        prod_type=r.words(p2, "prod_type_list", (s2d.prod_type,))[0].upper(),
        sc_fact=r.number(p2, "sc_fact", s2d.sc_fact),
        corrupted_th=r.number(p2, "corrupted_th", s2d.corrupted_th),
        invalid_data=r.number(p2, "invalid_data", s2d.invalid_data),
        decreasing_abs_th=r.number(p2, "decreasing_abs_th", s2d.decreasing_abs_th),
        decreasing_rate_th=r.number(p2, "decreasing_rate_th", s2d.decreasing_rate_th),
        increasing_rate_th=r.number(p2, "increasing_rate_th", s2d.increasing_rate_th),
        high_abs_th=r.number(p2, "high_abs_th", s2d.high_abs_th),
        low_abs_th=r.number(p2, "low_abs_th", s2d.low_abs_th),
        erode_pixels=r.integer(p2, "erode_pixels", s2d.erode_pixels),
        no_mowing_after_det=r.integer(p2, "no_mowing_after_det", s2d.no_mowing_after_det),
        non_overlap_interval_days=r.integer(
            p2, "non_overlap_interval_days", s2d.non_overlap_interval_days
        ),
        stat_smpl_n=r.integer(p2, "stat_smpl_n", s2d.stat_smpl_n),
    )
    _check(r, s1, s2)
    return L4BConfig(
        ctnum_filter=r.integers(g, "CTNUM_FILTER"),
        s1_orbits=r.integers(g, "s1_orbit_list_filter"),
        s1_orbit_types=tuple(w.upper() for w in r.words(g, "s1_orbit_type_list_filter", ())),
        s2_tiles=r.words(g, "s2_tiles_list_filter", ()),
        s1=s1,
        s2=s2,
        compliance=_compliance(r),
        fwd_tol_days=r.integer("validation", "fwd_tol_days", 3),
        bkw_tol_days=r.integer("validation", "bkw_tol_days", 3),
        source=source,
    )


def _check(r: _Reader, s1: S1Settings, s2: S2Settings) -> None:
    """Values of the right type but outside what the algorithms accept."""
    p1, p2, m2 = "S1_processing", "S2_processing", "S2_model"
    if not 0 < s1.pfa < 0.5:
        raise r.fail(p1, "pfa", str(s1.pfa), "a false-alarm probability in (0, 0.5)")
    if s1.stat_smpl_n < 2:
        raise r.fail(p1, "stat_smpl_n", str(s1.stat_smpl_n), "at least 2 samples for the trend")
    for pol in s1.pol_types:
        if pol not in ("VV", "VH"):
            raise r.fail(p1, "pol_types", ", ".join(s1.pol_types), "VV and/or VH")
    if s1.min_cohe_var < 0:
        raise r.fail("S1_constants", "min_cohe_var", str(s1.min_cohe_var), "a variance >= 0")
    if s2.prod_type not in PRODUCT_SIGNALS:
        raise r.fail(p2, "prod_type_list", s2.prod_type, ", ".join(PRODUCT_SIGNALS))
    if s2.apply_model:
        raise r.fail(
            m2, "apply_model", "True", "False (the deprecated NDVI model is not supported)"
        )
    for key in ("no_mowing_after_det", "non_overlap_interval_days"):
        if getattr(s2, key) < 0:
            raise r.fail(p2, key, str(getattr(s2, key)), "a number of days >= 0")
    if s1.non_overlap_interval_days < 0:
        raise r.fail(
            p1, "non_overlap_interval_days", str(s1.non_overlap_interval_days), "days >= 0"
        )


def read_l4b_config(path: str | Path) -> L4BConfig:
    """Read an L4B ``.cfg`` file (UTF-8, or Latin-1 as a fallback)."""
    source = Path(path)
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise InputError(f"L4B config {source} not found") from None
    except OSError as exc:
        raise InputError(f"cannot read the L4B config {source}: {exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_l4b_config(text, source)


def default_l4b_config(ctnum_filter: Sequence[int] = ()) -> L4BConfig:
    """Sen4CAP's default configuration, with the grassland classes ``ctnum_filter``."""
    return L4BConfig(ctnum_filter=tuple(ctnum_filter))

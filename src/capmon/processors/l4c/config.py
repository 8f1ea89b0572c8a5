"""Sen4CAP's L4C ``.cfg`` files: the time-series analysis thresholds, per practice.

The file is an INI file (sen4cap-system.md 2.5). ``[DEFAULT_TIME_SERIES_ANALYSIS_PARAMS]`` holds
the defaults; ``[CC_…]``, ``[FL_…]``, ``[NFC_…]`` and ``[NA_TIME_SERIES_ANALYSIS_PARAMS]``
override them for one practice with keys prefixed ``CC_``, ``FL_``, ``NFC_``, ``NA_``. Values
may be quoted, ``${YEAR}`` is replaced by the year, an empty value means "use the default" and
``-10000`` means "not available": a key with a code default (``EFANDVIMIN`` 300,
``EFAAMPTHR`` 0.01, ``CATCHPERIOD`` 56, ``CATCHPROPORTION`` 1/3) falls back to it, any other
threshold becomes None and the marker it drives is not evaluated (NA).

The parser is written here (not :mod:`configparser`) so that a bad value names its line, and
so that the duplicated ``TLCOHTHRABS`` key of Sen4CAP's own default file is accepted (the last
one wins, as in Sen4CAP, and a note says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Literal

from capmon.errors import InputError

NOT_AVAILABLE = -10000.0
PracticeCode = Literal["CC", "FL", "NFC", "NA"]
PRACTICE_CODES: tuple[PracticeCode, ...] = ("CC", "FL", "NFC", "NA")
PRACTICE_NAMES: dict[PracticeCode, str] = {
    "CC": "CatchCrop",
    "FL": "Fallow",
    "NFC": "NFC",
    "NA": "NA",
}
"""Sen4CAP's ``PRACTICE`` value of each practice short name."""
CLI_NAMES: dict[str, PracticeCode] = {"catchcrop": "CC", "fallow": "FL", "nfc": "NFC", "na": "NA"}
DEFAULT_SECTION = "DEFAULT_TIME_SERIES_ANALYSIS_PARAMS"
SECTIONS = {f"{code}_TIME_SERIES_ANALYSIS_PARAMS": code for code in PRACTICE_CODES}

KeyKind = Literal["number", "date", "text"]
# key: (kind, default, code default used when the value is -10000)
KEYS: dict[str, tuple[KeyKind, float | str | None, float | None]] = {
    "OPTTHRVEGCYCLE": ("number", 350.0, None),
    "NDVIDW": ("number", 300.0, None),
    "NDVIUP": ("number", 350.0, None),
    "NDVISTEP": ("number", 5.0, None),
    "OPTTHRMIN": ("number", 100.0, None),
    "COHTHRBASE": ("number", 0.05, None),
    "COHTHRHIGH": ("number", 0.15, None),
    "COHTHRABS": ("number", 0.75, None),
    "TLCOHTHRBASE": ("number", 0.05, None),
    "TLCOHTHRABS": ("number", 0.75, None),
    "TLMONITORINGENDDATE": ("date", None, None),
    "AMPTHRMIN": ("number", 0.1, None),
    "CATCHMAIN": ("text", "", None),
    "CATCHPERIOD": ("number", 56.0, 56.0),
    "CATCHPERIODSTART": ("date", None, None),
    "CATCHCROPISMAIN": ("text", "", None),
    "CATCHPROPORTION": ("number", 1.0 / 3.0, 1.0 / 3.0),
    "EFANDVITHR": ("number", 325.0, None),
    "EFANDVIUP": ("number", 400.0, None),
    "EFANDVIDW": ("number", 300.0, None),
    "EFACOHCHANGE": ("number", 0.2, None),
    "EFACOHVALUE": ("number", 0.7, None),
    "EFANDVIMIN": ("number", 300.0, 300.0),
    "EFAAMPTHR": ("number", 0.01, 0.01),
    "STDDEVINAMPTHR": ("number", 1.0, None),
    "AMPTHRVALDEN": ("number", 2.0, None),
    "OPTTHRBUFDEN": ("number", 4.0, None),
    "AMPTHRBREAKDEN": ("number", 6.0, None),
    "FLMARKSTARTDATE": ("date", None, None),
    "FLMARKSTENDDATE": ("date", None, None),
}


@dataclass(frozen=True)
class TsaParameters:
    """The resolved thresholds of one practice (Sen4CAP key names, lower case).

    NDVI thresholds are NDVI x 1000; amplitude thresholds are on Sen4CAP's "AMP dB" scale;
    coherence thresholds are 0..1. None means "not available" (the marker is NA).
    """

    optthrvegcycle: float | None = 350.0
    ndvidw: float | None = 300.0
    ndviup: float | None = 350.0
    ndvistep: float | None = 5.0
    optthrmin: float | None = 100.0
    cohthrbase: float | None = 0.05
    cohthrhigh: float | None = 0.15
    cohthrabs: float | None = 0.75
    tlcohthrbase: float | None = 0.05
    tlcohthrabs: float | None = 0.75
    tlmonitoringenddate: date | None = None
    ampthrmin: float | None = 0.1
    catchmain: str = ""
    catchperiod: float | None = 56.0
    catchperiodstart: date | None = None
    catchcropismain: str = ""
    catchproportion: float | None = 1.0 / 3.0
    efandvithr: float | None = 325.0
    efandviup: float | None = 400.0
    efandvidw: float | None = 300.0
    efacohchange: float | None = 0.2
    efacohvalue: float | None = 0.7
    efandvimin: float | None = 300.0
    efaampthr: float | None = 0.01
    stddevinampthr: float | None = 1.0
    ampthrvalden: float | None = 2.0
    optthrbufden: float | None = 4.0
    ampthrbreakden: float | None = 6.0
    flmarkstartdate: date | None = None
    flmarkstenddate: date | None = None

    def number(self, key: str) -> float:
        """A numeric threshold that must be available (InputError naming the key otherwise)."""
        value = getattr(self, key.lower())
        if value is None:
            raise InputError(f"L4C config key {key.upper()} is not available (-10000) here")
        return float(value)


MDB3_PARAMETERS = TsaParameters()
"""Sen4CAP's hard-coded MDB3 thresholds (the defaults above, sen4cap-system.md 3.2)."""


@dataclass(frozen=True)
class ConfigValue:
    """One ``KEY=VALUE`` line of a config file."""

    key: str
    raw: str
    line: int


@dataclass(frozen=True)
class L4CConfig:
    """A parsed L4C config: the default section and the practice sections, with line numbers."""

    source: str
    year: int | None
    defaults: dict[str, ConfigValue] = field(default_factory=dict)
    practices: dict[str, dict[str, ConfigValue]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def parameters(self, practice: PracticeCode) -> TsaParameters:
        """The thresholds of ``practice``: built-in defaults, the file's defaults, its section."""
        values: dict[str, object] = {}
        for source in (self.defaults, self.practices.get(practice, {})):
            for key, entry in source.items():
                converted = _convert(entry, self.source, self.year)
                if converted is _UNSET:
                    continue
                values[key.lower()] = converted
        return TsaParameters(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """The config as JSON-ready data (for reports)."""
        return {
            "source": self.source,
            "year": self.year,
            "defaults": {k: v.raw for k, v in self.defaults.items()},
            "practices": {p: {k: v.raw for k, v in s.items()} for p, s in self.practices.items()},
            "notes": list(self.notes),
        }


_UNSET = object()
_SECTION = re.compile(r"^\[\s*([^\]]+?)\s*\]\s*$")


def _strip_value(raw: str) -> str:
    value = raw.strip()
    for quote in ('"', "'"):
        if len(value) >= 2 and value.startswith(quote) and value.endswith(quote):
            value = value[1:-1].strip()
    return value


def _convert(entry: ConfigValue, source: str, year: int | None) -> object:
    """The typed value of ``entry``; _UNSET for an empty value (the default applies)."""
    kind, _default, code_default = KEYS[entry.key]
    value = _strip_value(entry.raw)
    if "${YEAR}" in value:
        if year is None:
            raise InputError(
                f"{source}, line {entry.line}: key {entry.key} uses ${{YEAR}} but no year is known"
            )
        value = value.replace("${YEAR}", str(year))
    if value == "":
        return _UNSET
    where = f"{source}, line {entry.line}: key {entry.key}"
    if kind == "text":
        return value
    if kind == "date":
        if value == "-10000":
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise InputError(f"{where} must be a date YYYY-MM-DD, got {value!r}") from None
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where} must be a number, got {value!r}") from None
    if number == NOT_AVAILABLE:
        return code_default
    if number != number or number in (float("inf"), float("-inf")):
        raise InputError(f"{where} must be a finite number, got {value!r}")
    return number


def parse_l4c_config(text: str, source: str = "<config>", year: int | None = None) -> L4CConfig:
    """Parse an L4C config; every value is checked (InputError names the line and key)."""
    defaults: dict[str, ConfigValue] = {}
    practices: dict[str, dict[str, ConfigValue]] = {}
    notes: list[str] = []
    section: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        header = _SECTION.match(stripped)
        if header:
            section = header.group(1).upper()
            if section not in ("COMMON", DEFAULT_SECTION, *SECTIONS):
                known = ", ".join(("COMMON", DEFAULT_SECTION, *SECTIONS))
                raise InputError(
                    f"{source}, line {number}: unknown section [{header.group(1)}] (known: {known})"
                )
            continue
        if "=" not in stripped:
            raise InputError(f"{source}, line {number}: expected KEY=VALUE, got {stripped!r}")
        key, raw = (part.strip() for part in stripped.split("=", 1))
        key = key.upper()
        if section is None:
            raise InputError(f"{source}, line {number}: key {key} is outside any section")
        if section == "COMMON":
            continue
        if section == DEFAULT_SECTION:
            target, name = defaults, key
        else:
            code = SECTIONS[section]
            prefix = f"{code}_"
            if not key.startswith(prefix):
                raise InputError(
                    f"{source}, line {number}: key {key} in section [{section}] must start "
                    f"with {prefix}"
                )
            target, name = practices.setdefault(code, {}), key[len(prefix) :]
        if name not in KEYS:
            raise InputError(f"{source}, line {number}: unknown key {key}")
        entry = ConfigValue(name, raw, number)
        if name in target:
            notes.append(
                f"line {number}: {key} repeats line {target[name].line}; the last value is used"
            )
        _convert(entry, source, year)  # validates the type now, with the line number
        target[name] = entry
    if section is None and not defaults:
        raise InputError(f"{source}: no section found; is this an L4C config file?")
    return L4CConfig(source, year, defaults, practices, tuple(notes))


def read_l4c_config(path: str | Path, year: int | None = None) -> L4CConfig:
    """Read and parse an L4C config file."""
    config_path = Path(path)
    if not config_path.is_file():
        raise InputError(f"L4C config {config_path} does not exist")
    try:
        text = config_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"L4C config {config_path} is not UTF-8 text: {exc}") from exc
    return parse_l4c_config(text, str(config_path), year)


def default_config(year: int | None = None) -> L4CConfig:
    """Sen4CAP's defaults (``S4C_L4C_Default_Config.cfg``): no override in any section."""
    return L4CConfig("<Sen4CAP defaults>", year)


def parameter_names() -> list[str]:
    """Every key of the config, upper case as in the files."""
    return [f.name.upper() for f in fields(TsaParameters)]


def practice_code(value: str) -> PracticeCode:
    """A practice short name from ``catchcrop|fallow|nfc|na``, ``CC|FL|NFC|NA`` or Sen4CAP's
    ``PRACTICE`` value (``CatchCrop``...)."""
    text = value.strip()
    lowered = text.lower()
    if lowered in CLI_NAMES:
        return CLI_NAMES[lowered]
    for code, name in PRACTICE_NAMES.items():
        if lowered in (code.lower(), name.lower()):
            return code
    known = "catchcrop, fallow, nfc, na (or CC, FL, NFC, NA)"
    raise InputError(f"unknown practice {value!r}; known: {known}")

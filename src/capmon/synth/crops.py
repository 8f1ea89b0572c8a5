"""The crop catalogue of the synthetic world: Sen4CAP LUT rows and phenology parameters.

Crop codes are those of the Flemish (BE-VLG) declarations (``311`` Wintertarwe...), which the
synthetic landscape in Belgium declares. The LUT columns follow Sen4CAP (sen4cap-system.md 2.3).
The ``lc`` land-cover codes are not documented by Sen4CAP; capmon's synthetic LUT uses
1 = arable crop, 2 = permanent crop, 3 = grassland, 4 = fallow (all monitorable, ``0 < lc < 5``).

Phenology parameters drive :mod:`capmon.synth.phenology`: dates are (month, day) of the
harvest year (``sown_previous_year`` for winter crops), growth rates are per day at full
temperature, ``bmax`` is the vegetation water content (kg/m²) that drives the radar model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from capmon.parcels.lut_schema import LUT_COLUMNS as SEN4CAP_LUT_COLUMNS


class CropKind(StrEnum):
    """How a crop occupies the year: sown in autumn, sown in spring, perennial grass, fallow."""

    WINTER = "winter"
    SPRING = "spring"
    GRASS = "grass"
    FALLOW = "fallow"


class CoverClass(StrEnum):
    """Multi-annual land-cover class of a parcel in one year (CAP definitions)."""

    ARABLE = "arable"
    TEMPORARY_GRASSLAND = "temporary_grassland"
    PERMANENT_GRASSLAND = "permanent_grassland"
    PERMANENT_CROP = "permanent_crop"


@dataclass(frozen=True)
class LutEntry:
    """The Sen4CAP LUT columns of a crop besides ``ori_crop`` and ``ct``."""

    ctnum: int
    lc: int
    ctnuml4a: int
    ctl4a: str
    ctnumdiv: int
    eaa: int
    al: int
    pgrass: int
    tgrass: int
    fallow: int
    cwater: int


@dataclass(frozen=True)
class CropType:
    """One declared crop: its Sen4CAP LUT row and its phenology."""

    code: int
    name: str
    english: str
    lut: LutEntry
    kind: CropKind
    sow: tuple[int, int] = (1, 1)
    sow_jitter: int = 0
    sown_previous_year: bool = False
    emergence_days: int = 10
    autumn_cap: float = 0.0
    gmax: float = 0.9
    growth_rate: float = 0.12
    senescence: tuple[int, int] | None = None
    senescence_days: int = 25
    harvest: tuple[int, int] | None = None
    harvest_jitter: int = 7
    bmax: float = 2.0
    stubble: float = 0.1
    harvest_roughness: float = 0.4
    flowering: tuple[tuple[int, int], tuple[int, int]] | None = None
    ridged: bool = False
    nitrogen_fixing: bool = False

    @property
    def ctnum(self) -> int:
        return self.lut.ctnum

    @property
    def ctnuml4a(self) -> int:
        return self.lut.ctnuml4a

    @property
    def ct(self) -> str:
        """Sen4CAP ``ct`` (crop type name)."""
        return self.english

    @property
    def is_grass(self) -> bool:
        return self.kind is CropKind.GRASS

    @property
    def is_arable_crop(self) -> bool:
        """An annual crop that is sown and harvested (not grass, not fallow)."""
        return self.kind in (CropKind.WINTER, CropKind.SPRING)


def _lut(
    ctnum: int, lc: int, l4a: int, l4a_name: str, div: int, eaa: int, al: int, pg: int, tg: int,
    fl: int,
) -> LutEntry:  # fmt: skip
    return LutEntry(ctnum, lc, l4a, l4a_name, div, eaa, al, pg, tg, fl, 0)


WINTER_WHEAT = CropType(
    311, "Wintertarwe", "Winter wheat", _lut(1, 1, 1, "Winter wheat", 1, 1, 1, 0, 0, 0),
    kind=CropKind.WINTER, sow=(10, 15), sow_jitter=14, sown_previous_year=True,
    emergence_days=16, autumn_cap=0.32, gmax=0.95, growth_rate=0.075,
    senescence=(6, 22), senescence_days=26, harvest=(7, 28), harvest_jitter=8, bmax=2.6,
    stubble=0.55, harvest_roughness=0.35,
)  # fmt: skip
WINTER_BARLEY = CropType(
    321, "Wintergerst", "Winter barley", _lut(2, 1, 2, "Winter barley", 2, 1, 1, 0, 0, 0),
    kind=CropKind.WINTER, sow=(9, 30), sow_jitter=9, sown_previous_year=True,
    emergence_days=12, autumn_cap=0.38, gmax=0.93, growth_rate=0.085,
    senescence=(6, 6), senescence_days=24, harvest=(7, 8), harvest_jitter=6, bmax=2.2,
    stubble=0.5, harvest_roughness=0.35,
)  # fmt: skip
SPRING_BARLEY = CropType(
    322, "Zomergerst", "Spring barley", _lut(3, 1, 3, "Spring cereals", 3, 1, 1, 0, 0, 0),
    kind=CropKind.SPRING, sow=(3, 22), sow_jitter=10, emergence_days=12, gmax=0.88,
    growth_rate=0.12, senescence=(7, 2), senescence_days=22, harvest=(8, 2), harvest_jitter=6,
    bmax=1.8, stubble=0.45, harvest_roughness=0.35,
)  # fmt: skip
SILAGE_MAIZE = CropType(
    201, "Silomaïs", "Silage maize", _lut(4, 1, 4, "Maize", 4, 1, 1, 0, 0, 0),
    kind=CropKind.SPRING, sow=(4, 30), sow_jitter=9, emergence_days=11, gmax=0.93,
    growth_rate=0.13, senescence=(9, 5), senescence_days=40, harvest=(9, 22), harvest_jitter=10,
    bmax=4.8, stubble=0.12, harvest_roughness=0.45,
)  # fmt: skip
GRAIN_MAIZE = CropType(
    202, "Korrelmaïs", "Grain maize", _lut(5, 1, 4, "Maize", 4, 1, 1, 0, 0, 0),
    kind=CropKind.SPRING, sow=(4, 28), sow_jitter=9, emergence_days=11, gmax=0.93,
    growth_rate=0.13, senescence=(9, 1), senescence_days=32, harvest=(10, 22), harvest_jitter=10,
    bmax=4.5, stubble=0.5, harvest_roughness=0.4,
)  # fmt: skip
SUGAR_BEET = CropType(
    91, "Suikerbieten", "Sugar beet", _lut(6, 1, 5, "Sugar beet", 5, 1, 1, 0, 0, 0),
    kind=CropKind.SPRING, sow=(3, 28), sow_jitter=10, emergence_days=14, gmax=0.96,
    growth_rate=0.11, senescence=None, harvest=(10, 20), harvest_jitter=24, bmax=3.4,
    stubble=0.12, harvest_roughness=0.75,
)  # fmt: skip
RAPESEED = CropType(
    4111, "Winterkoolzaad", "Winter rapeseed", _lut(7, 1, 6, "Rapeseed", 6, 1, 1, 0, 0, 0),
    kind=CropKind.WINTER, sow=(8, 28), sow_jitter=6, sown_previous_year=True, emergence_days=8,
    autumn_cap=0.6, gmax=0.94, growth_rate=0.09, senescence=(6, 8), senescence_days=26,
    harvest=(7, 14), harvest_jitter=6, bmax=3.0, stubble=0.45, harvest_roughness=0.35,
    flowering=((4, 12), (5, 12)),
)  # fmt: skip
POTATO = CropType(
    901, "Aardappelen", "Potato", _lut(8, 1, 7, "Potato", 7, 1, 1, 0, 0, 0),
    kind=CropKind.SPRING, sow=(4, 15), sow_jitter=10, emergence_days=24, gmax=0.9,
    growth_rate=0.14, senescence=(8, 12), senescence_days=18, harvest=(9, 22), harvest_jitter=16,
    bmax=2.0, stubble=0.08, harvest_roughness=0.85, ridged=True,
)  # fmt: skip
FIELD_PEAS = CropType(
    51, "Voedererwten", "Field peas", _lut(9, 1, 8, "Legumes", 8, 1, 1, 0, 0, 0),
    kind=CropKind.SPRING, sow=(3, 16), sow_jitter=9, emergence_days=12, gmax=0.86,
    growth_rate=0.11, senescence=(6, 22), senescence_days=20, harvest=(7, 18), harvest_jitter=6,
    bmax=1.5, stubble=0.35, harvest_roughness=0.35, nitrogen_fixing=True,
)  # fmt: skip
FIELD_BEANS = CropType(
    52, "Tuin- en veldbonen", "Field beans", _lut(10, 1, 8, "Legumes", 9, 1, 1, 0, 0, 0),
    kind=CropKind.SPRING, sow=(3, 10), sow_jitter=9, emergence_days=14, gmax=0.9,
    growth_rate=0.1, senescence=(7, 12), senescence_days=24, harvest=(8, 18), harvest_jitter=7,
    bmax=2.4, stubble=0.35, harvest_roughness=0.35, nitrogen_fixing=True,
)  # fmt: skip
PERMANENT_GRASS = CropType(
    60, "Grasland", "Permanent grassland", _lut(11, 3, 9, "Grassland", 10, 1, 0, 1, 0, 0),
    kind=CropKind.GRASS, gmax=0.93, growth_rate=0.13, bmax=1.4,
)  # fmt: skip
TEMPORARY_GRASS = CropType(
    63, "Graskruiden mengsel", "Temporary grassland",
    _lut(12, 3, 9, "Grassland", 11, 1, 1, 0, 1, 0),
    kind=CropKind.GRASS, sow=(8, 25), sow_jitter=12, emergence_days=10, gmax=0.94,
    growth_rate=0.14, bmax=1.5,
)  # fmt: skip
FALLOW = CropType(
    82, "Braakliggend land met minimale activiteit", "Fallow land",
    _lut(13, 4, 10, "Fallow", 12, 1, 1, 0, 0, 1),
    kind=CropKind.FALLOW, gmax=0.72, growth_rate=0.06, bmax=1.0,
)  # fmt: skip

CROPS: tuple[CropType, ...] = (
    WINTER_WHEAT,
    WINTER_BARLEY,
    SPRING_BARLEY,
    SILAGE_MAIZE,
    GRAIN_MAIZE,
    SUGAR_BEET,
    RAPESEED,
    POTATO,
    FIELD_PEAS,
    FIELD_BEANS,
    PERMANENT_GRASS,
    TEMPORARY_GRASS,
    FALLOW,
)
CROPS_BY_CODE: dict[int, CropType] = {crop.code: crop for crop in CROPS}


@dataclass(frozen=True)
class CatchCropType:
    """A catch-crop species sown after a harvest (not a declared main crop, so not in the LUT)."""

    code: int
    name: str
    gmax: float
    growth_rate: float
    frost_sensitive: bool


CATCH_CROPS: tuple[CatchCropType, ...] = (
    CatchCropType(643, "Gele mosterd", 0.88, 0.16, True),
    CatchCropType(645, "Phacelia", 0.82, 0.14, True),
    CatchCropType(656, "Bladrammenas", 0.9, 0.15, False),
)

LUT_COLUMNS: tuple[str, ...] = SEN4CAP_LUT_COLUMNS


def lut_rows() -> list[dict[str, int | str]]:
    """The Sen4CAP LUT rows of the catalogue, in :data:`LUT_COLUMNS` order, sorted by ``ctnum``."""
    rows: list[dict[str, int | str]] = []
    for crop in sorted(CROPS, key=lambda c: c.ctnum):
        rows.append(
            {
                "ori_crop": crop.code,
                "ctnum": crop.lut.ctnum,
                "ct": crop.ct,
                "lc": crop.lut.lc,
                "ctnuml4a": crop.lut.ctnuml4a,
                "ctl4a": crop.lut.ctl4a,
                "ctnumdiv": crop.lut.ctnumdiv,
                "eaa": crop.lut.eaa,
                "al": crop.lut.al,
                "pgrass": crop.lut.pgrass,
                "tgrass": crop.lut.tgrass,
                "fallow": crop.lut.fallow,
                "cwater": crop.lut.cwater,
            }
        )
    return rows

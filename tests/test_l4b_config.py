"""L4B ``.cfg`` files: Sen4CAP's sample read unchanged, the synthetic world's, and bad values
named with their file, line, section and key."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from capmon.errors import InputError
from capmon.processors.l4b.config import (
    ComplianceRule,
    parse_l4b_config,
    read_l4b_config,
)
from capmon.synth.sen4cap_files import l4b_config

SAMPLE = Path(
    "sen4cap_practice_samples/sen2agri-processors/Sen4CAP/GrasslandMowing/src_ini/"
    "S4C_L4B_Default_Config.cfg"
)


def test_sen4cap_default_config_is_read_unchanged(shared_data: Path) -> None:
    path = shared_data / SAMPLE
    if not path.exists():
        pytest.skip(f"{path} is not present")
    config = read_l4b_config(path)
    assert config.ctnum_filter == ()  # empty: every parcel, as Sen4CAP
    assert config.s1.pfa == pytest.approx(3.0e-8)
    assert config.s1.stat_smpl_n == 5
    assert config.s1.min_cohe_var == pytest.approx(0.024)
    assert config.s1.pol_types == ("VH",)
    assert config.s1.non_overlap_interval_days == 28
    assert config.s2.decreasing_abs_th == pytest.approx(0.12)
    assert config.s2.decreasing_rate_th == pytest.approx(-0.000001)
    assert config.s2.increasing_rate_th == pytest.approx(0.05)
    assert (config.s2.high_abs_th, config.s2.low_abs_th) == (0.75, 0.5)
    assert config.s2.no_mowing_after_det == 30
    assert config.s2.non_overlap_interval_days == 45
    assert config.s2.signal == "NDVI"
    # the Italian [compliancy] block is the active one: 17 codes with leading zeros
    assert len(config.compliance) == 17
    assert config.compliance[0] == ComplianceRule("046", date(2019, 4, 1), date(2019, 10, 31), 0)
    assert (config.fwd_tol_days, config.bkw_tol_days) == (3, 3)


def test_synthetic_world_config() -> None:
    config = parse_l4b_config(l4b_config(2024))
    assert config.ctnum_filter == (11, 12)
    assert [r.crop_code for r in config.compliance] == ["60", "63"]
    assert config.compliance[1].end == date(2024, 10, 31)


def test_missing_sections_take_sen4cap_defaults() -> None:
    config = parse_l4b_config("[GENERAL_CONFIG]\nCTNUM_FILTER = 5, 6\n")
    assert config.ctnum_filter == (5, 6)
    assert config.s1.pfa == pytest.approx(3e-8)
    assert config.s2.decreasing_abs_th == pytest.approx(0.12)
    assert config.compliance == ()


def test_compliance_codes_match_as_text_or_integers() -> None:
    rule = ComplianceRule("046", date(2024, 4, 1), date(2024, 10, 31))
    assert rule.matches("046")
    assert rule.matches(46)
    assert rule.matches("46")
    assert not rule.matches("47")
    assert not rule.matches(None)
    assert not rule.matches("GPZ")
    assert ComplianceRule("GPZ", date(2024, 4, 1), date(2024, 7, 31)).matches(" GPZ ")


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("S1_processing", "pfa", "often", "a number"),
        ("S1_processing", "stat_smpl_n", "5.5", "an integer"),
        ("S1_processing", "saturate_sigma", "maybe", "True or False"),
        ("S2_processing", "decreasing_abs_th", "0,12x", "a number"),
        ("S2_processing", "no_mowing_after_det", "thirty", "an integer"),
        ("GENERAL_CONFIG", "CTNUM_FILTER", "11, grass", "integers"),
    ],
)
def test_wrong_types_name_the_file_line_section_and_key(
    tmp_path: Path, section: str, key: str, value: str, expected: str
) -> None:
    text = l4b_config(2024)
    lines = text.splitlines()
    header = lines.index(f"[{section}]")
    row = next(i for i in range(header, len(lines)) if lines[i].lower().startswith(key.lower()))
    lines[row] = f"{key} = {value}"
    path = tmp_path / "bad.cfg"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        read_l4b_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"line {row + 1}" in message
    assert f"[{section}] {key}" in message
    assert expected in message


def test_compliance_lists_must_agree() -> None:
    text = l4b_config(2024).replace("crop_rule = 0, 0", "crop_rule = 0")
    with pytest.raises(InputError, match=r"crop_rule.*one rule per crop code"):
        parse_l4b_config(text)
    text = l4b_config(2024).replace("crop_rule = 0, 0", "crop_rule = 0, 2")
    with pytest.raises(InputError, match="Lithuania"):
        parse_l4b_config(text)
    text = l4b_config(2024).replace(
        "('01/04/2024', '31/10/2024'), ", "('31/10/2024', '01/04/2024'), ", 1
    )
    with pytest.raises(InputError, match="crop_time_intervals"):
        parse_l4b_config(text)


def test_values_outside_the_algorithms_range() -> None:
    with pytest.raises(InputError, match="pfa"):
        parse_l4b_config("[S1_processing]\npfa = 0.7\n")
    with pytest.raises(InputError, match="apply_model"):
        parse_l4b_config("[S2_model]\napply_model = True\n")
    with pytest.raises(InputError, match="prod_type_list"):
        parse_l4b_config("[S2_processing]\nprod_type_list = SFOO\n")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_l4b_config(tmp_path / "missing.cfg")
    bad = tmp_path / "bad.cfg"
    bad.write_text("no section header here\n")
    with pytest.raises(InputError, match="not a valid L4B config"):
        read_l4b_config(bad)

"""``capmon demo`` on a tiny world: every stage runs and the MDB agrees with the truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.demo import run_demo
from capmon.errors import InputError

runner = CliRunner()


def test_demo_runs_every_stage(tmp_path: Path) -> None:
    report = run_demo(
        tmp_path / "demo",
        parcels=40,
        window_km=1.2,
        revisit_days=30,
        s2_format="cog",
        multiannual_parcels=40,
        multiannual_window_km=1.2,
    )
    stages = [name for name, _seconds, _detail in report.stages]
    assert stages == [
        "synthetic world",
        "site and season",
        "crop LUT",
        "declarations",
        "products",
        "season run (orchestrator)",
        "L4A crop type",
        "L4B grassland mowing",
        "L4C agricultural practices",
        "bare soil",
        "sub-parcel heterogeneity",
        "multi-annual (5 years)",
        "web service user",
    ]
    login_file = report.home / "demo-login.txt"
    assert login_file.stat().st_mode & 0o077 == 0
    password = login_file.read_text().split("password: ")[1].strip()
    from capmon.users import authenticate
    from capmon.workspace import open_workspace

    check = open_workspace(report.home)
    assert authenticate(check, "demo", password) is not None
    check.dispose()
    assert report.figures["parcels"] == 40
    assert report.figures["mdb_rows"] > 1000
    # the season job is linked to the four products it made (issue 19, item 7)
    assert report.figures["season_job_products"] == 4
    assert report.figures["ndvi_rows_compared"] > 100
    assert report.figures["ndvi_correlation"] > 0.9
    assert report.figures["ndvi_median_abs_difference"] < 0.05
    # 40 parcels: two classes reach pa_min (10); L4A classifies them and warns that its
    # accuracy rests on too few parcels to mean anything
    l4a_detail = report.stages[6][2]
    assert "2 classes (7 excluded)" in l4a_detail
    assert "WARNING: the accuracy rests on 22 parcel(s)" in l4a_detail
    # L4B: both methods scored against the true mowing dates; L4C: the practice figures
    (mowing,) = [t for title, t in report.tables.items() if title.startswith("L4B")]
    assert list(mowing["method"]) == ["capmon (default, learned on real plots)", "sen4cap"]
    assert ((mowing["F1"] >= 0) & (mowing["F1"] <= 1)).all()
    assert "l4b_capmon_f1" in report.figures
    assert any(key.startswith("l4c_") for key in report.figures)
    prefixes = ("L4B", "L4C", "Bare soil", "Sub-parcel heterogeneity", "Multi-annual")
    assert [title.startswith(prefixes) for title in report.tables] == [True] * 5
    assert all(not table.empty for table in report.tables.values())
    # running it again needs --overwrite, and then replaces the workspace
    with pytest.raises(InputError, match="pass --overwrite"):
        run_demo(tmp_path / "demo", parcels=40, window_km=1.2, revisit_days=30)


def test_demo_never_deletes_a_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    result = runner.invoke(app, ["--home", str(precious), "demo", "--overwrite"])
    assert result.exit_code == 2
    assert "does not look like a capmon workspace" in result.output
    assert (precious / "thesis.tex").exists()


def test_the_demo_runs_the_quick_world_unless_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` (`capmon demo`) is the quick world, `--full` the full one (issue 19)."""
    from capmon.cli import demo as demo_cli
    from capmon.demo import FULL_WORLD, QUICK_WORLD, DemoReport

    calls: list[dict[str, Any]] = []

    def fake(home: Path, **options: Any) -> DemoReport:
        calls.append(options)
        return DemoReport(home)

    monkeypatch.setattr(demo_cli, "run_demo", fake)
    home = ["--home", str(tmp_path / "demo")]
    assert runner.invoke(app, [*home, "demo"]).exit_code == 0
    assert runner.invoke(app, [*home, "demo", "--full"]).exit_code == 0
    assert runner.invoke(app, [*home, "demo", "--parcels", "50"]).exit_code == 0
    quick, full, chosen = calls
    assert (quick["parcels"], quick["window_km"]) == (QUICK_WORLD.parcels, QUICK_WORLD.window_km)
    assert quick["multiannual_parcels"] == QUICK_WORLD.multiannual_parcels
    assert (full["parcels"], full["window_km"]) == (FULL_WORLD.parcels, FULL_WORLD.window_km)
    assert QUICK_WORLD.parcels < FULL_WORLD.parcels
    assert chosen["parcels"] == 50

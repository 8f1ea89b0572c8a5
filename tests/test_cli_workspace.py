"""A workspace can be moved or copied (issue 19, item 6): paths inside it are stored relative
to it, absolute paths of older catalogues still read, and ``capmon workspace check|relocate``
find and fix the inputs that moved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from shapely.geometry import box
from sqlalchemy import select, text
from typer.testing import CliRunner

from capmon.catalog.models import Product
from capmon.cli.main import app
from capmon.sites import create_site
from capmon.workspace import open_workspace

runner = CliRunner()


def _product(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "band.tif").write_bytes(b"x")
    return folder


def test_paths_inside_the_workspace_are_stored_relative(tmp_path: Path) -> None:
    first = tmp_path / "first"
    workspace = open_workspace(first)
    try:
        with workspace.session() as session:
            site = create_site(session, "moved", box(4.30, 50.80, 4.40, 50.90))
            session.flush()
            site_id = site.id
            output = _product(first / "products" / "moved" / "l4a" / "SEN4CAP_L4A_OUT")
            outside = _product(tmp_path / "inputs" / "S2A_MSIL2A_IN.SAFE")
            session.add_all(
                [
                    Product(site_id=site_id, name="out", product_type="s4c_l4a", path=str(output)),
                    Product(site_id=site_id, name="in", product_type="l2a", path=str(outside)),
                ]
            )
        with workspace.engine.begin() as connection:
            stored = dict(connection.execute(text("SELECT name, path FROM product")).all())
            # a row of an older catalogue: an absolute path inside the workspace
            old = _product(first / "products" / "moved" / "baresoil" / "OLD")
            connection.execute(
                text(
                    "INSERT INTO product (site_id, name, product_type, path, properties) "
                    "VALUES (:site, 'old', 's4c_baresoil', :path, '{}')"
                ),
                {"site": site_id, "path": str(old)},
            )
        assert stored == {"out": "products/moved/l4a/SEN4CAP_L4A_OUT", "in": str(outside)}
        with workspace.session() as session:
            read = {
                name: path for name, path in session.execute(select(Product.name, Product.path))
            }
            # the link of a run's products by their paths still matches
            found = session.scalars(select(Product.name).where(Product.path.in_([str(output)])))
            assert list(found) == ["out"]
        assert read == {"out": str(output), "in": str(outside), "old": str(old)}
    finally:
        workspace.dispose()

    # move the workspace and the inputs
    second = tmp_path / "second"
    shutil.move(first, second)
    shutil.move(tmp_path / "inputs", tmp_path / "elsewhere")
    home = ["--home", str(second)]
    checked = runner.invoke(app, [*home, "workspace", "check", "--json"])
    assert checked.exit_code == 1, checked.output
    missing = {m["name"]: m["path"] for m in json.loads(checked.stdout)["missing"]}
    assert missing == {"in": str(outside), "old": str(old)}  # "out" moved with the workspace

    moved_home = runner.invoke(app, [*home, "workspace", "relocate", str(first)])
    assert moved_home.exit_code == 0, moved_home.output
    assert "1 path(s)" in moved_home.output
    moved_inputs = runner.invoke(
        app,
        [*home, "workspace", "relocate", str(tmp_path / "inputs"), str(tmp_path / "elsewhere")],
    )
    assert moved_inputs.exit_code == 0, moved_inputs.output
    again = runner.invoke(app, [*home, "workspace", "check"])
    assert again.exit_code == 0, again.output
    assert "every file the catalogue names is there" in again.output
    workspace = open_workspace(second)
    try:
        with workspace.engine.begin() as connection:
            stored = dict(connection.execute(text("SELECT name, path FROM product")).all())
    finally:
        workspace.dispose()
    assert stored["old"] == "products/moved/baresoil/OLD"
    assert stored["in"] == str(tmp_path / "elsewhere" / "S2A_MSIL2A_IN.SAFE")

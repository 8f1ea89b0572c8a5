"""``capmon site publish``: anonymous read of a published site's processor products (STAC item
and assets), and nothing else (issue 18, item 7)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from capmon.catalog.models import Product
from capmon.cli.main import app as cli
from capmon.processors import RunContext, get_processor
from capmon.sites import get_season, get_site
from capmon.workspace import open_workspace
from tests.service.conftest import SEASON, ServiceWorld, login, make_app


@dataclass(frozen=True)
class Published:
    home: Path
    items: dict[str, str]
    """Site -> the item id of its baresoil product."""


@pytest.fixture(scope="module")
def published(service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A baresoil product on both sites; only alpha published (with the CLI)."""
    home = tmp_path_factory.mktemp("publish") / "home"
    shutil.copytree(service_world.home, home)
    workspace = open_workspace(home)
    items = {}
    try:
        processor = get_processor("baresoil")
        for name in ("alpha", "beta"):
            with workspace.session() as session:
                site = get_site(session, name)
                season = get_season(session, site, SEASON)
            result = processor.run(
                RunContext(workspace, site, season), processor.parse_parameters({})
            )
            items[name] = f"{name}.{Path(result.outputs['product']).name}"
    finally:
        workspace.dispose()
    answer = CliRunner().invoke(cli, ["--home", str(home), "site", "publish", "alpha"])
    assert answer.exit_code == 0, answer.output
    return Published(home, items)


def _assets(client: TestClient, item: str, headers: dict[str, str] | None = None) -> list[str]:
    answer = client.get(f"/stac/collections/baresoil/items/{item}", headers=headers or {})
    assert answer.status_code == 200, answer.text
    return sorted(asset["href"] for asset in answer.json()["assets"].values())


def test_published_products_are_readable_without_a_token(published: Published) -> None:
    with TestClient(make_app(published.home)) as client:
        hrefs = _assets(client, published.items["alpha"])
        assert hrefs == _assets(client, published.items["alpha"], login(client, "view-alpha"))
        for href in hrefs:
            answer = client.get(href)
            assert answer.status_code == 200, href
            assert answer.content


def test_nothing_unpublished_leaks(published: Published) -> None:
    with TestClient(make_app(published.home)) as client:
        headers = login(client, "view-beta")
        beta = published.items["beta"]
        beta_assets = _assets(client, beta, headers)
        anonymous = [
            f"/stac/collections/baresoil/items/{beta}",  # a product of an unpublished site
            *(href.removeprefix(str(client.base_url)) for href in beta_assets),
            "/stac/collections/baresoil/items/alpha.no-such-product",  # missing: same answer
            "/stac/collections/mdb/items/alpha.mdb_S_declarations-1",  # MDB: farmers' data
            "/stac/assets/alpha.mdb_S_declarations-1/mdb.json",
            "/stac/collections/baresoil/items/zz.nothing",
            "/stac/collections/baresoil/items",  # listings and search need a token
            "/stac/collections",
            "/stac/search",
            "/sites",
            "/sites/alpha/seasons",
            "/jobs",
        ]
        for path in anonymous:
            answer = client.get(path)
            assert answer.status_code == 401, (path, answer.status_code)
        # an input product of the published site: not a processor product
        workspace = open_workspace(published.home)
        try:
            with workspace.session() as session:
                site = get_site(session, "alpha")
                name = session.scalar(
                    select(Product.name).where(
                        Product.site_id == site.id, Product.product_type == "l2a"
                    )
                )
        finally:
            workspace.dispose()
        assert name is not None
        answer = client.get(f"/stac/collections/sentinel-2-l2a/items/alpha.{name}")
        assert answer.status_code == 401
        # a wrong token is still refused, even for a published product
        bad = {"Authorization": "Bearer forged.token.x"}
        assert (
            client.get(
                f"/stac/collections/baresoil/items/{published.items['alpha']}", headers=bad
            ).status_code
            == 401
        )


def test_withdrawn_sites_are_closed_again(published: Published, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(published.home, home)
    answer = CliRunner().invoke(
        cli, ["--home", str(home), "site", "publish", "alpha", "--withdraw"]
    )
    assert answer.exit_code == 0, answer.output
    with TestClient(make_app(home)) as client:
        item = f"/stac/collections/baresoil/items/{published.items['alpha']}"
        assert client.get(item).status_code == 401

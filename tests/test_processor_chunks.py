"""Parcel chunks of a processor spread over the season run's Dask workers: the product equals
the serial one, and the chunk tasks ran on both workers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from capmon.orchestrator import ClusterSpec, dask_client, run_season, set_schedule
from capmon.processors import RunContext, get_processor
from capmon.processors.chunks import chunked, in_dask_worker, map_chunks
from capmon.sites import get_season, get_site
from capmon.sources import ingest_product
from capmon.synth import SynthWorld
from tests.test_orchestrator_recovery import _workspace
from tests.test_orchestrator_recovery import world as world

TABLES = ("status.parquet", "observations.parquet", "periods.csv", "compliance.csv")


def test_chunks_outside_dask_run_in_order_in_the_process() -> None:
    assert not in_dask_worker()
    assert chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(map_chunks(sum, chunked(list(range(7)), 3))) == [3, 12, 6]


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {
        name: pd.read_parquet(folder / name)
        if name.endswith(".parquet")
        else pd.read_csv(folder / name)
        for name in TABLES
    }


def test_baresoil_chunks_run_on_the_workers_and_give_the_serial_product(
    world: SynthWorld, tmp_path: Path
) -> None:
    from distributed import get_task_stream

    workspace = _workspace(world, tmp_path / "ws")
    with workspace.session() as session:
        site = get_site(session, "tiny")
        assert world.s2_dir is not None
        for path in sorted(p for p in world.s2_dir.iterdir() if not p.name.startswith(".")):
            ingest_product(session, site, path)
    set_schedule(workspace, "tiny", "S", "mdb", parameters={"signals": ["NDVI", "NDTILL", "BSI"]})
    set_schedule(workspace, "tiny", "S", "baresoil", parameters={"chunk_parcels": 4})
    until = dt.date(world.years[0], 11, 30)
    with (
        dask_client(ClusterSpec(workers=2, threads=1)) as client,
        get_task_stream(client) as stream,
    ):
        report = run_season(
            workspace, "tiny", "S", until=until, processors=["mdb", "baresoil"], client=client
        )
    assert report.status == "finished", report.processors_failed
    chunk_workers = {t["worker"] for t in stream.data if "_detect_chunk" in t["key"]}
    assert len(chunk_workers) == 2
    parallel = Path(report.processor_outputs["baresoil"]["product"])
    processor = get_processor("baresoil")
    with workspace.session() as session:
        site = get_site(session, "tiny")
        season = get_season(session, site, "S")
    serial = processor.run(
        RunContext(workspace, site, season), processor.parse_parameters({"chunk_parcels": 4})
    )
    expected = _tables(Path(serial.outputs["product"]))
    for name, table in _tables(parallel).items():
        pd.testing.assert_frame_equal(table, expected[name], check_like=False)
    workspace.dispose()


@pytest.mark.parametrize("size", [1, 5])
def test_chunked_sizes(size: int) -> None:
    chunks = chunked(list(range(11)), size)
    assert [i for chunk in chunks for i in chunk] == list(range(11))
    assert max(len(c) for c in chunks) == size

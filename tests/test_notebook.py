"""notebooks/markers.ipynb runs headless against a workspace with an extracted MDB."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import ServiceWorld, service_world  # noqa: F401 (the fixture)

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "markers.ipynb"
KERNEL = "capmon-tests"


def _kernel_spec(folder: Path) -> Path:
    """A kernel spec that runs this interpreter (the venv's), whatever the user has installed."""
    spec = folder / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "capmon tests", "language": "python"})
    )
    return folder


def _outputs(notebook: Any, kind: str) -> list[Any]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == kind
    ]


def test_markers_notebook_runs_headless(
    service_world: ServiceWorld,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("CAPMON_HOME", str(service_world.home))
    monkeypatch.setenv("CAPMON_NOTEBOOK_SITE", "beta")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    specs = KernelSpecManager(kernel_dirs=[str(_kernel_spec(tmp_path / "kernels"))])
    manager = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    client = NotebookClient(notebook, km=manager, timeout=300, resources={"metadata": {}})
    client.execute(cleanup_kc=True)  # shuts the kernel down and closes its sockets

    assert not _outputs(notebook, "error")
    images = [o for o in _outputs(notebook, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) == 3  # the parcel's signals, the derived index, the map
    printed = "".join(o.get("text", "") for o in _outputs(notebook, "stream") if o.name == "stdout")
    assert "site beta, season S" in printed
    assert "signals in the MDB: BSI, NDTILL, NDVI" in printed
    assert "NDVI_minus_BSI:" in printed
    stderr = [o.get("text", "") for o in _outputs(notebook, "stream") if o.name == "stderr"]
    assert not stderr, stderr  # no warnings in the kernel either

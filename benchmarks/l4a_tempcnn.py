"""A temporal model for L4A, measured: TempCNN on the real WorldCereal development sets.

``python benchmarks/l4a_tempcnn.py [corsica] [flanders]`` needs PyTorch, which capmon does not
depend on (``pip install torch --index-url https://download.pytorch.org/whl/cpu`` in a
separate environment with numpy and pandas). It builds each parcel's monthly cube (S2
B02-B12 reflectance, NDVI, S1 VV and VH in dB; gaps interpolated in time, channels
standardised on the training folds) from ``../shared/data/worldcereal_dev``, keeps the
classes with >= 10 parcels, and scores a TempCNN (Pelletier et al. 2019) with stratified
5-fold out-of-fold predictions, three seeds: OA and macro-F1 over every class, as
``benchmarks/l4a.py``. The settings were fixed before any run: three 1-D convolutions of 64
filters, kernel 5, batch norm, ReLU, dropout 0.2, a 256-unit layer; Adam 1e-3, weight decay
1e-4, 200 epochs, batches of 32, class-weighted cross-entropy, one thread. Figures in
docs/l4a.md: the model does not beat the tree ensembles there, so it is not part of capmon.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "worldcereal_dev"
SETS = {
    "corsica": "2022_FRA_corsica_month.geoparquet",
    "flanders": "2021_BEL_flanders_month.parquet",
}
F64 = npt.NDArray[np.float64]


def monthly_cube(name: str) -> tuple[F64, npt.NDArray[np.int64]]:
    """(parcels, channels, months) values and the parcels' classes (>= 10 parcels each)."""
    raw = pd.read_parquet(SHARED / SETS[name])
    sizes = raw.groupby("sample_id")["ewoc_code"].first().value_counts()
    raw = raw[raw["ewoc_code"].isin(sizes[sizes >= 10].index)]
    bands = [c for c in raw.columns if c.startswith("S2-L2A-B")] + ["S1-SIGMA0-VV", "S1-SIGMA0-VH"]
    values = raw[bands].astype("float64").where(raw[bands] != 65535)
    for column in bands:
        if column.startswith("S1"):
            values[column] = 20 * np.log10(values[column]) - 83
        else:
            values[column] = values[column] / 10_000
    red, nir = values["S2-L2A-B04"], values["S2-L2A-B08"]
    values["NDVI"] = (nir - red) / (nir + red)
    channels = list(values.columns)
    values["sample_id"] = raw["sample_id"].to_numpy()
    values["month"] = pd.to_datetime(raw["timestamp"]).dt.to_period("M").astype(str).to_numpy()
    cube = values.groupby(["sample_id", "month"]).mean().unstack("month")
    months = sorted(values["month"].unique())
    stacked = np.stack([cube[c].reindex(columns=months).to_numpy() for c in channels], axis=1)
    classes = raw.groupby("sample_id")["ewoc_code"].first().reindex(cube.index)
    return _interpolated(stacked), classes.to_numpy(np.int64)


def _interpolated(cube: F64) -> F64:
    out = cube.copy()
    days = np.arange(cube.shape[2])
    for parcel in range(cube.shape[0]):
        for channel in range(cube.shape[1]):
            series = cube[parcel, channel]
            known = ~np.isnan(series)
            if known.any():
                out[parcel, channel] = np.interp(days, days[known], series[known])
    return out


def stratified_folds(
    labels: npt.NDArray[np.int64], folds: int = 5, seed: int = 0
) -> npt.NDArray[np.int64]:
    """Each class dealt round-robin over ``folds`` after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        fold[members] = np.arange(len(members)) % folds
    return fold


def out_of_fold(cube: F64, labels: npt.NDArray[np.int64], seed: int) -> tuple[float, float]:
    """OA and macro-F1 of TempCNN's out-of-fold predictions."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    classes = np.unique(labels)
    target = np.searchsorted(classes, labels)
    fold = stratified_folds(target)
    predicted = np.zeros(len(target), dtype=np.int64)
    for k in range(5):
        train, test = fold != k, fold == k
        mean = np.nanmean(cube[train], axis=(0, 2), keepdims=True)
        spread = np.nanstd(cube[train], axis=(0, 2), keepdims=True) + 1e-6
        scaled = np.nan_to_num((cube - mean) / spread).astype(np.float32)
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv1d(scaled.shape[1] if i == 0 else 64, 64, 5, padding=2),
                       nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2)]  # fmt: skip
        model = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(64 * scaled.shape[2], 256), nn.BatchNorm1d(256),
            nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, len(classes)),
        )  # fmt: skip
        counts = np.maximum(np.bincount(target[train], minlength=len(classes)), 1)
        weights = torch.tensor(train.sum() / (len(classes) * counts), dtype=torch.float32)
        loss = nn.CrossEntropyLoss(weight=weights)
        optimiser = torch.optim.Adam(model.parameters(), 1e-3, weight_decay=1e-4)
        x, y = torch.tensor(scaled[train]), torch.tensor(target[train])
        generator = torch.Generator().manual_seed(seed)
        for _epoch in range(200):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 32):
                batch = order[start : start + 32]
                if len(batch) < 2:
                    continue
                optimiser.zero_grad()
                loss(model(x[batch]), y[batch]).backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            predicted[test] = model(torch.tensor(scaled[test])).argmax(1).numpy()
    f1 = []
    for c in range(len(classes)):
        hits = int(((predicted == c) & (target == c)).sum())
        f1.append(
            0.0 if hits == 0 else 2 * hits / int((predicted == c).sum() + (target == c).sum())
        )
    return float((predicted == target).mean()), float(np.mean(f1))


def main() -> None:
    for name in sys.argv[1:] or list(SETS):
        cube, labels = monthly_cube(name)
        for seed in (0, 1, 2):
            started = time.perf_counter()
            oa, f1 = out_of_fold(cube, labels, seed)
            print(f"{name} ({len(labels)} parcels, {len(np.unique(labels))} classes) seed {seed}: "
                  f"TempCNN OA {oa:.3f}, macro-F1 {f1:.3f}, {time.perf_counter() - started:.0f} s",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

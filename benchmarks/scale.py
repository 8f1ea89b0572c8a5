"""Runs ``capmon bench scale`` (same options), e.g. ``python benchmarks/scale.py --help``."""

from __future__ import annotations

import sys

from capmon.cli.bench import bench_app

if __name__ == "__main__":
    bench_app(["scale", *sys.argv[1:]])

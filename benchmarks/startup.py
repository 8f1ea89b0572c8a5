"""Runs ``capmon bench startup`` (same options), e.g. ``python benchmarks/startup.py --help``."""

from __future__ import annotations

import sys

from capmon.cli.bench import bench_app

if __name__ == "__main__":
    bench_app(["startup", *sys.argv[1:]])

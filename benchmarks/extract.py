"""Runs ``capmon bench extract`` (same options), e.g. ``python benchmarks/extract.py --help``."""

from __future__ import annotations

import sys

from capmon.cli.bench import bench_app

if __name__ == "__main__":
    bench_app(["extract", *sys.argv[1:]])

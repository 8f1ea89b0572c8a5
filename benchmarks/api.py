"""Runs ``capmon bench api`` (same options), e.g. ``python benchmarks/api.py --help``."""

from __future__ import annotations

import sys

from capmon.cli.bench import bench_app

if __name__ == "__main__":
    bench_app(["api", *sys.argv[1:]])

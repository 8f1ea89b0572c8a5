"""Benchmarks of capmon's extraction engine and MDB (``capmon bench extract``)."""

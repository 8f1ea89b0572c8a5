"""Data files shipped with capmon (read through :mod:`importlib.resources`)."""

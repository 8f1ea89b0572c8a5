"""The synthetic season generator (``capmon synth``): a farm landscape on a real Sentinel-2 tile
with realistic crops, field operations, Sentinel-1/2 products in their real formats, Sen4CAP side
files and the ground truth that the processors are evaluated against.
"""

from __future__ import annotations

from capmon.synth.world import SynthWorld, WorldModel, build_world_model, generate_world

__all__ = ["SynthWorld", "WorldModel", "build_world_model", "generate_world"]

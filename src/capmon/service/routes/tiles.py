"""Routes of the service: tiles (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

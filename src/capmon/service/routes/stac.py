"""Routes of the service: stac (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

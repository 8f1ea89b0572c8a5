"""Routes of the service: markers (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

"""Routes of the service: processes (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

"""Routes of the service: uploads (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

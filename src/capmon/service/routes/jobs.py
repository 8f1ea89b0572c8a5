"""Routes of the service: jobs (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

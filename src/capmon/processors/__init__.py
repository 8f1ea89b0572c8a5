"""Processors: everything that runs on a site and season (MDB extraction, L4A, L4B, ...).

Each processor is declared once in :mod:`capmon.processors.registry`; the CLI (``capmon run``),
the OGC API process list and the scheduler are generated from that declaration.
"""

from capmon.processors.registry import (
    Processor,
    ProcessorInput,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    all_processors,
    get_processor,
    register,
)

__all__ = [
    "Processor",
    "ProcessorInput",
    "ProcessorOutput",
    "RunContext",
    "RunResult",
    "Schedule",
    "all_processors",
    "get_processor",
    "register",
]

"""What a running service holds: the open workspace, the token authority and shutdown hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from capmon.service.auth import TokenAuthority
from capmon.service.config import ServiceConfig
from capmon.workspace import Workspace


@dataclass
class ServiceState:
    """One per app (``app.state.capmon``); route modules keep their own long-lived objects
    (the job executor, tile caches) in ``resources`` under their module's name and register
    their cleanup in ``on_shutdown``."""

    config: ServiceConfig
    workspace: Workspace
    tokens: TokenAuthority
    resources: dict[str, Any] = field(default_factory=dict)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self.on_shutdown:
            self.on_shutdown.pop()()
        self.workspace.dispose()


def service_state(request: Request) -> ServiceState:
    """The :class:`ServiceState` of the app serving ``request``."""
    state = request.app.state.capmon
    assert isinstance(state, ServiceState)
    return state

"""The functional core: typed events, the live queue state and its pure ``apply``, KPIs.

Nothing in here does I/O or reads a clock.
"""

from .events import Event, normalise, status_snapshot
from .queue_state import Delta, EngineSettings, LiveState, QueueSettings, apply

__all__ = [
    "Delta",
    "EngineSettings",
    "Event",
    "LiveState",
    "QueueSettings",
    "apply",
    "normalise",
    "status_snapshot",
]

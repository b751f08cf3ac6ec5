"""AMI simulator: an Asterisk 22 look-alike on loopback with seeded call-centre traffic.

- ``server.SimulatedAsterisk``: the AMI server over the queue world (``world.World``).
- ``traffic.Traffic`` / ``TrafficConfig``: seeded traffic, stepped (``advance``) or real time (``run``).
- ``simulation.Simulation`` / ``SimulationConfig``: both together in the current event loop.
- ``clock.SimClock``: the virtual clock every event ``Timestamp`` and QueueStatus ``Wait`` reads.
"""

from .clock import SimClock
from .server import SimulatedAsterisk
from .simulation import Simulation, SimulationConfig
from .traffic import Traffic, TrafficConfig
from .world import QueueTruth, SimCaller, SimMember

__all__ = [
    "QueueTruth",
    "SimCaller",
    "SimClock",
    "SimMember",
    "SimulatedAsterisk",
    "Simulation",
    "SimulationConfig",
    "Traffic",
    "TrafficConfig",
]

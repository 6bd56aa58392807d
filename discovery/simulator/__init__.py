"""Simulated BACnet/IP devices (see ``devices``) for tests, demos and client benchmarks."""

from discovery.simulator.devices import (
    SimulatedDevice,
    SimulatedDeviceConfig,
    Simulation,
    SimulationError,
    plan_devices,
    start_simulation,
)

__all__ = [
    "SimulatedDevice",
    "SimulatedDeviceConfig",
    "Simulation",
    "SimulationError",
    "plan_devices",
    "start_simulation",
]

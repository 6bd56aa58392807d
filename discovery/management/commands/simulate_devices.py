"""Run simulated BACnet/IP devices until Ctrl+C, SIGTERM or ``--duration`` seconds.

Each device binds its own address (10.77.1.101, .102, ... by default) on port 47808, or,
with ``--ports``, all share ``--first-address`` on ports 47809, 47810, ... The addresses
must exist on this host, or use ``--private-network`` (root, Linux) to run the devices in
a new network namespace whose ``lo`` carries exactly those addresses: nothing they send
can then reach a real network. Troublemaker options turn the first device into one
without ReadPropertyMultiple, the second into a non-segmenting one with at least 520
objects and the third into one that goes silent.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from discovery.simulator.devices import SimulatedDeviceConfig, Simulation, SimulationError, plan_devices
from discovery.simulator.netns import PrivateNetworkError, enter_private_network

TABLE_COLUMNS = ("id", "name", "address", "objects", "quirks")


def device_table(configs: Sequence[SimulatedDeviceConfig]) -> list[str]:
    """The devices as text-table lines: id, name, address, object count and quirks."""
    rows = [TABLE_COLUMNS] + [
        (
            str(config.device_id),
            config.name,
            config.bacnet_address,
            str(config.object_count),
            ", ".join(config.quirks) or "-",
        )
        for config in configs
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def missing_addresses(configs: Sequence[SimulatedDeviceConfig]) -> list[str]:
    """The device IPs this host does not have (binding a UDP socket to ``(ip, 0)`` fails)."""
    missing = []
    for ip in dict.fromkeys(config.ip for config in configs):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((ip, 0))
            except OSError:
                missing.append(ip)
    return missing


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> list[int]:
    """Call ``callback`` on SIGINT/SIGTERM; return the signals that could be hooked."""
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, callback)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)
    return installed


class Command(BaseCommand):
    help = "Run simulated BACnet/IP devices (for demos, tests and client benchmarks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=1, help="number of devices (default 1)")
        parser.add_argument("--objects", type=int, default=20, help="objects per device (default 20)")
        parser.add_argument("--first-address", default="10.77.1.101/24", help="address/prefix of device 1")
        parser.add_argument("--first-device-id", type=int, default=100001, help="instance of device 1")
        parser.add_argument(
            "--without-rpm", action="store_true", help="device 1 rejects ReadPropertyMultiple"
        )
        parser.add_argument(
            "--large-unsegmented",
            action="store_true",
            help="device 2 cannot segment (max APDU 480) and has at least 520 objects",
        )
        parser.add_argument("--silent-after", type=float, help="device 3 goes silent after S seconds")
        parser.add_argument("--silent-for", type=float, help="...for S seconds (default: for good)")
        parser.add_argument(
            "--drift-interval", type=float, default=1.0, help="seconds between input changes, 0: none"
        )
        parser.add_argument(
            "--ports", action="store_true", help="all devices on --first-address, ports 47809, 47810, ..."
        )
        parser.add_argument(
            "--private-network",
            action="store_true",
            help="run in a new network namespace that has only these addresses (root, Linux)",
        )
        parser.add_argument("--duration", type=float, help="stop after S seconds (default: run until Ctrl+C)")

    def handle(self, *args: Any, **options: Any) -> None:
        configs = self._plan(options)
        if options["private_network"]:
            try:
                enter_private_network(config.address for config in configs)
            except PrivateNetworkError as err:
                raise CommandError(f"--private-network: {err}") from None
        else:
            missing = missing_addresses(configs)
            if missing:
                raise CommandError(
                    f"address {', '.join(missing)} does not exist on this host: pass addresses it has "
                    "with --first-address, or use --private-network"
                )
        asyncio.run(self._run(configs, options["duration"]))

    def _plan(self, options: dict[str, Any]) -> list[SimulatedDeviceConfig]:
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        if options["objects"] < 0:
            raise CommandError("--objects cannot be negative")
        if options["duration"] is not None and options["duration"] <= 0:
            raise CommandError("--duration must be positive")
        try:
            return plan_devices(
                options["count"],
                options["objects"],
                first_address=options["first_address"],
                first_device_id=options["first_device_id"],
                without_rpm=options["without_rpm"],
                large_unsegmented=options["large_unsegmented"],
                silent_after=options["silent_after"],
                silent_for=options["silent_for"],
                ports=options["ports"],
                drift_interval=max(options["drift_interval"], 0.0),
            )
        except SimulationError as err:
            raise CommandError(str(err)) from None

    async def _run(self, configs: list[SimulatedDeviceConfig], duration: float | None) -> None:
        try:
            simulation = await Simulation.start(configs)
        except SimulationError as err:
            raise CommandError(str(err)) from None
        try:
            for line in device_table(configs):
                self.stdout.write(line)
            until = f"for {duration:g} s" if duration else "until Ctrl+C"
            self.stdout.write(f"Simulating {len(configs)} device(s) {until}.")
            await self._wait(duration)
        finally:
            await simulation.stop()
        self.stdout.write("Stopped.")

    async def _wait(self, duration: float | None) -> None:
        """Return on SIGINT/SIGTERM or after ``duration`` seconds."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed = _install_signal_handlers(loop, stop.set)
        try:
            await asyncio.wait_for(stop.wait(), duration)
        except TimeoutError:
            pass
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

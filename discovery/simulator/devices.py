"""Simulated BACnet/IP devices for tests, demos and benchmarks of the product's client side.

Each simulated device is an independent bacpypes3 stack bound to its own address (or its
own port) with a device object, a network port object and ``object_count`` objects made
from the virtual-device templates (see ``objects``). Devices answer Who-Is, ReadProperty,
ReadPropertyMultiple, WriteProperty (with priority) and SubscribeCOV like stock bacpypes3,
and can be given the quirks of real field devices:

* no ReadPropertyMultiple (``supports_rpm=False``): RPM is rejected with unrecognized-service;
* no segmentation (``segmentation=False``): max APDU 480, and any response larger than that
  (for example a whole 500-object ``objectList``) is aborted with segmentation-not-supported;
* silence (``silent_after`` / ``silent_for``, or ``silence()`` / ``resume()``): the device
  ignores everything, Who-Is included, for a while or for good;
* drift (``drift_interval``): analog inputs random-walk and binary inputs sometimes toggle,
  so COV subscribers get notifications.

Typical use, inside a running event loop::

    simulation = await Simulation.start(plan_devices(3, 50, first_address="10.77.1.21/24"))
    ...
    await simulation.stop()
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bacpypes3.basetypes import BinaryPV, DeviceStatus, Segmentation
from bacpypes3.local.analog import AnalogInputObject
from bacpypes3.local.binary import BinaryInputObject
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.primitivedata import Real

from discovery.simulator.application import (
    SimulatedApplication,
    SimulatedApplicationWithoutRPM,
    stored_value,
)
from discovery.simulator.objects import build_objects

logger = logging.getLogger(__name__)

BACNET_PORT = 47808
FIRST_ALTERNATE_PORT = 47809  # plan_devices(ports=True) puts device n on 47809 + n
UNSEGMENTED_MAX_APDU = 480
LARGE_OBJECT_COUNT = 520
MAX_DEVICE_INSTANCE = 4194302
DRIFT_STEP = 0.5  # an analog input moves by at most this much per drift interval
BINARY_TOGGLE_PROBABILITY = 0.05  # chance per drift interval that a binary input toggles
BIND_TIMEOUT = 5.0


class SimulationError(RuntimeError):
    """A simulated device could not be planned or started."""


@dataclass(kw_only=True)
class SimulatedDeviceConfig:
    """What one simulated device is: identity, address, size and quirks.

    ``address`` is an interface (``10.77.1.101/24``): the device binds that IP on ``port``
    and listens for broadcasts on the subnet's broadcast address. With
    ``segmentation=False`` the device says no-segmentation and its max APDU is at most 480.
    ``silent_after`` is seconds after start when it stops answering; ``silent_for`` how long
    it stays silent (None: for good). ``drift_interval`` 0 disables drift.
    """

    device_id: int
    name: str
    address: str
    port: int = BACNET_PORT
    object_count: int
    vendor_id: int = 555
    vendor_name: str = "Simulated Controls Inc."
    model_name: str = "SC-1000"
    firmware_revision: str = "1.0.0"
    supports_rpm: bool = True
    segmentation: bool = True
    max_apdu: int = 1476
    silent_after: float | None = None
    silent_for: float | None = None
    drift_interval: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.device_id <= MAX_DEVICE_INSTANCE:
            raise SimulationError(f"device id {self.device_id} is outside 0..{MAX_DEVICE_INSTANCE}")
        if self.object_count < 0:
            raise SimulationError(f"object count {self.object_count} is negative")
        if not 0 < self.port < 65536:
            raise SimulationError(f"port {self.port} is not a UDP port")
        try:
            ipaddress.IPv4Interface(self.address)
        except ValueError as err:
            raise SimulationError(f"address {self.address!r} is not an IPv4 address: {err}") from None
        if not self.segmentation:
            self.max_apdu = min(self.max_apdu, UNSEGMENTED_MAX_APDU)

    @property
    def interface(self) -> ipaddress.IPv4Interface:
        """The address with its prefix, e.g. ``IPv4Interface('10.77.1.101/24')``."""
        return ipaddress.IPv4Interface(self.address)

    @property
    def ip(self) -> str:
        """The bare IP address, e.g. ``10.77.1.101``."""
        return str(self.interface.ip)

    @property
    def bacnet_address(self) -> str:
        """How a client addresses the device: ``10.77.1.101``, or ``10.77.1.101:47809`` off 47808."""
        return self.ip if self.port == BACNET_PORT else f"{self.ip}:{self.port}"

    @property
    def quirks(self) -> list[str]:
        """Short descriptions of how this device differs from a well-behaved one."""
        quirks = []
        if not self.supports_rpm:
            quirks.append("no RPM")
        if not self.segmentation:
            quirks.append(f"no segmentation (max APDU {self.max_apdu})")
        if self.silent_after is not None:
            lasting = "for good" if self.silent_for is None else f"for {self.silent_for:g} s"
            quirks.append(f"silent after {self.silent_after:g} s {lasting}")
        if self.drift_interval <= 0:
            quirks.append("no drift")
        return quirks


@dataclass
class SimulatedDevice:
    """One running simulated device: its config, its bacpypes3 application and its tasks."""

    config: SimulatedDeviceConfig
    app: SimulatedApplication
    drift_task: asyncio.Task[None] | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def silent(self) -> bool:
        """True while the device ignores every request."""
        return self.app.silent

    def silence(self) -> None:
        """Stop answering anything (Who-Is, reads, writes, subscriptions) until ``resume()``."""
        if not self.app.silent:
            logger.info("simulated device %s goes silent", self.config.device_id)
        self.app.silent = True

    def resume(self) -> None:
        """Answer requests again."""
        if self.app.silent:
            logger.info("simulated device %s answers again", self.config.device_id)
        self.app.silent = False

    def objects_of_class(self, object_class: type) -> list[Any]:
        """The device's objects that are instances of ``object_class``, in objectList order."""
        return [obj for obj in self.app.objectIdentifier.values() if isinstance(obj, object_class)]


def _device_object(config: SimulatedDeviceConfig) -> DeviceObject:
    segmentation = Segmentation.segmentedBoth if config.segmentation else Segmentation.noSegmentation
    return DeviceObject(
        objectIdentifier=("device", config.device_id),
        objectName=config.name,
        description=f"Simulated BACnet device {config.device_id}",
        location="Simulation",
        systemStatus=DeviceStatus.operational,
        vendorIdentifier=config.vendor_id,
        vendorName=config.vendor_name,
        modelName=config.model_name,
        firmwareRevision=config.firmware_revision,
        applicationSoftwareVersion=f"simulator {config.firmware_revision}",
        maxApduLengthAccepted=config.max_apdu,
        segmentationSupported=segmentation,
    )


def build_application(config: SimulatedDeviceConfig) -> SimulatedApplication:
    """Build (and start binding) the bacpypes3 application of one device; needs a running loop."""
    app_class = SimulatedApplication if config.supports_rpm else SimulatedApplicationWithoutRPM
    network_port = NetworkPortObject(
        f"{config.interface}:{config.port}",
        objectIdentifier=("network-port", 1),
        objectName="NetworkPort-1",
    )
    objects = [_device_object(config), network_port, *build_objects(config.object_count)]
    return app_class.from_object_list(objects)


def ensure_address_free(ip: str, port: int) -> None:
    """Raise SimulationError unless ``ip``:``port`` exists here and nobody has bound it.

    bacpypes3 binds with SO_REUSEPORT, so a second stack on a busy address starts anyway
    and splits the traffic; a plain bind without it fails instead, which is what we want.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError as err:
            raise SimulationError(f"cannot bind {ip}:{port}: {err.strerror or err}") from None


async def _wait_until_bound(devices: Sequence[SimulatedDevice], timeout: float) -> None:
    """Wait until every device's sockets are bound; SimulationError names those that are not."""
    pending = {
        device.config.device_id: [
            task for layer in device.app.link_layers.values() for task in layer.server._transport_tasks
        ]
        for device in devices
    }
    tasks = [task for device_tasks in pending.values() for task in device_tasks]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    except TimeoutError:
        unbound = [
            device.config.bacnet_address
            for device in devices
            if not all(task.done() and not task.cancelled() for task in pending[device.config.device_id])
        ]
        raise SimulationError(f"could not bind within {timeout:g} s: {', '.join(unbound)}") from None


def _bounds(obj: Any) -> tuple[float | None, float | None]:
    """min/maxPresValue of an object, looked up once (bacpypes3 property reads are slow)."""
    bounds = getattr(obj, "_drift_bounds", None)
    if bounds is None:
        low, high = obj.minPresValue, obj.maxPresValue
        bounds = (None if low is None else float(low), None if high is None else float(high))
        obj._drift_bounds = bounds
    return bounds


def drift_once(analog_inputs: Iterable[Any], binary_inputs: Iterable[Any], rng: random.Random) -> None:
    """Move every analog input a little (within min/max) and maybe toggle each binary input."""
    for obj in analog_inputs:
        low, high = _bounds(obj)
        value = float(stored_value(obj, "presentValue")) + rng.uniform(-DRIFT_STEP, DRIFT_STEP)
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        obj.presentValue = Real(round(value, 2))
    for obj in binary_inputs:
        if rng.random() < BINARY_TOGGLE_PROBABILITY:
            active = obj.presentValue == BinaryPV.active
            obj.presentValue = BinaryPV.inactive if active else BinaryPV.active


async def _drift_forever(device: SimulatedDevice) -> None:
    """Drift the device's inputs every ``drift_interval`` seconds until cancelled."""
    rng = random.Random(device.config.device_id)
    analog_inputs = device.objects_of_class(AnalogInputObject)
    binary_inputs = device.objects_of_class(BinaryInputObject)
    while True:
        await asyncio.sleep(device.config.drift_interval)
        try:
            drift_once(analog_inputs, binary_inputs, rng)
        except Exception:
            logger.exception("drift failed on simulated device %s", device.config.device_id)


def _schedule(device: SimulatedDevice, loop: asyncio.AbstractEventLoop) -> None:
    """Start the device's drift task and its silence timers."""
    config = device.config
    if config.drift_interval > 0:
        device.drift_task = loop.create_task(_drift_forever(device), name=f"drift-{config.device_id}")
    if config.silent_after is not None:
        device.timers.append(loop.call_later(config.silent_after, device.silence))
        if config.silent_for is not None:
            device.timers.append(loop.call_later(config.silent_after + config.silent_for, device.resume))


def _close(app: SimulatedApplication) -> None:
    """Close the stack's sockets, and stop binding any that are not bound yet."""
    for layer in app.link_layers.values():
        for task in layer.server._transport_tasks:
            task.cancel()
    app.close()


def _check_unique(configs: Sequence[SimulatedDeviceConfig]) -> None:
    ids = [config.device_id for config in configs]
    endpoints = [(config.ip, config.port) for config in configs]
    if len(set(ids)) != len(ids):
        raise SimulationError("device ids must be unique")
    if len(set(endpoints)) != len(endpoints):
        raise SimulationError("each device needs its own address:port")


class Simulation:
    """A set of running simulated devices; start with ``await Simulation.start(configs)``."""

    def __init__(self, devices: list[SimulatedDevice] | None = None) -> None:
        self.devices: list[SimulatedDevice] = devices or []

    @classmethod
    async def start(
        cls, configs: Iterable[SimulatedDeviceConfig], *, bind_timeout: float = BIND_TIMEOUT
    ) -> Simulation:
        """Start one stack per config, wait until all are bound, announce them with I-Am."""
        configs = list(configs)
        _check_unique(configs)
        for config in configs:
            ensure_address_free(config.ip, config.port)
        simulation = cls()
        try:
            for config in configs:
                simulation.devices.append(SimulatedDevice(config, build_application(config)))
            await _wait_until_bound(simulation.devices, bind_timeout)
        except BaseException:
            await simulation.stop()
            raise
        loop = asyncio.get_running_loop()
        for device in simulation.devices:
            _schedule(device, loop)
            device.app.i_am()
        logger.info("started %d simulated device(s)", len(simulation.devices))
        return simulation

    def device(self, device_id: int) -> SimulatedDevice:
        """The running device with this instance number (KeyError if none)."""
        for device in self.devices:
            if device.config.device_id == device_id:
                return device
        raise KeyError(device_id)

    async def stop(self) -> None:
        """Cancel drift and timers and close every stack."""
        tasks = [device.drift_task for device in self.devices if device.drift_task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for device in self.devices:
            for timer in device.timers:
                timer.cancel()
            _close(device.app)
        if self.devices:
            logger.info("stopped %d simulated device(s)", len(self.devices))
        self.devices = []

    async def __aenter__(self) -> Simulation:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def start_simulation(configs: Iterable[SimulatedDeviceConfig]) -> Simulation:
    """Same as ``Simulation.start(configs)``."""
    return await Simulation.start(configs)


def _nth_address(first: ipaddress.IPv4Interface, offset: int) -> str:
    ip = first.ip + offset
    network = first.network
    if ip not in network or (network.prefixlen < 31 and ip == network.broadcast_address):
        raise SimulationError(f"not enough addresses in {network} after {first.ip} for {offset + 1} devices")
    return f"{ip}/{network.prefixlen}"


def plan_devices(
    count: int,
    objects: int,
    *,
    first_address: str = "10.77.1.101/24",
    first_device_id: int = 100001,
    without_rpm: bool = False,
    large_unsegmented: bool = False,
    silent_after: float | None = None,
    silent_for: float | None = None,
    ports: bool = False,
    drift_interval: float = 1.0,
) -> list[SimulatedDeviceConfig]:
    """Configs for ``count`` devices with ``objects`` objects each, ids counting from ``first_device_id``.

    Device n gets ``first_address`` with its last octet increased by n; with ``ports=True``
    all share ``first_address`` and device n listens on port 47809 + n (no broadcast
    discovery then: clients must send a directed Who-Is to ``ip:port``).

    Troublemakers, each only when ``count`` is large enough to have that device:
    ``without_rpm`` makes the FIRST device refuse ReadPropertyMultiple; ``large_unsegmented``
    makes the SECOND one non-segmenting (max APDU 480) with ``max(objects, 520)`` objects;
    ``silent_after`` makes the THIRD one go silent that many seconds after start, for
    ``silent_for`` seconds (None: for good).
    """
    try:
        first = ipaddress.IPv4Interface(first_address)
    except ValueError as err:
        raise SimulationError(f"first address {first_address!r} is not an IPv4 address: {err}") from None
    configs = []
    for n in range(count):
        device_id = first_device_id + n
        config = SimulatedDeviceConfig(
            device_id=device_id,
            name=f"SIM-{device_id}",
            address=str(first) if ports else _nth_address(first, n),
            port=FIRST_ALTERNATE_PORT + n if ports else BACNET_PORT,
            object_count=objects,
            drift_interval=drift_interval,
        )
        _apply_troublemaker(config, n, without_rpm, large_unsegmented, silent_after, silent_for)
        configs.append(config)
    return configs


def _apply_troublemaker(
    config: SimulatedDeviceConfig,
    position: int,
    without_rpm: bool,
    large_unsegmented: bool,
    silent_after: float | None,
    silent_for: float | None,
) -> None:
    """Give the device at ``position`` (0-based) its quirk, if that quirk was asked for."""
    if position == 0 and without_rpm:
        config.supports_rpm = False
        config.model_name = "SC-100 Legacy"
    elif position == 1 and large_unsegmented:
        config.segmentation = False
        config.max_apdu = UNSEGMENTED_MAX_APDU
        config.object_count = max(config.object_count, LARGE_OBJECT_COUNT)
        config.model_name = "SC-480 Compact"
    elif position == 2 and silent_after is not None:
        config.silent_after = silent_after
        config.silent_for = silent_for

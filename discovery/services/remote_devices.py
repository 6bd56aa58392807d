"""The client side of the service: discovery, point reading and writes to remote devices.

It uses the service's own stack (one stack is both device 8888 and the client). Network
work happens here; database work in ``remote_store`` through ``sync_to_async``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from discovery.services import remote_store
from discovery.services.bacnet.client import (
    BACnetRequestError,
    DeviceClient,
    IAm,
    PartialRead,
    RemoteObject,
    plain_value,
    who_is,
)

logger = logging.getLogger(__name__)

READ_DEVICE_INFO_CONCURRENCY = 16


@dataclass
class ScanResult:
    scan_id: int | None
    devices: list[dict[str, Any]]
    cached: bool = False
    error: str = ""
    finished_at: float = field(default_factory=time.monotonic)
    point_reads: list[dict[str, Any]] = field(default_factory=list)  # with read_points=True


@dataclass
class PointReadResult:
    device_id: int
    points: int
    objects: int
    error: str = ""
    used_rpm: bool | None = None


class RemoteDevices:
    """Client operations bound to one running stack."""

    def __init__(self, app: Any, own_device_id: int) -> None:
        self.app = app
        self.own_device_id = own_device_id
        self._scans: dict[tuple, ScanResult] = {}
        self._running_scans: dict[tuple, asyncio.Future] = {}
        self._clients: dict[int, DeviceClient] = {}
        # whole-device point reads at once: more only adds time-outs on a busy network
        self._point_reads = asyncio.Semaphore(settings.BACNET_POINT_READ_DEVICES)

    # --- discovery ----------------------------------------------------------------------------

    async def discover_devices(
        self,
        *,
        low_limit: int | None = None,
        high_limit: int | None = None,
        address: str | None = None,
        timeout: float | None = None,
        force: bool = False,
        read_points: bool = False,
    ) -> ScanResult:
        """Who-Is, then read each answering device; cached, and one scan at a time per query.

        With ``read_points`` every device found is also read whole (``read_device_points``),
        each as soon as its I-Am and device information are in, while the scan still listens
        for others: a commissioning scan. The results are in ``point_reads``.
        """
        if (low_limit is None) != (high_limit is None):
            raise ValueError("give both ends of the device-instance range, or neither")
        if low_limit is not None and not 0 <= low_limit <= high_limit <= 4194303:
            raise ValueError(f"invalid device-instance range {low_limit}-{high_limit}")
        timeout = settings.BACNET_DISCOVERY_TIMEOUT if timeout is None else timeout
        reads: dict[int, asyncio.Task[PointReadResult]] = {}

        def read_points_of(device: dict[str, Any]) -> None:
            if read_points and not device.get("error") and device["device_id"] not in reads:
                reads[device["device_id"]] = asyncio.create_task(self.read_device_points(device["device_id"]))

        try:
            result = await self._scan_once(low_limit, high_limit, address, timeout, force, read_points_of)
            if not read_points:
                return result
            for device in result.devices:  # a cached or shared scan, and any not started yet
                read_points_of(device)
            done = await asyncio.gather(*reads.values())
        finally:
            for task in reads.values():
                task.cancel()
        return dataclasses.replace(result, point_reads=[dataclasses.asdict(r) for r in done])

    async def _scan_once(
        self,
        low_limit: int | None,
        high_limit: int | None,
        address: str | None,
        timeout: float,
        force: bool,
        on_device: Callable[[dict[str, Any]], None],
    ) -> ScanResult:
        key = (low_limit, high_limit, address)
        cached = self._scans.get(key)
        if (
            not force
            and cached is not None
            and time.monotonic() - cached.finished_at < settings.BACNET_DISCOVERY_CACHE_SECONDS
        ):
            return ScanResult(cached.scan_id, cached.devices, cached=True, finished_at=cached.finished_at)
        running = self._running_scans.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._running_scans[key] = future
        try:
            result = await self._scan(low_limit, high_limit, address, timeout, on_device)
            self._scans[key] = result
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it through shield
            raise
        finally:
            del self._running_scans[key]

    async def _scan(
        self,
        low_limit: int | None,
        high_limit: int | None,
        address: str | None,
        timeout: float,
        on_device: Callable[[dict[str, Any]], None],
    ) -> ScanResult:
        """Who-Is; each device that answers is read and stored as its I-Am arrives."""
        scan_id = await database_sync_to_async(remote_store.start_scan)(
            low_limit=low_limit, high_limit=high_limit, address=address or "", timeout=timeout
        )
        slots = asyncio.Semaphore(READ_DEVICE_INFO_CONCURRENCY)
        devices: list[dict[str, Any]] = []
        describing: set[asyncio.Task[None]] = set()

        async def describe(iam: IAm) -> None:
            async with slots:
                client = self.client_for(iam)
                try:
                    info = await client.read_device_info(iam.device_id)
                except BACnetRequestError as error:
                    info = {"error": f"device information not read: {error.describe()}"}
            await database_sync_to_async(remote_store.record_device)(scan_id, iam, info)
            device = {
                "device_id": iam.device_id,
                "address": iam.address,
                "vendor_id": iam.vendor_id,
                "max_apdu": iam.max_apdu,
                "segmentation": iam.segmentation,
                **info,
            }
            devices.append(device)
            on_device(device)

        def heard(iam: IAm) -> None:
            describing.add(asyncio.create_task(describe(iam)))

        try:
            await who_is(
                self.app,
                low_limit=low_limit,
                high_limit=high_limit,
                address=address,
                timeout=timeout,
                exclude_device_id=self.own_device_id,
                on_i_am=heard,
            )
            await asyncio.gather(*describing)
        except BaseException as exc:
            for task in describing:
                task.cancel()
            logger.error("Scan %s failed: %s", scan_id, exc, exc_info=isinstance(exc, Exception))
            finish = database_sync_to_async(remote_store.finish_scan)(scan_id, f"scan failed: {exc!r}")
            await asyncio.shield(finish)
            raise
        await database_sync_to_async(remote_store.finish_scan)(scan_id)
        logger.info("Discovery found %d device(s)", len(devices))
        return ScanResult(scan_id, sorted(devices, key=lambda device: device["device_id"]))

    def client_for(self, target: IAm | remote_store.DeviceTarget) -> DeviceClient:
        """The DeviceClient of a device (kept, so it remembers RPM support and limits in-flight)."""
        client = self._clients.get(target.device_id)
        if isinstance(target, IAm):
            can_segment = target.segmentation in ("segmented-both", "segmented-transmit")
            supports_rpm = None
        else:
            can_segment, supports_rpm = target.can_segment, target.supports_rpm
        if client is None or str(client.address) != target.address:
            client = DeviceClient(
                self.app,
                target.address,
                max_apdu=target.max_apdu,
                can_segment=can_segment,
                supports_rpm=supports_rpm,
                max_in_flight=settings.BACNET_MAX_IN_FLIGHT,
                timeout=request_timeout(),
            )
            self._clients[target.device_id] = client
        return client

    async def target(self, device_id: int) -> DeviceClient:
        stored = await database_sync_to_async(remote_store.device_target)(device_id)
        return self.client_for(stored)

    # --- points -------------------------------------------------------------------------------

    async def read_device_points(self, device_id: int) -> PointReadResult:
        """Read the object list and every object of a device and store them as points."""
        client = await self.target(device_id)
        async with self._point_reads:
            objects, error = await self._read_points(client, device_id)
        if error:
            logger.warning("Reading the points of device %s: %s", device_id, error)
        stored = await database_sync_to_async(remote_store.store_points)(device_id, objects, error)
        await database_sync_to_async(remote_store.set_supports_rpm)(device_id, client.supports_rpm)
        return PointReadResult(device_id, stored, len(objects), error, client.supports_rpm)

    async def _read_points(self, client: DeviceClient, device_id: int) -> tuple[list[RemoteObject], str]:
        error = ""
        objects: list[RemoteObject] = []
        try:
            identifiers = await client.read_object_list(device_id)
            identifiers = [oid for oid in identifiers if oid[0] not in ("device", "network-port")]
            objects = await client.read_objects(identifiers)
        except PartialRead as partial:
            objects, error = partial.objects, f"stopped part-way: {partial.error.describe()}"
        except BACnetRequestError as failure:
            error = f"object list not read: {failure.describe()}"
        return objects, error

    async def read_property(self, device_id: int, object_id: str, prop: str, index: int | None = None) -> Any:
        client = await self.target(device_id)
        return plain_value(await client.read(object_id, prop, index))

    async def write_point(
        self,
        device_id: int,
        object_id: str,
        value: Any,
        *,
        priority: int | None = None,
        prop: str = "presentValue",
    ) -> None:
        """Write ``value`` (None relinquishes) at ``priority`` (default BACNET_DEFAULT_WRITE_PRIORITY)."""
        from bacpypes3.primitivedata import Null

        priority = settings.BACNET_DEFAULT_WRITE_PRIORITY if priority is None else priority
        if not 1 <= priority <= 16:
            raise ValueError(f"priority {priority} is not between 1 and 16")
        client = await self.target(device_id)
        await client.write(object_id, prop, Null(()) if value is None else value, priority)


def request_timeout() -> float:
    """How long one confirmed request may take, retries included, plus a margin."""
    apdu_seconds = settings.BACNET_APDU_TIMEOUT_MS / 1000
    return apdu_seconds * (settings.BACNET_APDU_RETRIES + 1) + 1.0

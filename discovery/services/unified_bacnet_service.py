"""The BACnet service: one stack that is device 8888 and the network's client.

``UnifiedBACnetService`` is the narrow interface web, API, websocket and command code use.
It owns the stack's lifetime (``start_service``/``stop_service``) and delegates the work:
the stack and its objects (``bacnet.device``, ``bacnet.objects``), the write path
(``bacnet.write_path``), the database (``virtual_store``) and notifications (``notifier``).
Nothing starts it implicitly: ``manage.py serve`` (or a test) does.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from discovery.models import WriteSource
from discovery.services import notifier, virtual_store
from discovery.services.bacnet.device import DeviceIdentity, LocalDeviceApplication, open_stack
from discovery.services.bacnet.network import BindError, resolve_bind_address
from discovery.services.bacnet.objects import ObjectSpec, build_object
from discovery.services.bacnet.point_state import WriteRejected
from discovery.services.bacnet.write_path import ServedPoint, WritePath
from discovery.services.bridge import BridgeServer
from discovery.services.control import ControlServer
from discovery.services.control import socket_path as control_socket_path
from discovery.services.poller import Poller
from discovery.services.remote_devices import PointReadResult, RemoteDevices, ScanResult

logger = logging.getLogger(__name__)


class ServiceState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


class ServiceNotRunning(RuntimeError):
    """The operation needs the BACnet service and it is not running in this process."""


class UnifiedBACnetService:
    def __init__(
        self,
        *,
        address: str | None = None,
        port: int | None = None,
        device_id: int | None = None,
        device_name: str | None = None,
        watch_interval: float | None = None,
    ) -> None:
        self.address_setting = settings.BACNET_ADDRESS if address is None else address
        self.port = settings.BACNET_DEFAULT_PORT if port is None else port
        self.device_id = settings.BACNET_DEVICE_ID if device_id is None else device_id
        self.device_name = settings.BACNET_DEVICE_NAME if device_name is None else device_name
        self.watch_interval = settings.BACNET_DB_WATCH_INTERVAL if watch_interval is None else watch_interval
        self.state = ServiceState.STOPPED
        self.failure: str = ""
        self.bound_address: str = ""
        self.started_at: float | None = None
        self.app: LocalDeviceApplication | None = None
        self.remote: RemoteDevices | None = None
        self.control: ControlServer | None = None
        self.poller: Poller | None = None
        self.bridge: BridgeServer | None = None
        self.write_path = WritePath(after_write=[self.notify_web_interface, self.trigger_business_logic])
        self._revision = 0
        self._sync_lock = asyncio.Lock()
        self._watcher: asyncio.Task | None = None

    # --- lifetime ---------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self.state == ServiceState.RUNNING

    async def start_service(
        self, *, control: bool = False, polling: bool = False, bridge: bool = False
    ) -> None:
        """Bind the stack, rebuild every virtual object from the database, announce the device.

        ``control`` opens the control socket for management commands; ``polling`` starts the
        poller of remote points; ``bridge`` answers web workers of other processes over the
        channel layer. ``serve`` turns them on.
        """
        if self.state in (ServiceState.RUNNING, ServiceState.STARTING):
            return
        self.state = ServiceState.STARTING
        try:
            interface = resolve_bind_address(self.address_setting)
            revision = await database_sync_to_async(virtual_store.get_database_revision)()
            identity = DeviceIdentity(
                device_id=self.device_id,
                name=self.device_name,
                vendor_id=settings.BACNET_VENDOR_ID,
                vendor_name=settings.BACNET_VENDOR_NAME,
                database_revision=revision,
                apdu_timeout_ms=settings.BACNET_APDU_TIMEOUT_MS,
                apdu_retries=settings.BACNET_APDU_RETRIES,
            )
            self.app = await open_stack(
                interface, self.port, identity, receive_buffer=settings.BACNET_RECEIVE_BUFFER_BYTES
            )
        except BaseException as exc:
            self.state = ServiceState.FAILED
            self.failure = str(exc) if isinstance(exc, BindError) else f"start-up failed: {exc!r}"
            logger.error(
                "BACnet service not started: %s", self.failure, exc_info=not isinstance(exc, BindError)
            )
            raise
        try:
            self.app.write_handler = self.handle_external_write
            self.remote = RemoteDevices(self.app, self.device_id)
            self.bound_address = f"{interface.ip}:{self.port}"
            await self.sync_virtual_objects_from_db()
            self._watcher = asyncio.create_task(self._watch_database(), name="bacnet-db-watch")
            if control:
                self.control = ControlServer(self, control_socket_path(str(interface.ip), self.port))
                await self.control.start()
            if polling:
                self.poller = Poller(self.remote)
                await self.poller.start()
            if bridge:
                self.bridge = BridgeServer(self)
                self.bridge.start()
        except BaseException as exc:
            # never leave a half-started stack holding the port
            await self.stop_service()
            self.state = ServiceState.FAILED
            self.failure = f"start-up failed: {exc!r}"
            logger.error("BACnet service not started: %s", self.failure, exc_info=True)
            raise
        self.state = ServiceState.RUNNING
        self.failure = ""
        self.started_at = time.monotonic()
        logger.info(
            "BACnet service started: device %s (%s) on %s (%s) with %d virtual objects",
            self.device_id,
            self.device_name,
            self.bound_address,
            interface.network,
            len(self.write_path.points),
        )

    async def stop_service(self) -> None:
        """Stop answering, finish pending notifications, release the port."""
        if self.app is None:
            self.state = ServiceState.STOPPED
            return
        if self.bridge is not None:
            await self.bridge.stop()
            self.bridge = None
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.poller is not None:
            await self.poller.stop()
            self.poller = None
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        await self.write_path.drain()
        self.app.close()
        await asyncio.sleep(0)  # the transports close their sockets on the next loop turn
        self.app = None
        self.remote = None
        self.write_path.points.clear()
        self.state = ServiceState.STOPPED
        self.started_at = None
        logger.info("BACnet service stopped; %s released", self.bound_address)

    def status(self) -> dict[str, Any]:
        uptime = time.monotonic() - self.started_at if self.started_at else None
        return {
            "state": str(self.state),
            "failure": self.failure,
            "address": self.bound_address,
            "device_id": self.device_id,
            "device_name": self.device_name,
            "uptime_seconds": uptime,
            "virtual_objects": len(self.write_path.points),
            "database_revision": self._revision,
            "polling": self.poller.status() if self.poller else None,
        }

    # --- virtual objects ----------------------------------------------------------------------

    async def _watch_database(self) -> None:
        """Pick up virtual devices created or deleted by other processes (CLI, web workers)."""
        while True:
            await asyncio.sleep(self.watch_interval)
            try:
                revision = await database_sync_to_async(virtual_store.get_database_revision)()
                if revision != self._revision:
                    await self.sync_virtual_objects_from_db()
            except Exception:
                logger.warning("Could not check the database for virtual devices", exc_info=True)

    async def sync_virtual_objects_from_db(self) -> None:
        """Make the served objects match the database: add new ones, remove deleted ones."""
        async with self._sync_lock:
            revision, specs = await database_sync_to_async(virtual_store.load_object_specs)()
            wanted = {spec.identifier: spec for spec in specs}
            for identifier, point in list(self.write_path.points.items()):
                spec = wanted.get(identifier)
                if spec is None or spec.object_name != point.spec.object_name or spec.pk != point.spec.pk:
                    self.remove_virtual_object(identifier)
            for identifier, spec in wanted.items():
                if identifier not in self.write_path.points:
                    try:
                        self.create_virtual_object(spec)
                    except Exception:
                        # one bad row must not keep every other object off the network
                        logger.error("Cannot serve virtual object %s", spec.object_name, exc_info=True)
            self._revision = revision
            if self.app is not None:
                self.app.device_object.databaseRevision = revision

    def create_virtual_object(self, spec: ObjectSpec) -> None:
        if self.app is None:
            raise ServiceNotRunning("the BACnet service is not running")
        obj = build_object(spec)
        self.app.add_object(obj)
        self.write_path.points[spec.identifier] = ServedPoint(spec=spec, obj=obj, state=spec.state)
        logger.debug("Serving %s as %s,%s", spec.object_name, spec.object_type, spec.instance)

    def remove_virtual_object(self, identifier: tuple[str, int]) -> None:
        point = self.write_path.points.pop(identifier, None)
        if point is None or self.app is None:
            return
        self.app.delete_object(point.obj)
        self.app._cov_detections.pop(point.obj.objectIdentifier, None)
        logger.debug("No longer serving %s", point.spec.object_name)

    # --- writes -------------------------------------------------------------------------------

    async def handle_external_write(
        self,
        identifier: tuple[str, int],
        property_name: str,
        value: Any,
        priority: int | None,
        source_address: str,
    ) -> None:
        """A WriteProperty(Multiple) from the network; returns once it is stored."""
        await self.write_path.write(
            identifier,
            property_name,
            value,
            priority,
            source=WriteSource.EXTERNAL_BACNET_WRITE,
            source_address=source_address,
        )

    async def write_virtual_object(
        self,
        object_name: str,
        value: Any,
        *,
        priority: int | None = None,
        property_name: str = "presentValue",
        source: str = WriteSource.INTERNAL,
        user: str = "",
    ) -> dict[str, Any]:
        """A change made by the app itself (web, API, business logic). Raises WriteRejected."""
        if not self.is_running:
            raise ServiceNotRunning("the BACnet service is not running")
        point = self.write_path.point_by_name(object_name)
        if point is None:
            raise WriteRejected("object", "unknown-object", f"no virtual object named {object_name!r}")
        return await self.write_path.write(
            point.spec.identifier, property_name, value, priority, source=source, user=user
        )

    # --- client side ----------------------------------------------------------------------------

    def _remote(self) -> RemoteDevices:
        if self.remote is None:
            raise ServiceNotRunning("the BACnet service is not running")
        return self.remote

    async def discover_devices(self, **options: Any) -> ScanResult:
        """Who-Is (optionally ranged or directed) and store what answers; see RemoteDevices."""
        return await self._remote().discover_devices(**options)

    async def read_device_points(self, device_id: int) -> PointReadResult:
        return await self._remote().read_device_points(device_id)

    async def read_remote_property(
        self, device_id: int, object_id: str, prop: str, index: int | None = None
    ) -> Any:
        return await self._remote().read_property(device_id, object_id, prop, index)

    async def write_remote_point(
        self, device_id: int, object_id: str, value: Any, *, priority: int | None = None
    ) -> None:
        """Write a point of a remote device; ``value`` None relinquishes ``priority``."""
        await self._remote().write_point(device_id, object_id, value, priority=priority)

    async def notify_web_interface(self, event: dict[str, Any]) -> None:
        await notifier.notify_web_interface(event)

    async def trigger_business_logic(self, event: dict[str, Any]) -> None:
        await notifier.trigger_business_logic(event)


_service: UnifiedBACnetService | None = None


def get_unified_bacnet_service() -> UnifiedBACnetService:
    """The process's one service object (created on first use, never started by this call)."""
    global _service
    if _service is None:
        _service = UnifiedBACnetService()
    return _service

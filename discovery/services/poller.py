"""Keep remote points fresh: COV where a device offers it, polling otherwise.

One ``DevicePoller`` per device (a coordinator, as in Home Assistant): it reads the points
that are due in batches, subscribes COV with a finite lifetime and renews it, keeps at most
``BACNET_MAX_IN_FLIGHT`` requests in flight (through its DeviceClient), marks the device
offline when it stops answering and backs off, and logs only when the state changes.
Readings go to one writer task that bulk-inserts them and tells the web pages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bacpypes3.apdu import SubscribeCOVRequest
from bacpypes3.basetypes import PropertyIdentifier
from bacpypes3.primitivedata import ObjectIdentifier
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from discovery.services import remote_store
from discovery.services.bacnet.client import (
    BACnetRequestError,
    DeviceClient,
    PartialRead,
    RemoteObject,
    guarded,
)
from discovery.services.remote_devices import RemoteDevices

logger = logging.getLogger(__name__)

POINTS_GROUP = "bacnet_points"
POINT_UPDATE = "point_update"
READ_PROPERTIES = ["presentValue", "statusFlags"]
FLUSH_INTERVAL = 0.5
MAX_BACKOFF = 60.0
PLAN_REFRESH = 10.0


def poll_intervals() -> dict[str, float]:
    return {
        "fast": settings.BACNET_POLL_FAST,
        "normal": settings.BACNET_POLL_NORMAL,
        "slow": settings.BACNET_POLL_SLOW,
    }


class ReadingWriter:
    """Collects readings and stores them in bulk every FLUSH_INTERVAL seconds."""

    def __init__(self) -> None:
        self._pending: list[remote_store.Reading] = []
        self.stored = 0

    def add(self, readings: list[remote_store.Reading]) -> None:
        self._pending += readings

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.stored += await database_sync_to_async(remote_store.store_readings)(batch)
        except Exception:
            logger.error("Could not store %d readings", len(batch), exc_info=True)
            return
        layer = get_channel_layer()
        if layer is not None:
            updates = [
                {
                    "point_id": r.point_id,
                    "value": r.value,
                    "value_text": r.value_text,
                    "status_flags": r.status_flags,
                    "timestamp": r.timestamp.isoformat(),
                }
                for r in batch
            ]
            try:
                await layer.group_send(POINTS_GROUP, {"type": POINT_UPDATE, "updates": updates})
            except Exception:
                logger.warning("Could not send point updates to the web pages", exc_info=True)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()


def to_reading(point: remote_store.PolledPoint, values: dict[str, Any]) -> remote_store.Reading:
    value, text = remote_store.point_value(point.object_type, values.get("presentValue"), point.texts)
    return remote_store.Reading(
        point_id=point.point_id,
        value=value,
        value_text=text,
        status_flags=remote_store.status_flag_list(values.get("statusFlags")),
        timestamp=timezone.now(),
    )


class DevicePoller:
    def __init__(
        self,
        client: DeviceClient,
        device_id: int,
        points: list[remote_store.PolledPoint],
        writer: ReadingWriter,
        *,
        use_cov: bool = True,
        cov_lifetime: int | None = None,
    ) -> None:
        self.client = client
        self.device_id = device_id
        self.points = points
        self.writer = writer
        self.use_cov = use_cov
        self.cov_lifetime = cov_lifetime or settings.BACNET_COV_LIFETIME
        self.online: bool | None = None
        self.failures = 0
        self.cov_points: dict[int, Any] = {}  # point id -> subscription context
        self._cov_supported: bool | None = None
        self._cov_tasks: set[asyncio.Task] = set()
        self._next_due = {point.point_id: 0.0 for point in points}

    async def run(self) -> None:
        try:
            while True:
                await self.cycle()
                await asyncio.sleep(self._sleep_time())
        finally:
            await self._drop_subscriptions()

    def _sleep_time(self) -> float:
        if self.online is False:
            return min(MAX_BACKOFF, 1.0 * 2 ** min(self.failures - 1, 6))
        polled = [due for pid, due in self._next_due.items() if pid not in self.cov_points]
        if not polled:
            return max(1.0, self.cov_lifetime * 0.5)
        return max(0.05, min(polled) - time.monotonic())

    async def cycle(self) -> None:
        """One round: (re)subscribe COV if needed, then read every point that is due."""
        try:
            if self.use_cov and self._cov_supported is not False:
                await self._subscribe_cov()
            now = time.monotonic()
            due = [
                p
                for p in self.points
                if p.point_id not in self.cov_points and self._next_due[p.point_id] <= now
            ]
            if due:
                objects = await self.client.read_objects(
                    [(p.object_type, p.instance) for p in due], READ_PROPERTIES
                )
                self._record(due, objects)
                for point in due:
                    self._next_due[point.point_id] = now + point.interval
        except PartialRead as partial:
            self._record(self.points, partial.objects)
            await self._failed(partial.error)
            return
        except BACnetRequestError as error:
            await self._failed(error)
            return
        await self._succeeded()

    def _record(self, points: list[remote_store.PolledPoint], objects: list[RemoteObject]) -> None:
        by_id = {(p.object_type, p.instance): p for p in points}
        readings = [
            to_reading(by_id[(obj.object_type, obj.instance)], obj.properties)
            for obj in objects
            if (obj.object_type, obj.instance) in by_id and "presentValue" in obj.properties
        ]
        self.writer.add(readings)

    async def _succeeded(self) -> None:
        if self.online is not True:
            if self.online is False:
                logger.info("Device %s is back online", self.device_id)
            self.online = True
            await database_sync_to_async(remote_store.set_device_online)(self.device_id, True)
        self.failures = 0

    async def _failed(self, error: BACnetRequestError) -> None:
        self.failures += 1
        if not error.is_timeout:
            logger.debug("Device %s answered with %s", self.device_id, error.describe())
            return
        if self.online is not False:
            logger.warning("Device %s is offline: %s", self.device_id, error.describe())
            self.online = False
            await database_sync_to_async(remote_store.set_device_online)(
                self.device_id, False, error.describe()
            )
            await self._drop_subscriptions(unsubscribe=False)

    # --- COV ---------------------------------------------------------------------------------

    async def _subscribe_cov(self) -> None:
        now = time.monotonic()
        before = set(self.cov_points)
        try:
            await self._subscribe_due(now)
        finally:
            if set(self.cov_points) != before:
                await database_sync_to_async(remote_store.set_cov_points)(
                    [p.point_id for p in self.points], set(self.cov_points)
                )

    async def _subscribe_due(self, now: float) -> None:
        for point in self.points:
            subscription = self.cov_points.get(point.point_id)
            if subscription is not None and subscription.renew_at > now:
                continue
            try:
                await self._subscribe(point, subscription)
            except BACnetRequestError as error:
                if error.is_timeout:
                    raise
                if self._cov_supported is None:
                    logger.info(
                        "Device %s does not offer COV (%s): polling", self.device_id, error.describe()
                    )
                    self._cov_supported = False
                    return
                continue
            self._cov_supported = True

    async def _subscribe(self, point: remote_store.PolledPoint, existing: Any) -> None:
        app = self.client.app
        address = self.client.address
        if existing is None:
            process_id = point.point_id % (1 << 22)
            existing = app.change_of_value(
                address,
                ObjectIdentifier(f"{point.object_type},{point.instance}"),
                process_id,
                False,
                self.cov_lifetime,
            )
            # registered before subscribing so the device's initial notification is not refused
            app._cov_contexts[(address, process_id)] = existing
        try:
            await guarded(existing.refresh_subscription(), self.client.timeout)
        except BACnetRequestError:
            if point.point_id not in self.cov_points:
                app._cov_contexts.pop((address, existing.subscriber_process_identifier), None)
            raise
        if existing.refresh_subscription_handle is not None:
            existing.refresh_subscription_handle.cancel()  # renewal is ours, see renew_at
            existing.refresh_subscription_handle = None
        existing.renew_at = time.monotonic() + self.cov_lifetime * 0.8
        if point.point_id not in self.cov_points:
            self.cov_points[point.point_id] = existing
            task = asyncio.create_task(self._listen(point, existing))
            self._cov_tasks.add(task)
            task.add_done_callback(self._cov_tasks.discard)

    async def _listen(self, point: remote_store.PolledPoint, subscription: Any) -> None:
        values: dict[str, Any] = {}
        while True:
            identifier, value = await subscription.get_value()
            name = PropertyIdentifier(identifier).attr
            values[name] = value
            if name == "presentValue":
                self.writer.add([to_reading(point, values)])

    async def _drop_subscriptions(self, unsubscribe: bool = True) -> None:
        for task in list(self._cov_tasks):
            task.cancel()
        for subscription in self.cov_points.values():
            key = (subscription.address, subscription.subscriber_process_identifier)
            self.client.app._cov_contexts.pop(key, None)
            if unsubscribe:
                cancel = SubscribeCOVRequest(
                    subscriberProcessIdentifier=subscription.subscriber_process_identifier,
                    monitoredObjectIdentifier=subscription.monitored_object_identifier,
                    destination=subscription.address,
                )
                try:
                    await guarded(self.client.app.request(cancel), 1.0)
                except BACnetRequestError:
                    pass  # the device forgets it when the lifetime ends
        self.cov_points.clear()


class Poller:
    """All device pollers of the service; the plan is re-read every PLAN_REFRESH seconds."""

    def __init__(self, remote: RemoteDevices, *, use_cov: bool = True) -> None:
        self.remote = remote
        self.use_cov = use_cov
        self.writer = ReadingWriter()
        self.devices: dict[int, tuple[DevicePoller, asyncio.Task]] = {}
        self._tasks: list[asyncio.Task] = []
        self._fingerprint: tuple | None = None

    async def start(self) -> None:
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self.writer.run(), name="bacnet-readings"),
            asyncio.create_task(self._refresh_loop(), name="bacnet-poll-plan"),
        ]
        logger.info("Polling %d device(s)", len(self.devices))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(PLAN_REFRESH)
            try:
                await self.refresh()
            except Exception:
                logger.warning("Could not refresh the polling plan", exc_info=True)

    async def refresh(self) -> None:
        """Re-read the plan when points were added, removed or read again since the last time."""
        fingerprint = await database_sync_to_async(remote_store.points_fingerprint)()
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        plan = await database_sync_to_async(remote_store.polling_plan)(poll_intervals())
        for device_id in set(self.devices) - set(plan):
            _, task = self.devices.pop(device_id)
            task.cancel()
        for device_id, (target, points) in plan.items():
            current = self.devices.get(device_id)
            if current is not None and {p.point_id for p in current[0].points} == {
                p.point_id for p in points
            }:
                continue
            if current is not None:
                current[1].cancel()
            poller = DevicePoller(
                self.remote.client_for(target), device_id, points, self.writer, use_cov=self.use_cov
            )
            self.devices[device_id] = (poller, asyncio.create_task(poller.run(), name=f"poll-{device_id}"))

    def status(self) -> dict[str, Any]:
        return {
            "devices": len(self.devices),
            "online": sorted(d for d, (p, _) in self.devices.items() if p.online),
            "offline": sorted(d for d, (p, _) in self.devices.items() if p.online is False),
            "cov_points": sum(len(p.cov_points) for p, _ in self.devices.values()),
            "readings_stored": self.writer.stored,
        }

    async def stop(self) -> None:
        tasks = self._tasks + [task for _, task in self.devices.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.writer.flush()
        self.devices.clear()
        logger.info("Polling stopped; %d readings stored", self.writer.stored)

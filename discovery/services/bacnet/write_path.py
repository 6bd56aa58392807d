"""The one way a virtual object changes: validate, persist, apply, then notify.

A BACnet WriteProperty/WritePropertyMultiple, the web page, the API and business logic all
call ``WritePath.write``. Writes to one object are serialized by a lock so the value that
ends up on the object, in its row and in the history is the last one acknowledged. The row
is stored before the call returns (so before the BACnet acknowledgement); notifying the
browsers and running the hooks happens afterwards in tasks the caller does not wait for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import ObjectDoesNotExist

from discovery.models import WriteSource
from discovery.services import virtual_store
from discovery.services.bacnet.objects import ObjectSpec, apply_state
from discovery.services.bacnet.point_state import PointState, WriteRejected, apply_write, check_priority

logger = logging.getLogger(__name__)

AfterWrite = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ServedPoint:
    """A virtual object as it is served: its spec, its bacpypes3 object and current state."""

    spec: ObjectSpec
    obj: Any
    state: PointState
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class WritePath:
    def __init__(self, after_write: list[AfterWrite]) -> None:
        self.points: dict[tuple[str, int], ServedPoint] = {}
        self._after_write = after_write
        self._tasks: set[asyncio.Task] = set()

    def point_by_name(self, object_name: str) -> ServedPoint | None:
        for point in self.points.values():
            if point.spec.object_name == object_name:
                return point
        return None

    async def write(
        self,
        identifier: tuple[str, int],
        property_name: str,
        value: Any,
        priority: int | None = None,
        *,
        source: str,
        source_address: str = "",
        user: str = "",
    ) -> dict[str, Any]:
        """Change one property; return the change event. Raises ``WriteRejected``."""
        point = self.points.get(identifier)
        if point is None:
            raise WriteRejected("object", "unknown-object", f"no virtual object {identifier}")
        async with point.lock:
            new_state = apply_write(point.state, property_name, value, priority)
            record = virtual_store.WriteRecord(
                property_name=property_name,
                value=value,
                priority=check_priority(priority)
                if new_state.commandable and property_name == "presentValue"
                else None,
                source=source,
                source_address=source_address,
                user=user,
            )
            try:
                row = await database_sync_to_async(virtual_store.persist_write)(
                    point.spec.pk, new_state, record
                )
            except ObjectDoesNotExist:
                raise WriteRejected("object", "unknown-object", "the object was deleted") from None
            except Exception:
                logger.error("Could not store a write to %s", point.spec.object_name, exc_info=True)
                raise WriteRejected(
                    "device", "operational-problem", "the write could not be stored"
                ) from None
            apply_state(point.obj, point.spec.object_type, point.state, new_state)
            point.state = new_state
        event = change_event(point, row, record)
        logger.info(
            "%s.%s = %s (priority %s) by %s %s",
            point.spec.object_name,
            property_name,
            row.value_text,
            record.priority,
            source,
            source_address or user,
        )
        for callback in self._after_write:
            self._spawn(callback(event))
        return event

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for pending notifications (at shutdown); cancel what is left after ``timeout``."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()


def change_event(point: ServedPoint, row: Any, record: virtual_store.WriteRecord) -> dict[str, Any]:
    state = point.state
    return {
        "write_id": row.pk,
        "device_id": point.spec.device_id,
        "object_name": point.spec.object_name,
        "object_type": point.spec.object_type,
        "instance": point.spec.instance,
        "property": record.property_name,
        "value": record.value,
        "value_text": row.value_text,
        "present_value": state.present_value,
        "present_value_text": row.virtual_object.present_value_text,
        "priority": record.priority,
        "priority_array": list(state.priority_array),
        "current_command_priority": state.current_command_priority,
        "relinquish_default": state.relinquish_default,
        "relinquish_default_text": virtual_store.value_text(row.virtual_object, state.relinquish_default)
        if state.relinquish_default is not None
        else "",
        "priority_array_text": [
            "" if slot is None else virtual_store.value_text(row.virtual_object, slot)
            for slot in state.priority_array
        ],
        "out_of_service": state.out_of_service,
        "source": record.source,
        "external": record.source == WriteSource.EXTERNAL_BACNET_WRITE,
        "source_address": record.source_address,
        "user": record.user,
        "timestamp": row.created_at.isoformat(),
    }

"""Websocket consumer that pushes changes of virtual objects to the browser."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from discovery.services.notifier import VIRTUAL_DEVICES_GROUP
from discovery.services.poller import POINTS_GROUP

GROUPS = (VIRTUAL_DEVICES_GROUP, POINTS_GROUP)


class VirtualDeviceConsumer(AsyncJsonWebsocketConsumer):
    """Joins the ``virtual_devices`` and ``bacnet_points`` groups; only signed-in users are accepted."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        for group in GROUPS:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in GROUPS:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def external_write_notification(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def point_update(self, message: dict[str, Any]) -> None:
        """New readings of remote points (from the poller)."""
        await self.send_json(message)

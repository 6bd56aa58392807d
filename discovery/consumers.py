"""Websocket consumer that pushes changes of virtual objects to the browser."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from discovery.services.notifier import VIRTUAL_DEVICES_GROUP


class VirtualDeviceConsumer(AsyncJsonWebsocketConsumer):
    """Joins the ``virtual_devices`` group; only signed-in users are accepted."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(VIRTUAL_DEVICES_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(VIRTUAL_DEVICES_GROUP, self.channel_name)

    async def external_write_notification(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

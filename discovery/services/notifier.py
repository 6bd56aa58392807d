"""Tell the open web pages and the business logic about a change; never raise."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from discovery.signals import virtual_object_changed

logger = logging.getLogger(__name__)

VIRTUAL_DEVICES_GROUP = "virtual_devices"
EXTERNAL_WRITE_NOTIFICATION = "external_write_notification"


async def notify_web_interface(event: dict[str, Any]) -> None:
    """Send ``event`` to every websocket in the ``virtual_devices`` group."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(VIRTUAL_DEVICES_GROUP, {"type": EXTERNAL_WRITE_NOTIFICATION, **event})
    except Exception:
        logger.warning("Could not notify the web interface of %s", event.get("object_name"), exc_info=True)


def _run_hooks(event: dict[str, Any]) -> None:
    for receiver, result in virtual_object_changed.send_robust(sender=None, event=event):
        if isinstance(result, Exception):
            logger.error(
                "Business-logic hook %r failed for %s",
                receiver,
                event.get("object_name"),
                exc_info=result,
            )


async def trigger_business_logic(event: dict[str, Any]) -> None:
    """Run the ``virtual_object_changed`` receivers in a worker thread."""
    try:
        await sync_to_async(_run_hooks, thread_sensitive=False)(event)
    except Exception:
        logger.error("Business-logic hooks failed for %s", event.get("object_name"), exc_info=True)

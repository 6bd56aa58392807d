"""The service interface across processes, over the channel layer (scale-out).

The process that owns the stack (``serve``) answers requests on the ``bacnet-service`` channel
(``BridgeServer``). A web worker without the stack (``USE_UNIFIED_BACNET_SERVICE=false``, Redis
channel layer) talks to it through ``RemoteService``, which offers the facade's methods the web
code uses and raises the same errors. With the in-memory layer there is no other process, so
the bridge is used only when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from discovery.services.bacnet.client import BACnetRequestError
from discovery.services.bacnet.point_state import WriteRejected
from discovery.services.operations import OperationError, execute
from discovery.services.remote_devices import PointReadResult, ScanResult
from discovery.services.remote_store import UnknownDevice

logger = logging.getLogger(__name__)

SERVICE_CHANNEL = "bacnet-service"
REQUEST_TIMEOUT = 30.0
POINT_READ_TIMEOUT = 900.0  # reading whole devices (every device, for a commissioning scan)


class ServiceUnreachable(RuntimeError):
    """No BACnet service process answered on the channel layer."""


class BridgeServer:
    """Answers requests from other processes with the local service."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self._task: asyncio.Task | None = None
        self._handlers: set[asyncio.Task] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="bacnet-bridge")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._handlers] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                message = await layer.receive(SERVICE_CHANNEL)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Channel layer receive failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            task = asyncio.create_task(self._answer(layer, message))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _answer(self, layer: Any, message: dict[str, Any]) -> None:
        reply = message.get("reply_channel")
        try:
            answer: dict[str, Any] = {
                "ok": True,
                "result": await execute(self.service, message["op"], message["args"]),
            }
        except OperationError as exc:
            answer = {"ok": False, "error": str(exc), "details": exc.details}
        except Exception as exc:
            logger.error("Bridge request %s failed", message.get("op"), exc_info=True)
            answer = {"ok": False, "error": f"internal error: {exc}", "details": {}}
        if reply:
            await layer.send(reply, {"type": "bacnet.reply", **answer})


class RemoteService:
    """The facade's web-facing methods, executed by the service process."""

    is_running = True

    async def _call(self, op: str, args: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> Any:
        layer = get_channel_layer()
        reply = await layer.new_channel()
        await layer.send(
            SERVICE_CHANNEL, {"type": "bacnet.request", "op": op, "args": args, "reply_channel": reply}
        )
        try:
            answer = await asyncio.wait_for(layer.receive(reply), timeout)
        except TimeoutError:
            raise ServiceUnreachable("the BACnet service process did not answer") from None
        if answer["ok"]:
            return answer["result"]
        details = answer.get("details") or {}
        kind = details.get("kind")
        if kind == "write-rejected":
            raise WriteRejected(details["error_class"], details["error_code"], answer["error"])
        if kind == "unknown-device":
            raise UnknownDevice(answer["error"])
        if kind in ("error", "reject", "abort", "timeout", "invalid-value"):
            raise BACnetRequestError(
                kind,
                details.get("message", answer["error"]),
                details.get("error_class", ""),
                details.get("error_code", ""),
                details.get("reason", ""),
            )
        raise ValueError(answer["error"])

    async def write_virtual_object(self, object_name: str, value: Any, **options: Any) -> dict[str, Any]:
        args = {"object_name": object_name, "value": value, **options}
        if "property_name" in args:
            args["property"] = args.pop("property_name")
        return await self._call("write_virtual", args)

    async def sync_virtual_objects_from_db(self) -> None:
        await self._call("sync_virtual", {})

    async def discover_devices(self, **options: Any) -> ScanResult:
        timeout = POINT_READ_TIMEOUT if options.get("read_points") else REQUEST_TIMEOUT + 30
        return ScanResult(**await self._call("discover", options, timeout=timeout))

    async def read_device_points(self, device_id: int) -> PointReadResult:
        args = {"device_id": device_id}
        return PointReadResult(**await self._call("discover_points", args, timeout=POINT_READ_TIMEOUT))

    async def write_remote_point(
        self, device_id: int, object_id: str, value: Any, *, priority: int | None = None
    ):
        args = {"device_id": device_id, "object": object_id, "value": value, "priority": priority}
        await self._call("write", args)


def bridge_enabled() -> bool:
    """Only a cross-process channel layer can reach another process."""
    return bool(settings.REDIS_URL)

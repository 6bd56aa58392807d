"""Service operations by name, with JSON-friendly arguments and results.

Callers in other processes use these: management commands through the running service's
control socket (``control``) or on a stack of their own, and web workers without the stack
through the channel layer (``bridge``); all end up in ``execute``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from discovery.services.bacnet.client import BACnetRequestError, plain_value
from discovery.services.bacnet.point_state import WriteRejected
from discovery.services.remote_store import UnknownDevice


class OperationError(Exception):
    """An operation that failed in a way the user should read (one line)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


async def execute(service: Any, op: str, args: dict[str, Any]) -> Any:
    """Run ``op`` on ``service`` (a started UnifiedBACnetService); raise OperationError."""
    try:
        if op == "status":
            return service.status()
        if op == "discover":
            result = await service.discover_devices(
                low_limit=args.get("low_limit"),
                high_limit=args.get("high_limit"),
                address=args.get("address"),
                timeout=args.get("timeout"),
                force=bool(args.get("force", False)),
                read_points=bool(args.get("read_points", False)),
            )
            return dataclasses.asdict(result)
        if op == "discover_points":
            return dataclasses.asdict(await service.read_device_points(int(args["device_id"])))
        if op == "read":
            value = await service.read_remote_property(
                int(args["device_id"]), args["object"], args["property"], args.get("index")
            )
            return {"value": _jsonable(value)}
        if op == "write":
            await service.write_remote_point(
                int(args["device_id"]), args["object"], args.get("value"), priority=args.get("priority")
            )
            return {"written": True}
        if op == "write_virtual":
            return await service.write_virtual_object(
                args["object_name"],
                args.get("value"),
                priority=args.get("priority"),
                property_name=args.get("property", "presentValue"),
                source=args.get("source", "internal"),
                user=args.get("user", ""),
            )
        if op == "sync_virtual":
            await service.sync_virtual_objects_from_db()
            return {"synced": True}
    except UnknownDevice as exc:
        raise OperationError(str(exc), {"kind": "unknown-device"}) from None
    except WriteRejected as exc:
        details = {"kind": "write-rejected", "error_class": exc.error_class, "error_code": exc.error_code}
        raise OperationError(exc.message, details) from None
    except BACnetRequestError as exc:
        raise OperationError(exc.describe(), exc.as_dict()) from None
    except KeyError as exc:
        raise OperationError(f"unknown name {exc}") from None
    except ValueError as exc:
        raise OperationError(f"invalid request: {exc}") from None
    raise OperationError(f"unknown operation {op!r}")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(plain_value(item)) for item in value]
    return str(value)

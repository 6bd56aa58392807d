"""Client operations by name, with JSON-friendly arguments and results.

The management commands call these, either through a running service's control socket
(``control``) or on a stack of their own when no service runs; both end up in ``execute``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from discovery.services.bacnet.client import BACnetRequestError, plain_value
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
    except UnknownDevice as exc:
        raise OperationError(str(exc)) from None
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

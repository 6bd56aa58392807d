"""A small JSON API (session sign-in, CSRF like the pages): read devices and points, write objects.

Errors are JSON with a message and a 4xx/5xx status; BACnet refusals carry their class and code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from discovery.models import BACnetDevice, VirtualBACnetDevice, WriteSource
from discovery.services.bacnet.point_state import WriteRejected
from discovery.views.common import NOT_RUNNING_MESSAGE, OPERATE, running_service


def api_login_required(view: Callable) -> Callable:
    """401 JSON (not a redirect to the sign-in page) for anonymous API calls."""

    @wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        user = await request.auser()
        if not user.is_authenticated:
            return JsonResponse({"error": "sign in first"}, status=401)
        return await view(request, *args, **kwargs)

    return wrapper


def _virtual_devices() -> list[dict[str, Any]]:
    return [
        {
            "device_id": device.device_id,
            "name": device.name,
            "template": device.template,
            "last_external_write": device.last_external_write,
            "objects": [
                {
                    "object_name": obj.object_name,
                    "object_type": obj.object_type,
                    "instance": obj.instance,
                    "present_value": obj.present_value,
                    "present_value_text": obj.present_value_text,
                    "units": obj.units,
                    "priority_array": obj.priority_array,
                    "relinquish_default": obj.relinquish_default,
                    "out_of_service": obj.out_of_service,
                }
                for obj in device.bacnet_objects.all()
            ],
        }
        for device in VirtualBACnetDevice.objects.prefetch_related("bacnet_objects")
    ]


def _remote_devices() -> list[dict[str, Any]]:
    return [
        {
            "device_id": device.device_id,
            "address": device.address,
            "name": device.object_name,
            "vendor": device.vendor_name,
            "model": device.model_name,
            "online": device.online,
            "points": [
                {
                    "id": point.pk,
                    "object_type": point.object_type,
                    "instance": point.instance,
                    "name": point.object_name,
                    "value": point.present_value,
                    "value_text": point.present_value_text,
                    "units": point.units,
                    "status_flags": point.status_flags,
                    "last_update": point.last_update,
                }
                for point in device.points.all()
            ],
        }
        for device in BACnetDevice.objects.prefetch_related("points")
    ]


@require_GET
@api_login_required
async def api_virtual_devices(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"virtual_devices": await sync_to_async(_virtual_devices)()})


@require_GET
@api_login_required
async def api_devices(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"devices": await sync_to_async(_remote_devices)()})


@require_POST
@api_login_required
async def api_write_virtual_object(request: HttpRequest, object_name: str) -> JsonResponse:
    """Body: {"value": number|null, "priority": 1-16, "property": "presentValue"|"outOfService"|...}."""
    user = await request.auser()
    if not await sync_to_async(user.has_perm)(OPERATE):
        return JsonResponse({"error": "you may not write values"}, status=403)
    try:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict) or "value" not in body:
            raise ValueError("a JSON object with a value is expected")
        priority = body.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise ValueError("priority must be a whole number from 1 to 16")
    except ValueError as exc:
        return JsonResponse({"error": f"bad request: {exc}"}, status=400)
    service = running_service()
    if service is None:
        return JsonResponse({"error": NOT_RUNNING_MESSAGE}, status=503)
    try:
        event = await service.write_virtual_object(
            object_name,
            body["value"],
            priority=priority,
            property_name=str(body.get("property", "presentValue")),
            source=WriteSource.API,
            user=user.get_username(),
        )
    except WriteRejected as exc:
        status = 404 if exc.error_code == "unknown-object" else 400
        return JsonResponse(
            {"error": exc.message, "error_class": exc.error_class, "error_code": exc.error_code},
            status=status,
        )
    return JsonResponse(event)

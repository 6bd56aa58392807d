"""The dashboard: the service and the network at a glance."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from discovery.models import (
    BACnetDevice,
    BACnetPoint,
    VirtualBACnetDevice,
    VirtualBACnetObject,
    VirtualObjectWrite,
)
from discovery.services.unified_bacnet_service import get_unified_bacnet_service
from discovery.views.common import can_operate


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    service = get_unified_bacnet_service()
    status = service.status()
    if not settings.USE_UNIFIED_BACNET_SERVICE:
        status["failure"] = status["failure"] or "USE_UNIFIED_BACNET_SERVICE is false: web only"
    context = {
        "status": status,
        "remote_online": BACnetDevice.objects.filter(online=True).count(),
        "remote_offline": BACnetDevice.objects.filter(online=False).count(),
        "points": BACnetPoint.objects.count(),
        "virtual_devices": VirtualBACnetDevice.objects.count(),
        "virtual_objects": VirtualBACnetObject.objects.count(),
        "latest_writes": VirtualObjectWrite.objects.select_related("virtual_object__device")[:15],
        "can_operate": can_operate(request.user),
    }
    return render(request, "discovery/dashboard.html", context)


@login_required
def service_status(request: HttpRequest) -> JsonResponse:
    """The BACnet service's state as seen by this process."""
    return JsonResponse(get_unified_bacnet_service().status())

"""HTTP views."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse

from discovery.services.unified_bacnet_service import get_unified_bacnet_service


@login_required
def service_status(request: HttpRequest) -> JsonResponse:
    """The BACnet service's state as seen by this process."""
    return JsonResponse(get_unified_bacnet_service().status())

"""The discovery page: start a Who-Is scan and see what was found."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from discovery.forms import ScanForm
from discovery.models import BACnetDevice, NetworkScan
from discovery.services.bacnet.client import BACnetRequestError
from discovery.services.remote_devices import ScanResult
from discovery.views.common import NOT_RUNNING_MESSAGE, OPERATE, arender, can_operate, running_service


def _page_context(user) -> dict:
    return {
        "devices": list(BACnetDevice.objects.all()),
        "scans": list(NetworkScan.objects.all()[:10]),
        "can_operate": can_operate(user),
    }


@login_required
@require_http_methods(["GET", "POST"])
async def start_discovery(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    if request.method == "GET":
        context = await sync_to_async(_page_context)(user)
        return await arender(request, "discovery/discovery.html", {"form": ScanForm(), **context})
    if not await sync_to_async(user.has_perm)(OPERATE):
        return HttpResponse("You may not start scans.", status=403)
    form = ScanForm(request.POST)
    service = running_service()
    if form.is_valid() and service is not None:
        try:
            result = await service.discover_devices(
                low_limit=form.cleaned_data["low_limit"],
                high_limit=form.cleaned_data["high_limit"],
                force=True,
                read_points=form.cleaned_data["read_points"],
            )
        except (BACnetRequestError, OSError) as exc:
            await sync_to_async(messages.error)(request, f"The scan failed: {exc}")
        else:
            await sync_to_async(messages.success)(request, scan_message(result))
        return redirect("start_discovery")
    status = 400
    if form.is_valid():
        await sync_to_async(messages.error)(request, NOT_RUNNING_MESSAGE)
        status = 503
    context = await sync_to_async(_page_context)(user)
    return await arender(request, "discovery/discovery.html", {"form": form, **context}, status=status)


def scan_message(result: ScanResult) -> str:
    found = f"Scan finished: {len(result.devices)} device(s) found"
    if not result.point_reads:
        return found + "."
    points = sum(read["points"] for read in result.point_reads)
    failed = [str(read["device_id"]) for read in result.point_reads if read["error"]]
    note = f" (read with errors: {', '.join(failed)})" if failed else ""
    return f"{found}, {points} point(s) stored from {len(result.point_reads)} device(s){note}."

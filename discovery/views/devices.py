"""A remote device's page: its points, live values, writes and history."""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from discovery.forms import WriteValueForm
from discovery.models import BACnetDevice, BACnetPoint
from discovery.services.bacnet.client import BACnetRequestError
from discovery.services.remote_store import UnknownDevice
from discovery.views.common import NOT_RUNNING_MESSAGE, OPERATE, can_operate, error_in_words, running_service

HISTORY_PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
MAX_HISTORY_POINTS = 2000


@login_required
def device_detail(request: HttpRequest, device_id: int) -> HttpResponse:
    device = get_object_or_404(BACnetDevice, device_id=device_id)
    context = {
        "device": device,
        "points": device.points.all(),
        "write_form": WriteValueForm(),
        "can_operate": can_operate(request.user),
    }
    return render(request, "discovery/device_detail.html", context)


async def _guard(request: HttpRequest) -> HttpResponse | None:
    user = await request.auser()
    if not await sync_to_async(user.has_perm)(OPERATE):
        return HttpResponse("You may not change anything on the network.", status=403)
    return None


@login_required
@require_POST
async def discover_points(request: HttpRequest, device_id: int) -> HttpResponse:
    if (refused := await _guard(request)) is not None:
        return refused
    service = running_service()
    if service is None:
        await sync_to_async(messages.error)(request, NOT_RUNNING_MESSAGE)
        return redirect("device_detail", device_id=device_id)
    try:
        result = await service.read_device_points(device_id)
    except UnknownDevice as exc:
        raise Http404(str(exc)) from None
    if result.error:
        await sync_to_async(messages.warning)(request, f"Read {result.points} point(s); {result.error}")
    else:
        await sync_to_async(messages.success)(request, f"Read {result.points} point(s).")
    return redirect("device_detail", device_id=device_id)


def _point(device_id: int, pk: int) -> BACnetPoint:
    return get_object_or_404(BACnetPoint.objects.select_related("device"), pk=pk, device__device_id=device_id)


def point_write_value(point: BACnetPoint, text: str) -> object:
    """The form's text as the value the stack sends: state text or number."""
    text = text.strip()
    if point.object_type.startswith("binary"):
        lowered = text.lower()
        if lowered in ("1", "active", "on", "true", point.active_text.lower()):
            return "active"
        if lowered in ("0", "inactive", "off", "false", point.inactive_text.lower()):
            return "inactive"
        raise ValueError(
            f"{text!r} is not {point.active_text or 'active'} or {point.inactive_text or 'inactive'}"
        )
    if point.object_type.startswith("multi-state"):
        if text in point.state_texts:
            return point.state_texts.index(text) + 1
        return int(text)
    return float(text)


@login_required
@require_POST
async def write_point(request: HttpRequest, device_id: int, pk: int) -> HttpResponse:
    if (refused := await _guard(request)) is not None:
        return refused
    point = await sync_to_async(_point)(device_id, pk)
    form = WriteValueForm(request.POST)
    service = running_service()
    status, message = 200, ""
    if not form.is_valid():
        status, message = 400, " ".join(str(e) for errors in form.errors.values() for e in errors)
    elif service is None:
        status, message = 503, NOT_RUNNING_MESSAGE
    else:
        relinquish, priority = form.cleaned_data["relinquish"], form.cleaned_data["priority"]
        try:
            value = None if relinquish else point_write_value(point, form.cleaned_data["value"])
            await service.write_remote_point(
                device_id, f"{point.object_type},{point.instance}", value, priority=priority
            )
        except ValueError as exc:
            status, message = 400, f"Invalid value: {exc}"
        except BACnetRequestError as exc:
            words = error_in_words(exc.error_class, exc.error_code) if exc.kind == "error" else exc.describe()
            status, message = 502, f"The device refused the write: {words}"
        else:
            message = (
                f"Relinquished priority {priority}."
                if relinquish
                else f"Wrote {value} at priority {priority}."
            )
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"ok": status == 200, "message": message}, status=status)
    level = messages.success if status == 200 else messages.error
    await sync_to_async(level)(request, f"{point.object_name}: {message}")
    return redirect("device_detail", device_id=device_id)


@login_required
@require_GET
def point_history(request: HttpRequest, device_id: int, pk: int) -> JsonResponse:
    """Readings of a point over ``period`` (1h, 24h, 7d) for the chart."""
    point = _point(device_id, pk)
    period = request.GET.get("period", "24h")
    if period not in HISTORY_PERIODS:
        return JsonResponse({"error": f"period must be one of {', '.join(HISTORY_PERIODS)}"}, status=400)
    since = timezone.now() - HISTORY_PERIODS[period]
    readings = list(
        point.readings.filter(timestamp__gte=since)
        .order_by("-timestamp")
        .values_list("timestamp", "value")[:MAX_HISTORY_POINTS]
    )
    readings.reverse()
    return JsonResponse(
        {
            "point": point.object_name,
            "units": point.units,
            "period": period,
            "readings": [{"t": t.isoformat(), "v": v} for t, v in readings if v is not None],
        }
    )

"""Virtual devices: list, create from a template, inspect, write, delete."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from discovery.forms import CreateVirtualDeviceForm, WriteValueForm
from discovery.models import VirtualBACnetDevice, VirtualBACnetObject, VirtualObjectWrite, WriteSource
from discovery.services import virtual_store
from discovery.services.bacnet.point_state import WriteRejected
from discovery.services.object_templates import ANALOG_TYPES, BACNET_OBJECT_TEMPLATES, BINARY_TYPES
from discovery.views.common import (
    NOT_RUNNING_MESSAGE,
    OPERATE,
    arender,
    can_operate,
    error_in_words,
    running_service,
)


@login_required
def virtual_device_list(request: HttpRequest) -> HttpResponse:
    devices = VirtualBACnetDevice.objects.prefetch_related("bacnet_objects")
    return render(
        request,
        "discovery/virtual_device_list.html",
        {"devices": devices, "can_operate": can_operate(request.user), "service": running_service()},
    )


async def _sync_service() -> None:
    service = running_service()
    if service is not None:
        await service.sync_virtual_objects_from_db()  # at once, not at the next database check


@login_required
@require_http_methods(["GET", "POST"])
async def create_virtual_device(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    if not await sync_to_async(user.has_perm)(OPERATE):
        return HttpResponse("You may not create virtual devices.", status=403)
    templates = BACNET_OBJECT_TEMPLATES
    if request.method == "GET":
        return await arender(
            request,
            "discovery/virtual_device_form.html",
            {"form": CreateVirtualDeviceForm(), "templates": templates},
        )
    form = CreateVirtualDeviceForm(request.POST)
    if not await sync_to_async(form.is_valid)():
        return await arender(
            request, "discovery/virtual_device_form.html", {"form": form, "templates": templates}, status=400
        )
    try:
        device = await sync_to_async(virtual_store.create_virtual_device)(
            template=form.cleaned_data["template"],
            device_id=form.cleaned_data["device_id"],
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
        )
    except virtual_store.VirtualDeviceError as exc:  # lost a race with another request
        form.add_error(None, str(exc))
        return await arender(
            request, "discovery/virtual_device_form.html", {"form": form, "templates": templates}, status=400
        )
    await _sync_service()
    await sync_to_async(messages.success)(request, f"Created {device.name} ({device.device_id}).")
    return redirect("virtual_device_detail", device_id=device.device_id)


@login_required
@require_http_methods(["GET", "POST"])
async def delete_virtual_device(request: HttpRequest, device_id: int) -> HttpResponse:
    user = await request.auser()
    if not await sync_to_async(user.has_perm)(OPERATE):
        return HttpResponse("You may not delete virtual devices.", status=403)
    device = await sync_to_async(get_object_or_404)(VirtualBACnetDevice, device_id=device_id)
    if request.method == "GET":
        return await arender(request, "discovery/virtual_device_confirm_delete.html", {"device": device})
    await sync_to_async(virtual_store.delete_virtual_device)(device_id)
    await _sync_service()
    await sync_to_async(messages.success)(
        request, f"Deleted {device.name} ({device_id}); its objects are gone from BACnet."
    )
    return redirect("virtual_device_list")


@login_required
def virtual_device_detail(request: HttpRequest, device_id: int) -> HttpResponse:
    device = get_object_or_404(VirtualBACnetDevice, device_id=device_id)
    objects = list(device.bacnet_objects.all())
    for obj in objects:
        obj.slots = [
            {
                "priority": i + 1,
                "value": slot,
                "text": virtual_store.value_text(obj, slot) if slot is not None else "",
            }
            for i, slot in enumerate(obj.priority_array)
        ]
        obj.winning = next((s["priority"] for s in obj.slots if s["value"] is not None), None)
        obj.relinquish_text = (
            virtual_store.value_text(obj, obj.relinquish_default)
            if obj.relinquish_default is not None
            else ""
        )
    writes = VirtualObjectWrite.objects.filter(virtual_object__device=device).select_related(
        "virtual_object"
    )[:50]
    return render(
        request,
        "discovery/virtual_device_detail.html",
        {
            "device": device,
            "objects": objects,
            "writes": writes,
            "write_form": WriteValueForm(),
            "can_operate": can_operate(request.user),
            "service": running_service(),
        },
    )


def virtual_value(obj: VirtualBACnetObject, text: str) -> float | int:
    """The form's text as the object's value: a number, a state text, or active/inactive."""
    text = text.strip()
    if obj.object_type in ANALOG_TYPES:
        try:
            return float(text)
        except ValueError:
            raise WriteRejected("property", "invalid-data-type", f"{text!r} is not a number") from None
    if obj.object_type in BINARY_TYPES:
        lowered = text.lower()
        if lowered in ("1", "active", "on", "true", (obj.active_text or "active").lower()):
            return 1
        if lowered in ("0", "inactive", "off", "false", (obj.inactive_text or "inactive").lower()):
            return 0
        raise WriteRejected("property", "invalid-data-type", f"{text!r} is not active or inactive")
    if text in obj.state_texts:
        return obj.state_texts.index(text) + 1
    try:
        return int(text)
    except ValueError:
        raise WriteRejected("property", "invalid-data-type", f"{text!r} is not a state") from None


@login_required
@require_POST
async def write_virtual_object(request: HttpRequest, device_id: int, pk: int) -> HttpResponse:
    """Write (or relinquish) an object's presentValue, or set outOfService, through the write path."""
    user = await request.auser()
    if not await sync_to_async(user.has_perm)(OPERATE):
        return HttpResponse("You may not write values.", status=403)
    obj = await sync_to_async(get_object_or_404)(VirtualBACnetObject, pk=pk, device__device_id=device_id)
    service = running_service()
    status, message = 200, ""
    form = WriteValueForm(request.POST)
    out_of_service = request.POST.get("out_of_service")
    if service is None:
        status, message = 503, NOT_RUNNING_MESSAGE
    elif out_of_service in ("true", "false"):
        try:
            await service.write_virtual_object(
                obj.object_name,
                out_of_service == "true",
                property_name="outOfService",
                source=WriteSource.WEB,
                user=user.get_username(),
            )
            message = "Out of service." if out_of_service == "true" else "In service."
        except WriteRejected as exc:
            status, message = 400, f"{error_in_words(exc.error_class, exc.error_code)}: {exc.message}"
    elif not form.is_valid():
        status, message = 400, " ".join(str(e) for errors in form.errors.values() for e in errors)
    else:
        relinquish, priority = form.cleaned_data["relinquish"], form.cleaned_data["priority"]
        try:
            value = None if relinquish else virtual_value(obj, form.cleaned_data["value"])
            event = await service.write_virtual_object(
                obj.object_name, value, priority=priority, source=WriteSource.WEB, user=user.get_username()
            )
            message = f"Present value {event['present_value_text']}."
        except WriteRejected as exc:
            status, message = 400, f"{error_in_words(exc.error_class, exc.error_code)}: {exc.message}"
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"ok": status == 200, "message": message}, status=status)
    level = messages.success if status == 200 else messages.error
    await sync_to_async(level)(request, f"{obj.object_name}: {message}")
    response = redirect("virtual_device_detail", device_id=device_id)
    return response

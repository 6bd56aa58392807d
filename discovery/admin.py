from django.contrib import admin

from discovery.models import (
    BACnetDevice,
    BACnetPoint,
    BACnetReading,
    DiscoveredDevice,
    LocalDeviceState,
    NetworkScan,
    VirtualBACnetDevice,
    VirtualBACnetObject,
    VirtualObjectWrite,
)
from discovery.services import virtual_store


class VirtualBACnetObjectInline(admin.TabularInline):
    model = VirtualBACnetObject
    extra = 0
    fields = ("object_name", "object_type", "instance", "present_value_text", "out_of_service")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows shown for inspection: virtual devices are made and changed through the app
    (``virtual_device`` command, web pages, write path), which keep the BACnet side in step."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(VirtualBACnetDevice)
class VirtualBACnetDeviceAdmin(ReadOnlyAdmin):
    list_display = ("device_id", "name", "template", "port", "created_at", "last_external_write")
    search_fields = ("name", "device_id")
    list_filter = ("template", "port")
    inlines = [VirtualBACnetObjectInline]

    def delete_model(self, request, obj: VirtualBACnetDevice) -> None:
        virtual_store.delete_virtual_device(obj.device_id)

    def delete_queryset(self, request, queryset) -> None:
        for device_id in queryset.values_list("device_id", flat=True):
            virtual_store.delete_virtual_device(device_id)


@admin.register(VirtualBACnetObject)
class VirtualBACnetObjectAdmin(ReadOnlyAdmin):
    list_display = (
        "object_name",
        "object_type",
        "instance",
        "present_value_text",
        "out_of_service",
        "updated_at",
    )
    list_filter = ("object_type", "out_of_service")
    search_fields = ("object_name",)

    def delete_model(self, request, obj: VirtualBACnetObject) -> None:
        obj.delete()
        virtual_store.bump_database_revision()  # the running service drops it

    def delete_queryset(self, request, queryset) -> None:
        queryset.delete()
        virtual_store.bump_database_revision()


@admin.register(VirtualObjectWrite)
class VirtualObjectWriteAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "virtual_object",
        "property_name",
        "value_text",
        "priority",
        "source",
        "source_address",
        "user",
    )
    list_filter = ("source", "property_name")
    search_fields = ("virtual_object__object_name", "source_address", "user")
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LocalDeviceState)
class LocalDeviceStateAdmin(ReadOnlyAdmin):
    list_display = ("id", "database_revision", "updated_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BACnetDevice)
class BACnetDeviceAdmin(admin.ModelAdmin):
    list_display = ("device_id", "object_name", "address", "vendor_name", "model_name", "online", "last_seen")
    list_filter = ("online", "vendor_name")
    search_fields = ("object_name", "device_id", "address")


@admin.register(BACnetPoint)
class BACnetPointAdmin(admin.ModelAdmin):
    list_display = ("device", "object_type", "instance", "object_name", "present_value_text", "poll_class")
    list_filter = ("object_type", "poll_class", "device")
    search_fields = ("object_name", "description")
    list_editable = ("poll_class",)
    readonly_fields = ("present_value", "present_value_text", "status_flags", "last_update")


@admin.register(BACnetReading)
class BACnetReadingAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "point", "value_text", "status_flags")
    date_hierarchy = "timestamp"
    list_select_related = ("point__device",)


class DiscoveredDeviceInline(admin.TabularInline):
    model = DiscoveredDevice
    extra = 0
    can_delete = False
    readonly_fields = ("device", "address")


@admin.register(NetworkScan)
class NetworkScanAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "finished_at",
        "low_limit",
        "high_limit",
        "target_address",
        "devices_found",
        "error",
    )
    inlines = [DiscoveredDeviceInline]


@admin.register(DiscoveredDevice)
class DiscoveredDeviceAdmin(ReadOnlyAdmin):
    list_display = ("scan", "device", "address")

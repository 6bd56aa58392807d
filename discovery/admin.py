from django.contrib import admin

from discovery.models import (
    LocalDeviceState,
    VirtualBACnetDevice,
    VirtualBACnetObject,
    VirtualObjectWrite,
)


class VirtualBACnetObjectInline(admin.TabularInline):
    model = VirtualBACnetObject
    extra = 0
    fields = ("object_name", "object_type", "instance", "present_value_text", "out_of_service")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(VirtualBACnetDevice)
class VirtualBACnetDeviceAdmin(admin.ModelAdmin):
    list_display = ("device_id", "name", "template", "port", "created_at", "last_external_write")
    search_fields = ("name", "device_id")
    list_filter = ("template", "port")
    inlines = [VirtualBACnetObjectInline]


@admin.register(VirtualBACnetObject)
class VirtualBACnetObjectAdmin(admin.ModelAdmin):
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
    # Values change only through the write path (BACnet, web page, API), never here.
    readonly_fields = (
        "present_value",
        "present_value_text",
        "priority_array",
        "relinquish_default",
        "out_of_service",
    )


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
class LocalDeviceStateAdmin(admin.ModelAdmin):
    list_display = ("id", "database_revision", "updated_at")
    readonly_fields = ("database_revision", "next_instances", "updated_at")

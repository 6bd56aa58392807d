"""Database models.

Virtual devices are groups of objects hosted by this application's own BACnet device
(instance ``BACNET_DEVICE_ID``, 8888 by default). Each object row keeps the last value,
priority array and out-of-service state, so the service can rebuild it after a restart;
every change is also recorded in ``VirtualObjectWrite``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

MAX_DEVICE_INSTANCE = 4194302


def default_bacnet_port() -> int:
    return settings.BACNET_DEFAULT_PORT


class LocalDeviceState(models.Model):
    """Singleton row with the persisted state of the local BACnet device."""

    database_revision = models.PositiveIntegerField(default=1)
    # object type ("analog-input", ...) -> next instance number; numbers are never reused.
    next_instances = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "local device state"

    def __str__(self) -> str:
        return f"database revision {self.database_revision}"


class VirtualBACnetDevice(models.Model):
    device_id = models.PositiveIntegerField(
        unique=True, validators=[MinValueValidator(0), MaxValueValidator(MAX_DEVICE_INSTANCE)]
    )
    name = models.CharField(max_length=64)
    template = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(
        default=default_bacnet_port, help_text="UDP port of the BACnet stack hosting it"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_external_write = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["device_id"]
        verbose_name = "virtual BACnet device"

    def __str__(self) -> str:
        return f"{self.name} ({self.device_id})"


class VirtualBACnetObject(models.Model):
    device = models.ForeignKey(VirtualBACnetDevice, on_delete=models.CASCADE, related_name="bacnet_objects")
    name = models.CharField(max_length=64, help_text="Name in the template, e.g. Temperature")
    object_name = models.CharField(max_length=150, unique=True, help_text="BACnet objectName")
    object_type = models.CharField(max_length=32)
    instance = models.PositiveIntegerField()
    description = models.CharField(max_length=255, blank=True)
    units = models.CharField(max_length=64, blank=True)
    present_value = models.FloatField(null=True, blank=True)
    present_value_text = models.CharField(max_length=64, blank=True)
    relinquish_default = models.FloatField(null=True, blank=True)
    # 16 slots, each a number or null; empty list for objects that are not commandable.
    priority_array = models.JSONField(default=list, blank=True)
    out_of_service = models.BooleanField(default=False)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    cov_increment = models.FloatField(null=True, blank=True)
    number_of_states = models.PositiveIntegerField(null=True, blank=True)
    state_texts = models.JSONField(default=list, blank=True)
    inactive_text = models.CharField(max_length=64, blank=True)
    active_text = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["device__device_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["object_type", "instance"], name="unique_object_id"),
            models.UniqueConstraint(fields=["device", "name"], name="unique_name_per_device"),
        ]
        verbose_name = "virtual BACnet object"

    def __str__(self) -> str:
        return f"{self.object_name} ({self.object_type},{self.instance})"


class WriteSource(models.TextChoices):
    EXTERNAL_BACNET_WRITE = "external_bacnet_write", "External BACnet write"
    WEB = "web", "Web page"
    API = "api", "API"
    INTERNAL = "internal", "Internal (business logic)"


class VirtualObjectWrite(models.Model):
    """History: one row per accepted change to a virtual object."""

    virtual_object = models.ForeignKey(VirtualBACnetObject, on_delete=models.CASCADE, related_name="writes")
    property_name = models.CharField(max_length=32, default="presentValue")
    value = models.FloatField(null=True, blank=True, help_text="Written value; null = relinquish")
    value_text = models.CharField(max_length=64, blank=True)
    present_value = models.FloatField(null=True, blank=True, help_text="Present value after it")
    priority = models.PositiveSmallIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32, choices=WriteSource.choices)
    source_address = models.CharField(max_length=64, blank=True, help_text="BACnet requester")
    user = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["virtual_object", "created_at"])]

    def __str__(self) -> str:
        return f"{self.virtual_object.object_name}.{self.property_name} = {self.value_text}"

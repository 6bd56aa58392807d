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
        permissions = [("operate_bacnet", "Can write values, manage virtual devices and start scans")]

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


# --- Remote devices (the client side) ------------------------------------------------------


class BACnetDevice(models.Model):
    """A device found on the network (never this application's own device)."""

    device_id = models.PositiveIntegerField(
        unique=True, validators=[MinValueValidator(0), MaxValueValidator(MAX_DEVICE_INSTANCE)]
    )
    address = models.CharField(max_length=64)
    vendor_id = models.PositiveIntegerField(null=True, blank=True)
    max_apdu = models.PositiveIntegerField(default=1476)
    segmentation = models.CharField(max_length=32, blank=True)
    object_name = models.CharField(max_length=150, blank=True)
    vendor_name = models.CharField(max_length=150, blank=True)
    model_name = models.CharField(max_length=150, blank=True)
    firmware_revision = models.CharField(max_length=150, blank=True)
    protocol_revision = models.PositiveIntegerField(null=True, blank=True)
    supports_rpm = models.BooleanField(null=True, blank=True, help_text="null: not known yet")
    online = models.BooleanField(default=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    points_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["device_id"]
        verbose_name = "BACnet device"

    def __str__(self) -> str:
        return f"{self.object_name or 'device'} ({self.device_id})"

    @property
    def can_segment(self) -> bool:
        return self.segmentation in ("segmented-both", "segmented-transmit")


class PollClass(models.TextChoices):
    FAST = "fast", "Fast"
    NORMAL = "normal", "Normal"
    SLOW = "slow", "Slow"


class BACnetPoint(models.Model):
    """An object of a remote device, with its last value."""

    device = models.ForeignKey(BACnetDevice, on_delete=models.CASCADE, related_name="points")
    object_type = models.CharField(max_length=48)
    instance = models.PositiveIntegerField()
    object_name = models.CharField(max_length=150, blank=True)
    description = models.CharField(max_length=255, blank=True)
    units = models.CharField(max_length=64, blank=True)
    present_value = models.FloatField(null=True, blank=True)
    present_value_text = models.CharField(max_length=255, blank=True)
    status_flags = models.JSONField(default=list, blank=True, help_text="[in-alarm, fault, overridden, oos]")
    state_texts = models.JSONField(default=list, blank=True)
    inactive_text = models.CharField(max_length=64, blank=True)
    active_text = models.CharField(max_length=64, blank=True)
    commandable = models.BooleanField(default=False)
    poll_class = models.CharField(max_length=8, choices=PollClass.choices, default=PollClass.NORMAL)
    poll_interval = models.FloatField(null=True, blank=True, help_text="seconds; overrides the class")
    cov_supported = models.BooleanField(null=True, blank=True)
    read_error = models.CharField(max_length=255, blank=True)
    last_update = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["device__device_id", "object_type", "instance"]
        constraints = [
            models.UniqueConstraint(fields=["device", "object_type", "instance"], name="unique_point"),
        ]
        verbose_name = "BACnet point"

    def __str__(self) -> str:
        return f"{self.device.device_id}:{self.object_type},{self.instance} {self.object_name}"


class BACnetReading(models.Model):
    point = models.ForeignKey(BACnetPoint, on_delete=models.CASCADE, related_name="readings")
    value = models.FloatField(null=True, blank=True)
    value_text = models.CharField(max_length=255, blank=True)
    status_flags = models.JSONField(default=list, blank=True)
    timestamp = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["point", "timestamp"])]
        verbose_name = "BACnet reading"

    def __str__(self) -> str:
        return f"{self.point_id} = {self.value_text} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class NetworkScan(models.Model):
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    low_limit = models.PositiveIntegerField(null=True, blank=True)
    high_limit = models.PositiveIntegerField(null=True, blank=True)
    target_address = models.CharField(max_length=64, blank=True, help_text="directed Who-Is")
    timeout = models.FloatField(default=3.0)
    devices_found = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"scan {self.pk} at {self.started_at:%Y-%m-%d %H:%M:%S}: {self.devices_found} found"


class DiscoveredDevice(models.Model):
    """One I-Am answer received during a scan."""

    scan = models.ForeignKey(NetworkScan, on_delete=models.CASCADE, related_name="results")
    device = models.ForeignKey(BACnetDevice, on_delete=models.CASCADE, related_name="sightings")
    address = models.CharField(max_length=64)

    class Meta:
        ordering = ["scan", "device__device_id"]

    def __str__(self) -> str:
        return f"{self.device.device_id} at {self.address}"

"""Database functions for the client side: scans, remote devices, points and readings.

Plain sync ORM code called through ``sync_to_async`` from the service, and directly by
commands and tests. Values are stored typed (a float, with their text beside it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from discovery.models import (
    BACnetDevice,
    BACnetPoint,
    BACnetReading,
    DiscoveredDevice,
    NetworkScan,
    PollClass,
)
from discovery.services.bacnet.client import (
    ANALOG,
    BINARY,
    COMMANDABLE,
    MULTISTATE,
    IAm,
    RemoteObject,
    plain_value,
)

logger = logging.getLogger(__name__)


class UnknownDevice(LookupError):
    """No remote device with this id is known (run a discovery first)."""


@dataclass(frozen=True)
class DeviceTarget:
    """How to reach a remote device, as stored."""

    device_id: int
    address: str
    max_apdu: int
    can_segment: bool
    supports_rpm: bool | None

    @classmethod
    def of(cls, device: BACnetDevice) -> DeviceTarget:
        return cls(
            device_id=device.device_id,
            address=device.address,
            max_apdu=device.max_apdu,
            can_segment=device.can_segment,
            supports_rpm=device.supports_rpm,
        )


@dataclass(frozen=True)
class Reading:
    point_id: int
    value: float | None
    value_text: str
    status_flags: list[int]
    timestamp: datetime


def start_scan(*, low_limit: int | None, high_limit: int | None, address: str, timeout: float) -> int:
    scan = NetworkScan.objects.create(
        low_limit=low_limit, high_limit=high_limit, target_address=address or "", timeout=timeout
    )
    return scan.pk


def record_device(scan_id: int, iam: IAm, info: dict[str, Any]) -> None:
    """Store (or update) a device that answered scan ``scan_id``, with what was read of it."""
    now = timezone.now()
    with transaction.atomic():
        device, _ = BACnetDevice.objects.update_or_create(
            device_id=iam.device_id,
            defaults={
                "address": iam.address,
                "vendor_id": iam.vendor_id,
                "max_apdu": iam.max_apdu,
                "segmentation": iam.segmentation,
                "online": True,
                "last_seen": now,
                "last_error": info.get("error", ""),
                **{
                    field: info[key]
                    for key, field in (
                        ("objectName", "object_name"),
                        ("vendorName", "vendor_name"),
                        ("modelName", "model_name"),
                        ("firmwareRevision", "firmware_revision"),
                        ("protocolRevision", "protocol_revision"),
                    )
                    if info.get(key) is not None
                },
            },
        )
        DiscoveredDevice.objects.create(scan_id=scan_id, device=device, address=iam.address)


def finish_scan(scan_id: int, error: str = "") -> None:
    """Close a scan: when it ended, how many devices it recorded, and its error if any."""
    scan = NetworkScan.objects.get(pk=scan_id)
    scan.finished_at = timezone.now()
    scan.devices_found = scan.results.count()
    scan.error = error[:255]
    scan.save(update_fields=["finished_at", "devices_found", "error"])


def device_target(device_id: int) -> DeviceTarget:
    device = BACnetDevice.objects.filter(device_id=device_id).first()
    if device is None:
        raise UnknownDevice(f"unknown device {device_id}: run a discovery first")
    return DeviceTarget.of(device)


def point_value(object_type: str, raw: Any, texts: dict[str, Any]) -> tuple[float | None, str]:
    """A present value as (number, text): active/inactive and state texts for binary/multi-state."""
    value = plain_value(raw)
    if value is None:
        return None, ""
    if object_type in BINARY:
        number = 1.0 if value in ("active", 1, True) else 0.0
        label = texts.get("activeText") if number else texts.get("inactiveText")
        return number, str(label or ("active" if number else "inactive"))
    if object_type in MULTISTATE:
        number = float(value)
        states = texts.get("stateText") or []
        index = int(number) - 1
        return number, str(states[index]) if 0 <= index < len(states) else str(int(number))
    if isinstance(value, int | float):
        return float(value), f"{float(value):g}"
    return None, str(value)[:255]


def status_flag_list(raw: Any) -> list[int]:
    if raw is None:
        return []
    try:
        return [int(bit) for bit in raw][:4]
    except TypeError:
        return []


POINT_FIELDS = [
    "object_name",
    "description",
    "units",
    "state_texts",
    "active_text",
    "inactive_text",
    "commandable",
    "present_value",
    "present_value_text",
    "status_flags",
    "read_error",
    "last_update",
]
JSON_POINT_FIELDS = {"state_texts", "status_flags"}


def store_points(device_id: int, objects: Iterable[RemoteObject], error: str = "") -> int:
    """Store each object as a BACnetPoint with a first reading; record ``error`` on the device.

    Rows are written with one prepared statement per kind (insert, update): through the ORM,
    building model instances and SQL per row took most of a commissioning scan's time.
    """
    now = timezone.now()
    last_update = BACnetPoint._meta.get_field("last_update").get_db_prep_value(now, connection)
    with transaction.atomic():
        device = BACnetDevice.objects.get(device_id=device_id)
        existing = {(t, i): pk for t, i, pk in device.points.values_list("object_type", "instance", "id")}
        new_rows: list[tuple[tuple[str, int], list[Any]]] = []
        changed_rows: list[tuple[int, list[Any]]] = []
        first_values: list[tuple[tuple[str, int], float | None, str, list[int]]] = []
        for obj in objects:
            if obj.object_type in ("device", "network-port"):
                continue
            key = (obj.object_type, obj.instance)
            values, reading = _point_columns(obj, last_update)
            if key in existing:
                changed_rows.append((existing[key], values))
            else:
                new_rows.append((key, values))
            if reading is not None:
                first_values.append((key, *reading))
        _insert_points(device.pk, new_rows)
        _update_points(changed_rows)
        if new_rows:
            existing = {(t, i): pk for t, i, pk in device.points.values_list("object_type", "instance", "id")}
        _insert_readings(
            Reading(existing[key], value, text, flags, now) for key, value, text, flags in first_values
        )
        device.points_read_at = now
        device.last_error = error[:255]
        device.save(update_fields=["points_read_at", "last_error"])
    return len(new_rows) + len(changed_rows)


def _point_columns(
    obj: RemoteObject, last_update: Any
) -> tuple[list[Any], tuple[float | None, str, list[int]] | None]:
    """The POINT_FIELDS values of one object (ready for the database, ``last_update`` too),
    and its first reading."""
    props = obj.properties
    texts = {
        "stateText": [str(t) for t in props.get("stateText") or []],
        "activeText": plain_value(props.get("activeText")),
        "inactiveText": plain_value(props.get("inactiveText")),
    }
    value, text = point_value(obj.object_type, props.get("presentValue"), texts)
    flags = status_flag_list(props.get("statusFlags"))
    columns = [
        str(plain_value(props.get("objectName")) or "")[:150],
        str(plain_value(props.get("description")) or "")[:255],
        str(plain_value(props.get("units")) or "") if obj.object_type in ANALOG else "",
        json.dumps(texts["stateText"]),
        str(texts["activeText"] or "")[:64],
        str(texts["inactiveText"] or "")[:64],
        obj.object_type in COMMANDABLE or "relinquishDefault" in props,
        value,
        text[:255],
        json.dumps(flags),
        "; ".join(f"{k}: {v}" for k, v in obj.errors.items())[:255],
        last_update,
    ]
    return columns, ((value, text, flags) if "presentValue" in props else None)


def _placeholder(column: str) -> str:
    return _json_placeholder() if column in JSON_POINT_FIELDS else "%s"


def _insert_points(device_pk: int, rows: list[tuple[tuple[str, int], list[Any]]]) -> None:
    if not rows:
        return
    table = connection.ops.quote_name(BACnetPoint._meta.db_table)
    columns = ["device_id", "object_type", "instance", "poll_class", *POINT_FIELDS]
    placeholders = ["%s"] * 4 + [_placeholder(column) for column in POINT_FIELDS]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(placeholders)})"
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(device_pk, t, i, PollClass.NORMAL, *values) for (t, i), values in rows])


def _update_points(rows: list[tuple[int, list[Any]]]) -> None:
    if not rows:
        return
    table = connection.ops.quote_name(BACnetPoint._meta.db_table)
    assignments = ", ".join(f"{column} = {_placeholder(column)}" for column in POINT_FIELDS)
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s", [(*v, pk) for pk, v in rows])


def set_supports_rpm(device_id: int, supports_rpm: bool | None) -> None:
    if supports_rpm is not None:
        BACnetDevice.objects.filter(device_id=device_id).update(supports_rpm=supports_rpm)


def store_readings(readings: list[Reading]) -> int:
    """Bulk-insert readings and update each point's last value."""
    if not readings:
        return 0
    with transaction.atomic():
        _insert_readings(readings)
        latest: dict[int, Reading] = {}
        for reading in readings:
            latest[reading.point_id] = reading
        _update_last_values(latest.values())
    return len(readings)


def _prepared_datetimes(model: Any, field_name: str) -> Any:
    """datetime -> its database form, each distinct one prepared once (a batch of readings
    shares a few timestamps, and Django's preparation is most of the cost of a row)."""
    field = model._meta.get_field(field_name)
    cache: dict[datetime, Any] = {}

    def prepared(value: datetime) -> Any:
        if value not in cache:
            cache[value] = field.get_db_prep_value(value, connection)
        return cache[value]

    return prepared


def _json_placeholder() -> str:
    return "%s::jsonb" if connection.vendor == "postgresql" else "%s"


def _insert_readings(readings: Iterable[Reading]) -> None:
    """One prepared INSERT run for every reading (the ORM's per-object work dominated)."""
    table = connection.ops.quote_name(BACnetReading._meta.db_table)
    sql = (
        f"INSERT INTO {table} (point_id, value, value_text, status_flags, timestamp) "
        f"VALUES (%s, %s, %s, {_json_placeholder()}, %s)"
    )
    prepared = _prepared_datetimes(BACnetReading, "timestamp")
    rows = [
        (r.point_id, r.value, r.value_text[:255], json.dumps(r.status_flags), prepared(r.timestamp))
        for r in readings
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _update_last_values(readings: Iterable[Reading]) -> None:
    """One prepared UPDATE run for every point (Django's bulk_update builds a CASE per row and
    took seconds for a few thousand points)."""
    table = connection.ops.quote_name(BACnetPoint._meta.db_table)
    sql = (
        f"UPDATE {table} SET present_value = %s, present_value_text = %s, "
        f"status_flags = {_json_placeholder()}, last_update = %s WHERE id = %s"
    )
    prepared = _prepared_datetimes(BACnetPoint, "last_update")
    rows = [
        (r.value, r.value_text, json.dumps(r.status_flags), prepared(r.timestamp), r.point_id)
        for r in readings
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def set_cov_points(point_ids: list[int], by_cov: set[int]) -> None:
    """Record which points arrive by COV (the others are polled)."""
    BACnetPoint.objects.filter(pk__in=by_cov).update(cov_supported=True)
    BACnetPoint.objects.filter(pk__in=set(point_ids) - by_cov).update(cov_supported=False)


def set_device_online(device_id: int, online: bool, error: str = "") -> None:
    updates: dict[str, Any] = {"online": online, "last_error": error[:255]}
    if online:
        updates["last_seen"] = timezone.now()
    BACnetDevice.objects.filter(device_id=device_id).update(**updates)


@dataclass(frozen=True)
class PolledPoint:
    point_id: int
    object_type: str
    instance: int
    interval: float
    texts: dict[str, Any]


def points_fingerprint() -> tuple:
    """Changes when points are added, removed, read again or given another poll class or
    interval (a cheap check before a full plan)."""
    points = BACnetPoint.objects.aggregate(
        count=Count("id"),
        last=Max("id"),
        fast=Count("id", filter=Q(poll_class="fast")),
        slow=Count("id", filter=Q(poll_class="slow")),
        intervals=Sum("poll_interval"),
    )
    devices = BACnetDevice.objects.aggregate(read=Max("points_read_at"), count=Count("id"))
    return (*points.values(), devices["read"], devices["count"])


def polling_plan(intervals: dict[str, float]) -> dict[int, tuple[DeviceTarget, list[PolledPoint]]]:
    """Every device with points, and its points with their poll intervals."""
    plan: dict[int, tuple[DeviceTarget, list[PolledPoint]]] = {}
    points = BACnetPoint.objects.select_related("device").order_by("device__device_id", "id")
    for point in points:
        device = point.device
        if device.device_id not in plan:
            plan[device.device_id] = (DeviceTarget.of(device), [])
        plan[device.device_id][1].append(
            PolledPoint(
                point_id=point.pk,
                object_type=point.object_type,
                instance=point.instance,
                interval=point.poll_interval or intervals[point.poll_class],
                texts={
                    "stateText": point.state_texts,
                    "activeText": point.active_text,
                    "inactiveText": point.inactive_text,
                },
            )
        )
    return plan

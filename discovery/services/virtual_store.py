"""Database functions for virtual devices and their objects (plain sync ORM code).

The BACnet service calls these through ``sync_to_async``; management commands, views and
tests call them directly. Structural changes (objects added, removed or renamed) bump the
local device's ``databaseRevision`` in the same transaction, which is also how a running
service learns that another process changed something.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from discovery.models import (
    MAX_DEVICE_INSTANCE,
    LocalDeviceState,
    VirtualBACnetDevice,
    VirtualBACnetObject,
    VirtualObjectWrite,
    WriteSource,
)
from discovery.services.bacnet.objects import ObjectSpec
from discovery.services.bacnet.point_state import PointState
from discovery.services.object_templates import (
    ANALOG_TYPES,
    BACNET_OBJECT_TEMPLATES,
    BINARY_TYPES,
    COMMANDABLE_TYPES,
    get_template_objects,
)

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64


class VirtualDeviceError(ValueError):
    """A virtual device cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True)
class WriteRecord:
    """Who changed what, for the history row."""

    property_name: str
    value: float | int | bool | None
    priority: int | None
    source: str
    source_address: str = ""
    user: str = ""


def _local_state_for_update() -> LocalDeviceState:
    state = LocalDeviceState.objects.select_for_update().filter(pk=1).first()
    if state is None:
        state, _ = LocalDeviceState.objects.get_or_create(pk=1)
    return state


def get_database_revision() -> int:
    state = LocalDeviceState.objects.filter(pk=1).only("database_revision").first()
    return state.database_revision if state else 1


def bump_database_revision() -> int:
    with transaction.atomic():
        state = _local_state_for_update()
        state.database_revision += 1
        state.save(update_fields=["database_revision", "updated_at"])
        return state.database_revision


def _allocate_instance(state: LocalDeviceState, object_type: str) -> int:
    """Next instance number for ``object_type``; numbers are never handed out twice."""
    used = VirtualBACnetObject.objects.filter(object_type=object_type).order_by("-instance")
    highest = used.values_list("instance", flat=True).first()
    instance = max(state.next_instances.get(object_type, 1), (highest or 0) + 1)
    state.next_instances[object_type] = instance + 1
    return instance


def validate_new_device(template: str, device_id: object, name: object) -> tuple[int, str]:
    if template not in BACNET_OBJECT_TEMPLATES:
        known = ", ".join(sorted(BACNET_OBJECT_TEMPLATES))
        raise VirtualDeviceError(f"Unknown template {template!r}; choose one of: {known}.")
    try:
        device_id = int(device_id)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise VirtualDeviceError(f"Device id {device_id!r} is not a whole number.") from None
    if not 0 <= device_id <= MAX_DEVICE_INSTANCE:
        raise VirtualDeviceError(f"Device id {device_id} is not between 0 and {MAX_DEVICE_INSTANCE}.")
    if device_id == settings.BACNET_DEVICE_ID:
        raise VirtualDeviceError(
            f"Device id {device_id} is this application's own BACnet device; choose another."
        )
    name = str(name or "").strip()
    if not name:
        raise VirtualDeviceError("A virtual device needs a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise VirtualDeviceError(f"The name is longer than {MAX_NAME_LENGTH} characters.")
    if VirtualBACnetDevice.objects.filter(device_id=device_id).exists():
        raise VirtualDeviceError(f"A virtual device with id {device_id} already exists.")
    return device_id, name


def create_virtual_device(
    *, template: str, device_id: object, name: object, description: str = ""
) -> VirtualBACnetDevice:
    """Create a virtual device and its objects from ``template`` in one transaction."""
    device_id, name = validate_new_device(template, device_id, name)
    try:
        with transaction.atomic():
            local = _local_state_for_update()
            device = VirtualBACnetDevice.objects.create(
                device_id=device_id, name=name, template=template, description=description
            )
            for definition in get_template_objects(template):
                _create_object(device, local, definition)
            local.database_revision += 1
            local.save()
    except IntegrityError as exc:
        raise VirtualDeviceError(f"Could not create virtual device {device_id}: {exc}") from exc
    logger.info("Created virtual device %s (%s) from template %s", device_id, name, template)
    return device


def _create_object(device: VirtualBACnetDevice, local: LocalDeviceState, definition: dict) -> None:
    object_type = definition["object_type"]
    state_texts = list(definition.get("state_texts", []))
    state = PointState.initial(
        object_type,
        definition.get("value", 0),
        min_value=definition.get("min"),
        max_value=definition.get("max"),
        number_of_states=len(state_texts) or None,
    )
    row = VirtualBACnetObject(
        device=device,
        name=definition["name"],
        object_name=f"Virtual_{device.device_id}_{definition['name']}",
        object_type=object_type,
        instance=_allocate_instance(local, object_type),
        description=definition.get("description", ""),
        units=definition.get("units", ""),
        cov_increment=definition.get("cov_increment"),
        state_texts=state_texts,
        inactive_text=definition.get("inactive_text", ""),
        active_text=definition.get("active_text", ""),
    )
    _store_state(row, state)
    row.save()


def delete_virtual_device(device_id: int) -> bool:
    """Delete a virtual device and its objects; False if there was none."""
    with transaction.atomic():
        local = _local_state_for_update()
        deleted, _ = VirtualBACnetDevice.objects.filter(device_id=device_id).delete()
        if not deleted:
            return False
        local.database_revision += 1
        local.save(update_fields=["database_revision", "updated_at"])
    logger.info("Deleted virtual device %s", device_id)
    return True


def state_from_row(row: VirtualBACnetObject) -> PointState:
    commandable = row.object_type in COMMANDABLE_TYPES
    return PointState(
        object_type=row.object_type,
        present_value=_typed(row.object_type, row.present_value),
        out_of_service=row.out_of_service,
        relinquish_default=_typed(row.object_type, row.relinquish_default) if commandable else None,
        priority_array=tuple(_typed(row.object_type, slot) for slot in row.priority_array)
        if commandable
        else (),
        min_value=row.min_value,
        max_value=row.max_value,
        number_of_states=row.number_of_states,
    )


def _typed(object_type: str, value: float | None) -> float | int | None:
    if value is None:
        return None
    return float(value) if object_type in ANALOG_TYPES else int(value)


def _store_state(row: VirtualBACnetObject, state: PointState) -> None:
    row.present_value = float(state.present_value)
    row.present_value_text = value_text(row, state.present_value)
    row.out_of_service = state.out_of_service
    row.min_value = state.min_value
    row.max_value = state.max_value
    row.number_of_states = state.number_of_states
    if state.commandable:
        row.relinquish_default = float(state.relinquish_default)
        row.priority_array = [None if slot is None else float(slot) for slot in state.priority_array]
    else:
        row.relinquish_default = None
        row.priority_array = []


def value_text(row: VirtualBACnetObject, value: float | int | bool | None) -> str:
    """The human form of a value of ``row``: units, state text or active/inactive text."""
    if value is None:
        return "relinquished"
    if isinstance(value, bool):
        return "true" if value else "false"
    if row.object_type in ANALOG_TYPES:
        return f"{float(value):g}"
    if row.object_type in BINARY_TYPES:
        return (row.active_text or "active") if int(value) else (row.inactive_text or "inactive")
    index = int(value) - 1
    if 0 <= index < len(row.state_texts):
        return str(row.state_texts[index])
    return str(int(value))


def spec_from_row(row: VirtualBACnetObject) -> ObjectSpec:
    return ObjectSpec(
        pk=row.pk,
        device_id=row.device.device_id,
        object_type=row.object_type,
        instance=row.instance,
        object_name=row.object_name,
        description=row.description,
        units=row.units,
        cov_increment=row.cov_increment,
        state_texts=tuple(row.state_texts),
        inactive_text=row.inactive_text,
        active_text=row.active_text,
        state=state_from_row(row),
    )


def load_object_specs() -> tuple[int, list[ObjectSpec]]:
    """The database revision and every virtual object, as read in one transaction."""
    with transaction.atomic():
        revision = get_database_revision()
        rows = VirtualBACnetObject.objects.select_related("device").order_by("id")
        return revision, [spec_from_row(row) for row in rows]


def persist_write(pk: int, state: PointState, record: WriteRecord) -> VirtualObjectWrite:
    """Store the object's new state and a history row, atomically. Raises DoesNotExist."""
    with transaction.atomic():
        row = VirtualBACnetObject.objects.select_related("device").get(pk=pk)
        _store_state(row, state)
        row.save()
        write = VirtualObjectWrite.objects.create(
            virtual_object=row,
            property_name=record.property_name,
            value=None if record.value is None else float(record.value),
            value_text=value_text(row, record.value),
            present_value=row.present_value,
            priority=record.priority,
            source=record.source,
            source_address=record.source_address,
            user=record.user,
        )
        if record.source == WriteSource.EXTERNAL_BACNET_WRITE:
            VirtualBACnetDevice.objects.filter(pk=row.device_id).update(last_external_write=write.created_at)
    return write

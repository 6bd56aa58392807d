"""The bacpypes3 object classes of the local device and how a virtual object is built.

The classes are bacpypes3's local objects with three corrections: no property is writable
through the object itself (every write goes through the write path, see ``write_path``),
multi-state objects use COV criteria that work, and ``propertyList`` leaves out the four
properties the standard excludes. Values, priority arrays and out-of-service state are
pushed in from a ``PointState`` by ``apply_state``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from bacpypes3.basetypes import (
    BinaryPV,
    EngineeringUnits,
    EventState,
    OptionalUnsigned,
    Polarity,
    PriorityArray,
    PriorityValue,
    PropertyIdentifier,
)
from bacpypes3.constructeddata import ArrayOf
from bacpypes3.errors import PropertyError
from bacpypes3.local.cov import COVIncrementCriteria, GenericCriteria
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.object import (
    AnalogInputObject,
    AnalogOutputObject,
    AnalogValueObject,
    BinaryInputObject,
    BinaryOutputObject,
    BinaryValueObject,
    MultiStateInputObject,
    MultiStateOutputObject,
    MultiStateValueObject,
)
from bacpypes3.primitivedata import Boolean, CharacterString, Null, ObjectIdentifier, Real, Unsigned

from discovery.services.bacnet.point_state import PointState
from discovery.services.object_templates import ANALOG_TYPES, BINARY_TYPES, COMMANDABLE_TYPES

# Clause 12.1.1.4.1: propertyList does not list these.
_NOT_IN_PROPERTY_LIST = {"objectIdentifier", "objectName", "objectType", "propertyList"}


class ServedObjectMixin:
    """Corrections common to every object the local device serves."""

    @property
    def propertyList(self) -> ArrayOf(PropertyIdentifier):  # type: ignore[valid-type]
        names = [
            name
            for name in self._elements  # type: ignore[attr-defined]
            if name not in _NOT_IN_PROPERTY_LIST and inspect.getattr_static(self, name, None) is not None
        ]
        return ArrayOf(PropertyIdentifier)([PropertyIdentifier(name) for name in names])

    @propertyList.setter
    def propertyList(self, value: Any) -> None:
        """Computed; values given at construction are ignored."""

    async def write_property(self, attr: Any, value: Any, index: Any = None, priority: Any = None) -> None:
        # Writes from the network are routed to the write path by the application; nothing
        # reaches an object directly. Refuse anything that does.
        raise PropertyError("write-access-denied")


def _served(base: type, criteria: type) -> type:
    name = "Served" + base.__name__
    return type(name, (ServedObjectMixin, LocalObject, base), {"_cov_criteria": criteria})


OBJECT_CLASSES: dict[str, type] = {
    "analog-input": _served(AnalogInputObject, COVIncrementCriteria),
    "analog-output": _served(AnalogOutputObject, COVIncrementCriteria),
    "analog-value": _served(AnalogValueObject, COVIncrementCriteria),
    "binary-input": _served(BinaryInputObject, GenericCriteria),
    "binary-output": _served(BinaryOutputObject, GenericCriteria),
    "binary-value": _served(BinaryValueObject, GenericCriteria),
    # bacpypes3 gives multi-state objects COVIncrementCriteria, which breaks SubscribeCOV.
    "multi-state-input": _served(MultiStateInputObject, GenericCriteria),
    "multi-state-output": _served(MultiStateOutputObject, GenericCriteria),
    "multi-state-value": _served(MultiStateValueObject, GenericCriteria),
}


@dataclass(frozen=True)
class ObjectSpec:
    """Everything needed to build one served object (read from the database)."""

    pk: int
    device_id: int
    object_type: str
    instance: int
    object_name: str
    description: str
    units: str
    cov_increment: float | None
    state_texts: tuple[str, ...]
    inactive_text: str
    active_text: str
    state: PointState

    @property
    def identifier(self) -> tuple[str, int]:
        return (self.object_type, self.instance)


def to_bacnet_value(object_type: str, value: float | int) -> Any:
    if object_type in ANALOG_TYPES:
        return Real(value)
    if object_type in BINARY_TYPES:
        return BinaryPV(int(value))
    return Unsigned(int(value))


def _priority_value(object_type: str, slot: float | int | None) -> PriorityValue:
    if slot is None:
        return PriorityValue(null=())
    if object_type in ANALOG_TYPES:
        return PriorityValue(real=Real(slot))
    if object_type in BINARY_TYPES:
        return PriorityValue(enumerated=int(slot))
    return PriorityValue(unsigned=Unsigned(int(slot)))


def build_object(spec: ObjectSpec) -> LocalObject:
    """Make the bacpypes3 object for ``spec``; it is not yet added to an application."""
    cls = OBJECT_CLASSES[spec.object_type]
    kwargs: dict[str, Any] = {
        "objectIdentifier": ObjectIdentifier(f"{spec.object_type},{spec.instance}"),
        "objectName": spec.object_name,
        "description": spec.description,
        "eventState": EventState.normal,
        "outOfService": spec.state.out_of_service,
        "presentValue": to_bacnet_value(spec.object_type, spec.state.present_value),
    }
    if spec.object_type in ANALOG_TYPES:
        kwargs["units"] = EngineeringUnits(spec.units or "no-units")
        if spec.state.min_value is not None:
            kwargs["minPresValue"] = Real(spec.state.min_value)
        if spec.state.max_value is not None:
            kwargs["maxPresValue"] = Real(spec.state.max_value)
        kwargs["covIncrement"] = Real(spec.cov_increment if spec.cov_increment is not None else 0.1)
    elif spec.object_type in BINARY_TYPES:
        kwargs["polarity"] = Polarity.normal
        kwargs["inactiveText"] = spec.inactive_text or "inactive"
        kwargs["activeText"] = spec.active_text or "active"
    else:
        kwargs["numberOfStates"] = Unsigned(spec.state.number_of_states or len(spec.state_texts))
        kwargs["stateText"] = ArrayOf(CharacterString)(list(spec.state_texts))
    if spec.object_type in COMMANDABLE_TYPES:
        kwargs["relinquishDefault"] = to_bacnet_value(spec.object_type, spec.state.relinquish_default)
        kwargs["priorityArray"] = PriorityArray(
            [_priority_value(spec.object_type, slot) for slot in spec.state.priority_array]
        )
        kwargs["currentCommandPriority"] = _command_priority(spec.state)
    return cls(**kwargs)


def _command_priority(state: PointState) -> OptionalUnsigned:
    priority = state.current_command_priority
    return OptionalUnsigned(null=()) if priority is None else OptionalUnsigned(unsigned=priority)


def apply_state(obj: LocalObject, object_type: str, old: PointState, new: PointState) -> None:
    """Push ``new`` into the served object, touching only what changed (COV follows)."""
    if new.commandable:
        if new.priority_array != old.priority_array:
            obj.priorityArray = PriorityArray(
                [_priority_value(object_type, slot) for slot in new.priority_array]
            )
        if new.relinquish_default != old.relinquish_default:
            obj.relinquishDefault = to_bacnet_value(object_type, new.relinquish_default)
        if new.current_command_priority != old.current_command_priority:
            obj.currentCommandPriority = _command_priority(new)
    if new.out_of_service != old.out_of_service:
        old_flags = obj.statusFlags
        obj.outOfService = new.out_of_service
        # statusFlags is computed from outOfService: tell its COV monitors it changed
        for monitor in obj._property_monitors["statusFlags"]:
            monitor(old_flags, obj.statusFlags)
    if new.present_value != old.present_value:
        obj.presentValue = to_bacnet_value(object_type, new.present_value)


def from_bacnet_value(value: Any) -> float | int | bool | None:
    """Turn a decoded BACnet primitive into the Python value the write path takes."""
    if isinstance(value, Null):
        return None
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, Boolean | bool):
        return bool(value)
    return int(value)

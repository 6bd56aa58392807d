"""The BACnet objects a simulated device serves, made from the virtual-device templates.

A simulated device with ``object_count`` objects cycles through the objects of every
template in ``BACNET_OBJECT_TEMPLATES`` (in template order), so its objects look like a
real controller's points: ``temperature_sensor_1_Temperature``, ``hvac_controller_1_Fan_Control``,
``temperature_sensor_2_Temperature``... Instance numbers count from 1 per object type.

The classes are bacpypes3's local objects with two corrections: binary and multi-state
values are commandable (bacpypes3's ``BinaryValueObjectCmd`` is built on the non-local
base class, so it has no COV support, and there is no commandable multi-state value), and
multi-state objects use ``GenericCriteria`` (bacpypes3's default COV criteria for them
break SubscribeCOV).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import cycle, islice
from typing import Any

from bacpypes3.basetypes import BinaryPV, EngineeringUnits, EventState, Polarity, PriorityValue, StatusFlags
from bacpypes3.constructeddata import ArrayOf
from bacpypes3.local.analog import AnalogInputObject, AnalogOutputObject, AnalogValueObjectCmd
from bacpypes3.local.binary import BinaryInputObject, BinaryOutputObject, BinaryValueObject
from bacpypes3.local.cmd import Commandable
from bacpypes3.local.cov import GenericCriteria
from bacpypes3.local.multistate import MultiStateInputObject, MultiStateOutputObject, MultiStateValueObject
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.primitivedata import CharacterString, ObjectIdentifier, Real, Unsigned

from discovery.services.object_templates import (
    ANALOG_TYPES,
    BACNET_OBJECT_TEMPLATES,
    BINARY_TYPES,
    COMMANDABLE_TYPES,
)


class CommandableBinaryValueObject(Commandable, BinaryValueObject):
    """A binary value with a priority array, built on bacpypes3's *local* binary value."""


class GenericCOVMultiStateInputObject(MultiStateInputObject):
    """bacpypes3's multi-state input with COV criteria that work for SubscribeCOV."""

    _cov_criteria = GenericCriteria


class GenericCOVMultiStateOutputObject(MultiStateOutputObject):
    """bacpypes3's multi-state output (commandable) with working COV criteria."""

    _cov_criteria = GenericCriteria


class CommandableMultiStateValueObject(Commandable, MultiStateValueObject):
    """A commandable multi-state value with working COV criteria."""

    _cov_criteria = GenericCriteria


OBJECT_CLASSES: dict[str, type[LocalObject]] = {
    "analog-input": AnalogInputObject,
    "analog-output": AnalogOutputObject,
    "analog-value": AnalogValueObjectCmd,
    "binary-input": BinaryInputObject,
    "binary-output": BinaryOutputObject,
    "binary-value": CommandableBinaryValueObject,
    "multi-state-input": GenericCOVMultiStateInputObject,
    "multi-state-output": GenericCOVMultiStateOutputObject,
    "multi-state-value": CommandableMultiStateValueObject,
}

DEFAULT_COV_INCREMENT = 0.1

# One empty priority-array slot shared by every commandable object: a write replaces the
# slot and never changes it in place, and building 16 fresh ones per object would more than
# double the time it takes to build a device.
NULL_PRIORITY = PriorityValue(null=())


@dataclass(frozen=True)
class TemplatePoint:
    """One object of one template, as it appears in ``BACNET_OBJECT_TEMPLATES``."""

    template: str
    spec: dict[str, Any]


def template_points() -> list[TemplatePoint]:
    """Every object of every template, in template order."""
    return [
        TemplatePoint(template, spec)
        for template, definition in BACNET_OBJECT_TEMPLATES.items()
        for spec in definition["objects"]
    ]


def iter_object_specs(count: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """``count`` (object name, instance, template object) triples, cycling through the templates.

    The n-th pass through the templates names its objects ``{template}_{n}_{name}``.
    """
    points = template_points()
    instances: dict[str, int] = {}
    for index, point in enumerate(islice(cycle(points), count)):
        round_number = index // len(points) + 1
        object_type = point.spec["object_type"]
        instances[object_type] = instances.get(object_type, 0) + 1
        name = f"{point.template}_{round_number}_{point.spec['name']}"
        yield name, instances[object_type], point.spec


def _present_value(object_type: str, value: Any) -> Any:
    if object_type in ANALOG_TYPES:
        return Real(float(value))
    if object_type in BINARY_TYPES:
        return BinaryPV("active" if value else "inactive")
    return Unsigned(int(value))


def _type_properties(object_type: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The properties that depend on the kind of object (analog, binary, multi-state)."""
    if object_type in ANALOG_TYPES:
        properties: dict[str, Any] = {
            "units": EngineeringUnits(spec.get("units") or "no-units"),
            "covIncrement": Real(spec.get("cov_increment") or DEFAULT_COV_INCREMENT),
        }
        if spec.get("min") is not None:
            properties["minPresValue"] = Real(spec["min"])
        if spec.get("max") is not None:
            properties["maxPresValue"] = Real(spec["max"])
        return properties
    if object_type in BINARY_TYPES:
        return {
            "polarity": Polarity.normal,
            "inactiveText": CharacterString(spec.get("inactive_text") or "inactive"),
            "activeText": CharacterString(spec.get("active_text") or "active"),
        }
    texts = list(spec.get("state_texts") or ["State 1", "State 2"])
    return {
        "numberOfStates": Unsigned(len(texts)),
        "stateText": ArrayOf(CharacterString)([CharacterString(text) for text in texts]),
    }


def build_object(name: str, instance: int, spec: dict[str, Any]) -> LocalObject:
    """The bacpypes3 object for one template object (not yet added to an application)."""
    object_type = spec["object_type"]
    value = _present_value(object_type, spec.get("value", 0))
    properties: dict[str, Any] = {
        "objectIdentifier": ObjectIdentifier(f"{object_type},{instance}"),
        "objectName": name,
        "description": spec.get("description") or name,
        "presentValue": value,
        "statusFlags": StatusFlags([0, 0, 0, 0]),
        "eventState": EventState.normal,
        "outOfService": False,
        **_type_properties(object_type, spec),
    }
    if object_type in COMMANDABLE_TYPES:
        properties["relinquishDefault"] = value
        properties["priorityArray"] = [NULL_PRIORITY] * 16
    return OBJECT_CLASSES[object_type](**properties)


def build_objects(count: int) -> list[LocalObject]:
    """``count`` objects cycling through the templates; must be called inside a running loop."""
    return [build_object(name, instance, spec) for name, instance, spec in iter_object_specs(count)]

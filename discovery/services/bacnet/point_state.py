"""The value semantics of a virtual object, independent of the BACnet stack and the database.

``apply_write`` is where every write is validated and its effect computed: the priority
array and relinquish default of commandable objects, the out-of-service rule of inputs,
and the range of each kind of object. It returns a new state and never changes the old one,
so a refused write leaves nothing half-done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from discovery.services.object_templates import (
    ANALOG_TYPES,
    BINARY_TYPES,
    COMMANDABLE_TYPES,
    INPUT_TYPES,
    MULTISTATE_TYPES,
)

PRIORITY_SLOTS = 16
DEFAULT_PRIORITY = 16  # clause 19.2.1: a write without a priority is at the lowest one
WRITABLE_PROPERTIES = ("presentValue", "relinquishDefault", "outOfService")

Value = float | int


class WriteRejected(Exception):
    """A write that must be refused, carrying the BACnet error class and code."""

    def __init__(self, error_class: str, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.error_code = error_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.error_class}: {self.error_code} ({self.message})"


@dataclass(frozen=True)
class PointState:
    object_type: str
    present_value: Value
    out_of_service: bool = False
    relinquish_default: Value | None = None
    priority_array: tuple[Value | None, ...] = field(default_factory=tuple)
    min_value: float | None = None
    max_value: float | None = None
    number_of_states: int | None = None

    @property
    def commandable(self) -> bool:
        return self.object_type in COMMANDABLE_TYPES

    @property
    def current_command_priority(self) -> int | None:
        for index, slot in enumerate(self.priority_array):
            if slot is not None:
                return index + 1
        return None

    @classmethod
    def initial(cls, object_type: str, value: Value, **limits: float | int | None) -> PointState:
        """A fresh object: commandable ones start with an empty array and ``value`` as default."""
        value = normalize_value(object_type, value)
        if object_type in COMMANDABLE_TYPES:
            return cls(
                object_type=object_type,
                present_value=value,
                relinquish_default=value,
                priority_array=(None,) * PRIORITY_SLOTS,
                **limits,
            )
        return cls(object_type=object_type, present_value=value, **limits)


def normalize_value(object_type: str, value: Value) -> Value:
    """Analog values are floats; binary and multi-state values are integers."""
    if object_type in ANALOG_TYPES:
        return float(value)
    return int(value)


def check_value_type(object_type: str, value: object) -> Value:
    """Refuse a Python value of the wrong kind with ``invalid-data-type``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WriteRejected("property", "invalid-data-type", f"{value!r} is not a number for a {object_type}")
    if object_type not in ANALOG_TYPES and float(value) != int(value):
        raise WriteRejected(
            "property", "invalid-data-type", f"{value!r} is not a whole number for a {object_type}"
        )
    return normalize_value(object_type, value)


def check_range(state: PointState, value: Value) -> None:
    if state.object_type in ANALOG_TYPES:
        if not math.isfinite(value):
            raise WriteRejected("property", "value-out-of-range", f"{value} is not a finite number")
        if state.min_value is not None and value < state.min_value:
            raise WriteRejected(
                "property", "value-out-of-range", f"{value} is below the minimum {state.min_value}"
            )
        if state.max_value is not None and value > state.max_value:
            raise WriteRejected(
                "property", "value-out-of-range", f"{value} is above the maximum {state.max_value}"
            )
    elif state.object_type in BINARY_TYPES:
        if value not in (0, 1):
            raise WriteRejected(
                "property", "value-out-of-range", f"{value} is not inactive (0) or active (1)"
            )
    elif state.object_type in MULTISTATE_TYPES:
        states = state.number_of_states or 0
        if not 1 <= value <= states:
            raise WriteRejected(
                "property", "value-out-of-range", f"{value} is not a state between 1 and {states}"
            )


def check_priority(priority: int | None) -> int:
    if priority is None:
        return DEFAULT_PRIORITY
    if not 1 <= priority <= PRIORITY_SLOTS:
        raise WriteRejected("property", "value-out-of-range", f"priority {priority} is not between 1 and 16")
    return priority


def evaluate(state: PointState) -> PointState:
    """Recompute the present value of a commandable object from its array and default."""
    if not state.commandable:
        return state
    for slot in state.priority_array:
        if slot is not None:
            return replace(state, present_value=slot)
    return replace(state, present_value=state.relinquish_default)


def apply_write(
    state: PointState, property_name: str, value: Value | bool | None, priority: int | None = None
) -> PointState:
    """Validate a write and return the state after it; raise ``WriteRejected`` if refused.

    ``value`` None means BACnet Null: relinquish the slot at ``priority``.
    """
    if property_name not in WRITABLE_PROPERTIES or (
        property_name == "relinquishDefault" and not state.commandable
    ):
        raise WriteRejected(
            "property", "write-access-denied", f"{property_name} of a {state.object_type} is read-only"
        )

    if property_name == "outOfService":
        if not isinstance(value, bool):
            raise WriteRejected("property", "invalid-data-type", "outOfService takes a boolean")
        return replace(state, out_of_service=value)

    if property_name == "relinquishDefault":
        if value is None:
            raise WriteRejected("property", "invalid-data-type", "relinquishDefault cannot be null")
        value = check_value_type(state.object_type, value)
        check_range(state, value)
        return evaluate(replace(state, relinquish_default=value))

    # presentValue
    if state.commandable:
        slot = check_priority(priority)
        if value is not None:
            value = check_value_type(state.object_type, value)
            check_range(state, value)
        array = list(state.priority_array)
        array[slot - 1] = value
        return evaluate(replace(state, priority_array=tuple(array)))

    if value is None:
        raise WriteRejected(
            "property", "invalid-data-type", f"a {state.object_type} is not commandable: null refused"
        )
    if state.object_type in INPUT_TYPES and not state.out_of_service:
        raise WriteRejected(
            "property",
            "write-access-denied",
            f"the present value of a {state.object_type} is writable only while out of service",
        )
    value = check_value_type(state.object_type, value)
    check_range(state, value)
    return replace(state, present_value=value)

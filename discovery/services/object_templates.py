"""Templates a virtual device is made from.

Each template is a list of objects. Object types use BACnet's hyphenated names. Analog
objects take ``units`` (a BACnet engineering-units name), ``min``/``max`` (exposed as
minPresValue/maxPresValue and enforced on writes) and ``cov_increment``; binary objects
take ``inactive_text``/``active_text``; multi-state objects take ``state_texts`` (their
number is numberOfStates). ``value`` is the initial present value: for commandable
objects (outputs and values) it becomes the relinquish default.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

ANALOG_TYPES = ("analog-input", "analog-output", "analog-value")
BINARY_TYPES = ("binary-input", "binary-output", "binary-value")
MULTISTATE_TYPES = ("multi-state-input", "multi-state-output", "multi-state-value")
INPUT_TYPES = ("analog-input", "binary-input", "multi-state-input")
COMMANDABLE_TYPES = tuple(t for t in ANALOG_TYPES + BINARY_TYPES + MULTISTATE_TYPES if t not in INPUT_TYPES)

BACNET_OBJECT_TEMPLATES: dict[str, dict[str, Any]] = {
    "temperature_sensor": {
        "description": "Room temperature and humidity sensor",
        "objects": [
            {
                "name": "Temperature",
                "object_type": "analog-input",
                "units": "degrees-fahrenheit",
                "description": "Room temperature",
                "value": 72.0,
                "min": -40.0,
                "max": 250.0,
                "cov_increment": 0.5,
            },
            {
                "name": "Humidity",
                "object_type": "analog-input",
                "units": "percent-relative-humidity",
                "description": "Room relative humidity",
                "value": 45.0,
                "min": 0.0,
                "max": 100.0,
                "cov_increment": 1.0,
            },
        ],
    },
    "hvac_controller": {
        "description": "Air handler with a temperature setpoint and a supply fan",
        "objects": [
            {
                "name": "Zone_Temperature",
                "object_type": "analog-input",
                "units": "degrees-fahrenheit",
                "description": "Zone temperature",
                "value": 71.5,
                "min": -40.0,
                "max": 250.0,
                "cov_increment": 0.5,
            },
            {
                "name": "Temperature_Setpoint",
                "object_type": "analog-output",
                "units": "degrees-fahrenheit",
                "description": "Zone temperature setpoint",
                "value": 72.0,
                "min": 55.0,
                "max": 85.0,
                "cov_increment": 0.1,
            },
            {
                "name": "Fan_Control",
                "object_type": "binary-output",
                "description": "Supply fan start/stop",
                "value": 0,
                "inactive_text": "Off",
                "active_text": "On",
            },
        ],
    },
    "lighting": {
        "description": "Two lighting zones and a mode selector",
        "objects": [
            {
                "name": "Zone_1_Lights",
                "object_type": "binary-output",
                "description": "Lighting zone 1",
                "value": 0,
                "inactive_text": "Off",
                "active_text": "On",
            },
            {
                "name": "Zone_2_Lights",
                "object_type": "binary-output",
                "description": "Lighting zone 2",
                "value": 0,
                "inactive_text": "Off",
                "active_text": "On",
            },
            {
                "name": "Lighting_Mode",
                "object_type": "multi-state-value",
                "description": "Lighting mode",
                "value": 3,
                "state_texts": ["Off", "On", "Auto", "Scene"],
            },
        ],
    },
    "vav_box": {
        "description": "Variable air volume terminal",
        "objects": [
            {
                "name": "Airflow_Setpoint",
                "object_type": "analog-value",
                "units": "cubic-feet-per-minute",
                "description": "Airflow setpoint",
                "value": 500.0,
                "min": 0.0,
                "max": 2000.0,
                "cov_increment": 10.0,
            },
            {
                "name": "Occupancy",
                "object_type": "binary-input",
                "description": "Occupancy sensor",
                "value": 0,
                "inactive_text": "Unoccupied",
                "active_text": "Occupied",
            },
            {
                "name": "Damper_State",
                "object_type": "multi-state-input",
                "description": "Damper position state",
                "value": 1,
                "state_texts": ["Closed", "Modulating", "Open"],
            },
        ],
    },
}


def get_device_template(name: str) -> dict[str, Any]:
    """Return a copy of the template called ``name``; KeyError names the known ones."""
    try:
        return deepcopy(BACNET_OBJECT_TEMPLATES[name])
    except KeyError:
        known = ", ".join(sorted(BACNET_OBJECT_TEMPLATES))
        raise KeyError(f"unknown template {name!r} (known: {known})") from None


def get_template_objects(name: str) -> list[dict[str, Any]]:
    """Return a copy of the object definitions of the template called ``name``."""
    return get_device_template(name)["objects"]

"""The value semantics of virtual objects, without a network: every rule of the write path."""

import math

import pytest

from discovery.services.bacnet.point_state import PointState, WriteRejected, apply_write


def setpoint() -> PointState:
    return PointState.initial("analog-output", 72.0, min_value=55.0, max_value=85.0)


def rejected(state, *args) -> tuple[str, str]:
    with pytest.raises(WriteRejected) as info:
        apply_write(state, *args)
    return info.value.error_class, info.value.error_code


def test_a_write_at_priority_8_wins_over_16_and_relinquishing_falls_back():
    state = apply_write(setpoint(), "presentValue", 75.0, 8)
    assert (state.present_value, state.current_command_priority) == (75.0, 8)
    state = apply_write(state, "presentValue", 60.0, 16)
    assert state.present_value == 75.0
    state = apply_write(state, "presentValue", None, 8)
    assert (state.present_value, state.current_command_priority) == (60.0, 16)
    state = apply_write(state, "presentValue", None, 16)
    assert (state.present_value, state.current_command_priority) == (72.0, None)


def test_a_write_without_priority_goes_to_slot_16():
    state = apply_write(setpoint(), "presentValue", 70.0)
    assert state.priority_array[15] == 70.0


def test_writing_relinquish_default_reevaluates_the_present_value():
    state = apply_write(setpoint(), "relinquishDefault", 80.0)
    assert state.present_value == 80.0
    state = apply_write(state, "presentValue", 60.0, 10)
    state = apply_write(state, "relinquishDefault", 81.0)
    assert state.present_value == 60.0


@pytest.mark.parametrize("value", [54.9, 85.1, math.inf, math.nan])
def test_analog_values_outside_min_max_are_out_of_range(value):
    assert rejected(setpoint(), "presentValue", value, 8) == ("property", "value-out-of-range")


@pytest.mark.parametrize("priority", [0, 17, 255])
def test_a_priority_outside_1_to_16_is_refused(priority):
    assert rejected(setpoint(), "presentValue", 70.0, priority) == ("property", "value-out-of-range")


def test_binary_values_must_be_inactive_or_active():
    state = PointState.initial("binary-output", 0)
    assert apply_write(state, "presentValue", 1, 8).present_value == 1
    assert rejected(state, "presentValue", 2, 8) == ("property", "value-out-of-range")


def test_multistate_values_must_be_a_state_between_1_and_number_of_states():
    state = PointState.initial("multi-state-value", 3, number_of_states=4)
    assert apply_write(state, "presentValue", 4, 8).present_value == 4
    assert rejected(state, "presentValue", 0, 8) == ("property", "value-out-of-range")
    assert rejected(state, "presentValue", 5, 8) == ("property", "value-out-of-range")


def test_inputs_take_a_present_value_only_while_out_of_service():
    state = PointState.initial("analog-input", 70.0, min_value=-40.0, max_value=250.0)
    assert rejected(state, "presentValue", 71.0, None) == ("property", "write-access-denied")
    state = apply_write(state, "outOfService", True)
    assert apply_write(state, "presentValue", 71.0).present_value == 71.0


def test_inputs_have_no_relinquish_default_and_refuse_null():
    state = apply_write(PointState.initial("binary-input", 0), "outOfService", True)
    assert rejected(state, "relinquishDefault", 1) == ("property", "write-access-denied")
    assert rejected(state, "presentValue", None) == ("property", "invalid-data-type")


@pytest.mark.parametrize("value", ["75", True, [1]])
def test_values_of_the_wrong_type_are_invalid_data_type(value):
    assert rejected(setpoint(), "presentValue", value, 8) == ("property", "invalid-data-type")


def test_a_fraction_is_invalid_for_a_multistate_object():
    state = PointState.initial("multi-state-output", 1, number_of_states=3)
    assert rejected(state, "presentValue", 1.5, 8) == ("property", "invalid-data-type")


def test_properties_outside_the_allow_list_are_read_only():
    for name in ("objectName", "units", "priorityArray", "description", "covIncrement"):
        assert rejected(setpoint(), name, 1.0) == ("property", "write-access-denied")


def test_a_refused_write_leaves_the_state_unchanged():
    state = setpoint()
    before = state
    with pytest.raises(WriteRejected):
        apply_write(state, "presentValue", 99.0, 8)
    assert state == before

"""Writes from an external BACnet client: semantics, errors, persistence and history."""

import pytest
from bacpypes3.apdu import ErrorRejectAbortNack, WritePropertyMultipleRequest, WritePropertyRequest
from bacpypes3.basetypes import PropertyValue, WriteAccessSpecification
from bacpypes3.constructeddata import Any
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import CharacterString, Enumerated, Null, Real, Unsigned

from discovery.models import VirtualBACnetDevice, VirtualBACnetObject, VirtualObjectWrite
from discovery.services import virtual_store
from tests.conftest import SERVICE_IP, db

pytestmark = pytest.mark.django_db(transaction=True)

AO = "analog-output,1"


async def error_of(awaitable) -> tuple[str, str]:
    with pytest.raises(ErrorRejectAbortNack) as info:
        await awaitable
    return str(info.value.errorClass), str(info.value.errorCode)


async def raw_write(client, obj, prop, value, priority=None):
    """A WriteProperty encoded exactly as given (the client helper would convert the value)."""
    request = WritePropertyRequest(
        objectIdentifier=obj,
        propertyIdentifier=prop,
        propertyValue=Any(value),
        destination=Address(SERVICE_IP),
    )
    if priority is not None:
        request.priority = priority
    return await client.request(request)


def row(object_name: str) -> VirtualBACnetObject:
    return VirtualBACnetObject.objects.get(object_name=object_name)


def history(object_name: str) -> list[VirtualObjectWrite]:
    return list(VirtualObjectWrite.objects.filter(virtual_object__object_name=object_name).order_by("id"))


SETPOINT = "Virtual_1001_Temperature_Setpoint"


async def test_priority_semantics_over_bacnet_and_in_the_database(ahu, service, client):
    async def present_value():
        return await client.read_property(SERVICE_IP, AO, "presentValue")

    async def slots():
        array = await client.read_property(SERVICE_IP, AO, "priorityArray")
        return [None if pv.null is not None else float(pv.real) for pv in array]

    await client.write_property(SERVICE_IP, AO, "presentValue", 75.0, priority=8)
    assert await present_value() == 75.0
    assert (await client.read_property(SERVICE_IP, AO, "currentCommandPriority")).unsigned == 8

    await client.write_property(SERVICE_IP, AO, "presentValue", 60.0, priority=16)
    assert await present_value() == 75.0
    assert (await slots())[7] == 75.0 and (await slots())[15] == 60.0

    await client.write_property(SERVICE_IP, AO, "presentValue", Null(()), priority=8)
    assert await present_value() == 60.0
    stored = await db(row)(SETPOINT)
    assert stored.present_value == 60.0
    assert stored.priority_array[7] is None and stored.priority_array[15] == 60.0

    await client.write_property(SERVICE_IP, AO, "presentValue", Null(()), priority=16)
    assert await present_value() == 72.0
    assert (await client.read_property(SERVICE_IP, AO, "currentCommandPriority")).null is not None
    stored = await db(row)(SETPOINT)
    assert stored.present_value == 72.0 and stored.priority_array == [None] * 16

    writes = await db(history)(SETPOINT)
    assert [(w.value, w.priority, w.present_value) for w in writes] == [
        (75.0, 8, 75.0),
        (60.0, 16, 75.0),
        (None, 8, 60.0),
        (None, 16, 72.0),
    ]
    assert {w.source for w in writes} == {"external_bacnet_write"}
    assert {w.source_address for w in writes} == {"10.77.1.2"}
    device = await db(VirtualBACnetDevice.objects.get)(device_id=1001)
    assert device.last_external_write == writes[-1].created_at


async def test_writing_relinquish_default_reevaluates_present_value(ahu, service, client):
    await client.write_property(SERVICE_IP, AO, "relinquishDefault", 80.0)
    assert await client.read_property(SERVICE_IP, AO, "presentValue") == 80.0
    assert (await db(row)(SETPOINT)).relinquish_default == 80.0


async def test_a_write_without_priority_lands_at_16(ahu, service, client):
    await client.write_property(SERVICE_IP, AO, "presentValue", 70.0)
    array = await client.read_property(SERVICE_IP, AO, "priorityArray")
    assert float(array[15].real) == 70.0
    assert (await db(history)(SETPOINT))[-1].priority == 16


async def test_inputs_accept_a_value_only_while_out_of_service(ahu, service, client):
    ai = "analog-input,1"
    assert await error_of(client.write_property(SERVICE_IP, ai, "presentValue", 60.0)) == (
        "property",
        "write-access-denied",
    )
    await client.write_property(SERVICE_IP, ai, "outOfService", True)
    await client.write_property(SERVICE_IP, ai, "presentValue", 60.0)
    assert await client.read_property(SERVICE_IP, ai, "presentValue") == 60.0
    flags = await client.read_property(SERVICE_IP, ai, "statusFlags")
    assert flags[3] == 1  # out-of-service flag
    stored = await db(row)("Virtual_1001_Zone_Temperature")
    assert stored.out_of_service and stored.present_value == 60.0


ERROR_CASES = [
    # (object, property, value, priority, expected error)
    (AO, "presentValue", Real(99.0), 8, ("property", "value-out-of-range")),
    (AO, "presentValue", Real(10.0), None, ("property", "value-out-of-range")),
    (AO, "presentValue", Unsigned(70), 8, ("property", "invalid-data-type")),
    (AO, "presentValue", CharacterString("70"), 8, ("property", "invalid-data-type")),
    (AO, "presentValue", Real(70.0), 17, ("property", "value-out-of-range")),
    (AO, "presentValue", Real(70.0), 0, ("property", "value-out-of-range")),
    (AO, "objectName", CharacterString("renamed"), None, ("property", "write-access-denied")),
    (AO, "units", Enumerated(62), None, ("property", "write-access-denied")),
    (AO, "priorityArray", Real(1.0), None, ("property", "write-access-denied")),
    (AO, "stateText", CharacterString("x"), None, ("property", "unknown-property")),
    ("analog-output,99", "presentValue", Real(70.0), 8, ("object", "unknown-object")),
    ("analog-input,1", "presentValue", Real(70.0), None, ("property", "write-access-denied")),
    ("analog-input,1", "outOfService", Real(1.0), None, ("property", "invalid-data-type")),
    ("binary-output,1", "presentValue", Unsigned(2), 8, ("property", "invalid-data-type")),
]


@pytest.mark.parametrize(
    "obj, prop, value, priority, expected",
    ERROR_CASES,
    ids=[f"{c[0]}-{c[1]}-{type(c[2]).__name__}-p{c[3]}-{c[4][1]}" for c in ERROR_CASES],
)
async def test_bad_writes_get_their_error_and_change_nothing(
    ahu, service, client, obj, prop, value, priority, expected
):
    before_value = await client.read_property(SERVICE_IP, AO, "presentValue")
    before_rows = await db(lambda: list(VirtualBACnetObject.objects.values()))()
    error = await error_of(raw_write(client, obj, prop, value, priority))
    assert error == expected
    assert await client.read_property(SERVICE_IP, AO, "presentValue") == before_value
    assert await client.read_property(SERVICE_IP, AO, "objectName") == SETPOINT
    assert await db(lambda: list(VirtualBACnetObject.objects.values()))() == before_rows
    assert await db(VirtualObjectWrite.objects.count)() == 0


async def test_binary_and_multistate_ranges_are_enforced(service, client):
    await db(virtual_store.create_virtual_device)(template="lighting", device_id=3001, name="L")
    await service.sync_virtual_objects_from_db()
    from bacpypes3.basetypes import BinaryPV

    await client.write_property(SERVICE_IP, "binary-output,1", "presentValue", BinaryPV("active"), priority=8)
    assert str(await client.read_property(SERVICE_IP, "binary-output,1", "presentValue")) == "active"
    for bad in (0, 5):
        assert await error_of(
            client.write_property(
                SERVICE_IP, "multi-state-value,1", "presentValue", Unsigned(bad), priority=8
            )
        ) == ("property", "value-out-of-range")
    await client.write_property(SERVICE_IP, "multi-state-value,1", "presentValue", Unsigned(4), priority=8)
    assert await client.read_property(SERVICE_IP, "multi-state-value,1", "presentValue") == 4
    stored = await db(row)("Virtual_3001_Lighting_Mode")
    assert stored.present_value == 4 and stored.present_value_text == "Scene"


def wpm_request(*writes) -> WritePropertyMultipleRequest:
    specs = []
    for obj, prop, value, priority in writes:
        prop_value = PropertyValue(propertyIdentifier=prop, value=Any(value))
        if priority is not None:
            prop_value.priority = priority
        specs.append(WriteAccessSpecification(objectIdentifier=obj, listOfProperties=[prop_value]))
    return WritePropertyMultipleRequest(listOfWriteAccessSpecs=specs, destination=Address(SERVICE_IP))


async def test_write_property_multiple_applies_every_valid_write(ahu, service, client):
    response = await client.request(
        wpm_request((AO, "presentValue", Real(74.0), 9), (AO, "relinquishDefault", Real(70.0), None))
    )
    assert type(response).__name__ == "SimpleAckPDU"
    assert await client.read_property(SERVICE_IP, AO, "presentValue") == 74.0
    assert await client.read_property(SERVICE_IP, AO, "relinquishDefault") == 70.0
    assert len(await db(history)(SETPOINT)) == 2


async def test_write_property_multiple_reports_the_first_failing_write(ahu, service, client):
    request = wpm_request(
        (AO, "presentValue", Real(74.0), 9),
        (AO, "presentValue", Real(120.0), 9),
        (AO, "relinquishDefault", Real(70.0), None),
    )
    with pytest.raises(ErrorRejectAbortNack) as info:
        await client.request(request)
    error = info.value
    assert type(error).__name__ == "WritePropertyMultipleError"
    assert (str(error.errorType.errorClass), str(error.errorType.errorCode)) == (
        "property",
        "value-out-of-range",
    )
    failed = error.firstFailedWriteAttempt
    assert (str(failed.objectIdentifier[0]), failed.objectIdentifier[1]) == ("analog-output", 1)
    assert str(failed.propertyIdentifier) == "present-value"
    # the valid write before it was applied, the one after it was not attempted
    assert await client.read_property(SERVICE_IP, AO, "presentValue") == 74.0
    assert await client.read_property(SERVICE_IP, AO, "relinquishDefault") == 72.0
    assert [w.value for w in await db(history)(SETPOINT)] == [74.0]

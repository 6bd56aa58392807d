"""Device 8888 as any BACnet tool sees it: discovery, device properties, reads of every object."""

import asyncio
import socket

import pytest
from bacpypes3.apdu import ErrorRejectAbortNack, IAmRequest
from bacpypes3.app import Application
from bacpypes3.pdu import Address

from discovery.services import virtual_store
from discovery.services.object_templates import BACNET_OBJECT_TEMPLATES
from tests import netns
from tests.conftest import SERVICE_IP, db, eventually, make_client_app

pytestmark = pytest.mark.django_db(transaction=True)


def oid(identifier) -> tuple[str, int]:
    return (str(identifier[0]), int(identifier[1]))


async def error_of(awaitable) -> tuple[str, str]:
    with pytest.raises(ErrorRejectAbortNack) as info:
        await awaitable
    return str(info.value.errorClass), str(info.value.errorCode)


@pytest.fixture
def every_template(transactional_db):
    for offset, template in enumerate(sorted(BACNET_OBJECT_TEMPLATES)):
        virtual_store.create_virtual_device(template=template, device_id=2000 + offset, name=template)


async def test_a_global_who_is_finds_device_8888(service, client):
    answers = await client.who_is(timeout=1)
    assert [oid(a.iAmDeviceIdentifier) for a in answers] == [("device", 8888)]
    assert answers[0].pduSource == Address(SERVICE_IP)
    assert answers[0].vendorID == 999


async def test_a_ranged_who_is_is_answered_only_inside_the_range(service, client):
    assert len(await client.who_is(8000, 9000, timeout=1)) == 1
    assert await client.who_is(1, 100, timeout=0.5) == []


async def test_a_directed_who_is_is_answered(service, client):
    answers = await client.who_is(address=Address(SERVICE_IP), timeout=1)
    assert [a.iAmDeviceIdentifier[1] for a in answers] == [8888]


async def test_the_device_announces_itself_with_an_i_am_at_start_up(private_network, transactional_db):
    from discovery.services.unified_bacnet_service import UnifiedBACnetService

    heard: list[IAmRequest] = []

    class Listener(Application):
        async def do_IAmRequest(self, apdu):
            heard.append(apdu)

    listener = make_client_app(5)
    listener.__class__ = type("ListeningApp", (Listener, type(listener)), {})
    await asyncio.sleep(0.05)
    service = UnifiedBACnetService(address=netns.address(1))
    await service.start_service()
    try:
        assert await eventually(lambda: asyncio.sleep(0, result=bool(heard)))
        assert heard[0].iAmDeviceIdentifier[1] == 8888
    finally:
        await service.stop_service()
        listener.close()


async def test_device_properties_are_reported(service, client):
    async def read(prop):
        return await client.read_property(SERVICE_IP, "device,8888", prop)

    assert await read("objectName") == "Django_BMS"
    assert await read("vendorIdentifier") == 999
    assert await read("vendorName") == "Django BMS Project"
    assert await read("modelName") == "Django BMS"
    assert await read("firmwareRevision")
    assert (await read("applicationSoftwareVersion")).startswith("django-bms")
    assert await read("protocolVersion") == 1
    assert await read("protocolRevision") == 22
    assert str(await read("systemStatus")) == "operational"
    assert await read("maxApduLengthAccepted") == 1476
    assert str(await read("segmentationSupported")) == "segmented-both"
    assert await read("databaseRevision") >= 1


async def test_services_supported_are_exactly_those_served(service, client):
    services = str(await client.read_property(SERVICE_IP, "device,8888", "protocolServicesSupported"))
    assert set(services.split(";")) == {
        "read-property",
        "read-property-multiple",
        "write-property",
        "write-property-multiple",
        "subscribe-cov",
        "confirmed-cov-notification",
        "unconfirmed-cov-notification",
        "who-is",
        "i-am",
        "who-has",
        "i-have",
    }
    # ReadRange is not offered, so it is not served either.
    from bacpypes3.apdu import ReadRangeRequest

    request = ReadRangeRequest(
        objectIdentifier=("device", 8888), propertyIdentifier="objectList", destination=Address(SERVICE_IP)
    )
    with pytest.raises(ErrorRejectAbortNack) as info:
        await client.request(request)
    assert str(info.value.reason) == "unrecognized-service"


async def test_object_types_supported_are_exactly_those_hosted(every_template, service, client):
    types = str(await client.read_property(SERVICE_IP, "device,8888", "protocolObjectTypesSupported"))
    assert set(types.split(";")) == {
        "device",
        "network-port",
        "analog-input",
        "analog-output",
        "analog-value",
        "binary-input",
        "binary-output",
        "multi-state-input",
        "multi-state-value",
    }


async def test_object_list_reads_whole_and_by_index(ahu, service, client):
    whole = await client.read_property(SERVICE_IP, "device,8888", "objectList")
    assert [str(t) + f",{i}" for t, i in whole] == [
        "device,8888",
        "network-port,1",
        "analog-input,1",
        "analog-output,1",
        "binary-output,1",
    ]
    assert await client.read_property(SERVICE_IP, "device,8888", "objectList", 0) == 5
    assert oid(await client.read_property(SERVICE_IP, "device,8888", "objectList", 4)) == ("analog-output", 1)
    assert await error_of(client.read_property(SERVICE_IP, "device,8888", "objectList", 6)) == (
        "property",
        "invalid-array-index",
    )


async def test_every_property_of_every_object_reads_with_rpm(every_template, service, client):
    object_list = await client.read_property(SERVICE_IP, "device,8888", "objectList")
    assert len(object_list) == 2 + sum(len(t["objects"]) for t in BACNET_OBJECT_TEMPLATES.values())
    for object_identifier in object_list:
        for selector in ("all", "required", "optional"):
            results = await client.read_property_multiple(SERVICE_IP, [object_identifier, [selector]])
            values = {str(prop): value for _, prop, _, value in results}
            assert values, (object_identifier, selector)
            assert not [v for v in values.values() if isinstance(v, ErrorRejectAbortNack)]
            if selector != "optional":
                assert "object-name" in values and "object-type" in values
        property_list = await client.read_property(SERVICE_IP, object_identifier, "propertyList")
        names = {str(p) for p in property_list}
        assert not names & {"object-identifier", "object-name", "object-type", "property-list"}
        all_names = {
            str(prop)
            for _, prop, _, _ in await client.read_property_multiple(SERVICE_IP, [object_identifier, ["all"]])
        }
        assert names <= all_names | {"property-list"}


async def test_virtual_objects_are_named_and_typed_from_the_template(ahu, service, client):
    name = await client.read_property(SERVICE_IP, "analog-output,1", "objectName")
    assert name == "Virtual_1001_Temperature_Setpoint"
    assert await client.read_property(SERVICE_IP, "analog-output,1", "minPresValue") == 55.0
    assert await client.read_property(SERVICE_IP, "analog-output,1", "maxPresValue") == 85.0
    assert str(await client.read_property(SERVICE_IP, "analog-output,1", "units")) == "degrees-fahrenheit"
    assert await client.read_property(SERVICE_IP, "analog-output,1", "relinquishDefault") == 72.0
    assert len(await client.read_property(SERVICE_IP, "analog-output,1", "priorityArray")) == 16


async def test_the_wildcard_device_instance_is_answered_for_this_device(service, client):
    assert await client.read_property(SERVICE_IP, "device,4194303", "objectName") == "Django_BMS"
    results = await client.read_property_multiple(SERVICE_IP, ["device,4194303", ["objectName"]])
    assert results[0][3] == "Django_BMS"


@pytest.mark.parametrize(
    "prop, value",
    [("objectName", "hacked"), ("protocolRevision", 1), ("vendorName", "x"), ("databaseRevision", 9)],
)
async def test_device_properties_cannot_be_written(service, client, prop, value):
    error = await error_of(client.write_property(SERVICE_IP, "device,8888", prop, value))
    assert error == ("property", "write-access-denied")
    assert await client.read_property(SERVICE_IP, "device,8888", "objectName") == "Django_BMS"


async def test_unknown_objects_and_properties_get_their_errors(ahu, service, client):
    assert await error_of(client.read_property(SERVICE_IP, "analog-value,77", "presentValue")) == (
        "object",
        "unknown-object",
    )
    assert await error_of(client.read_property(SERVICE_IP, "analog-output,1", "stateText")) == (
        "property",
        "unknown-property",
    )


async def test_devices_created_and_deleted_while_running_follow_in_object_list(service, client):
    revision = await client.read_property(SERVICE_IP, "device,8888", "databaseRevision")

    await db(virtual_store.create_virtual_device)(template="temperature_sensor", device_id=5, name="TS")

    async def served():
        return len(await client.read_property(SERVICE_IP, "device,8888", "objectList")) == 4

    assert await eventually(served, timeout=1.0)
    assert await client.read_property(SERVICE_IP, "analog-input,1", "objectName") == "Virtual_5_Temperature"
    assert await client.read_property(SERVICE_IP, "device,8888", "databaseRevision") == revision + 1

    await db(virtual_store.delete_virtual_device)(5)

    async def gone():
        return len(await client.read_property(SERVICE_IP, "device,8888", "objectList")) == 2

    assert await eventually(gone, timeout=1.0)
    assert await client.read_property(SERVICE_IP, "device,8888", "databaseRevision") == revision + 2
    assert await db(virtual_store.get_database_revision)() == revision + 2


def test_instance_numbers_are_not_reused_after_a_delete(transactional_db):
    first = virtual_store.create_virtual_device(template="temperature_sensor", device_id=1, name="A")
    instances = set(first.bacnet_objects.values_list("instance", flat=True))
    virtual_store.delete_virtual_device(1)
    second = virtual_store.create_virtual_device(template="temperature_sensor", device_id=2, name="B")
    assert not instances & set(second.bacnet_objects.values_list("instance", flat=True))


async def test_malformed_packets_do_not_stop_the_service(ahu, service, client):
    garbage = [b"", b"\x81", b"\x81\x0a\x00\x04", b"\x81\x0a\x00\x20" + b"\xff" * 28, bytes(range(256))]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((netns.ip(9), 0))
        for payload in garbage:
            sock.sendto(payload, (SERVICE_IP, 47808))
        # a confirmed ReadProperty request cut short after its header
        sock.sendto(b"\x81\x0a\x00\x0b\x01\x04\x00\x05\x01\x0c\x0c", (SERVICE_IP, 47808))
    await asyncio.sleep(0.2)
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 72.0


async def test_a_broken_object_row_does_not_keep_the_others_off_the_network(ahu, private_network):
    from discovery.models import VirtualBACnetObject
    from discovery.services.unified_bacnet_service import ServiceState, UnifiedBACnetService

    await db(VirtualBACnetObject.objects.filter(object_type="binary-output").update)(object_type="bogus")
    service = UnifiedBACnetService(address=netns.address(1))
    await service.start_service()
    try:
        assert service.state == ServiceState.RUNNING
        assert sorted(service.write_path.points) == [("analog-input", 1), ("analog-output", 1)]
    finally:
        await service.stop_service()


async def test_a_failed_start_releases_the_port_and_says_why(private_network, transactional_db, monkeypatch):
    from discovery.services import unified_bacnet_service
    from discovery.services.bacnet.network import ensure_port_free

    service = unified_bacnet_service.UnifiedBACnetService(address=netns.address(1))

    async def broken_sync():
        raise RuntimeError("database gone")

    monkeypatch.setattr(service, "sync_virtual_objects_from_db", broken_sync)
    with pytest.raises(RuntimeError):
        await service.start_service()
    assert service.state == unified_bacnet_service.ServiceState.FAILED
    assert "database gone" in service.failure
    ensure_port_free(netns.ip(1), 47808)  # released: nothing holds it any more


async def test_the_stack_s_socket_has_room_for_bursts_of_answers(service, settings):
    from pathlib import Path

    sockets = {
        transport.get_extra_info("socket")
        for layer in service.app.link_layers.values()
        for transport in (layer.server.local_transport, layer.server.broadcast_transport)
        if transport is not None
    }
    asked = settings.BACNET_RECEIVE_BUFFER_BYTES
    allowed = int(Path("/proc/sys/net/core/rmem_max").read_text())
    for sock in sockets:
        # Linux reports twice what it keeps; root may go past net.core.rmem_max
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 2 * min(asked, allowed)

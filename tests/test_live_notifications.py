"""After a write: the websocket clients are told and the business-logic hooks run."""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User

from discovery.consumers import VirtualDeviceConsumer
from discovery.signals import virtual_object_changed
from tests.conftest import SERVICE_IP, db

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(VirtualDeviceConsumer.as_asgi(), "/ws/virtual-devices/")
    communicator.scope["user"] = user
    return communicator


async def test_a_signed_in_websocket_receives_external_writes(ahu, service, client):
    user = await db(User.objects.create_user)("engineer", password="pw")
    communicator = await connect(user)
    connected, _ = await communicator.connect()
    assert connected
    try:
        await client.write_property(SERVICE_IP, "analog-output,1", "presentValue", 75.0, priority=8)
        message = await communicator.receive_json_from(timeout=2)
    finally:
        await communicator.disconnect()
    assert message["type"] == "external_write_notification"
    assert message["object_name"] == "Virtual_1001_Temperature_Setpoint"
    assert message["device_id"] == 1001
    assert message["value"] == 75.0 and message["present_value"] == 75.0
    assert message["priority"] == 8 and message["priority_array"][7] == 75.0
    assert message["source"] == "external_bacnet_write" and message["external"] is True
    assert message["source_address"] == "10.77.1.2"


async def test_an_anonymous_websocket_is_refused(transactional_db):
    communicator = await connect(AnonymousUser())
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401


async def test_hooks_run_for_every_source_and_a_failing_hook_breaks_nothing(ahu, service, client):
    seen: list[dict] = []

    def record(sender, event, **kwargs):
        seen.append(event)

    def broken(sender, event, **kwargs):
        raise RuntimeError("a bug in business logic")

    virtual_object_changed.connect(broken, weak=False)
    virtual_object_changed.connect(record, weak=False)
    try:
        await client.write_property(SERVICE_IP, "analog-output,1", "presentValue", 70.0, priority=8)
        await service.write_virtual_object(
            "Virtual_1001_Temperature_Setpoint", 71.0, priority=9, source="web", user="alice"
        )
        for _ in range(40):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        virtual_object_changed.disconnect(broken)
        virtual_object_changed.disconnect(record)
    assert [(e["source"], e["value"]) for e in seen] == [("external_bacnet_write", 70.0), ("web", 71.0)]
    assert seen[1]["user"] == "alice"
    # the service kept working and both writes are in place
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 70.0

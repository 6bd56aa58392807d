"""SubscribeCOV on virtual objects: initial notification, changes from any source, lifetime, cancel."""

import asyncio
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import sync_to_async
from bacpypes3.apdu import SubscribeCOVRequest
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import ObjectIdentifier

from discovery.services import virtual_store
from tests.conftest import SERVICE_IP

SERVICE_ADDRESS = Address(SERVICE_IP)

pytestmark = pytest.mark.django_db(transaction=True)


@asynccontextmanager
async def subscribe(client, obj: str, process_id: int, *, confirmed: bool = True, lifetime: int = 60):
    """SubscribeCOV as a context manager (cancelled on exit).

    bacpypes3's client registers its context only after the SubscribeCOV ack, so the device's
    initial notification, sent right after the ack, can arrive first and be refused. Register
    the context before subscribing, as a client that expects the initial value must.
    """
    subscription = client.change_of_value(
        SERVICE_ADDRESS, ObjectIdentifier(obj), process_id, confirmed, lifetime
    )
    client._cov_contexts[(SERVICE_ADDRESS, process_id)] = subscription
    await subscription.refresh_subscription()
    try:
        yield subscription
    finally:
        await subscription.__aexit__(None, None, None)


async def next_value(subscription, prop="present-value", timeout=2.0):
    """The next notified value of ``prop``, skipping the others (statusFlags...)."""
    async with asyncio.timeout(timeout):
        while True:
            identifier, value = await subscription.get_value()
            if str(identifier) == prop:
                return value


async def active_subscriptions(client):
    return await client.read_property(SERVICE_IP, "device,8888", "activeCovSubscriptions")


@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "unconfirmed"])
async def test_a_subscriber_gets_the_initial_value_and_every_change(ahu, service, client, confirmed):
    async with subscribe(client, "analog-output,1", 7, confirmed=confirmed) as subscription:
        assert await next_value(subscription) == 72.0
        # a change made inside the app (web, API, business logic) notifies too
        await service.write_virtual_object("Virtual_1001_Temperature_Setpoint", 65.0, priority=10)
        assert await next_value(subscription) == 65.0
        assert len(await active_subscriptions(client)) == 1


async def test_an_external_write_notifies_another_subscriber(ahu, service, client, client_factory):
    writer = client_factory(3)
    await asyncio.sleep(0.05)
    async with subscribe(client, "binary-output,1", 8, lifetime=60) as subscription:
        assert str(await next_value(subscription)) == "inactive"
        await writer.write_property(SERVICE_IP, "binary-output,1", "presentValue", "active", priority=8)
        assert str(await next_value(subscription)) == "active"


async def test_multistate_objects_can_be_subscribed(service, client):
    await sync_to_async(virtual_store.create_virtual_device)(template="vav_box", device_id=4001, name="VAV")
    await sync_to_async(virtual_store.create_virtual_device)(template="lighting", device_id=4002, name="L")
    await service.sync_virtual_objects_from_db()
    async with subscribe(client, "multi-state-value,1", 9, lifetime=60) as mode:
        assert await next_value(mode) == 3
        await client.write_property(SERVICE_IP, "multi-state-value,1", "presentValue", 1, priority=8)
        assert await next_value(mode) == 1
    async with subscribe(client, "multi-state-input,1", 10, lifetime=60) as damper:
        assert await next_value(damper) == 1
        assert list(await next_value(damper, "status-flags")) == [0, 0, 0, 0]
        await service.write_virtual_object("Virtual_4001_Damper_State", True, property_name="outOfService")
        assert list(await next_value(damper, "status-flags")) == [0, 0, 0, 1]
        await service.write_virtual_object("Virtual_4001_Damper_State", 3)
        assert await next_value(damper) == 3


async def test_cancelling_a_subscription_removes_it(ahu, service, client):
    async with subscribe(client, "analog-input,1", 11, lifetime=60) as subscription:
        await next_value(subscription)
        assert len(await active_subscriptions(client)) == 1
    await asyncio.sleep(0.1)
    assert len(await active_subscriptions(client)) == 0


async def test_a_subscription_ends_when_its_lifetime_runs_out(ahu, service, client):
    request = SubscribeCOVRequest(
        subscriberProcessIdentifier=12,
        monitoredObjectIdentifier=ObjectIdentifier("analog-input,1"),
        issueConfirmedNotifications=False,
        lifetime=1,
        destination=SERVICE_ADDRESS,
    )
    await client.request(request)
    subscriptions = await active_subscriptions(client)
    assert len(subscriptions) == 1 and subscriptions[0].timeRemaining <= 1
    await asyncio.sleep(1.3)
    assert len(await active_subscriptions(client)) == 0


async def test_taking_an_object_out_of_service_notifies_its_status_flags(ahu, service, client):
    async with subscribe(client, "analog-input,1", 13) as subscription:
        assert list(await next_value(subscription, "status-flags")) == [0, 0, 0, 0]
        await service.write_virtual_object(
            "Virtual_1001_Zone_Temperature", True, property_name="outOfService"
        )
        assert list(await next_value(subscription, "status-flags")) == [0, 0, 0, 1]

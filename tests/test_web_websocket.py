"""The live-update websocket through the whole ASGI application: origin check, session sign-in, messages."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, Client
from django.urls import reverse

from discovery.models import VirtualBACnetObject
from django_bms.asgi import application
from tests.conftest import SERVICE_IP, db

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/virtual-devices/"
ORIGIN = (b"origin", b"http://localhost")
SETPOINT = "Virtual_1001_Temperature_Setpoint"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def engineer(django_user_model):
    return django_user_model.objects.create_user("engineer", password="pw")


@pytest.fixture
def browser(engineer) -> Client:
    browser = Client()
    browser.force_login(engineer)
    return browser


def session_cookie(browser: Client) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())


async def open_socket(*headers: tuple[bytes, bytes]) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(application, PATH, headers=list(headers))
    connected, code = await communicator.connect(timeout=2)
    return communicator, connected, code


async def test_a_websocket_without_a_session_is_refused():
    communicator, connected, code = await open_socket(ORIGIN)
    assert not connected and code == 4401
    await communicator.disconnect()


async def test_a_websocket_with_an_unknown_session_is_refused():
    communicator, connected, code = await open_socket(ORIGIN, (b"cookie", b"sessionid=not-a-real-session"))
    assert not connected and code == 4401
    await communicator.disconnect()


async def test_a_websocket_from_a_foreign_origin_is_refused_even_when_signed_in(browser):
    communicator, connected, _ = await open_socket(
        (b"origin", b"http://evil.example"), session_cookie(browser)
    )
    assert not connected
    await communicator.disconnect()


async def test_a_websocket_of_a_signed_out_user_is_refused(browser):
    cookie = session_cookie(browser)
    communicator, connected, _ = await open_socket(ORIGIN, cookie)
    assert connected
    await communicator.disconnect()
    await db(browser.logout)()
    communicator, connected, code = await open_socket(ORIGIN, cookie)
    assert not connected and code == 4401
    await communicator.disconnect()


async def test_a_signed_in_websocket_receives_external_writes(ahu, service, client, browser):
    communicator, connected, _ = await open_socket(ORIGIN, session_cookie(browser))
    assert connected
    try:
        await client.write_property(SERVICE_IP, "analog-output,1", "presentValue", 75.0, priority=8)
        message = await communicator.receive_json_from(timeout=2)
    finally:
        await communicator.disconnect()
    assert message["type"] == "external_write_notification"
    assert (message["object_name"], message["device_id"]) == (SETPOINT, 1001)
    assert message["value"] == 75.0 and message["present_value"] == 75.0
    assert message["priority"] == 8 and message["priority_array"][7] == 75.0
    assert message["present_value_text"] == "75" and message["priority_array_text"][7] == "75"
    assert message["external"] is True and message["source"] == "external_bacnet_write"
    assert message["source_address"] == "10.77.1.2"


async def test_a_write_from_the_page_reaches_the_websocket(ahu, service, browser, django_user_model):
    from django.contrib.auth.models import Group, Permission

    def make_operator():
        user = django_user_model.objects.create_user("operator", password="pw")
        group, _ = Group.objects.get_or_create(name="operators")
        group.permissions.add(Permission.objects.get(codename="operate_bacnet"))
        user.groups.add(group)
        return user

    operator = AsyncClient()
    await operator.aforce_login(await db(make_operator)())
    setpoint = await db(VirtualBACnetObject.objects.get)(object_name=SETPOINT)
    communicator, connected, _ = await open_socket(ORIGIN, session_cookie(browser))
    assert connected
    try:
        response = await operator.post(
            reverse("write_virtual_object", args=[1001, setpoint.pk]), {"value": "68", "priority": "9"}
        )
        assert response.status_code == 302
        message = await communicator.receive_json_from(timeout=2)
    finally:
        await communicator.disconnect()
    assert message["type"] == "external_write_notification" and message["object_name"] == SETPOINT
    assert message["external"] is False and message["source"] == "web" and message["user"] == "operator"
    assert message["present_value"] == 68.0 and message["priority"] == 9


async def test_a_signed_in_websocket_receives_point_updates(browser):
    communicator, connected, _ = await open_socket(ORIGIN, session_cookie(browser))
    assert connected
    updates = [
        {
            "point_id": 7,
            "device_id": 100101,
            "value": 70.5,
            "value_text": "70.5",
            "status_flags": [0, 0, 0, 0],
        },
        {"point_id": 8, "device_id": 100101, "value": 1, "value_text": "On", "status_flags": [0, 0, 0, 1]},
    ]
    try:
        await get_channel_layer().group_send("bacnet_points", {"type": "point_update", "updates": updates})
        message = await communicator.receive_json_from(timeout=2)
        assert await communicator.receive_nothing(timeout=0.1)
    finally:
        await communicator.disconnect()
    assert message == {"type": "point_update", "updates": updates}

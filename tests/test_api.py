"""The JSON API: reads for any signed-in user, writes through the write path for operators."""

import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import AsyncClient
from django.urls import reverse

from discovery.models import VirtualObjectWrite
from tests.conftest import SERVICE_IP, db

pytestmark = pytest.mark.django_db(transaction=True)

SETPOINT = "Virtual_1001_Temperature_Setpoint"
WRITE = reverse("api_write_virtual_object", args=[SETPOINT])


def make_user(name: str, operator: bool) -> User:
    user = User.objects.create_user(name, password="pw")
    if operator:
        group, _ = Group.objects.get_or_create(name="operators")
        group.permissions.add(Permission.objects.get(codename="operate_bacnet"))
        user.groups.add(group)
    return user


async def signed_in(name: str, operator: bool) -> AsyncClient:
    api = AsyncClient()
    await api.aforce_login(await db(make_user)(name, operator))
    return api


async def post(api: AsyncClient, body) -> tuple[int, dict]:
    response = await api.post(WRITE, json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


async def test_anonymous_calls_get_401(ahu, service):
    api = AsyncClient()
    assert (await api.get(reverse("api_virtual_devices"))).status_code == 401
    assert (await post(api, {"value": 75.0}))[0] == 401


async def test_reads_list_virtual_and_remote_devices(ahu, service):
    api = await signed_in("viewer", operator=False)
    body = (await api.get(reverse("api_virtual_devices"))).json()
    objects = {o["object_name"]: o for o in body["virtual_devices"][0]["objects"]}
    assert objects[SETPOINT]["present_value"] == 72.0 and len(objects[SETPOINT]["priority_array"]) == 16
    assert (await api.get(reverse("api_devices"))).json() == {"devices": []}


async def test_an_operator_writes_through_the_write_path(ahu, service, client):
    api = await signed_in("integrator", operator=True)
    status, event = await post(api, {"value": 74.5, "priority": 9})
    assert status == 200 and event["present_value"] == 74.5 and event["source"] == "api"
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 74.5
    write = await db(VirtualObjectWrite.objects.get)()
    assert (write.source, write.user, write.priority) == ("api", "integrator", 9)
    status, event = await post(api, {"value": None, "priority": 9})
    assert status == 200 and event["present_value"] == 72.0


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"value": 99.0, "priority": 9}, 400, "value-out-of-range"),
        ({"value": "75", "priority": 9}, 400, "invalid-data-type"),
        ({"value": 75.0, "priority": 17}, 400, "value-out-of-range"),
        ({"value": 75.0, "property": "objectName"}, 400, "write-access-denied"),
    ],
)
async def test_bad_writes_get_a_4xx_with_the_bacnet_reason_and_change_nothing(
    ahu, service, body, status, code
):
    api = await signed_in("integrator", operator=True)
    got_status, answer = await post(api, body)
    assert (got_status, answer["error_code"]) == (status, code) and answer["error"]
    assert await db(VirtualObjectWrite.objects.count)() == 0


async def test_malformed_bodies_and_unknown_objects(ahu, service):
    api = await signed_in("integrator", operator=True)
    response = await api.post(WRITE, "{not json", content_type="application/json")
    assert response.status_code == 400 and "bad request" in response.json()["error"]
    assert (await post(api, {"priority": 8}))[0] == 400
    assert (await post(api, {"value": 70.0, "priority": True}))[0] == 400
    response = await api.post(
        reverse("api_write_virtual_object", args=["Virtual_9_Nothing"]),
        json.dumps({"value": 1.0}),
        content_type="application/json",
    )
    assert response.status_code == 404 and response.json()["error_code"] == "unknown-object"


async def test_viewers_may_not_write(ahu, service):
    api = await signed_in("viewer", operator=False)
    assert (await post(api, {"value": 75.0}))[0] == 403
    assert await db(VirtualObjectWrite.objects.count)() == 0

"""The web interface: sign-in, the operate permission, what each page shows and what it does.

Pages are fetched with Django's test clients. Tests that need the BACnet service use the
``service`` fixture (or ``scanning_service`` below, with simulated remote devices) and make
it the process's service, which is what the views look up; values are then checked over
BACnet with independent client stacks and in the database.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from bacpypes3.apdu import ErrorRejectAbortNack
from django.contrib.auth.models import Group, Permission
from django.test import AsyncClient, Client
from django.urls import get_resolver, reverse
from django.utils import timezone

from discovery.models import (
    BACnetDevice,
    BACnetPoint,
    BACnetReading,
    NetworkScan,
    VirtualBACnetDevice,
    VirtualBACnetObject,
    VirtualObjectWrite,
)
from discovery.services import unified_bacnet_service as service_module
from discovery.services import virtual_store
from discovery.services.bacnet.point_state import apply_write
from discovery.simulator.devices import SimulatedDeviceConfig, Simulation
from discovery.views.common import NOT_RUNNING_MESSAGE
from tests import netns
from tests.conftest import SERVICE_IP, db

SETPOINT = "Virtual_1001_Temperature_Setpoint"  # analog-output,1 of the ahu
ZONE_TEMPERATURE = "Virtual_1001_Zone_Temperature"  # analog-input,1
FAN = "Virtual_1001_Fan_Control"  # binary-output,1
REMOTE_ID = 4242
SIM_A, SIM_B = 100101, 100102
SIM_OBJECTS = 6  # the templates' first six objects: analog-output,1 is among them


# --- users, clients and the service the views see ------------------------------------------


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def viewer(django_user_model):
    return django_user_model.objects.create_user("viewer", password="pw")


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("operator", password="pw")
    # migration 0004 makes the group; transactional tests flush it, so make sure it is there
    group, _ = Group.objects.get_or_create(name="operators")
    group.permissions.add(
        Permission.objects.get(codename="operate_bacnet", content_type__app_label="discovery")
    )
    user.groups.add(group)
    return user


def signed_in(user, client_class=Client, **options):
    browser = client_class(**options)
    browser.force_login(user)
    return browser


@pytest.fixture
def viewer_async(viewer) -> AsyncClient:
    return signed_in(viewer, AsyncClient)


@pytest.fixture
def operator_async(operator) -> AsyncClient:
    return signed_in(operator, AsyncClient)


@pytest.fixture
def live(ahu, service):
    """The running service, serving the ahu; conftest installs it as the process's service."""
    assert service_module.get_unified_bacnet_service() is service
    return service


@pytest.fixture
def stopped(monkeypatch):
    """The process's service, never started."""
    monkeypatch.setattr(service_module, "_service", None)
    service = service_module.get_unified_bacnet_service()
    assert not service.is_running
    return service


def make_ahu() -> VirtualBACnetDevice:
    return virtual_store.create_virtual_device(template="hvac_controller", device_id=1001, name="AHU-1")


def obj(object_name: str) -> VirtualBACnetObject:
    return VirtualBACnetObject.objects.get(object_name=object_name)


def write_url(object_name: str) -> str:
    row = obj(object_name)
    return reverse("write_virtual_object", args=[row.device.device_id, row.pk])


def record_write(object_name: str, value, priority=None, **record) -> VirtualObjectWrite:
    """A write stored the way the write path stores it."""
    row = obj(object_name)
    state = apply_write(virtual_store.state_from_row(row), "presentValue", value, priority)
    return virtual_store.persist_write(
        row.pk,
        state,
        virtual_store.WriteRecord(property_name="presentValue", value=value, priority=priority, **record),
    )


def make_remote_device() -> BACnetDevice:
    device = BACnetDevice.objects.create(
        device_id=REMOTE_ID,
        address="10.77.1.30",
        object_name="Boiler-Plant",
        vendor_name="Acme Controls",
        model_name="BX-9",
        online=True,
    )
    BACnetPoint.objects.create(
        device=device,
        object_type="analog-output",
        instance=1,
        object_name="Supply_Setpoint",
        units="degrees-fahrenheit",
        present_value=68.5,
        present_value_text="68.5",
        status_flags=[0, 0, 0, 0],
        commandable=True,
    )
    BACnetPoint.objects.create(
        device=device,
        object_type="binary-input",
        instance=3,
        object_name="Pump_Status",
        present_value=1,
        present_value_text="Running",
        status_flags=[0, 1, 0, 1],
        active_text="Running",
        inactive_text="Stopped",
    )
    return device


def remote_point(name: str) -> BACnetPoint:
    return BACnetPoint.objects.get(object_name=name)


def snapshot() -> dict:
    """Everything a refused request must leave as it was."""
    return {
        "virtual_devices": list(VirtualBACnetDevice.objects.values_list("device_id", "name")),
        "virtual_objects": list(
            VirtualBACnetObject.objects.order_by("pk").values_list(
                "object_name", "present_value", "out_of_service", "priority_array", "relinquish_default"
            )
        ),
        "writes": VirtualObjectWrite.objects.count(),
        "revision": virtual_store.get_database_revision(),
        "remote_devices": list(BACnetDevice.objects.values_list("device_id", "online", "last_error")),
        "remote_points": list(
            BACnetPoint.objects.order_by("pk").values_list("pk", "present_value", "last_update")
        ),
        "readings": BACnetReading.objects.count(),
        "scans": NetworkScan.objects.count(),
    }


def page(response) -> str:
    return response.content.decode()


def object_card(html: str, object_name: str) -> str:
    """The card of one object on a virtual device's page."""
    start = html.index(f'data-object-name="{object_name}"')
    return html[start : html.index("</section>", start)]


def slots(card: str) -> dict[int, tuple[str, str]]:
    """Priority -> (cell text, class) of the priority-array table in an object's card."""
    cells = re.findall(r'<td data-slot="(\d+)" class="([^"]*)">([^<]*)</td>', card)
    return {int(priority): (text, css) for priority, css, text in cells}


def login_redirect(url: str) -> str:
    return f"{reverse('login')}?next={url}"


# --- 1. every page needs a sign-in ------------------------------------------------------------

ALL_URLS = {
    "dashboard": [],
    "service_status": [],
    "start_discovery": [],
    "device_detail": [REMOTE_ID],
    "discover_points": [REMOTE_ID],
    "write_point": [REMOTE_ID, 1],
    "point_history": [REMOTE_ID, 1],
    "virtual_device_list": [],
    "create_virtual_device": [],
    "virtual_device_detail": [1001],
    "delete_virtual_device": [1001],
    "write_virtual_object": [1001, 1],
}


def test_the_anonymous_checks_cover_every_page_of_the_site():
    names = {pattern.name for pattern in get_resolver().url_patterns if getattr(pattern, "name", None)}
    # the JSON API (api_*) answers anonymous calls with 401, not a redirect: tested on its own
    pages = {name for name in names if not name.startswith("api_")} | {"service_status"}
    assert pages - {"login", "logout"} == set(ALL_URLS)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ALL_URLS))
def test_an_anonymous_get_is_sent_to_the_login_page(name):
    url = reverse(name, args=ALL_URLS[name])
    response = Client().get(url)
    assert response.status_code == 302
    assert response.url == login_redirect(url)


@pytest.mark.django_db
def test_the_login_page_itself_is_open():
    assert Client().get(reverse("login")).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("start_discovery", {"low_limit": "1", "high_limit": "10"}),
        ("discover_points", {}),
        ("write_point", {"value": "70", "priority": "8"}),
        ("create_virtual_device", {"template": "lighting", "name": "Lights", "device_id": "3001"}),
        ("delete_virtual_device", {}),
        ("write_virtual_object", {"value": "75", "priority": "8"}),
        ("write_virtual_object", {"out_of_service": "true"}),
    ],
)
def test_an_anonymous_post_is_sent_to_the_login_page_and_changes_nothing(name, data, stopped):
    make_ahu()
    make_remote_device()
    args = {
        "discover_points": [REMOTE_ID],
        "write_point": [REMOTE_ID, remote_point("Supply_Setpoint").pk],
        "delete_virtual_device": [1001],
        "write_virtual_object": [1001, obj(SETPOINT).pk],
    }.get(name, [])
    url = reverse(name, args=args)
    before = snapshot()
    response = Client().post(url, data)
    assert response.status_code == 302
    assert response.url == login_redirect(url)
    assert snapshot() == before


# --- 2. what a signed-in viewer sees ------------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_shows_the_service_state_the_counts_and_the_latest_writes(viewer, stopped):
    make_ahu()
    make_remote_device()
    BACnetDevice.objects.create(device_id=4243, address="10.77.1.31", online=False)
    record_write(SETPOINT, 70.0, 8, source="web", user="alice")
    record_write(FAN, 1, 10, source="external_bacnet_write", source_address="10.77.1.9")
    response = signed_in(viewer).get(reverse("dashboard"))
    assert response.status_code == 200
    html = page(response)
    assert '<p class="state state-stopped" id="service-state">Stopped</p>' in html
    assert "<dt>Devices online</dt><dd>1</dd>" in html
    assert "<dt>Devices offline</dt><dd>1</dd>" in html
    assert "<dt>Points</dt><dd>2</dd>" in html
    assert "<dt>Devices</dt><dd>1</dd>" in html
    assert "<dt>Objects</dt><dd>3</dd>" in html
    writes = html[html.index('id="latest-writes"') :]
    rows = re.findall(r"<tr>(.*?)</tr>", writes, re.S)[1:]  # the first is the header
    assert len(rows) == 2
    newest, older = rows
    assert FAN in newest and "<td>On</td>" in newest and "<td>10</td>" in newest
    assert "10.77.1.9" in newest and "External BACnet write" in newest
    assert SETPOINT in older and "<td>70</td>" in older and "<td>8</td>" in older
    assert "alice" in older and "Web page" in older
    assert reverse("virtual_device_detail", args=[1001]) in older


@pytest.mark.django_db
def test_the_dashboard_says_when_there_are_no_writes(viewer, stopped):
    html = page(signed_in(viewer).get(reverse("dashboard")))
    assert "No writes yet." in html


@pytest.mark.django_db
def test_the_dashboard_says_when_this_process_is_web_only(viewer, stopped, settings):
    settings.USE_UNIFIED_BACNET_SERVICE = False
    html = page(signed_in(viewer).get(reverse("dashboard")))
    assert "USE_UNIFIED_BACNET_SERVICE is false: web only" in html


@pytest.mark.django_db
def test_the_status_api_reports_the_stopped_service(viewer, stopped):
    response = signed_in(viewer).get(reverse("service_status"))
    assert response.status_code == 200
    assert response.json()["state"] == "stopped"


@pytest.mark.django_db
def test_a_remote_devices_page_shows_its_points(viewer):
    make_remote_device()
    response = signed_in(viewer).get(reverse("device_detail", args=[REMOTE_ID]))
    assert response.status_code == 200
    html = page(response)
    assert "Boiler-Plant" in html and "10.77.1.30" in html and "Acme Controls" in html and "BX-9" in html
    assert '<span class="badge ok">online</span>' in html
    setpoint = remote_point("Supply_Setpoint")
    row = html[html.index(f'data-point-id="{setpoint.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Supply_Setpoint" in row and '<span data-field="value">68.5</span>' in row
    assert '<span class="units">°F</span>' in row and "normal" in row
    assert reverse("point_history", args=[REMOTE_ID, setpoint.pk]) in row
    pump = remote_point("Pump_Status")
    row = html[html.index(f'data-point-id="{pump.pk}"') :]
    row = row[: row.index("</tr>")]
    assert '<span data-field="value">Running</span>' in row
    assert "fault" in row and "out of service" in row
    # a viewer gets no controls that change anything
    assert "Read the points again" not in html
    assert 'class="write-form"' not in html


@pytest.mark.django_db
def test_an_unknown_remote_device_is_not_found(viewer):
    assert signed_in(viewer).get(reverse("device_detail", args=[777])).status_code == 404


@pytest.mark.django_db
def test_point_history_returns_the_readings_of_the_period(viewer):
    make_remote_device()
    point = remote_point("Supply_Setpoint")
    now = timezone.now()
    for age, value in [
        (timedelta(minutes=10), 70.0),
        (timedelta(minutes=40), 69.0),
        (timedelta(hours=5), 68.0),
        (timedelta(days=3), 67.0),
        (timedelta(days=10), 66.0),
    ]:
        BACnetReading.objects.create(point=point, value=value, value_text=f"{value:g}", timestamp=now - age)
    BACnetReading.objects.create(point=point, value=None, timestamp=now - timedelta(minutes=20))  # no value
    browser = signed_in(viewer)
    url = reverse("point_history", args=[REMOTE_ID, point.pk])

    def values(period: str | None) -> list[float]:
        response = browser.get(url, {"period": period} if period else {})
        assert response.status_code == 200
        data = response.json()
        assert data["point"] == "Supply_Setpoint" and data["units"] == "degrees-fahrenheit"
        assert data["period"] == (period or "24h")
        times = [reading["t"] for reading in data["readings"]]
        assert times == sorted(times)  # oldest first, for the chart
        return [reading["v"] for reading in data["readings"]]

    assert values("1h") == [69.0, 70.0]
    assert values("24h") == [68.0, 69.0, 70.0]
    assert values(None) == [68.0, 69.0, 70.0]
    assert values("7d") == [67.0, 68.0, 69.0, 70.0]
    response = browser.get(url, {"period": "bad"})
    assert response.status_code == 400
    assert response.json() == {"error": "period must be one of 1h, 24h, 7d"}


@pytest.mark.django_db
def test_point_history_of_a_point_of_another_device_is_not_found(viewer):
    make_remote_device()
    other = BACnetDevice.objects.create(device_id=4243, address="10.77.1.31")
    point = remote_point("Supply_Setpoint")
    assert (
        signed_in(viewer).get(reverse("point_history", args=[other.device_id, point.pk])).status_code == 404
    )


@pytest.mark.django_db
def test_the_virtual_device_list_shows_each_device(viewer, stopped):
    make_ahu()
    virtual_store.create_virtual_device(template="lighting", device_id=1002, name="Lights-2")
    response = signed_in(viewer).get(reverse("virtual_device_list"))
    assert response.status_code == 200
    html = page(response)
    rows = re.findall(r"<tr>(.*?)</tr>", html[html.index('id="virtual-devices"') :], re.S)[1:]
    assert len(rows) == 2
    assert "<td>1001</td>" in rows[0] and "AHU-1" in rows[0] and "hvac_controller" in rows[0]
    assert "<td>3</td>" in rows[0] and reverse("virtual_device_detail", args=[1001]) in rows[0]
    assert "Lights-2" in rows[1] and "lighting" in rows[1]
    assert 'id="create-link"' not in html and reverse("delete_virtual_device", args=[1001]) not in html


@pytest.mark.django_db
def test_a_virtual_devices_page_shows_values_the_priority_array_and_the_writes(viewer, stopped):
    make_ahu()
    record_write(SETPOINT, 70.0, 8, source="web", user="alice")
    record_write(SETPOINT, 66.0, 12, source="external_bacnet_write", source_address="10.77.1.9")
    response = signed_in(viewer).get(reverse("virtual_device_detail", args=[1001]))
    assert response.status_code == 200
    html = page(response)
    assert "AHU-1" in html and "hvac_controller" in html
    assert "The BACnet service is not running in this process" in html
    setpoint = object_card(html, SETPOINT)
    assert "Temperature_Setpoint" in setpoint and "analog-output,1" in setpoint
    assert '<span data-field="present-value">70</span> <span class="units">°F</span>' in setpoint
    assert "range 55–85" in setpoint
    assert '<span data-field="relinquish-default">72</span>' in setpoint
    cells = slots(setpoint)
    assert sorted(cells) == list(range(1, 17))
    assert cells[8] == ("70", "winning") and cells[12] == ("66", "")
    assert all(cells[p] == ("·", "") for p in cells if p not in (8, 12))
    zone = object_card(html, ZONE_TEMPERATURE)
    assert '<span data-field="present-value">71.5</span>' in zone and "data-slot" not in zone
    fan = object_card(html, FAN)
    assert '<span data-field="present-value">Off</span>' in fan
    assert '<strong data-field="out-of-service">no</strong>' in fan
    history = re.findall(r"<tr>(.*?)</tr>", html[html.index('id="write-history"') :], re.S)[1:]
    assert len(history) == 2
    assert "Temperature_Setpoint" in history[0] and "<td>66</td>" in history[0] and "10.77.1.9" in history[0]
    assert "<td>70</td>" in history[1] and "<td>8</td>" in history[1] and "alice" in history[1]
    assert "Web page" in history[1]
    # no controls for a viewer
    assert 'class="write-form"' not in html and "Take out of service" not in html


@pytest.mark.django_db
def test_an_unknown_virtual_device_is_not_found(viewer):
    assert signed_in(viewer).get(reverse("virtual_device_detail", args=[31337])).status_code == 404


@pytest.mark.django_db
def test_the_discovery_page_lists_the_devices_and_the_scans(viewer, stopped):
    make_remote_device()
    BACnetDevice.objects.create(device_id=4243, address="10.77.1.31", object_name="Chiller", online=False)
    NetworkScan.objects.create(low_limit=1, high_limit=5000, devices_found=2, finished_at=timezone.now())
    response = signed_in(viewer).get(reverse("start_discovery"))
    assert response.status_code == 200
    html = page(response)
    assert "Boiler-Plant" in html and "Chiller" in html and "10.77.1.31" in html
    assert reverse("device_detail", args=[REMOTE_ID]) in html
    assert "1–5000" in html
    assert 'id="scan-form"' not in html  # a viewer cannot scan


@pytest.mark.django_db
def test_the_operators_group_made_by_the_migration_has_the_permission():
    group = Group.objects.get(name="operators")
    assert group.permissions.filter(codename="operate_bacnet").exists()


@pytest.mark.django_db
def test_an_operator_sees_the_controls(operator, stopped):
    make_ahu()
    make_remote_device()
    browser = signed_in(operator)
    html = page(browser.get(reverse("virtual_device_detail", args=[1001])))
    assert html.count('class="write-form"') == 3 and "Take out of service" in html
    html = page(browser.get(reverse("virtual_device_list")))
    assert 'id="create-link"' in html and reverse("delete_virtual_device", args=[1001]) in html
    html = page(browser.get(reverse("device_detail", args=[REMOTE_ID])))
    assert "Read the points again" in html
    assert html.count('class="write-form"') == 1  # only the commandable point


# --- 3. a viewer may change nothing -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_viewer_is_refused_every_change_and_nothing_changes(live, viewer_async, client):
    await db(make_remote_device)()
    setpoint = await db(obj)(SETPOINT)
    remote = await db(remote_point)("Supply_Setpoint")
    write = reverse("write_virtual_object", args=[1001, setpoint.pk])
    before = await db(snapshot)()
    refused = [
        ("post", reverse("start_discovery"), {"low_limit": "1", "high_limit": "10"}),
        ("post", reverse("start_discovery"), {}),
        ("post", reverse("discover_points", args=[REMOTE_ID]), {}),
        ("post", reverse("write_point", args=[REMOTE_ID, remote.pk]), {"value": "70", "priority": "8"}),
        ("get", reverse("create_virtual_device"), {}),
        (
            "post",
            reverse("create_virtual_device"),
            {"template": "lighting", "name": "L", "device_id": "3001"},
        ),
        ("get", reverse("delete_virtual_device", args=[1001]), {}),
        ("post", reverse("delete_virtual_device", args=[1001]), {}),
        ("post", write, {"value": "75", "priority": "8"}),
        ("post", write, {"relinquish": "on", "priority": "16"}),
        ("post", write, {"out_of_service": "true"}),
    ]
    for method, url, data in refused:
        response = await getattr(viewer_async, method)(url, data)
        assert response.status_code == 403, (method, url, data)
    response = await viewer_async.post(
        write, {"value": "75", "priority": "8"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 403
    assert await db(snapshot)() == before
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 72.0
    assert len(live.write_path.points) == 3


# --- 4. an operator, with the service running ---------------------------------------------------


@pytest.mark.django_db
def test_a_post_without_a_csrf_token_is_refused(operator, stopped):
    make_ahu()
    browser = signed_in(operator, enforce_csrf_checks=True)
    url = write_url(SETPOINT)
    before = snapshot()
    response = browser.post(url, {"value": "75", "priority": "8"})
    assert response.status_code == 403
    assert b"CSRF" in response.content
    response = browser.post(reverse("delete_virtual_device", args=[1001]))
    assert response.status_code == 403
    assert snapshot() == before
    # with the page's token the same request gets past the check (and meets the stopped service)
    browser.get(reverse("virtual_device_detail", args=[1001]))
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        url,
        {"value": "75", "priority": "8", "csrfmiddlewaretoken": token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 503
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
async def test_the_dashboard_shows_the_running_service(live, viewer_async):
    await live.write_virtual_object(SETPOINT, 74.0, priority=9, source="internal")
    html = page(await viewer_async.get(reverse("dashboard")))
    assert '<p class="state state-running" id="service-state">Running</p>' in html
    assert "10.77.1.1:47808" in html and "8888 · Django_BMS" in html
    assert SETPOINT in html and "<td>74</td>" in html and "Internal (business logic)" in html
    status = (await viewer_async.get(reverse("service_status"))).json()
    assert status["state"] == "running" and status["virtual_objects"] == 3


@pytest.mark.django_db(transaction=True)
async def test_creating_a_virtual_device_serves_its_objects_at_once(live, operator_async, client):
    response = await operator_async.post(
        reverse("create_virtual_device"),
        {"template": "temperature_sensor", "name": "Lab sensor", "device_id": "2001", "description": "lab"},
    )
    assert response.status_code == 302
    assert response.url == reverse("virtual_device_detail", args=[2001])
    device = await db(VirtualBACnetDevice.objects.get)(device_id=2001)
    assert (device.name, device.template, device.description) == ("Lab sensor", "temperature_sensor", "lab")
    rows = await db(lambda: list(device.bacnet_objects.order_by("pk")))()
    assert [row.object_name for row in rows] == ["Virtual_2001_Temperature", "Virtual_2001_Humidity"]
    # served without waiting for the database watcher
    for row in rows:
        assert (row.object_type, row.instance) in live.write_path.points
    for row in rows:
        name = await client.read_property(SERVICE_IP, f"{row.object_type},{row.instance}", "objectName")
        assert name == row.object_name
    assert await client.read_property(SERVICE_IP, f"analog-input,{rows[0].instance}", "presentValue") == 72.0
    html = page(await operator_async.get(response.url))
    assert "Created Lab sensor (2001)." in html and "Virtual_2001_Humidity" in html


@pytest.mark.django_db(transaction=True)
async def test_the_create_form_lists_the_templates(live, operator_async):
    response = await operator_async.get(reverse("create_virtual_device"))
    assert response.status_code == 200
    html = page(response)
    for template in ("temperature_sensor", "hvac_controller", "lighting", "vav_box"):
        assert f"<strong>{template}</strong>" in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"device_id": "1001"}, "A virtual device with id 1001 already exists."),
        ({"device_id": "8888"}, "is this application&#x27;s own BACnet device; choose another."),
        ({"device_id": "4194303"}, "Ensure this value is less than or equal to 4194302."),
        ({"device_id": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"device_id": "twelve"}, "Enter a whole number."),
        ({"name": ""}, "Name: This field is required."),
        ({"name": "x" * 65}, "Ensure this value has at most 64 characters"),
        ({"template": "nonsense"}, "Select a valid choice. nonsense is not one of the available choices."),
    ],
)
async def test_a_bad_virtual_device_is_refused_with_a_message(live, operator_async, data, message):
    before = await db(snapshot)()
    form = {"template": "lighting", "name": "Lights", "device_id": "3001", **data}
    response = await operator_async.post(reverse("create_virtual_device"), form)
    assert response.status_code == 400
    assert message in page(response)
    assert await db(snapshot)() == before
    assert len(live.write_path.points) == 3


@pytest.mark.django_db(transaction=True)
async def test_writing_and_relinquishing_a_virtual_object(live, operator_async, client):
    url = await db(write_url)(SETPOINT)
    response = await operator_async.post(url, {"value": "75", "priority": "8"})
    assert response.status_code == 302 and response.url == reverse("virtual_device_detail", args=[1001])
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 75.0
    write = await db(lambda: VirtualObjectWrite.objects.select_related("virtual_object").first())()
    assert write.virtual_object.object_name == SETPOINT
    assert (write.source, write.user, write.value, write.priority) == ("web", "operator", 75.0, 8)
    row = await db(obj)(SETPOINT)
    assert row.present_value == 75.0 and row.priority_array[7] == 75.0
    html = page(await operator_async.get(response.url))
    assert f"{SETPOINT}: Present value 75." in html
    assert slots(object_card(html, SETPOINT))[8] == ("75", "winning")

    response = await operator_async.post(url, {"relinquish": "on", "priority": "8"})
    assert response.status_code == 302
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 72.0
    row = await db(obj)(SETPOINT)
    assert row.present_value == 72.0 and row.priority_array == [None] * 16
    write = await db(VirtualObjectWrite.objects.first)()
    assert (write.value, write.priority, write.value_text, write.user) == (
        None,
        8,
        "relinquished",
        "operator",
    )


@pytest.mark.django_db(transaction=True)
async def test_writing_a_multi_state_object_of_a_device_made_on_the_page(live, operator_async, client):
    response = await operator_async.post(
        reverse("create_virtual_device"), {"template": "lighting", "name": "Lights", "device_id": "3001"}
    )
    assert response.status_code == 302
    mode = await db(obj)("Virtual_3001_Lighting_Mode")
    url = reverse("write_virtual_object", args=[3001, mode.pk])
    as_json = {"Accept": "application/json"}
    response = await operator_async.post(url, {"value": "Scene", "priority": "8"}, headers=as_json)
    assert response.status_code == 200 and response.json()["message"] == "Present value Scene."
    assert await client.read_property(SERVICE_IP, f"multi-state-value,{mode.instance}", "presentValue") == 4
    response = await operator_async.post(url, {"value": "2", "priority": "7"}, headers=as_json)
    assert response.json()["message"] == "Present value On."
    for value, words in [("Party", "'Party' is not a state"), ("7", "7 is not a state between 1 and 4")]:
        response = await operator_async.post(url, {"value": value, "priority": "6"}, headers=as_json)
        assert response.status_code == 400 and words in response.json()["message"]
    assert await client.read_property(SERVICE_IP, f"multi-state-value,{mode.instance}", "presentValue") == 2


@pytest.mark.django_db(transaction=True)
async def test_writing_a_binary_object_by_its_state_text(live, operator_async, client):
    url = await db(write_url)(FAN)
    response = await operator_async.post(
        url, {"value": "On", "priority": "10"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": "Present value On."}
    assert str(await client.read_property(SERVICE_IP, "binary-output,1", "presentValue")) == "active"


@pytest.mark.django_db(transaction=True)
async def test_a_json_write_answers_in_json(live, operator_async, client):
    url = await db(write_url)(SETPOINT)
    response = await operator_async.post(
        url, {"value": "75", "priority": "8"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"ok": True, "message": "Present value 75."}
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 75.0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("object_name", "data", "words"),
    [
        (
            SETPOINT,
            {"value": "abc", "priority": "8"},
            "Invalid data type (property error): 'abc' is not a number",
        ),
        (SETPOINT, {"value": "999", "priority": "8"}, "Value out of range (property error): 999.0 is above"),
        (
            SETPOINT,
            {"value": "nan", "priority": "8"},
            "Value out of range (property error): nan is not a finite number",
        ),
        (SETPOINT, {"value": "75", "priority": "17"}, "Ensure this value is less than or equal to 16."),
        (SETPOINT, {"value": "75", "priority": "0"}, "Ensure this value is greater than or equal to 1."),
        (SETPOINT, {"value": "", "priority": "8"}, "Enter a value, or tick relinquish."),
        (
            FAN,
            {"value": "maybe", "priority": "8"},
            "Invalid data type (property error): 'maybe' is not active",
        ),
        (ZONE_TEMPERATURE, {"value": "60", "priority": "16"}, "Write access denied (property error)"),
    ],
)
async def test_a_bad_write_is_refused_with_a_message_and_changes_nothing(
    live, operator_async, client, object_name, data, words
):
    url = await db(write_url)(object_name)
    before = await db(snapshot)()
    response = await operator_async.post(url, data, headers={"Accept": "application/json"})
    assert response.status_code == 400
    result = response.json()
    assert result["ok"] is False and words in result["message"]
    assert await db(snapshot)() == before
    assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 72.0


@pytest.mark.django_db(transaction=True)
async def test_a_bad_write_from_the_form_comes_back_as_a_message(live, operator_async):
    url = await db(write_url)(SETPOINT)
    before = await db(snapshot)()
    response = await operator_async.post(url, {"value": "abc", "priority": "8"}, follow=True)
    assert response.redirect_chain == [(reverse("virtual_device_detail", args=[1001]), 302)]
    html = page(response)
    assert "Invalid data type (property error): &#x27;abc&#x27; is not a number" in html
    assert '<li class="message error">' in html
    assert await db(snapshot)() == before


@pytest.mark.django_db(transaction=True)
async def test_taking_an_object_out_of_service_and_back(live, operator_async, client):
    url = await db(write_url)(ZONE_TEMPERATURE)
    response = await operator_async.post(url, {"out_of_service": "true"})
    assert response.status_code == 302
    assert await client.read_property(SERVICE_IP, "analog-input,1", "outOfService") == 1
    row = await db(obj)(ZONE_TEMPERATURE)
    assert row.out_of_service is True
    write = await db(VirtualObjectWrite.objects.first)()
    assert (write.property_name, write.source, write.user) == ("outOfService", "web", "operator")
    html = page(await operator_async.get(response.url))
    card = object_card(html, ZONE_TEMPERATURE)
    assert '<strong data-field="out-of-service">yes</strong>' in card and "Put in service" in card
    # out of service, the input takes a value from the page
    response = await operator_async.post(
        url, {"value": "60", "priority": "16"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert await client.read_property(SERVICE_IP, "analog-input,1", "presentValue") == 60.0
    response = await operator_async.post(url, {"out_of_service": "false"})
    assert response.status_code == 302
    assert await client.read_property(SERVICE_IP, "analog-input,1", "outOfService") == 0
    assert (await db(obj)(ZONE_TEMPERATURE)).out_of_service is False


@pytest.mark.django_db(transaction=True)
async def test_writing_an_object_of_another_device_is_not_found(live, operator_async):
    row = await db(obj)(SETPOINT)
    response = await operator_async.post(
        reverse("write_virtual_object", args=[1002, row.pk]), {"value": "75"}
    )
    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
async def test_deleting_a_virtual_device_takes_its_objects_off_the_network(live, operator_async, client):
    url = reverse("delete_virtual_device", args=[1001])
    response = await operator_async.get(url)
    assert response.status_code == 200
    html = page(response)
    assert "Delete AHU-1 (1001)?" in html and "Its 3 object(s)" in html and 'id="confirm-delete"' in html
    assert await db(VirtualBACnetDevice.objects.filter(device_id=1001).exists)()
    assert await client.read_property(SERVICE_IP, "analog-output,1", "objectName") == SETPOINT

    response = await operator_async.post(url)
    assert response.status_code == 302 and response.url == reverse("virtual_device_list")
    assert not await db(VirtualBACnetDevice.objects.filter(device_id=1001).exists)()
    assert await db(VirtualBACnetObject.objects.count)() == 0
    assert not live.write_path.points  # dropped by the view itself, not at the next database check
    with pytest.raises(ErrorRejectAbortNack) as refused:
        await client.read_property(SERVICE_IP, "analog-output,1", "objectName")
    assert "unknown-object" in str(refused.value)
    html = page(await operator_async.get(response.url))
    assert "Deleted AHU-1 (1001)" in html and "No virtual devices yet." in html
    assert (await operator_async.get(url)).status_code == 404


# --- 4b. an operator and simulated remote devices --------------------------------------------


def simulated(device_id: int, host: int) -> SimulatedDeviceConfig:
    return SimulatedDeviceConfig(
        device_id=device_id,
        name=f"SIM-{device_id}",
        address=netns.address(host),
        object_count=SIM_OBJECTS,
        drift_interval=0,
    )


@pytest.fixture
def fast_requests(settings):
    settings.BACNET_APDU_TIMEOUT_MS = 400
    settings.BACNET_APDU_RETRIES = 0
    settings.BACNET_DISCOVERY_TIMEOUT = 0.6


@pytest.fixture
async def simulation(private_network):
    simulation = await Simulation.start([simulated(SIM_A, 21), simulated(SIM_B, 22)])
    try:
        yield simulation
    finally:
        await simulation.stop()


@pytest.fixture
async def scanning_service(fast_requests, private_network, transactional_db, simulation, monkeypatch):
    """The service (no virtual devices) next to two simulated devices, as the process's service."""
    bacnet_service = service_module.UnifiedBACnetService(address=netns.address(1), watch_interval=0.2)
    await bacnet_service.start_service()
    monkeypatch.setattr(service_module, "_service", bacnet_service)
    try:
        yield bacnet_service
    finally:
        await bacnet_service.stop_service()


def simulated_object(simulation, device_id: int, object_id: str):
    kind, instance = object_id.split(",")
    for candidate in simulation.device(device_id).app.iter_objects():
        if str(candidate.objectIdentifier[0]) == kind and candidate.objectIdentifier[1] == int(instance):
            return candidate
    raise KeyError(object_id)


@pytest.mark.django_db(transaction=True)
async def test_a_scan_from_the_page_stores_the_simulated_devices(scanning_service, operator_async):
    response = await operator_async.post(reverse("start_discovery"), {})
    assert response.status_code == 302 and response.url == reverse("start_discovery")
    devices = await db(lambda: {d.device_id: d for d in BACnetDevice.objects.all()})()
    assert sorted(devices) == [SIM_A, SIM_B]
    assert devices[SIM_A].object_name == f"SIM-{SIM_A}" and devices[SIM_A].address == netns.ip(21)
    scan = await db(NetworkScan.objects.get)()
    assert scan.devices_found == 2 and scan.finished_at and not scan.error
    # a ranged scan
    response = await operator_async.post(
        reverse("start_discovery"), {"low_limit": SIM_B, "high_limit": SIM_B}
    )
    assert response.status_code == 302
    scan = await db(NetworkScan.objects.first)()
    assert (scan.low_limit, scan.high_limit, scan.devices_found) == (SIM_B, SIM_B, 1)
    # a device page works for what was found
    html = page(await operator_async.get(reverse("device_detail", args=[SIM_A])))
    assert f"SIM-{SIM_A}" in html and netns.ip(21) in html


@pytest.mark.django_db(transaction=True)
async def test_a_scan_from_the_page_can_read_every_device_s_points(scanning_service, operator_async):
    response = await operator_async.post(reverse("start_discovery"), {"read_points": "on"}, follow=True)
    assert response.status_code == 200
    assert f"Scan finished: 2 device(s) found, {2 * SIM_OBJECTS} point(s) stored from 2 device(s)." in page(
        response
    )
    stored = await db(lambda: sorted(BACnetPoint.objects.values_list("device__device_id", flat=True)))()
    assert stored == [SIM_A] * SIM_OBJECTS + [SIM_B] * SIM_OBJECTS


@pytest.mark.django_db(transaction=True)
async def test_a_scan_from_the_page_shows_the_devices_found(scanning_service, operator_async):
    response = await operator_async.post(reverse("start_discovery"), {}, follow=True)
    assert response.status_code == 200
    html = page(response)
    assert "Scan finished: 2 device(s) found." in html
    assert f"SIM-{SIM_A}" in html and f"SIM-{SIM_B}" in html and netns.ip(22) in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"low_limit": "10"}, "Give both ends of the range, or neither."),
        ({"high_limit": "10"}, "Give both ends of the range, or neither."),
        ({"low_limit": "20", "high_limit": "10"}, "The range starts after it ends."),
        ({"low_limit": "-1", "high_limit": "10"}, "Ensure this value is greater than or equal to 0."),
    ],
)
async def test_a_bad_scan_range_is_refused_with_a_message(live, operator_async, data, message):
    response = await operator_async.post(reverse("start_discovery"), data)
    assert response.status_code == 400
    assert message in page(response)
    assert await db(NetworkScan.objects.count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_reading_points_writing_and_relinquishing_a_simulated_device(
    scanning_service, simulation, operator_async
):
    await scanning_service.discover_devices()
    response = await operator_async.post(reverse("discover_points", args=[SIM_A]))
    assert response.status_code == 302 and response.url == reverse("device_detail", args=[SIM_A])
    points = await db(lambda: list(BACnetPoint.objects.filter(device__device_id=SIM_A)))()
    assert len(points) == SIM_OBJECTS
    html = page(await operator_async.get(response.url))
    assert f"Read {SIM_OBJECTS} point(s)." in html
    for point in points:
        assert point.object_name and point.object_name in html
        assert f'data-point-id="{point.pk}"' in html
    setpoint = next(p for p in points if (p.object_type, p.instance) == ("analog-output", 1))
    assert setpoint.commandable
    url = reverse("write_point", args=[SIM_A, setpoint.pk])
    simulated_setpoint = simulated_object(simulation, SIM_A, "analog-output,1")

    response = await operator_async.post(url, {"value": "70", "priority": "8"})
    assert response.status_code == 302 and response.url == reverse("device_detail", args=[SIM_A])
    assert float(simulated_setpoint.priorityArray[7].real) == 70.0
    assert float(simulated_setpoint.presentValue) == 70.0
    html = page(await operator_async.get(response.url))
    assert f"{setpoint.object_name}: Wrote 70.0 at priority 8." in html

    response = await operator_async.post(
        url, {"value": "71.5", "priority": "9"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": "Wrote 71.5 at priority 9."}
    assert float(simulated_setpoint.priorityArray[8].real) == 71.5

    response = await operator_async.post(
        url, {"value": "abc", "priority": "8"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 400 and response.json()["message"].startswith("Invalid value:")
    assert float(simulated_setpoint.priorityArray[7].real) == 70.0

    for priority in ("8", "9"):
        response = await operator_async.post(url, {"relinquish": "on", "priority": priority})
        assert response.status_code == 302
    assert simulated_setpoint.priorityArray[7].null is not None
    assert simulated_setpoint.priorityArray[8].null is not None
    assert float(simulated_setpoint.presentValue) == float(simulated_setpoint.relinquishDefault)


@pytest.mark.django_db(transaction=True)
async def test_a_write_the_device_refuses_is_reported(scanning_service, operator_async):
    await scanning_service.discover_devices()
    device = await db(BACnetDevice.objects.get)(device_id=SIM_A)
    missing = await db(BACnetPoint.objects.create)(
        device=device, object_type="analog-output", instance=99, object_name="Ghost", commandable=True
    )
    url = reverse("write_point", args=[SIM_A, missing.pk])
    response = await operator_async.post(
        url, {"value": "70", "priority": "8"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 502
    assert response.json() == {
        "ok": False,
        "message": "The device refused the write: Unknown object (object error)",
    }
    response = await operator_async.post(url, {"value": "70", "priority": "8"}, follow=True)
    assert "Ghost: The device refused the write: Unknown object (object error)" in page(response)


@pytest.mark.django_db(transaction=True)
async def test_reading_the_points_of_an_unknown_device_is_not_found(scanning_service, operator_async):
    response = await operator_async.post(reverse("discover_points", args=[424242]))
    assert response.status_code == 404


# --- 4c. an operator, with the service not running ------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_writes_are_refused_while_the_service_is_not_running(stopped, operator_async):
    await db(make_ahu)()
    await db(make_remote_device)()
    url = await db(write_url)(SETPOINT)
    before = await db(snapshot)()
    response = await operator_async.post(
        url, {"value": "75", "priority": "8"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 503
    assert response.json() == {"ok": False, "message": NOT_RUNNING_MESSAGE}
    response = await operator_async.post(url, {"value": "75", "priority": "8"}, follow=True)
    assert "The BACnet service is not running in this process" in page(response)
    response = await operator_async.post(
        url, {"out_of_service": "true"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 503
    point = await db(remote_point)("Supply_Setpoint")
    response = await operator_async.post(
        reverse("write_point", args=[REMOTE_ID, point.pk]),
        {"value": "70", "priority": "8"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 503 and "not running" in response.json()["message"]
    response = await operator_async.post(reverse("discover_points", args=[REMOTE_ID]), follow=True)
    assert "The BACnet service is not running in this process" in page(response)
    assert await db(snapshot)() == before


@pytest.mark.django_db(transaction=True)
async def test_a_scan_is_refused_while_the_service_is_not_running(stopped, operator_async):
    response = await operator_async.post(reverse("start_discovery"), {"low_limit": "1", "high_limit": "9"})
    assert response.status_code == 503
    assert "The BACnet service is not running in this process" in page(response)
    assert await db(NetworkScan.objects.count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_a_device_created_while_the_service_is_not_running_is_stored(stopped, operator_async):
    response = await operator_async.post(
        reverse("create_virtual_device"), {"template": "lighting", "name": "Lights", "device_id": "3001"}
    )
    assert response.status_code == 302
    assert await db(VirtualBACnetObject.objects.filter(device__device_id=3001).count)() == 3

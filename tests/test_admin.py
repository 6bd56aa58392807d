"""The Django admin pages of the discovery app: every list and change page renders for staff."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from discovery.models import (
    BACnetDevice,
    BACnetPoint,
    BACnetReading,
    DiscoveredDevice,
    NetworkScan,
    VirtualBACnetDevice,
    VirtualBACnetObject,
    VirtualObjectWrite,
    WriteSource,
)
from discovery.services import virtual_store
from discovery.services.bacnet.point_state import PointState

pytestmark = pytest.mark.usefixtures("db")

REGISTERED = list(apps.get_app_config("discovery").get_models())


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def staff(django_user_model, settings) -> Client:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def ahu() -> VirtualBACnetDevice:  # shadows conftest's ahu: this one needs only `db`
    """A virtual device with its objects and one recorded write, so every list has rows."""
    device = virtual_store.create_virtual_device(template="hvac_controller", device_id=1001, name="AHU-1")
    setpoint = device.bacnet_objects.get(object_type="analog-output")
    state = PointState.initial("analog-output", 72.0, min_value=55.0, max_value=85.0)
    virtual_store.persist_write(
        setpoint.pk,
        state,
        virtual_store.WriteRecord(
            property_name="presentValue",
            value=72.0,
            priority=8,
            source=WriteSource.EXTERNAL_BACNET_WRITE,
            source_address="10.77.1.2",
        ),
    )
    remote = BACnetDevice.objects.create(device_id=100001, address="10.77.1.21", object_name="AHU-2")
    point = BACnetPoint.objects.create(device=remote, object_type="analog-input", instance=1, object_name="T")
    BACnetReading.objects.create(point=point, value=1.0, value_text="1", timestamp=timezone.now())
    scan = NetworkScan.objects.create(devices_found=1)
    DiscoveredDevice.objects.create(scan=scan, device=remote, address=remote.address)
    return device


def test_it_registers_every_discovery_model():
    registered = {model for model in admin.site._registry if model._meta.app_label == "discovery"}
    assert registered == set(REGISTERED)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model.__name__)
def test_every_changelist_renders_when_empty(staff, model):
    assert staff.get(admin_url(model, "changelist")).status_code == 200


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model.__name__)
def test_every_changelist_renders_with_rows(staff, ahu, model):
    response = staff.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model.__name__)
def test_every_change_page_of_an_existing_row_renders(staff, ahu, model):
    for row in model.objects.all():
        assert staff.get(admin_url(model, "change", row.pk)).status_code == 200, row


def test_the_device_page_lists_its_objects_inline(staff, ahu):
    response = staff.get(admin_url(VirtualBACnetDevice, "change", ahu.pk))
    content = response.content.decode()
    for name in ("Zone_Temperature", "Temperature_Setpoint", "Fan_Control"):
        assert f"Virtual_1001_{name}" in content


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (VirtualBACnetDevice, {"q": "AHU"}),
        (VirtualBACnetDevice, {"q": "1001"}),
        (VirtualBACnetDevice, {"template": "hvac_controller", "port": "47808"}),
        (VirtualBACnetObject, {"q": "Setpoint", "object_type": "analog-output"}),
        (VirtualBACnetObject, {"out_of_service__exact": "0", "q": "Fan"}),
        (VirtualObjectWrite, {"q": "10.77.1.2", "source": WriteSource.EXTERNAL_BACNET_WRITE}),
    ],
    ids=[
        "device-by-name",
        "device-by-id",
        "device-filters",
        "object-search",
        "object-filter",
        "write-search",
    ],
)
def test_searches_and_filters_find_the_row(staff, ahu, model, query):
    response = staff.get(admin_url(model, "changelist"), query)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_the_write_history_is_read_only(staff, ahu):
    write = VirtualObjectWrite.objects.get()
    response = staff.get(admin_url(VirtualObjectWrite, "change", write.pk))
    assert response.status_code == 200
    assert b'name="_save"' not in response.content


def test_the_admin_index_lists_the_app(staff):
    response = staff.get(reverse("admin:index"))
    assert response.status_code == 200
    assert b"BACnet discovery and virtual devices" in response.content


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model.__name__)
def test_an_anonymous_user_is_sent_to_the_login_page(ahu, model):
    url = admin_url(model, "changelist")
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert f"next={url}" in response["Location"]


def test_virtual_devices_cannot_be_added_or_edited_in_the_admin(staff, ahu):
    assert staff.get(admin_url(VirtualBACnetDevice, "add")).status_code == 403
    response = staff.post(admin_url(VirtualBACnetDevice, "change", ahu.pk), {"device_id": 8888, "name": "x"})
    assert response.status_code == 403
    ahu.refresh_from_db()
    assert (ahu.device_id, ahu.name) == (1001, "AHU-1")


def test_deleting_a_virtual_device_in_the_admin_bumps_the_database_revision(staff, ahu):
    revision = virtual_store.get_database_revision()
    response = staff.post(admin_url(VirtualBACnetDevice, "delete", ahu.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not VirtualBACnetDevice.objects.exists()
    assert virtual_store.get_database_revision() == revision + 1

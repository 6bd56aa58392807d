"""Database functions of the client side, without a network: what discovery, point reads and
the poller store, and how."""

from datetime import timedelta

import pytest
from bacpypes3.basetypes import BinaryPV, EngineeringUnits, StatusFlags
from bacpypes3.constructeddata import ArrayOf
from bacpypes3.primitivedata import CharacterString, Real, Unsigned
from django.utils import timezone

from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, NetworkScan
from discovery.services import remote_store
from discovery.services.bacnet.client import IAm, RemoteObject

pytestmark = pytest.mark.django_db


def remote_object(object_type: str, instance: int, **properties) -> RemoteObject:
    obj = RemoteObject(object_type, instance)
    obj.properties = {"objectName": CharacterString(f"{object_type}-{instance}"), **properties}
    return obj


@pytest.fixture
def device() -> BACnetDevice:
    scan = remote_store.start_scan(low_limit=None, high_limit=None, address="", timeout=1.0)
    iam = IAm(
        device_id=100001, address="10.77.1.21", vendor_id=555, max_apdu=480, segmentation="no-segmentation"
    )
    remote_store.record_device(
        scan, iam, {"objectName": "AHU-2", "vendorName": "Acme", "protocolRevision": 14}
    )
    remote_store.finish_scan(scan)
    return BACnetDevice.objects.get(device_id=100001)


def test_a_scan_stores_each_device_and_its_sighting(device):
    assert (device.object_name, device.vendor_name, device.protocol_revision) == ("AHU-2", "Acme", 14)
    assert device.online and device.last_seen and not device.can_segment
    scan = NetworkScan.objects.get()
    assert scan.devices_found == 1 and scan.finished_at and scan.results.get().address == "10.77.1.21"
    assert remote_store.device_target(100001).max_apdu == 480


def test_an_unknown_device_is_refused_with_a_message():
    with pytest.raises(remote_store.UnknownDevice, match="unknown device 7"):
        remote_store.device_target(7)


def test_points_are_stored_typed_with_a_first_reading(device):
    objects = [
        remote_object(
            "analog-input",
            1,
            presentValue=Real(21.5),
            units=EngineeringUnits("degrees-celsius"),
            statusFlags=StatusFlags([0, 0, 0, 1]),
        ),
        remote_object(
            "binary-output",
            1,
            presentValue=BinaryPV("active"),
            activeText=CharacterString("On"),
            inactiveText=CharacterString("Off"),
        ),
        remote_object(
            "multi-state-value",
            1,
            presentValue=Unsigned(2),
            stateText=ArrayOf(CharacterString)(["Off", "Auto", "Scene"]),
            relinquishDefault=Unsigned(1),
        ),
    ]
    assert remote_store.store_points(100001, objects) == 3
    points = {p.object_type: p for p in BACnetPoint.objects.all()}
    assert (points["analog-input"].present_value, points["analog-input"].units) == (21.5, "degrees-celsius")
    assert points["analog-input"].status_flags == [0, 0, 0, 1]
    assert (points["binary-output"].present_value, points["binary-output"].present_value_text) == (1.0, "On")
    assert points["binary-output"].commandable
    assert (
        points["multi-state-value"].present_value_text == "Auto" and points["multi-state-value"].commandable
    )
    assert not points["analog-input"].commandable
    assert BACnetReading.objects.count() == 3
    # reading the device again updates the points and adds readings
    objects[0].properties["presentValue"] = Real(22.0)
    assert remote_store.store_points(100001, objects[:1]) == 1
    assert BACnetPoint.objects.get(object_type="analog-input").present_value == 22.0
    assert BACnetPoint.objects.count() == 3 and BACnetReading.objects.count() == 4


def test_readings_are_bulk_stored_and_update_the_last_value(device):
    remote_store.store_points(
        100001, [remote_object("analog-input", n, presentValue=Real(1.0)) for n in (1, 2)]
    )
    first, second = BACnetPoint.objects.order_by("instance")
    now = timezone.now()
    readings = [
        remote_store.Reading(first.pk, 2.0, "2", [0, 0, 0, 0], now - timedelta(seconds=1)),
        remote_store.Reading(first.pk, 3.0, "3", [1, 0, 0, 0], now),
        remote_store.Reading(second.pk, 9.0, "9", [0, 0, 0, 0], now),
    ]
    assert remote_store.store_readings(readings) == 3
    first.refresh_from_db()
    assert (first.present_value, first.present_value_text, first.status_flags) == (3.0, "3", [1, 0, 0, 0])
    assert first.last_update == now
    assert BACnetReading.objects.filter(point=first).count() == 3


def test_the_polling_plan_and_its_fingerprint_follow_the_points(device):
    remote_store.store_points(100001, [remote_object("analog-input", 1, presentValue=Real(1.0))])
    fingerprint = remote_store.points_fingerprint()
    plan = remote_store.polling_plan({"fast": 1.0, "normal": 5.0, "slow": 60.0})
    target, points = plan[100001]
    assert target.address == "10.77.1.21" and [p.interval for p in points] == [5.0]
    remote_store.set_cov_points([points[0].point_id], {points[0].point_id})
    assert BACnetPoint.objects.get().cov_supported is True
    BACnetPoint.objects.update(poll_class="fast")
    assert remote_store.points_fingerprint() != fingerprint
    fingerprint = remote_store.points_fingerprint()
    remote_store.store_points(100001, [remote_object("analog-input", 2, presentValue=Real(1.0))])
    assert remote_store.points_fingerprint() != fingerprint


def test_a_device_going_offline_and_back_is_recorded(device):
    remote_store.set_device_online(100001, False, "timeout: the device did not answer")
    device.refresh_from_db()
    assert not device.online and device.last_error.startswith("timeout")
    remote_store.set_device_online(100001, True)
    device.refresh_from_db()
    assert device.online and device.last_error == ""

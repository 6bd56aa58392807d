"""The client half of the service against simulated devices: discovery, points, writes, polling."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from bacpypes3.primitivedata import Real
from django.db.models import Count

from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, NetworkScan
from discovery.services import remote_store
from discovery.services.bacnet.client import BACnetRequestError
from discovery.services.poller import Poller
from discovery.simulator.devices import SimulatedDeviceConfig, Simulation
from tests import netns
from tests.conftest import eventually, make_client_app

pytestmark = pytest.mark.django_db(transaction=True)

NORMAL, NO_RPM, UNSEGMENTED, SILENT = 100001, 100002, 100003, 100004
OBJECTS = 14


def db(fn, *args, **kwargs):
    return sync_to_async(fn)(*args, **kwargs)


@pytest.fixture
def fast_requests(settings):
    settings.BACNET_APDU_TIMEOUT_MS = 400
    settings.BACNET_APDU_RETRIES = 0
    settings.BACNET_DISCOVERY_TIMEOUT = 0.6
    settings.BACNET_DISCOVERY_CACHE_SECONDS = 300


def simulated(device_id: int, host: int, **quirks) -> SimulatedDeviceConfig:
    options = {"object_count": OBJECTS, "drift_interval": 0, **quirks}
    return SimulatedDeviceConfig(
        device_id=device_id, name=f"SIM-{device_id}", address=netns.address(host), **options
    )


@pytest.fixture
async def simulation(private_network):
    simulation = await Simulation.start(
        [
            simulated(NORMAL, 21),
            simulated(NO_RPM, 22, supports_rpm=False),
            simulated(UNSEGMENTED, 23, segmentation=False, object_count=520),
            simulated(SILENT, 24),
        ]
    )
    try:
        yield simulation
    finally:
        await simulation.stop()


@pytest.fixture
async def service(fast_requests, private_network, transactional_db, simulation):
    from discovery.services.unified_bacnet_service import UnifiedBACnetService

    bacnet_service = UnifiedBACnetService(address=netns.address(1), watch_interval=0.2)
    await bacnet_service.start_service()
    try:
        yield bacnet_service
    finally:
        await bacnet_service.stop_service()


def simulated_object(simulation, device_id, object_id):
    kind, instance = object_id.split(",")
    app = simulation.device(device_id).app
    for obj in app.iter_objects():
        if str(obj.objectIdentifier[0]) == kind and obj.objectIdentifier[1] == int(instance):
            return obj
    raise KeyError(object_id)


async def test_a_global_who_is_finds_exactly_the_simulated_devices(service, simulation):
    result = await service.discover_devices()
    assert sorted(d["device_id"] for d in result.devices) == [NORMAL, NO_RPM, UNSEGMENTED, SILENT]
    stored = await db(lambda: {d.device_id: d for d in BACnetDevice.objects.all()})
    assert 8888 not in stored
    normal = stored[NORMAL]
    assert normal.address == netns.ip(21) and normal.vendor_id == 555
    assert (normal.object_name, normal.vendor_name) == (f"SIM-{NORMAL}", "Simulated Controls Inc.")
    assert normal.model_name and normal.firmware_revision == "1.0.0" and normal.protocol_revision
    assert stored[UNSEGMENTED].segmentation == "no-segmentation" and stored[UNSEGMENTED].max_apdu == 480
    assert stored[NO_RPM].object_name == f"SIM-{NO_RPM}"  # read with ReadProperty
    scan = await db(NetworkScan.objects.get)
    assert scan.devices_found == 4 and scan.finished_at and not scan.error
    assert await db(lambda: scan.results.count()) == 4


async def test_a_ranged_who_is_finds_only_devices_in_range(service, simulation):
    result = await service.discover_devices(low_limit=NO_RPM, high_limit=UNSEGMENTED)
    assert sorted(d["device_id"] for d in result.devices) == [NO_RPM, UNSEGMENTED]


async def test_a_directed_who_is_finds_the_device_at_that_address(service, simulation):
    result = await service.discover_devices(address=netns.ip(21))
    assert [d["device_id"] for d in result.devices] == [NORMAL]


async def test_a_scan_within_the_cache_time_sends_no_who_is(service, simulation):
    who_is_seen = []
    listener = make_client_app(6)

    async def count(apdu):
        who_is_seen.append(apdu)

    listener.do_WhoIsRequest = count
    await asyncio.sleep(0.05)
    try:
        first = await service.discover_devices()
        assert not first.cached and len(who_is_seen) == 1
        second = await service.discover_devices()
        assert second.cached and second.devices == first.devices and len(who_is_seen) == 1
        third = await service.discover_devices(force=True)
        assert not third.cached and len(who_is_seen) == 2
    finally:
        listener.close()
    assert await db(NetworkScan.objects.count) == 2


async def test_two_scans_asked_for_at_once_run_once(service, simulation):
    first, second = await asyncio.gather(service.discover_devices(), service.discover_devices())
    assert first.scan_id == second.scan_id
    assert await db(NetworkScan.objects.count) == 1


async def test_a_scan_reads_and_stores_each_device_while_it_still_listens(service, simulation):
    listen = 1.5
    begin = time.monotonic()
    scanning = asyncio.create_task(service.discover_devices(timeout=listen))
    assert await eventually(lambda: db(BACnetDevice.objects.filter(device_id=NORMAL).exists), timeout=listen)
    stored_after = time.monotonic() - begin
    result = await scanning
    assert stored_after < listen and len(result.devices) == 4
    scan = await db(NetworkScan.objects.get)
    assert scan.devices_found == 4 and scan.finished_at and not scan.error


async def test_a_scan_whose_who_is_fails_is_closed_with_the_error(service, simulation, monkeypatch):
    def broken_network(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(service.app, "who_is", broken_network)
    with pytest.raises(OSError, match="unreachable"):
        await service.discover_devices()
    scan = await db(NetworkScan.objects.get)
    assert scan.finished_at and "Network is unreachable" in scan.error and scan.devices_found == 0
    assert not await db(BACnetDevice.objects.exists)


async def test_a_commissioning_scan_reads_every_point_of_every_device(service, simulation):
    result = await service.discover_devices(timeout=2.0, read_points=True)

    reads = {read["device_id"]: read for read in result.point_reads}
    assert sorted(reads) == [NORMAL, NO_RPM, UNSEGMENTED, SILENT]
    assert {device_id: read["points"] for device_id, read in reads.items()} == {
        NORMAL: OBJECTS,
        NO_RPM: OBJECTS,
        UNSEGMENTED: 520,
        SILENT: OBJECTS,
    }
    assert not any(read["error"] for read in reads.values())
    assert (reads[NORMAL]["used_rpm"], reads[NO_RPM]["used_rpm"]) == (True, False)
    counts = await db(
        lambda: dict(BACnetPoint.objects.values_list("device__device_id").annotate(n=Count("id")).order_by())
    )
    assert counts == {NORMAL: OBJECTS, NO_RPM: OBJECTS, UNSEGMENTED: 520, SILENT: OBJECTS}
    # the normal device was read while the scan still listened for others
    scan = await db(NetworkScan.objects.get)
    normal = await db(BACnetDevice.objects.get, device_id=NORMAL)
    assert normal.points_read_at < scan.finished_at


async def test_a_commissioning_scan_after_a_cached_scan_reads_the_cached_devices(service, simulation):
    first = await service.discover_devices(low_limit=NORMAL, high_limit=NORMAL)
    again = await service.discover_devices(low_limit=NORMAL, high_limit=NORMAL, read_points=True)
    assert again.cached and again.scan_id == first.scan_id
    assert [(read["device_id"], read["points"]) for read in again.point_reads] == [(NORMAL, OBJECTS)]
    assert await db(NetworkScan.objects.count) == 1


async def test_point_discovery_reads_every_object_of_a_normal_device(service, simulation):
    await service.discover_devices()
    result = await service.read_device_points(NORMAL)
    assert (result.points, result.error, result.used_rpm) == (OBJECTS, "", True)
    points = await db(lambda: list(BACnetPoint.objects.filter(device__device_id=NORMAL)))
    assert len(points) == OBJECTS
    for point in points:
        obj = simulated_object(simulation, NORMAL, f"{point.object_type},{point.instance}")
        assert point.object_name == str(obj.objectName)
        if point.object_type.startswith("analog"):
            assert point.present_value == pytest.approx(float(obj.presentValue))
            assert point.units == str(obj.units)
        if point.object_type.startswith("multi-state"):
            assert point.state_texts == [str(t) for t in obj.stateText]
            assert point.present_value_text == point.state_texts[int(point.present_value) - 1]
        if point.object_type.startswith("binary"):
            assert point.present_value_text in (str(obj.activeText), str(obj.inactiveText))
        assert point.status_flags == [0, 0, 0, 0]
    setpoint = next(p for p in points if p.object_name.endswith("Temperature_Setpoint"))
    assert setpoint.commandable and setpoint.units == "degrees-fahrenheit"
    assert await db(BACnetReading.objects.count) == OBJECTS


async def test_point_discovery_falls_back_to_read_property(service, simulation):
    await service.discover_devices()
    result = await service.read_device_points(NO_RPM)
    assert (result.points, result.error, result.used_rpm) == (OBJECTS, "", False)
    device = await db(BACnetDevice.objects.get, device_id=NO_RPM)
    assert device.supports_rpm is False
    names = await db(
        lambda: set(BACnetPoint.objects.filter(device=device).values_list("object_name", flat=True))
    )
    assert len(names) == OBJECTS and all(names)


async def test_point_discovery_reads_a_large_object_list_element_by_element(service, simulation):
    await service.discover_devices()
    result = await service.read_device_points(UNSEGMENTED)
    assert (result.points, result.error) == (520, "")
    points = await db(lambda: BACnetPoint.objects.filter(device__device_id=UNSEGMENTED).count())
    assert points == 520


async def test_writing_at_priority_8_and_relinquishing_it(service, simulation):
    await service.discover_devices()
    setpoint = "analog-output,1"
    obj = simulated_object(simulation, NORMAL, setpoint)
    await service.write_remote_point(NORMAL, setpoint, 70.0, priority=8)
    assert float(obj.priorityArray[7].real) == 70.0 and float(obj.presentValue) == 70.0
    await service.write_remote_point(NORMAL, setpoint, None, priority=8)
    assert obj.priorityArray[7].null is not None
    assert await service.read_remote_property(NORMAL, setpoint, "presentValue") == float(
        obj.relinquishDefault
    )


async def test_bad_requests_give_a_clear_result_and_leave_the_database_consistent(service, simulation):
    await service.discover_devices()
    with pytest.raises(remote_store.UnknownDevice):
        await service.read_device_points(424242)
    with pytest.raises(BACnetRequestError) as error:
        await service.read_remote_property(NORMAL, "analog-input,999", "presentValue")
    assert (error.value.error_class, error.value.error_code) == ("object", "unknown-object")
    with pytest.raises(BACnetRequestError) as error:
        await service.write_remote_point(NORMAL, "analog-output,1", "fast", priority=8)
    assert error.value.kind == "invalid-value"
    with pytest.raises(BACnetRequestError) as error:
        await service.write_remote_point(NORMAL, "analog-output,99", 70.0, priority=8)
    assert error.value.describe() == "object: unknown-object"
    with pytest.raises(ValueError):
        await service.write_remote_point(NORMAL, "analog-output,1", 70.0, priority=0)
    # a device that moved away: its address no longer answers
    await db(BACnetDevice.objects.filter(device_id=SILENT).update, address=netns.ip(39))
    result = await service.read_device_points(SILENT)
    assert result.points == 0 and "timeout" in result.error
    device = await db(BACnetDevice.objects.get, device_id=SILENT)
    assert "timeout" in device.last_error
    assert await db(BACnetPoint.objects.filter(device=device).count) == 0


async def test_a_device_that_stops_answering_mid_read_keeps_what_was_read(service, simulation):
    await service.discover_devices()
    silent = simulation.device(UNSEGMENTED)
    reading = asyncio.create_task(service.read_device_points(UNSEGMENTED))
    await asyncio.sleep(0.3)
    silent.silence()
    result = await reading
    assert "timeout" in result.error or "no-response" in result.error
    device = await db(BACnetDevice.objects.get, device_id=UNSEGMENTED)
    assert device.last_error


async def test_the_poller_stores_readings_at_the_configured_interval(service, simulation, settings):
    settings.BACNET_POLL_NORMAL = 0.3
    await service.discover_devices()
    await service.read_device_points(NO_RPM)
    before = await db(BACnetReading.objects.count)
    poller = Poller(service.remote, use_cov=False)
    await poller.start()
    try:
        await asyncio.sleep(1.2)
    finally:
        await poller.stop()
    polled = await db(BACnetReading.objects.count) - before
    # 14 points read about every 0.3 s for 1.2 s: 3 to 5 rounds
    assert 3 * OBJECTS <= polled <= 5 * OBJECTS


async def test_a_cov_change_arrives_without_a_poll(service, simulation, settings):
    settings.BACNET_POLL_NORMAL = 3600  # nothing is polled twice during this test
    await service.discover_devices()
    await service.read_device_points(NORMAL)
    poller = Poller(service.remote, use_cov=True)
    await poller.start()
    try:
        assert await eventually(lambda: asyncio.sleep(0, poller.status()["cov_points"] == OBJECTS), 3)
        sensor = simulated_object(simulation, NORMAL, "analog-input,1")
        sensor.presentValue = Real(float(sensor.presentValue) + 5.0)
        target = float(sensor.presentValue)

        async def arrived():
            return await db(
                BACnetReading.objects.filter(
                    point__device__device_id=NORMAL,
                    point__object_type="analog-input",
                    point__instance=1,
                    value=target,
                ).exists
            )

        assert await eventually(arrived, 2)
        assert await db(
            lambda: BACnetPoint.objects.filter(device__device_id=NORMAL, cov_supported=True).count()
        )
    finally:
        await poller.stop()


async def test_a_silent_device_goes_offline_and_comes_back(service, simulation, settings):
    settings.BACNET_POLL_NORMAL = 0.2
    await service.discover_devices()
    await service.read_device_points(NORMAL)
    device = simulation.device(NORMAL)
    poller = Poller(service.remote, use_cov=False)
    await poller.start()
    try:

        async def online(expected):
            stored = await db(BACnetDevice.objects.get, device_id=NORMAL)
            return stored.online is expected

        device.silence()
        assert await eventually(lambda: online(False), 4)
        device.resume()
        assert await eventually(lambda: online(True), 6)
    finally:
        await poller.stop()
